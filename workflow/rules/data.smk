# Data stages: synthesize (synthetic datasets only) -> acquire -> preprocess.


rule synthesize:
    output:
        raw=directory(f"{CFG.data_dir}/raw/{{dataset}}"),
        truth=directory(f"{CFG.data_dir}/truth/{{dataset}}"),
    wildcard_constraints:
        dataset="|".join(re.escape(d) for d in SYNTHETIC) or "^$",
    params:
        # A changed spec or seed reruns the job (Snakemake's params rerun trigger).
        spec=lambda wc: f"{CFG.seed}:{CFG.synthetic[wc.dataset].model_dump_json()}",
    log:
        f"{RESULTS}/logs/synthesize/{{dataset}}.log",
    shell:
        "lqrppg synth {CONFIG_ARGS} --dataset {wildcards.dataset} 2> {log}"


rule acquire:
    input:
        raw_root,
    output:
        f"{RESULTS}/raw/{{dataset}}/manifest.parquet",
    log:
        f"{RESULTS}/logs/acquire/{{dataset}}.log",
    shell:
        "lqrppg acquire {CONFIG_ARGS} --dataset {wildcards.dataset} --out {output} 2> {log}"


rule preprocess:
    input:
        f"{RESULTS}/raw/{{dataset}}/manifest.parquet",
    output:
        directory(f"{RESULTS}/processed/{{dataset}}/{CFG.preprocess.prep_id()}"),
    threads: CFG.workers
    log:
        f"{RESULTS}/logs/preprocess/{{dataset}}.log",
    shell:
        "lqrppg preprocess {CONFIG_ARGS} --dataset {wildcards.dataset} --manifest {input}"
        " --out {output} --workers {threads} 2> {log}"
