# Test sets are predicted once, after selection on validation, then scored.


rule predict_intra:
    input:
        checkpoint=f"{MODEL_DIR}/checkpoint.pt",
        split=SPLIT,
        store=store_of,
    output:
        f"{RESULTS}/predictions/{{model}}/{{dataset}}/{{protocol}}/{{fold}}/{{dataset}}.parquet",
    wildcard_constraints:
        protocol="intra|published",
    resources:
        gpu=1,
    threads: TORCH_THREADS
    log:
        f"{RESULTS}/logs/predict/{{model}}/{{dataset}}/{{protocol}}/{{fold}}.log",
    shell:
        "lqrppg predict {CONFIG_ARGS} --checkpoint {input.checkpoint} --dataset {wildcards.dataset}"
        " --split {input.split} --store {input.store} --out {output} --threads {threads} 2> {log}"


rule predict_cross:
    input:
        checkpoint=lambda wc: f"{RESULTS}/models/{wc.model}/{wc.source}/cross/{wc.fold}/checkpoint.pt",
        store=lambda wc: str(CFG.store_path(wc.target)),
    output:
        f"{RESULTS}/predictions/{{model}}/{{source}}/cross/{{fold}}/{{target}}.parquet",
    resources:
        gpu=1,
    threads: TORCH_THREADS
    log:
        f"{RESULTS}/logs/predict/{{model}}/{{source}}/cross/{{fold}}/{{target}}.log",
    shell:
        "lqrppg predict {CONFIG_ARGS} --checkpoint {input.checkpoint} --dataset {wildcards.target}"
        " --store {input.store} --out {output} --threads {threads} 2> {log}"


rule evaluate_intra:
    input:
        expand(
            f"{RESULTS}/predictions/{{{{model}}}}/{{{{dataset}}}}/intra/fold{{fold}}/{{{{dataset}}}}.parquet",
            fold=range(INTRA.folds),
        ),
    output:
        metrics=f"{RESULTS}/metrics/{{model}}/{{dataset}}/intra.csv",
        per_video=f"{RESULTS}/metrics/{{model}}/{{dataset}}/intra.per_video.parquet",
    params:
        evaluation=CFG.evaluation.model_dump_json(),
    log:
        f"{RESULTS}/logs/evaluate/{{model}}/{{dataset}}/intra.log",
    shell:
        "lqrppg evaluate {CONFIG_ARGS} --predictions {input} --model {wildcards.model}"
        " --train-dataset {wildcards.dataset} --dataset {wildcards.dataset} --protocol intra --out {output.metrics} 2> {log}"


rule evaluate_published:
    input:
        f"{RESULTS}/predictions/{{model}}/{{dataset}}/published/split/{{dataset}}.parquet",
    output:
        f"{RESULTS}/metrics/{{model}}/{{dataset}}/published.csv",
    params:
        evaluation=CFG.evaluation.model_dump_json(),
    log:
        f"{RESULTS}/logs/evaluate/{{model}}/{{dataset}}/published.log",
    shell:
        "lqrppg evaluate {CONFIG_ARGS} --predictions {input} --model {wildcards.model}"
        " --train-dataset {wildcards.dataset} --dataset {wildcards.dataset} --protocol published --out {output} 2> {log}"


rule evaluate_cross:
    input:
        lambda wc: f"{RESULTS}/predictions/{wc.model}/{wc.source}/cross/"
        f"{CFG.cross_pair(wc.source, wc.target).fold}/{wc.target}.parquet",
    output:
        f"{RESULTS}/metrics/{{model}}/{{source}}/cross-{{target}}.csv",
    params:
        evaluation=CFG.evaluation.model_dump_json(),
    log:
        f"{RESULTS}/logs/evaluate/{{model}}/{{source}}/cross-{{target}}.log",
    shell:
        "lqrppg evaluate {CONFIG_ARGS} --predictions {input} --model {wildcards.model}"
        " --train-dataset {wildcards.source} --dataset {wildcards.target} --protocol cross --out {output} 2> {log}"
