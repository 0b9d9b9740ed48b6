# Tables are built only from metrics files that rules wrote.
UNSUPERVISED_METRICS = expand(
    f"{RESULTS}/metrics/unsupervised/{{method}}/{{dataset}}.csv",
    method=CFG.unsupervised.methods,
    dataset=CFG.unsupervised_datasets(),
)
TABLES = [f"{RESULTS}/tables/unsupervised.md", f"{RESULTS}/tables/unsupervised.csv"]


rule table_unsupervised:
    input:
        UNSUPERVISED_METRICS,
    output:
        md=f"{RESULTS}/tables/unsupervised.md",
        csv=f"{RESULTS}/tables/unsupervised.csv",
    log:
        f"{RESULTS}/logs/tables/unsupervised.log",
    shell:
        "lqrppg tables unsupervised --metrics {input} --out-prefix {RESULTS}/tables/unsupervised 2> {log}"
