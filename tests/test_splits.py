import json

import pandas as pd
import pytest

from lqrppg.errors import DataError
from lqrppg.splits import cross_source, intra_fold, read_split, write_split


def _store_tables(n_subjects: int, tasks: int = 2, chunks: int = 3):
    sessions = pd.DataFrame(
        [{"session": f"{s:02d}-{t:02d}", "subject": f"{s:02d}"} for s in range(1, n_subjects + 1)
         for t in range(1, tasks + 1)]
    )
    index = pd.DataFrame([{"session": s, "chunk": c} for s in sessions["session"] for c in range(chunks)],
                         columns=["session", "chunk"])
    return sessions, index


def test_intra_folds_are_subject_disjoint_and_cover_every_subject_once():
    sessions, index = _store_tables(10)
    tested = []
    for fold in range(3):
        split = intra_fold(sessions, index, folds=3, fold=fold, val_fraction=0.2, seed=100)
        train, val, test = (set(split[p]["subjects"]) for p in ("train", "val", "test"))
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(sessions["subject"])
        assert split["train"]["n_chunks"] == 3 * 2 * len(train)
        # sessions of a subject never straddle two parts
        assert all(s.split("-")[0] in test for s in split["test"]["sessions"])
        tested += split["test"]["subjects"]
    assert sorted(tested) == sorted(sessions["subject"].unique())


def test_split_is_a_function_of_the_seed():
    sessions, index = _store_tables(9)
    a = intra_fold(sessions, index, 3, 1, 0.2, seed=1)
    assert a == intra_fold(sessions, index, 3, 1, 0.2, seed=1)
    assert any(intra_fold(sessions, index, 3, 1, 0.2, seed=s)["test"] != a["test"] for s in range(2, 6))


@pytest.mark.parametrize("n_subjects, folds, message", [(3, 3, "cannot form 3 test folds"), (2, 2, "cannot form")])
def test_fold_without_subjects_is_an_error(n_subjects, folds, message):
    sessions, index = _store_tables(n_subjects)
    with pytest.raises(DataError, match=message):
        intra_fold(sessions, index, folds, 0, 0.2, seed=0)


def test_sessions_shorter_than_a_chunk_leave_a_split_empty():
    sessions, index = _store_tables(4, chunks=0)
    with pytest.raises(DataError, match="has no chunk"):
        cross_source(sessions, index, 0.8)


def test_cross_source_uses_sorted_subjects_and_roundtrips(tmp_path):
    sessions, index = _store_tables(10)
    split = cross_source(sessions, index, 0.8)
    assert split["train"]["subjects"] == [f"{i:02d}" for i in range(1, 9)]
    assert split["val"]["subjects"] == ["09", "10"] and split["test"]["subjects"] == []
    write_split(tmp_path / "s.json", split, protocol="cross", dataset="d", fold="source")
    assert read_split(tmp_path / "s.json")["train"] == split["train"]
    (tmp_path / "bad.json").write_text(json.dumps({"train": {}}))
    with pytest.raises(DataError, match="bad.json"):
        read_split(tmp_path / "bad.json")
