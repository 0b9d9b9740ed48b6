# Data stages: synthesize (synthetic datasets only) -> acquire -> preprocess.
#
# Dataset folders may be DVC-managed, and a DVC checkout gives every file a new mtime, so
# `acquire` sees them through ancient(); whether their content is still what was acquired is
# checked by the manifest (size, mtime, SHA-256) in every later stage instead.


def synth_spec(wildcards):
    return f"{CFG.seed}:{CFG.synthetic[wildcards.dataset].model_dump_json()}"


rule synthesize:
    output:
        raw=directory(f"{CFG.data_dir}/raw/{{dataset}}"),
        truth=directory(f"{CFG.data_dir}/truth/{{dataset}}"),
        # Not tracked by DVC, so a checkout leaves its mtime alone: it is what carries a
        # real rerun of this job on to `acquire`, whose view of the folder is ancient().
        stamp=f"{RESULTS}/raw/{{dataset}}/synthesized.txt",
    wildcard_constraints:
        dataset="|".join(re.escape(d) for d in SYNTHETIC) or "^$",
    params:
        # A changed spec or seed reruns the job (Snakemake's params rerun trigger).
        spec=synth_spec,
    log:
        f"{RESULTS}/logs/synthesize/{{dataset}}.log",
    shell:
        "lqrppg synth {CONFIG_ARGS} --dataset {wildcards.dataset} --stamp {output.stamp} 2> {log}"


def acquire_input(wildcards):
    """The dataset folder as ancient(), plus the stamp of a synthetic one.

    Snakemake does not rerun a job whose inputs from a rerun job are all ancient, so the
    synthetic folder's (untracked) stamp is what makes a re-synthesis reach `acquire`. A real
    folder is listed only if it exists, so a missing one reaches `lqrppg acquire` and its
    message on where to get the data.
    """
    dataset = wildcards.dataset
    root = CFG.dataset(dataset).root
    if dataset in CFG.synthetic:
        return [ancient(str(root)), f"{RESULTS}/raw/{dataset}/synthesized.txt"]
    return [ancient(str(root))] if root.is_dir() else []


def acquire_source(wildcards):
    """A changed dataset entry (root, reader, options, download) reruns `acquire`."""
    if wildcards.dataset in CFG.synthetic:
        return synth_spec(wildcards)
    # Its preprocess changes only shape the store (a new store folder), not what was acquired.
    return CFG.dataset(wildcards.dataset).model_dump_json(exclude={"preprocess"})


rule acquire:
    input:
        acquire_input,
    output:
        manifest=f"{RESULTS}/raw/{{dataset}}/manifest.parquet",
        report=f"{RESULTS}/raw/{{dataset}}/verification.json",
    params:
        source=acquire_source,
    log:
        f"{RESULTS}/logs/acquire/{{dataset}}.log",
    shell:
        "lqrppg acquire {CONFIG_ARGS} --dataset {wildcards.dataset} --out {output.manifest}"
        " --report {output.report} 2> {log}"


rule preprocess:
    # Not ancient(): Snakemake skips the dependents of a rerun job when all their inputs are
    # ancient, and a new manifest must reach the store.
    input:
        f"{RESULTS}/raw/{{dataset}}/manifest.parquet",
    output:
        # prep_id: the short hash of the dataset's preprocess settings (global + its own changes)
        directory(f"{RESULTS}/processed/{{dataset}}/{{prep_id}}"),
    wildcard_constraints:
        prep_id="[0-9a-f]{10}",
    threads: CFG.workers
    log:
        f"{RESULTS}/logs/preprocess/{{dataset}}/{{prep_id}}.log",
    shell:
        "lqrppg preprocess {CONFIG_ARGS} --dataset {wildcards.dataset} --manifest {input}"
        " --out {output} --workers {threads} 2> {log}"
