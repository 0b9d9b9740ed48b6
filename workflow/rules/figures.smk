# Figures are drawn only from files that rules wrote: each comes with the points it plots (.csv).
FIGURE_SUFFIXES = ("csv", "png", "pdf")


def figure_files(prefix):
    return [f"{prefix}.{suffix}" for suffix in FIGURE_SUFFIXES]


# Bland-Altman plots of every main model's k-fold results on each intra dataset.
BLAND_ALTMAN = [f"{RESULTS}/figures/bland-altman/{m}/{d}/intra" for m in MAIN_MODELS for d in INTRA.datasets]
# Ablation groups with a numeric axis (`curve` in config/ablations.yaml) are also drawn as curves.
ABLATION_CURVES = [f"{RESULTS}/figures/ablation-{g.name}" for g in CFG.ablations if g.curve is not None]
FIGURES = [f for prefix in BLAND_ALTMAN + ABLATION_CURVES for f in figure_files(prefix)]


rule figure_bland_altman:
    input:
        f"{RESULTS}/metrics/{{model}}/{{dataset}}/intra.per_video.parquet",
    output:
        figure_files(f"{RESULTS}/figures/bland-altman/{{model}}/{{dataset}}/intra"),
    log:
        f"{RESULTS}/logs/figures/bland-altman/{{model}}/{{dataset}}/intra.log",
    shell:
        "lqrppg figures bland-altman --per-video {input} --title '{wildcards.model} on {wildcards.dataset}, k-fold'"
        " --out {RESULTS}/figures/bland-altman/{wildcards.model}/{wildcards.dataset}/intra 2> {log}"


rule figure_ablation:
    input:
        f"{RESULTS}/tables/ablation.csv",
    output:
        [f for prefix in ABLATION_CURVES for f in figure_files(prefix)],
    log:
        f"{RESULTS}/logs/figures/ablation.log",
    shell:
        "lqrppg figures ablation {CONFIG_ARGS} --table {input} --out {RESULTS}/figures 2> {log}"
