"""MLflow tracking: one place that knows how runs are named, tagged and logged.

The SQLite store must be created once, before parallel jobs start: MLflow runs its
schema migrations on first use and concurrent first uses race. ``init_tracking`` is the
Snakemake rule that does it; every other job only opens runs. MLflow is imported lazily
so commands that do not log (synth, preprocess) stay fast to start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Set before mlflow is imported anywhere in the process.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _mlflow():
    import mlflow

    return mlflow


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def open_client(uri: str):
    """An MlflowClient whose store is created and migrated, serialised across processes.

    The first use of a SQLite store runs schema migrations, and two processes doing that at
    once fail ("duplicate column name"). The ``init_tracking`` rule does it before parallel
    jobs start; the file lock here also covers a store deleted behind Snakemake's back and
    commands run by hand in parallel.
    """
    mlflow = _mlflow()
    client = mlflow.MlflowClient(tracking_uri=uri)
    db = _sqlite_path(uri)
    if db is None:
        return client
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client.search_experiments(max_results=1)
    return client


def init_tracking(uri: str) -> None:
    """Create the tracking store (runs MLflow's migrations once)."""
    open_client(uri)
    log.info("MLflow tracking store ready at %s", uri)


def git_sha() -> str:
    """Commit of the code that produced a result ('+dirty' when the tree has edits)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    flat: dict[str, Any] = {}
    _flatten("", params, flat)
    return {key: str(value) for key, value in flat.items()}


def log_run(
    uri: str,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: list[Path] = (),
    artifact_root: Path | None = None,
    retries: int = 5,
) -> str:
    """Log one finished run (params, metrics, tags, artifacts) and return its run id.

    Everything is sent in batches at the end. SQLite can answer "database is locked"
    when parallel jobs finish together; the whole run is retried with backoff then.
    """
    for attempt in range(retries):
        try:
            client = open_client(uri)
            exp = client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp else _create_experiment(client, experiment, artifact_root)
            run = client.create_run(exp_id, run_name=run_name, tags=dict(tags))
            run_id = run.info.run_id
            from mlflow.entities import Metric, Param

            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, v[:6000]) for k, v in flatten_params(params).items()],
            )
            for artifact in artifacts:
                client.log_artifact(run_id, str(artifact))
            client.set_terminated(run_id, "FINISHED")
            return run_id
        except Exception as err:  # noqa: BLE001 - retried only for lock contention, re-raised otherwise
            if "locked" not in str(err).lower() or attempt == retries - 1:
                raise
            wait = 0.5 * 2**attempt
            log.warning("MLflow store busy (%s); retrying in %.1f s", err, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _create_experiment(client, name: str, artifact_root: Path | None) -> str:
    location = None
    if artifact_root is not None:
        # Keep artifacts under results/ next to the DB instead of MLflow's ./mlruns default.
        location = (Path(artifact_root).resolve() / name.replace("/", "_")).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another job created it between our lookup and create
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id




class TrainingRun:
    """An MLflow run that stays open across a training job (and survives a resume).

    ``run_id`` is stored in the trainer's checkpoint; a resumed job passes it back so the
    curves continue in the same run instead of starting a second one. Metrics of one
    epoch go out as one batch (``log_batch``), never one call per value.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, Any],
        artifact_root: Path | None = None,
        run_id: str | None = None,
    ) -> None:
        self.client = open_client(uri)
        if run_id is not None:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            return
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else _create_experiment(self.client, experiment, artifact_root)
        self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=dict(tags)).info.run_id
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, v[:6000]) for k, v in flatten_params(params).items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)
