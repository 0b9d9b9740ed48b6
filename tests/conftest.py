"""Shared test helpers: a tiny project config and a workspace to run the workflow in."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def tiny_config() -> dict:
    """The default config shrunk for CPU tests: short videos, small frames and crops."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["workers"] = 1
    calm = cfg["synthetic"]["synth-calm"]
    calm.update(n_subjects=4, duration_s=20.0, frame_width=160, frame_height=120)
    motion = cfg["synthetic"]["synth-motion"]
    motion.update(n_subjects=2, tasks_per_subject=1, duration_s=20.0, frame_width=160, frame_height=120)
    cfg["preprocess"].update(size=16, chunk_length=64)
    cfg["lq"].update(epochs=2, min_epoch=1, batch_size=8)
    cfg["training"].update(epochs=2, batch_size=2, threads=1)
    cfg["protocols"]["intra"].update(folds=2)
    return cfg


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core runner: one intra-op thread avoids OpenMP spin contention
    (several times faster here) and keeps results deterministic. Use per module with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tool_env() -> dict[str, str]:
    """Environment in which the `lqrppg`, `snakemake` and `dvc` scripts of this venv are found."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the workflow with the tiny config, to run Snakemake in."""
    shutil.copy(ROOT / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(ROOT / "workflow", tmp_path / "workflow")
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(tiny_config()))
    return tmp_path
