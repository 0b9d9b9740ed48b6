# lqrppg workflow: a thin orchestrator. Every rule runs one `lqrppg` command that reads
# files and writes files; the logic lives in the package. See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# set_default=False: the typed config owns the defaults (some depend on other keys).
validate(config, "workflow/schemas/config.schema.json", set_default=False)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/unsupervised.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        TABLES,
        FIGURES,
