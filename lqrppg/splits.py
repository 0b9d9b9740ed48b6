"""Subject-disjoint splits written as explicit lists, one JSON file per fold.

Two protocols (method.md §8, with this project's rule §9.1: always a true validation
split, disjoint from test and selected from the training subjects):

* ``intra``: subject-wise k-fold on one dataset. Fold f tests the f-th group of subjects;
  of the remaining subjects, ``val_fraction`` (at least one) validate and the rest train.
* ``published``: a fixed split as a paper published it, from explicit subject lists in the
  config (config/paper.yaml), with its own validation subjects.
* ``cross``: train on a source dataset's first ``train_fraction`` of its sorted subjects,
  validate on the rest; test on every session of each target dataset.

Subjects are sorted naturally (``subject2`` before ``subject10``) and assigned to folds by
a permutation seeded from the config, so a split is a pure function of the subject list,
k and the seed, and the file written is the record of exactly what was used.
"""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lqrppg.datasets.base import natural_key
from lqrppg.errors import DataError
from lqrppg.io import write_text


def _subjects(sessions: pd.DataFrame) -> list[str]:
    return sorted(sessions["subject"].astype(str).unique(), key=natural_key)


def _part(sessions: pd.DataFrame, index: pd.DataFrame, subjects: list[str]) -> dict:
    chosen = sessions[sessions["subject"].astype(str).isin(subjects)]
    names = sorted(chosen["session"].astype(str), key=natural_key)
    n_chunks = int(index["session"].astype(str).isin(names).sum())
    return {"subjects": subjects, "sessions": names, "n_chunks": n_chunks}


def intra_fold(sessions: pd.DataFrame, index: pd.DataFrame, folds: int, fold: int, val_fraction: float,
               seed: int) -> dict:
    """Train/val/test subject lists of one fold of subject-wise k-fold."""
    subjects = _subjects(sessions)
    if folds < 2:
        raise DataError(f"intra-dataset k-fold needs at least 2 folds, got {folds}")
    if not 0 <= fold < folds:
        raise DataError(f"fold {fold} is outside 0..{folds - 1}")
    if len(subjects) < folds + 1:
        raise DataError(f"{len(subjects)} subjects cannot form {folds} test folds plus a validation subject")
    order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
    groups = np.array_split(np.arange(len(order)), folds)
    test = sorted((order[i] for i in groups[fold]), key=natural_key)
    rest = [s for s in order if s not in test]
    n_val = max(1, math.ceil(val_fraction * len(rest)))
    if n_val >= len(rest):
        raise DataError(f"fold {fold}: {len(rest)} non-test subjects leave none to train after {n_val} for validation")
    val = sorted(rest[:n_val], key=natural_key)
    train = sorted(rest[n_val:], key=natural_key)
    return _assemble(sessions, index, train, val, test)


def cross_source(sessions: pd.DataFrame, index: pd.DataFrame, train_fraction: float) -> dict:
    """Source split of a cross-dataset protocol: first fraction of sorted subjects trains."""
    subjects = _subjects(sessions)
    n_train = int(round(train_fraction * len(subjects)))
    n_train = min(max(n_train, 1), len(subjects) - 1)
    if len(subjects) < 2:
        raise DataError("a cross-dataset source needs at least 2 subjects (train and validation)")
    return _assemble(sessions, index, subjects[:n_train], subjects[n_train:], [])


def published_split(sessions: pd.DataFrame, index: pd.DataFrame, train: list[str], val: list[str],
                    test: list[str]) -> dict:
    """A fixed split from explicit lists: subject IDs, or patterns on subject or session names."""
    parts = {}
    for name, entries in (("train", train), ("val", val), ("test", test)):
        chosen: list[str] = []
        for entry in entries:
            hits = sessions[[fnmatch.fnmatchcase(str(sub), entry) or fnmatch.fnmatchcase(str(ses), entry)
                             for sub, ses in zip(sessions["subject"], sessions["session"], strict=True)]]
            if hits.empty:
                raise DataError(f"published split: {name} entry {entry!r} matches no subject or session")
            chosen += [s for s in hits["subject"].astype(str).unique() if s not in chosen]
        parts[name] = sorted(chosen, key=natural_key)
    split = _assemble(sessions, index, parts["train"], parts["val"], parts["test"])
    if not split["test"]["sessions"]:
        raise DataError("the test split has no session")
    return split


def _assemble(sessions, index, train, val, test) -> dict:
    split = {"train": _part(sessions, index, train), "val": _part(sessions, index, val),
             "test": _part(sessions, index, test)}
    for name in ("train", "val"):
        if not split[name]["sessions"]:
            raise DataError(f"the {name} split has no session")
        if split[name]["n_chunks"] == 0:
            raise DataError(f"the {name} split has no chunk (sessions shorter than one chunk?)")
    overlap = set(train) & set(val) | set(train) & set(test) | set(val) & set(test)
    if overlap:
        raise DataError(f"splits share subjects {sorted(overlap)}")
    return split


def write_split(path: Path, split: dict, **identity) -> None:
    write_text(path, json.dumps({**identity, **split}, indent=2) + "\n")


def read_split(path: Path) -> dict:
    try:
        split = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read split file {path}: {err}") from None
    for part in ("train", "val", "test"):
        if part not in split or "sessions" not in split[part]:
            raise DataError(f"split file {path} lacks the '{part}' sessions")
    return split
