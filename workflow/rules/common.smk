# Shared definitions: the typed config (validated once more by the package, which also
# checks registry names) and the paths every rule agrees on.
import re

from lqrppg.config import load_config

# The workflow reads the config exactly as every command does (same files, same strict
# loader that also rejects duplicate keys), so a rule runs identically by hand.
# Snakemake lists the --configfile files first and appends the Snakefile's own configfile after
# them, although the command line wins; the package merges files in order, later ones winning,
# so the command-line overlays go last here.
_CLI_CONFIGS = [str(f) for f in workflow.overwrite_configfiles or []]
CONFIG_FILES = [str(f) for f in workflow.configfiles if str(f) not in _CLI_CONFIGS] + _CLI_CONFIGS
CFG = load_config(CONFIG_FILES)
CONFIG_ARGS = " ".join(f"--config {f}" for f in CONFIG_FILES)
RESULTS = str(CFG.results_dir)
DATASETS = sorted(CFG.all_datasets())
SYNTHETIC = sorted(CFG.synthetic)
TRACKING_READY = f"{RESULTS}/.mlflow-ready.json"
# Threads of a torch job (train, fit_quantizers, predict). On a CPU the default (training.threads
# null) gives it every core of the run, so no other job shares them: torch's OpenMP pool
# spin-waits at each of the thousands of small ops of a step, and a busy neighbour makes a
# C2F step ~4x slower (0.6 s alone, 2.7 s beside one busy process, measured on 2 cores);
# passive waiting avoids that but costs 2.5x alone. On a GPU machine set training.threads: 2
# so CPU jobs keep running beside training. The command clamps the count to the real cores.
TORCH_THREADS = CFG.training.threads or workflow.cores


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    method="|".join(re.escape(m) for m in CFG.unsupervised.methods),


def raw_root(wildcards):
    """A synthetic dataset's folder comes from `synthesize`; a real one must already exist."""
    if wildcards.dataset in CFG.synthetic:
        return str(CFG.dataset(wildcards.dataset).root)
    return []


def store_of(wildcards):
    return str(CFG.store_path(wildcards.dataset))


rule init_tracking:
    output:
        TRACKING_READY,
    log:
        f"{RESULTS}/logs/init_tracking.log",
    shell:
        "lqrppg init-tracking {CONFIG_ARGS} --out {output} 2> {log}"
