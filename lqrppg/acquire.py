"""Acquisition: verify a dataset folder and write its manifest.

The manifest (one row per file: session, subject, task, role, path, size, SHA-256) is
what every later stage reads instead of re-listing the folder, so a dataset that changed
on disk after acquisition is caught (:func:`verify_manifest`) instead of silently mixing
old and new files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from lqrppg.datasets import get_reader
from lqrppg.datasets.base import DatasetReader, Session
from lqrppg.errors import DataError
from lqrppg.io import atomic_path, sha256_file

log = logging.getLogger(__name__)

SESSION_COLUMNS = ["dataset", "session", "subject", "task", "video_path", "label_path", "fps"]


def open_reader(reader_name: str, root: Path, fps: float | None, options: dict | None = None) -> DatasetReader:
    return get_reader(reader_name)(Path(root), fps=fps, options=options)


def build_manifest(reader: DatasetReader) -> pd.DataFrame:
    """List, check and hash every file of every session of ``reader``'s dataset."""
    sessions = reader.list_sessions()
    rows = []
    for session in tqdm(sessions, desc=f"hashing {reader.name}", unit="session"):
        files = reader.session_files(session)
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise DataError(f"session {session.session}: missing file(s) {missing}")
        for path in files:
            path = Path(path)
            role = "label" if str(path) == session.label_path else "video"
            rows.append(
                {
                    **{c: getattr(session, c) for c in SESSION_COLUMNS},
                    "file": str(path),
                    "role": role,
                    "size": path.stat().st_size,
                    "sha256": sha256_file(path),
                }
            )
    manifest = pd.DataFrame(rows)
    n_subjects = manifest["subject"].nunique()
    log.info("%s: %d sessions, %d subjects, %d files", reader.name, len(sessions), n_subjects, len(manifest))
    return manifest


def write_manifest(manifest: pd.DataFrame, out: Path) -> None:
    with atomic_path(out) as tmp:
        manifest.to_parquet(tmp, index=False)


def sessions_from_manifest(manifest_path: Path) -> list[Session]:
    """The sessions a manifest lists, after checking its files are still as acquired."""
    manifest = pd.read_parquet(manifest_path)
    verify_manifest(manifest, manifest_path)
    per_session = manifest.drop_duplicates("session")[SESSION_COLUMNS]
    return [
        Session(**{**row, "fps": float(row["fps"])}) for row in per_session.to_dict("records")
    ]


def verify_manifest(manifest: pd.DataFrame, source: Path) -> None:
    """Fail if a file listed in the manifest is gone or changed size since acquisition."""
    for row in manifest.itertuples():
        path = Path(row.file)
        if not path.is_file():
            raise DataError(f"{path} (session {row.session}) listed in {source} no longer exists; re-run acquire")
        if path.stat().st_size != row.size:
            raise DataError(
                f"{path} (session {row.session}) changed on disk since acquisition "
                f"({path.stat().st_size} bytes, manifest {source} says {row.size}); re-run acquire"
            )
