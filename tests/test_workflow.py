"""End to end: Snakemake runs the default DAG on a tiny synthetic config."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow


def _snakemake(workspace, env, *args, check=True):
    proc = subprocess.run(
        ["snakemake", "--cores", "2", *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def test_default_dag_end_to_end(workspace, tool_env):
    _snakemake(workspace, tool_env, "--resources", "gpu=1")

    table = pd.read_csv(workspace / "results/tables/unsupervised.csv")
    assert set(table["method"]) == {"POS", "CHROM", "GREEN", "ICA", "LGI", "PBV", "OMIT"}
    assert set(table["dataset"]) == {"synth-calm", "synth-motion"}
    assert set(table["reference"]) == {"label", "true"}
    for col in ["MAE", "RMSE", "MAPE", "SNR"]:
        assert np.isfinite(table[col]).all(), col
    # Pearson over videos is undefined when a method gives one HR for every video, which can happen
    # on the tiny config's 2 synth-motion videos; on the 4 calm ones every method varies
    assert np.isfinite(table.query("dataset == 'synth-calm'")["Pearson"]).all()
    pos_calm_true = table.query("method == 'POS' and dataset == 'synth-calm' and reference == 'true'")
    assert pos_calm_true["MAE"].item() < 3.0
    assert (workspace / "results/tables/unsupervised.md").read_text().startswith("# Unsupervised")
    # the paper layout beside the long table, with the quoted rPPG-Toolbox rows in their own block
    paper = pd.read_csv(workspace / "results/tables/unsupervised.paper.csv")
    assert paper["source"].str.startswith("quoted:").any() and (workspace / "results/tables/unsupervised.tex").is_file()

    # every table row traces to a metrics file a rule wrote
    for source in table["source"]:
        assert (workspace / source).is_file()

    per_video = pd.read_parquet(workspace / "results/metrics/unsupervised/POS/synth-calm.per_video.parquet")
    assert len(per_video) == 4 and {"hr_pred", "hr_label", "hr_true", "snr_label"} <= set(per_video.columns)

    # the manifest and the store are where the config says
    manifest = pd.read_parquet(workspace / "results/raw/synth-calm/manifest.parquet")
    assert manifest["session"].nunique() == 4 and manifest["sha256"].str.len().eq(64).all()

    # LQ-rPPG and PhysNet: trained per fold, tested once, pooled over folds, beside POS
    intra = pd.read_csv(workspace / "results/tables/intra.csv")
    assert set(intra["model"]) == {"lqrppg", "physnet", "POS", "CHROM", "GREEN", "ICA", "LGI", "PBV", "OMIT"}
    assert np.isfinite(intra["MAE"]).all()
    lq = intra.query("model == 'lqrppg' and reference == 'true'")
    assert lq["n"].item() == 4  # every calm video tested exactly once across the 2 folds
    # a Bland-Altman figure of each main model's k-fold results, with the points it plots
    ba = pd.read_csv(workspace / "results/figures/bland-altman/lqrppg/synth-calm/intra.csv")
    assert set(ba["reference"]) == {"label", "true"} and len(ba) == 8
    assert ba["source"].eq("results/metrics/lqrppg/synth-calm/intra.per_video.parquet").all()
    assert (workspace / "results/figures/bland-altman/physnet/synth-calm/intra.pdf").is_file()
    cross = pd.read_csv(workspace / "results/tables/cross.csv")
    assert {"lqrppg", "physnet"} <= set(cross["model"]) and set(cross.query("model == 'lqrppg'")["test"]) == {
        "synth-motion"}
    for fold in ("fold0", "fold1"):
        split = json.loads((workspace / f"results/splits/intra/synth-calm/{fold}.json").read_text())
        assert not set(split["val"]["subjects"]) & set(split["test"]["subjects"])
        assert not set(split["train"]["subjects"]) & set(split["test"]["subjects"])
        run = json.loads((workspace / f"results/models/lqrppg/synth-calm/intra/{fold}/run.json").read_text())
        assert run["selection"]["criterion"] == "val_hr_mae_bpm"
    codebooks = json.loads((workspace / "results/lq/synth-calm/intra/fold0/codebooks.json").read_text())
    assert [len(codebooks[str(b)]) for b in range(1, 6)] == [2, 4, 8, 16, 32]
    pseudo = pd.read_parquet(workspace / "results/lq/synth-calm/intra/fold0/pseudo_labels.parquet")
    assert {"session", "chunk", "frame", "y_bpf", "q1", "q5", "k1", "k5"} <= set(pseudo.columns)

    # MLflow holds one finished run per (method, dataset)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workspace}/results/mlflow.db")
    exp = client.get_experiment_by_name("lqrppg/unsupervised")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 14  # 7 methods x 2 datasets, from one job per dataset
    assert all(r.info.status == "FINISHED" and "mae_true" in r.data.metrics for r in runs)
    assert {r.data.tags["method"] for r in runs} == {"POS", "CHROM", "GREEN", "ICA", "LGI", "PBV", "OMIT"}

    # the cost benchmark ran at the config's chunks and its table quotes the paper in its own block
    cost = pd.read_csv(workspace / "results/bench/cost.csv")
    assert {"lqrppg", "rhythmmamba", "physnet"} <= set(cost["model"]) and (cost["row_type"] == "ratio").any()
    assert "## Published (" in (workspace / "results/tables/cost.md").read_text()

    # nothing left to do: a second run is a no-op
    dry = _snakemake(workspace, tool_env, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_unknown_config_key_stops_before_any_job(workspace, tool_env):
    cfg_path = workspace / "config/config.yaml"
    cfg_path.write_text(cfg_path.read_text() + "\nnot_a_key: 1\n")
    proc = _snakemake(workspace, tool_env, "-n", check=False)
    assert proc.returncode != 0
    assert "not_a_key" in proc.stdout + proc.stderr
    assert not (workspace / "results").exists() or not any((workspace / "results").iterdir())


def test_a_dataset_with_its_own_preprocess_settings_gets_its_own_store(workspace, tool_env):
    cfg_path = workspace / "config/config.yaml"
    raw = yaml.safe_load(cfg_path.read_text())
    raw["datasets"] = {"REAL": {"reader": "ubfc-rppg", "root": str(workspace / "real"), "fps": 30,
                                "preprocess": {"detection": "first"}}}
    cfg_path.write_text(yaml.safe_dump(raw))
    from lqrppg.config import load_config

    cfg = load_config([cfg_path])
    real, calm = cfg.store_path("REAL"), cfg.store_path("synth-calm")
    assert real.name != calm.name
    plan = _snakemake(workspace, tool_env, "-n", str(real), str(calm))
    text = plan.stdout + plan.stderr
    # one preprocess job per store, each writing the folder named by its own settings' hash
    assert f"output: {real}" in text and f"output: {calm}" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": {"nosuchnet": {}}}, "models.nosuchnet: unknown model 'nosuchnet'"),
        ({"unsupervised": {"methods": ["POS", "NOSUCH"]}}, "unsupervised.methods: unknown method 'NOSUCH'"),
        # TS-CAN's temporal shift needs a multiple of 10 frames; the tiny config's chunks have 64
        ({"models": {"tscan": {}}}, "models.tscan: cannot take preprocess.chunk_length=64"),
        ({"models": {"lqrppg": {"input_size": 128}}}, "models.lqrppg.input_size: the model takes 128x128 faces"),
    ],
)
def test_bad_model_or_method_stops_the_workflow_before_any_job(workspace, tool_env, change, message):
    cfg_path = workspace / "config/config.yaml"
    raw = yaml.safe_load(cfg_path.read_text())
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    cfg_path.write_text(yaml.safe_dump(raw))
    proc = _snakemake(workspace, tool_env, "-n", check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
    assert not (workspace / "results").exists() or not any((workspace / "results").iterdir())
