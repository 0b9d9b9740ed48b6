# Tables are built only from metrics files that rules wrote.
UNSUPERVISED_METRICS = expand(
    f"{RESULTS}/metrics/unsupervised/{{method}}/{{dataset}}.csv",
    method=CFG.unsupervised.methods,
    dataset=CFG.unsupervised_datasets(),
)
MAIN_MODELS = CFG.main_models()  # ablation-only entries (main: false) stay out of the main tables
INTRA_METRICS = expand(
    f"{RESULTS}/metrics/{{model}}/{{dataset}}/intra.csv", model=MAIN_MODELS, dataset=INTRA.datasets
)
# Published fixed splits (config/paper.yaml) share the intra-dataset table, with their protocol named.
INTRA_METRICS += expand(
    f"{RESULTS}/metrics/{{model}}/{{dataset}}/published.csv", model=MAIN_MODELS, dataset=sorted(CFG.protocols.published)
)
CROSS_METRICS = [
    f"{RESULTS}/metrics/{model}/{pair.train}/cross-{target}.csv"
    for model in MAIN_MODELS
    for pair in CFG.protocols.cross
    for target in pair.test
]
# Ablation groups (config/ablations.yaml): every (group, entry, dataset) is a k-fold run.
ABLATION_RUNS = [(g.name, m, d) for g in CFG.ablations for m in g.models for d in g.datasets]
ABLATION_METRICS = [f"{RESULTS}/metrics/{m}/{d}/intra.csv" for _, m, d in ABLATION_RUNS]
TABLE_SUFFIXES = ("md", "csv", "paper.csv", "tex")


def table_files(kind):
    return [f"{RESULTS}/tables/{kind}.{suffix}" for suffix in TABLE_SUFFIXES]


TABLES = table_files("unsupervised") + table_files("cost")
if INTRA_METRICS:
    TABLES += table_files("intra")
if CROSS_METRICS:
    TABLES += table_files("cross")
if ABLATION_RUNS:
    TABLES += table_files("ablation")


rule table_unsupervised:
    input:
        UNSUPERVISED_METRICS,
    output:
        table_files("unsupervised"),
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
        [f"{RESULTS}/tables/{{kind}}.{suffix}" for suffix in TABLE_SUFFIXES],
    wildcard_constraints:
        kind="intra|cross",
    log:
        f"{RESULTS}/logs/tables/{{kind}}.log",
    shell:
        "lqrppg tables {wildcards.kind} --metrics {input.metrics} --unsupervised {input.unsupervised}"
        " --out-prefix {RESULTS}/tables/{wildcards.kind} 2> {log}"


rule table_ablation:
    input:
        sorted(set(ABLATION_METRICS)),
    output:
        table_files("ablation"),
    params:
        # in run order, a file once per group that uses it (the reference entry is in several)
        metrics=" ".join(ABLATION_METRICS),
        groups=" ".join(g for g, _, _ in ABLATION_RUNS),
    log:
        f"{RESULTS}/logs/tables/ablation.log",
    shell:
        "lqrppg tables ablation --metrics {params.metrics} --groups {params.groups} --out-prefix {RESULTS}/tables/ablation 2> {log}"
