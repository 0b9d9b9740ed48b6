# Unsupervised methods (POS, CHROM, GREEN, ...) on every dataset's chunk store.


rule unsupervised:
    input:
        store=store_of,
        tracking=TRACKING_READY,
    output:
        metrics=f"{RESULTS}/metrics/unsupervised/{{method}}/{{dataset}}.csv",
        per_video=f"{RESULTS}/metrics/unsupervised/{{method}}/{{dataset}}.per_video.parquet",
    params:
        evaluation=CFG.evaluation.model_dump_json(),
    # Minutes, against the hours of training that follow: the unsupervised table comes first.
    priority: 10
    log:
        f"{RESULTS}/logs/unsupervised/{{method}}/{{dataset}}.log",
    shell:
        "lqrppg unsupervised {CONFIG_ARGS} --dataset {wildcards.dataset} --method {wildcards.method}"
        " --store {input.store} --out {output.metrics} 2> {log}"
