"""The chunk store: streaming .npy writer, round trip, index and validation."""

from __future__ import annotations

import json
import logging
import re
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from lqrppg.errors import DataError
from lqrppg.preprocess.store import (
    INDEX_COLUMNS,
    SESSION_COLUMNS,
    ChunkStore,
    NpyStreamWriter,
    SessionWriter,
    write_store_tables,
)

SIZE = 8


def test_stream_writer_produces_a_standard_memory_mappable_npy(tmp_path):
    items = np.random.default_rng(0).integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    writer = NpyStreamWriter(tmp_path / "a.npy", "uint8", (6, 6, 3))
    for item in items:
        writer.append(item)
    writer.close()
    loaded = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert isinstance(loaded, np.memmap) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, items)
    empty = NpyStreamWriter(tmp_path / "b.npy", "float32", (3,))
    empty.close()
    assert np.load(tmp_path / "b.npy").shape == (0, 3)
    with pytest.raises(ValueError, match="shape"):
        NpyStreamWriter(tmp_path / "c.npy", "uint8", (2,)).append(np.zeros(3))


def test_stream_writer_memory_does_not_grow_with_length(tmp_path):
    frame = np.zeros((72, 72, 3), np.uint8)
    tracemalloc.start()
    try:
        writer = NpyStreamWriter(tmp_path / "long.npy", "uint8", frame.shape)
        for _ in range(2000):  # 31 MB of frames
            writer.append(frame)
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.load(tmp_path / "long.npy", mmap_mode="r").shape == (2000, 72, 72, 3)
    assert peak < 1_000_000


def build_store(path, lengths: dict[str, int], chunk_length: int = 32) -> dict[str, dict[str, np.ndarray]]:
    """A store of random sessions written the way the pipeline writes them; returns the arrays."""
    rng = np.random.default_rng(1)
    arrays, rows = {}, []
    for name, n in lengths.items():
        frames = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
        boxes = rng.integers(0, 100, (n, 4), dtype=np.int32)
        rgb = frames.mean(axis=(1, 2)).astype(np.float32)
        label = rng.standard_normal(n).astype(np.float32)
        with SessionWriter(path, name, SIZE) as writer:
            for f, b, m in zip(frames, boxes, rgb):
                writer.append(f, tuple(b), m)
            writer.finish(label)
        arrays[name] = {"frames": frames, "boxes": boxes, "rgb": rgb, "label": label}
        rows.append(dict(session=name, subject=name[:2], task="t", n_frames=n, fps=30.0, alignment="sample_count",
                         face_fallback=False, n_detections=1, label_path=f"{name}.txt", video_path=f"{name}.avi"))
    write_store_tables(path, dataset="toy", fps=30.0, prep_id="abc123", settings={"size": SIZE},
                       chunk_length=chunk_length, sessions=rows)
    return arrays


def test_store_round_trip(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="lqrppg.preprocess.store"):
        arrays = build_store(tmp_path, {"s1": 100, "s2": 64, "s3": 10})
    assert "session s3: 10 frames is shorter than one chunk" in caplog.text
    store = ChunkStore(tmp_path)
    assert (store.prep_id, store.fps, store.settings) == ("abc123", 30.0, {"size": SIZE})
    assert list(store.sessions.columns) == SESSION_COLUMNS and list(store.sessions.session) == ["s1", "s2", "s3"]
    assert json.loads((tmp_path / "store.json").read_text())["dtype"] == "uint8"
    for name, a in arrays.items():
        frames = store.frames(name)
        assert frames.dtype == np.uint8 and isinstance(frames, np.memmap)
        np.testing.assert_array_equal(frames, a["frames"])
        np.testing.assert_array_equal(store.frames(name, mmap=False), a["frames"])
        np.testing.assert_array_equal(store.label(name), a["label"])
        np.testing.assert_array_equal(store.boxes(name), a["boxes"])
        np.testing.assert_array_equal(store.mean_rgb(name), a["rgb"])
        assert store.label(name).dtype == np.float32
    expected_index = pd.DataFrame(
        [("s1", "s1", 0, 0, 32, 30.0, 1.0), ("s1", "s1", 1, 32, 64, 30.0, 1.0), ("s1", "s1", 2, 64, 96, 30.0, 1.0),
         ("s2", "s2", 0, 0, 32, 30.0, 1.0), ("s2", "s2", 1, 32, 64, 30.0, 1.0)],
        columns=INDEX_COLUMNS,
    )  # fmt: skip
    pd.testing.assert_frame_equal(store.index, expected_index, check_dtype=False)
    frames, label = store.chunk("s1", 2)
    np.testing.assert_array_equal(frames, arrays["s1"]["frames"][64:96])
    np.testing.assert_array_equal(label, arrays["s1"]["label"][64:96])
    with pytest.raises(DataError, match="no chunk 3 of session 's1'"):
        store.chunk("s1", 3)
    with pytest.raises(DataError, match="no session 'nope'"):
        store.frames("nope")


def test_store_with_a_missing_array_is_rejected_naming_it(tmp_path):
    build_store(tmp_path, {"s1": 40, "s2": 40})
    (tmp_path / "labels" / "s2.npy").unlink()
    with pytest.raises(DataError, match=re.escape(str(tmp_path)) + r".*missing labels/s2.npy"):
        ChunkStore(tmp_path)


def test_store_missing_a_table_or_with_wrong_version_or_lengths_is_rejected(tmp_path):
    build_store(tmp_path, {"s1": 40})
    meta = json.loads((tmp_path / "store.json").read_text())
    (tmp_path / "store.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(DataError, match="store format 99"):
        ChunkStore(tmp_path)
    (tmp_path / "store.json").write_text(json.dumps(meta))
    np.save(tmp_path / "boxes" / "s1.npy", np.zeros((39, 4), np.int32))
    with pytest.raises(DataError, match=r"boxes/s1.npy is int32\(39, 4\), expected int32\(40, 4\)"):
        ChunkStore(tmp_path)
    (tmp_path / "index.parquet").unlink()
    with pytest.raises(DataError, match="missing index.parquet"):
        ChunkStore(tmp_path)


def test_session_writer_refuses_a_label_of_the_wrong_length_and_unsafe_names(tmp_path):
    with SessionWriter(tmp_path, "s1", SIZE) as writer:
        writer.append(np.zeros((SIZE, SIZE, 3), np.uint8), (0, 0, 1, 1), np.zeros(3))
        with pytest.raises(ValueError, match="label of shape"):
            writer.finish(np.zeros(2))
    with pytest.raises(DataError, match="cannot be used as a file name"):
        SessionWriter(tmp_path, "../evil", SIZE)


def test_label_mask_sets_each_chunks_good_fraction_and_the_masked_counts(tmp_path):
    good = np.ones(100, dtype=bool)
    good[40:48] = False  # a quarter of chunk 1 (frames 32-63)
    good[98:] = False  # in the dropped remainder: masked frames, but no chunk
    rows = []
    for name, mask in (("s1", good), ("s2", None)):
        with SessionWriter(tmp_path, name, SIZE) as writer:
            for _ in range(100):
                writer.append(np.zeros((SIZE, SIZE, 3), np.uint8), (0, 0, 1, 1), np.zeros(3))
            writer.finish(np.sin(np.arange(100.0)), mask)
        rows.append(dict(session=name, subject=name, task="t", n_frames=100, fps=30.0, alignment="sample_count",
                         face_fallback=False, n_detections=1, label_path="", video_path="",
                         has_label_quality=mask is not None))
    write_store_tables(tmp_path, dataset="toy", fps=30.0, prep_id="q", settings={"size": SIZE},
                       chunk_length=32, sessions=rows)
    store = ChunkStore(tmp_path)
    assert store.index["label_quality"].tolist() == [1.0, 0.75, 1.0, 1.0, 1.0, 1.0]
    sessions = store.sessions.set_index("session")
    assert sessions.loc["s1", ["n_masked_frames", "n_masked_chunks"]].tolist() == [10, 1]
    assert sessions.loc["s2", ["n_masked_frames", "n_masked_chunks"]].tolist() == [0, 0]
    assert sessions["has_label_quality"].tolist() == [True, False]
    assert json.loads((tmp_path / "store.json").read_text())["masked_chunks"] == {"s1": 1}
    np.testing.assert_array_equal(store.label_mask("s1"), good)
    assert store.label_mask("s2").dtype == bool and store.label_mask("s2").all()
    with SessionWriter(tmp_path / "bad", "s1", SIZE) as writer:
        writer.append(np.zeros((SIZE, SIZE, 3), np.uint8), (0, 0, 1, 1), np.zeros(3))
        with pytest.raises(ValueError, match="label mask of shape"):
            writer.finish(np.zeros(1), np.ones(2, dtype=bool))


def test_a_format_1_store_still_opens_with_all_good_labels(tmp_path):
    build_store(tmp_path, {"s1": 70})
    # Turn it into what format 1 wrote: no label masks, none of the newer columns.
    for path in (tmp_path / "label_mask").iterdir():
        path.unlink()
    (tmp_path / "label_mask").rmdir()
    index = pd.read_parquet(tmp_path / "index.parquet")
    index.drop(columns="label_quality").to_parquet(tmp_path / "index.parquet", index=False)
    sessions = pd.read_parquet(tmp_path / "sessions.parquet")
    sessions[SESSION_COLUMNS[:10]].to_parquet(tmp_path / "sessions.parquet", index=False)
    meta = json.loads((tmp_path / "store.json").read_text())
    (tmp_path / "store.json").write_text(json.dumps({**meta, "format_version": 1}))
    store = ChunkStore(tmp_path)
    assert list(store.index.columns) == INDEX_COLUMNS and (store.index["label_quality"] == 1.0).all()
    assert list(store.sessions.columns) == SESSION_COLUMNS
    assert store.sessions.iloc[0][["n_detection_misses", "n_masked_chunks"]].tolist() == [0, 0]
    assert store.label_mask("s1").shape == (70,) and store.label_mask("s1").all()
