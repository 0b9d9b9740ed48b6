"""Fixed published splits (config/paper.yaml): explicit lists in, explicit lists out."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from lqrppg.config import load_config, validate_config
from lqrppg.errors import ConfigError, DataError
from lqrppg.splits import published_split
from lqrppg.tables import write_table

from conftest import ROOT, tiny_config


def _store_tables():
    """V4V-like sessions: the official folder is part of the session name."""
    rows = [("train-F001_T1", "F001"), ("train-F002_T1", "F002"), ("train-F003_T1", "F003"),
            ("val-F004_T1", "F004"), ("test-F005_T1", "F005"), ("test-F006_T2", "F006")]
    sessions = pd.DataFrame(rows, columns=["session", "subject"])
    index = pd.DataFrame([{"session": s, "chunk": c} for s in sessions["session"] for c in range(2)])
    return sessions, index


def test_explicit_subjects_and_session_patterns_resolve_to_subject_lists():
    sessions, index = _store_tables()
    split = published_split(sessions, index, train=["F001", "F002", "F003"], val=["val-*"], test=["test-*"])
    assert split["train"]["subjects"] == ["F001", "F002", "F003"]
    assert split["val"]["subjects"] == ["F004"]
    assert split["test"]["sessions"] == ["test-F005_T1", "test-F006_T2"]
    assert split["train"]["n_chunks"] == 6


def test_an_entry_matching_nothing_is_an_error_naming_it():
    sessions, index = _store_tables()
    with pytest.raises(DataError, match="test entry 'subject42' matches no subject"):
        published_split(sessions, index, train=["train-*"], val=["val-*"], test=["subject42"])


def test_a_subject_in_two_parts_is_an_error():
    sessions, index = _store_tables()
    with pytest.raises(DataError, match="share subjects.*F004"):
        published_split(sessions, index, train=["train-*", "F004"], val=["val-*"], test=["test-*"])


def test_config_rejects_a_published_split_of_an_unknown_dataset_or_without_validation():
    cfg = tiny_config()
    cfg["protocols"]["published"] = {"UBFC": {"train": ["a"], "val": ["b"], "test": ["c"]}}
    with pytest.raises(ConfigError, match="protocols.published names unknown datasets"):
        validate_config(cfg)
    cfg["protocols"]["published"] = {"synth-calm": {"train": ["a"], "val": [], "test": ["c"]}}
    with pytest.raises(ConfigError, match="val"):
        validate_config(cfg)


def test_intra_table_names_the_protocol_of_each_row(tmp_path):
    rows = []
    for protocol, mae in (("intra", 1.5), ("published", 2.5)):
        rows.append(pd.DataFrame({"protocol": protocol, "test": "ds", "train": "ds", "model": "lqrppg",
                                  "reference": "label", "metric": ["MAE", "RMSE"], "value": [mae, mae + 1],
                                  "se": 0.1, "se_formula": "x", "n": 4}))
    paths = []
    for i, frame in enumerate(rows):
        paths.append(tmp_path / f"m{i}.csv")
        frame.to_csv(paths[-1], index=False)
    wide = write_table("intra", paths, tmp_path / "intra")
    assert dict(zip(wide["protocol"], wide["MAE"], strict=True)) == {"k-fold": 1.5, "published": 2.5}
    assert "| published |" in (tmp_path / "intra.md").read_text()


def test_the_dag_trains_and_scores_every_model_on_a_published_split(workspace, tool_env):
    cfg = yaml.safe_load((workspace / "config/config.yaml").read_text())
    cfg["protocols"]["published"] = {"synth-calm": {
        "train": ["subject1", "subject2"], "val": ["subject3"], "test": ["subject4"], "source": "a test split"}}
    (workspace / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"],
                          cwd=workspace, env=tool_env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listing = proc.stdout + proc.stderr
    for path in ("results/splits/published/synth-calm/split.json",
                 "results/models/lqrppg/synth-calm/published/split/checkpoint.pt",
                 "results/models/physnet/synth-calm/published/split/checkpoint.pt",
                 "results/metrics/lqrppg/synth-calm/published.csv",
                 "results/metrics/physnet/synth-calm/published.csv"):
        assert path in listing, path


def test_training_settings_stack_model_then_protocol_overrides():
    cfg = tiny_config()
    cfg["models"]["lqrppg"] = {"lr": 0.01}
    cfg["protocols"]["published"] = {"synth-calm": {
        "train": ["subject1"], "val": ["subject2"], "test": ["subject3"], "training": {"lr": 6e-5, "epochs": 7}}}
    cfg["protocols"]["cross"] = [{"train": "synth-calm", "test": ["synth-motion"], "training": {"augment": True}}]
    config = validate_config(cfg)
    base = config.train_settings("lqrppg")
    assert base.lr == 0.01 and base.epochs == cfg["training"]["epochs"]
    published = config.train_settings("lqrppg", "synth-calm", "published")
    assert (published.lr, published.epochs) == (6e-5, 7)
    cross = config.train_settings("lqrppg", "synth-calm", "cross")
    assert cross.augment and cross.lr == 0.01
    assert config.train_settings("lqrppg", "synth-calm", "intra") == base


def test_cross_pairs_of_one_source_cannot_train_it_differently():
    cfg = tiny_config()
    cfg["protocols"]["cross"] = [{"train": "synth-calm", "test": ["synth-motion"], "training": {"lr": 0.1}},
                                 {"train": "synth-calm", "test": ["synth-calm"]}]
    with pytest.raises(ConfigError, match="share one model"):
        validate_config(cfg)


@pytest.mark.parametrize("overlay", sorted((ROOT / "config").glob("**/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_overlay_validates(overlay):
    files = [ROOT / "config/config.yaml"] + ([overlay] if overlay.name != "config.yaml" else [])
    cfg = load_config(files)
    assert cfg.all_datasets()


def test_paper_overlay_plans_the_papers_protocols(tool_env):
    """--configfile overlays win over the Snakefile's configfile (Snakemake lists them first)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "8", "--resources", "gpu=1",
                           "--configfile", "config/paper.yaml", "--quiet", "rules"],
                          cwd=ROOT, env=tool_env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = {parts[0]: int(parts[1]) for line in proc.stdout.splitlines()
              if len(parts := line.split()) == 2 and parts[1].isdigit()}
    assert counts["evaluate_published"] == 10  # 5 published splits x 2 models
    assert counts["evaluate_cross"] == 8  # 4 cross pairs x 2 models
    assert counts["train"] == 18  # 5 published + 4 cross models (two variants), x 2 models
    assert "evaluate_intra" not in counts  # the overlay's empty k-fold list replaces the default's
