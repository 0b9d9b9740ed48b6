"""DVC on the synthetic data in a throwaway git repository: the pipeline in dvc.yaml
reproduces, and a changed input is detected."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, tiny_config

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def test_dvc_repro_and_change_detection(tmp_path, tool_env):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    # `deps: lqrppg/synth` etc. refer to the package source, as in the project checkout
    shutil.copytree(ROOT / "lqrppg", repo / "lqrppg", ignore=shutil.ignore_patterns("__pycache__"))
    cfg = tiny_config()
    cfg["synthetic"]["synth-calm"].update(n_subjects=2, duration_s=8.0)
    del cfg["synthetic"]["synth-motion"]
    cfg["protocols"]["cross"] = []
    cfg["preprocess"]["chunk_length"] = 32
    (repo / "config").mkdir()
    (repo / "config/config.yaml").write_text(yaml.safe_dump(cfg))

    _run(["git", "init", "-q"], repo, tool_env)
    _run(["dvc", "init", "-q"], repo, tool_env)
    _run(["dvc", "repro"], repo, tool_env)
    assert (repo / "dvc.lock").is_file()
    assert (repo / "data/raw/synth-calm/subject1/vid.avi").is_file()
    assert list((repo / "results/processed/synth-calm").glob("*/index.parquet"))
    # the acquisition's verification report is a versioned product beside the manifest
    assert json.loads((repo / "results/raw/synth-calm/verification.json").read_text())
    assert "verification.json" in (repo / "dvc.lock").read_text()
    assert "up to date" in _run(["dvc", "status"], repo, tool_env).lower()

    # a changed raw file is detected downstream of synthesis
    label = repo / "data/raw/synth-calm/subject1/ground_truth.txt"
    label.write_text(label.read_text().replace("e", "E", 1))
    status = _run(["dvc", "status"], repo, tool_env)
    assert "synthesize@synth-calm" in status and "modified" in status and "data/raw/synth-calm" in status

    # a changed parameter is detected too
    _run(["dvc", "checkout", "-f"], repo, tool_env)
    cfg["synthetic"]["synth-calm"]["camera_noise_std"] = 2.0
    (repo / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    status = _run(["dvc", "status"], repo, tool_env)
    assert "synthesize@synth-calm" in status and "modified" in status and "synthetic.synth-calm" in status
