# LQ-rPPG and supervised baselines: split -> fit_quantizers -> quantize_labels -> train.
from lqrppg.models import get_model

MODELS = sorted(CFG.models)
INTRA = CFG.protocols.intra
CROSS_SOURCES = sorted({pair.train for pair in CFG.protocols.cross})
SPLIT = f"{RESULTS}/splits/{{protocol}}/{{dataset}}/{{fold}}.json"
# The paper's learned codebooks live under lq/; the ablations' fixed ones under lq-uniform/, lq-kmeans/.
LQ_DIR = f"{RESULTS}/{{lq}}/{{dataset}}/{{protocol}}/{{fold}}"


def lq_folder(codebook):
    return "lq" if codebook == "learned" else f"lq-{codebook}"


CODEBOOK_OF_FOLDER = {lq_folder(kind): kind for kind in ("learned", "uniform", "kmeans")}
MODEL_DIR = f"{RESULTS}/models/{{model}}/{{dataset}}/{{protocol}}/{{fold}}"


wildcard_constraints:
    protocol="intra|published|cross",
    fold=r"fold\d+|split|source(-[a-z0-9-]+)?",
    model="|".join(re.escape(m) for m in MODELS) or "^$",
    lq="lq|lq-uniform|lq-kmeans",


rule split:
    input:
        store_of,
    output:
        SPLIT,
    log:
        f"{RESULTS}/logs/split/{{protocol}}/{{dataset}}/{{fold}}.log",
    params:
        fold=lambda wc: {"intra": f"--fold {wc.fold.removeprefix('fold')}", "cross": f"--name {wc.fold}"}.get(
            wc.protocol, ""
        ),
    shell:
        "lqrppg split {CONFIG_ARGS} --dataset {wildcards.dataset} --protocol {wildcards.protocol} {params.fold}"
        " --store {input} --out {output} 2> {log}"


rule fit_quantizers:
    input:
        store=store_of,
        split=SPLIT,
    output:
        quantizers=f"{LQ_DIR}/quantizers.pt",
        codebooks=f"{LQ_DIR}/codebooks.json",
        report=f"{LQ_DIR}/fit.json",
    params:
        out_dir=lambda wc: LQ_DIR.format(**wc),
        settings=lambda wc: f"{CFG.seed}:{CFG.lq_settings(CODEBOOK_OF_FOLDER[wc.lq]).model_dump_json()}",
        codebook=lambda wc: CODEBOOK_OF_FOLDER[wc.lq],
    # One torch job at a time holds the gpu token; TORCH_THREADS (common.smk) keeps other jobs off its cores.
    resources:
        gpu=1,
    threads: TORCH_THREADS
    log:
        f"{RESULTS}/logs/fit_quantizers/{{lq}}/{{dataset}}/{{protocol}}/{{fold}}.log",
    shell:
        "lqrppg quantize fit {CONFIG_ARGS} --dataset {wildcards.dataset} --split {input.split}"
        " --store {input.store} --out-dir {params.out_dir} --codebook {params.codebook} --threads {threads} 2> {log}"


rule quantize_labels:
    input:
        store=store_of,
        split=SPLIT,
        quantizers=f"{LQ_DIR}/quantizers.pt",
    output:
        f"{LQ_DIR}/pseudo_labels.parquet",
    log:
        f"{RESULTS}/logs/quantize_labels/{{lq}}/{{dataset}}/{{protocol}}/{{fold}}.log",
    shell:
        "lqrppg quantize apply {CONFIG_ARGS} --dataset {wildcards.dataset} --split {input.split}"
        " --quantizers {input.quantizers} --store {input.store} --out {output} 2> {log}"


def lq_inputs(wildcards):
    """Models trained on quantized labels need the pseudo labels and codebooks of their split."""
    if get_model(CFG.registry_model(wildcards.model)).label_type != "quantized":
        return {}
    lq = LQ_DIR.format(lq=lq_folder(CFG.codebook_kind(wildcards.model)), **wildcards)
    return {"pseudo_labels": f"{lq}/pseudo_labels.parquet", "codebooks": f"{lq}/codebooks.json"}


def lq_args(wildcards, input):
    if "pseudo_labels" not in input.keys():
        return ""
    return f"--pseudo-labels {input.pseudo_labels} --codebooks {input.codebooks}"


rule train:
    input:
        unpack(lq_inputs),
        store=store_of,
        split=SPLIT,
        tracking=TRACKING_READY,
    output:
        checkpoint=f"{MODEL_DIR}/checkpoint.pt",
        report=f"{MODEL_DIR}/run.json",
    params:
        lq=lq_args,
        out_dir=lambda wc: MODEL_DIR.format(**wc),
        settings=lambda wc: f"{CFG.seed}:{CFG.train_settings(wc.model, wc.dataset, wc.protocol, wc.fold).model_dump_json()}",
    # The command picks CUDA itself when present (`training.device: auto`); Snakemake clamps
    # resources silently, so gpu=1 only limits how many training jobs share one GPU.
    resources:
        gpu=1,
    threads: TORCH_THREADS
    log:
        f"{RESULTS}/logs/train/{{model}}/{{dataset}}/{{protocol}}/{{fold}}.log",
    shell:
        "lqrppg train {CONFIG_ARGS} --model {wildcards.model} --dataset {wildcards.dataset}"
        " --split {input.split} --store {input.store} {params.lq} --out-dir {params.out_dir} --threads {threads} 2> {log}"
