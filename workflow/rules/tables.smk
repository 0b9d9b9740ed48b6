# Tables are built only from metrics files that rules wrote.
UNSUPERVISED_METRICS = expand(
    f"{RESULTS}/metrics/unsupervised/{{method}}/{{dataset}}.csv",
    method=CFG.unsupervised.methods,
    dataset=CFG.unsupervised_datasets(),
)
INTRA_METRICS = expand(f"{RESULTS}/metrics/{{model}}/{{dataset}}/intra.csv", model=MODELS, dataset=INTRA.datasets)
# Published fixed splits (config/paper.yaml) share the intra-dataset table, with their protocol named.
INTRA_METRICS += expand(
    f"{RESULTS}/metrics/{{model}}/{{dataset}}/published.csv", model=MODELS, dataset=sorted(CFG.protocols.published)
)
CROSS_METRICS = [
    f"{RESULTS}/metrics/{model}/{pair.train}/cross-{target}.csv"
    for model in MODELS
    for pair in CFG.protocols.cross
    for target in pair.test
]
TABLES = [f"{RESULTS}/tables/unsupervised.md", f"{RESULTS}/tables/unsupervised.csv"]
if INTRA_METRICS:
    TABLES += [f"{RESULTS}/tables/intra.md", f"{RESULTS}/tables/intra.csv"]
if CROSS_METRICS:
    TABLES += [f"{RESULTS}/tables/cross.md", f"{RESULTS}/tables/cross.csv"]


rule table_unsupervised:
    input:
        UNSUPERVISED_METRICS,
    output:
        md=f"{RESULTS}/tables/unsupervised.md",
        csv=f"{RESULTS}/tables/unsupervised.csv",
    priority: 10
    log:
        f"{RESULTS}/logs/tables/unsupervised.log",
    shell:
        "lqrppg tables unsupervised --metrics {input} --out-prefix {RESULTS}/tables/unsupervised 2> {log}"


rule table_supervised:
    input:
        metrics=lambda wc: INTRA_METRICS if wc.kind == "intra" else CROSS_METRICS,
        unsupervised=UNSUPERVISED_METRICS,
    output:
        md=f"{RESULTS}/tables/{{kind}}.md",
        csv=f"{RESULTS}/tables/{{kind}}.csv",
    wildcard_constraints:
        kind="intra|cross",
    log:
        f"{RESULTS}/logs/tables/{{kind}}.log",
    shell:
        "lqrppg tables {wildcards.kind} --metrics {input.metrics} --unsupervised {input.unsupervised}"
        " --out-prefix {RESULTS}/tables/{wildcards.kind} 2> {log}"
