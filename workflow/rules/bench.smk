# The cost benchmark: every model of `bench.models` at the config's chunk and face size (and
# at its published input with `bench.published: true`). Torch job: the gpu token and all cores.
BENCH_DIR = f"{RESULTS}/bench"


rule bench:
    output:
        csv=f"{BENCH_DIR}/cost.csv",
        md=f"{BENCH_DIR}/cost.md",
    input:
        tracking=TRACKING_READY,
    params:
        settings=f"{CFG.bench.model_dump_json()}:{CFG.preprocess.chunk_length}x{CFG.preprocess.size}",
    resources:
        gpu=1,
    threads: TORCH_THREADS
    log:
        f"{RESULTS}/logs/bench.log",
    shell:
        "lqrppg bench {CONFIG_ARGS} --out-dir {BENCH_DIR} --threads {threads} 2> {log}"


rule table_cost:
    input:
        f"{BENCH_DIR}/cost.csv",
    output:
        table_files("cost"),
    log:
        f"{RESULTS}/logs/tables/cost.log",
    shell:
        "lqrppg tables cost --metrics {input} --out-prefix {RESULTS}/tables/cost 2> {log}"
