# Unsupervised methods (POS, CHROM, GREEN, ICA, LGI, PBV, OMIT) on every dataset's chunk store:
# one job per dataset runs every configured method on the mean-RGB traces it reads once.
UNSUPERVISED_OUT = f"{RESULTS}/metrics/unsupervised"


rule unsupervised:
    input:
        store=store_of,
        tracking=TRACKING_READY,
    output:
        metrics=expand(f"{UNSUPERVISED_OUT}/{{method}}/{{{{dataset}}}}.csv", method=CFG.unsupervised.methods),
        per_video=expand(
            f"{UNSUPERVISED_OUT}/{{method}}/{{{{dataset}}}}.per_video.parquet", method=CFG.unsupervised.methods
        ),
    params:
        evaluation=CFG.evaluation.model_dump_json(),
        methods=" ".join(CFG.unsupervised.methods),
    # Minutes, against the hours of training that follow: the unsupervised table comes first.
    priority: 10
    log:
        f"{RESULTS}/logs/unsupervised/{{dataset}}.log",
    shell:
        "lqrppg unsupervised {CONFIG_ARGS} --dataset {wildcards.dataset} --method {params.methods}"
        " --store {input.store} --out-dir {UNSUPERVISED_OUT} 2> {log}"
