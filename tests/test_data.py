"""ChunkDataset: load-time normalisation, labels, pseudo-label targets and augmentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lqrppg.data import (
    ChunkDataset,
    compress_time,
    diff_normalize_label,
    stretch_time,
    temporal_augment,
)
from lqrppg.errors import ConfigError, DataError
from lqrppg.lq.labels import labels_from_store
from lqrppg.lq.pseudo_labels import write_pseudo_labels
from lqrppg.preprocess.store import ChunkStore, SessionWriter, write_store_tables
from lqrppg.signal.chain import ChainSettings, estimate_hr, process_signal

FS = 30.0
CHUNK = 32
SIZE = 16


# ----------------------------------------------------------------------------- helpers (also used by the other tests)


def write_tiny_store(
    path, sessions: dict[str, tuple[int, float]], size: int = SIZE, chunk_length: int = CHUNK, seed: int = 0,
    good: dict[str, np.ndarray] | None = None,
) -> ChunkStore:
    """A store whose face brightness pulses at each session's HR; label = that pulse + drift.

    ``sessions`` maps name -> (n_frames, hr_bpm); ``good`` optional per-frame label masks.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for name, (n, bpm) in sessions.items():
        t = np.arange(n) / FS
        pulse = np.sin(2 * np.pi * bpm / 60 * t)
        base = rng.uniform(80, 170, size=(1, size, size, 3))
        colour = np.array([0.3, 1.0, 0.5])  # the pulse shows most in green, as in skin
        frames = base + 6 * pulse[:, None, None, None] * colour + rng.normal(0, 2, (n, size, size, 3))
        frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
        label = (pulse + 0.05 * t + 0.1 * rng.normal(size=n) + 3.0).astype(np.float32)
        with SessionWriter(path, name, size) as writer:
            for f in frames:
                writer.append(f, (0, 0, size, size), f.reshape(-1, 3).mean(0))
            writer.finish(label, (good or {}).get(name))
        rows.append(dict(session=name, subject=name, task="t", n_frames=n, fps=FS, alignment="sample_count",
                         face_fallback=False, n_detections=n, label_path="", video_path=""))
    write_store_tables(path, dataset="toy", fps=FS, prep_id=f"toy{size}x{chunk_length}",
                       settings={"size": size, "chunk_length": chunk_length}, chunk_length=chunk_length,
                       sessions=rows)
    return ChunkStore(path)


def hand_codebooks() -> list[torch.Tensor]:
    """Valid 1..5-bit codebooks (index order deliberately not sorted for the 2-bit one)."""
    books = [torch.linspace(-1.5, 1.5, 2**n) for n in range(1, 6)]
    books[1] = books[1][[2, 0, 3, 1]]
    return books


def write_hand_pseudo_labels(store: ChunkStore, path, sessions=None, books=None, drop=None) -> list[torch.Tensor]:
    """Pseudo labels made by nearest-code assignment of y_bpf (what frozen quantizers would give).

    ``drop`` = (session, chunk) to leave out, for the mismatch tests.
    """
    books = books or hand_codebooks()
    ids, y = labels_from_store(store, sessions, (0.75, 2.5))
    if drop is not None:
        keep = ~((ids["session"] == drop[0]) & (ids["chunk"] == drop[1])).to_numpy()
        ids, y = ids[keep].reset_index(drop=True), y[keep]
    k = np.stack([np.abs(y[..., None] - b.numpy()).argmin(-1) for b in books])
    q = np.stack([b.numpy()[kn] for b, kn in zip(books, k)])
    write_pseudo_labels(path, ids, y, q, k, {"run": "hand"})
    return books


def toolbox_standardized(x):
    x = x.astype(np.float64)
    x = (x - np.mean(x)) / np.std(x)
    x[np.isnan(x)] = 0
    return x


def toolbox_diff_normalize_data(data):
    """rPPG-Toolbox BaseLoader.diff_normalize_data, verbatim apart from the loop."""
    data = data.astype(np.float64)
    d = (data[1:] - data[:-1]) / (data[1:] + data[:-1] + 1e-7)
    d = d / np.std(d)
    d = np.append(d, np.zeros((1, *data.shape[1:])), axis=0)
    d[np.isnan(d)] = 0
    return d


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # s1: 3 full chunks and a remainder; s2: exactly 2 chunks, so its last chunk gets the zero pad.
    return write_tiny_store(tmp_path_factory.mktemp("store"), {"s1": (100, 72.0), "s2": (64, 120.0)})


# ----------------------------------------------------------------------------- normalisation


def test_standardized_frames_are_zscored_over_the_whole_video(store):
    ds = ChunkDataset(store, ["s1", "s2"], "standardized")
    assert len(ds) == 5 and list(ds.index["session"]) == ["s1"] * 3 + ["s2"] * 2
    full = {s: toolbox_standardized(store.frames(s, mmap=False)) for s in ("s1", "s2")}
    for i in range(len(ds)):
        item = ds[i]
        row = ds.index.iloc[i]
        assert item["frames"].dtype == torch.float32 and item["frames"].shape == (3, CHUNK, SIZE, SIZE)
        expected = full[row.session][row.start : row.stop].transpose(3, 0, 1, 2)
        np.testing.assert_allclose(item["frames"].numpy(), expected, rtol=1e-5, atol=1e-5)
        assert (item["session"], item["chunk"]) == (row.session, row.chunk)


def test_diff_normalized_frames_match_the_toolbox_per_chunk(store):
    ds = ChunkDataset(store, ["s1", "s2"], "diff_normalized")
    full = {s: toolbox_diff_normalize_data(store.frames(s, mmap=False)) for s in ("s1", "s2")}
    for i in range(len(ds)):
        row = ds.index.iloc[i]
        expected = full[row.session][row.start : row.stop].transpose(3, 0, 1, 2)
        np.testing.assert_allclose(ds[i]["frames"].numpy(), expected, rtol=1e-4, atol=1e-5)
    # the video's last frame has no successor: zero (s2 ends exactly at a chunk boundary) ...
    assert not ds[4]["frames"][:, -1].any()
    # ... while a chunk followed by more frames uses the next one (s1 chunk 2 ends at frame 96 < 100)
    assert ds[2]["frames"][:, -1].abs().sum() > 0


def test_two_branch_input_stacks_diff_normalized_then_standardized_channels(store):
    both = ChunkDataset(store, ["s1", "s2"], "diff_and_standardized")
    diff = ChunkDataset(store, ["s1", "s2"], "diff_normalized")
    std = ChunkDataset(store, ["s1", "s2"], "standardized")
    assert both.label_norm == "diff_normalized"  # DeepPhys / TS-CAN regress the differenced label
    for i in range(len(both)):
        frames = both[i]["frames"]
        assert frames.shape == (6, CHUNK, SIZE, SIZE)
        torch.testing.assert_close(frames[:3], diff[i]["frames"])
        torch.testing.assert_close(frames[3:], std[i]["frames"])
        torch.testing.assert_close(both[i]["label"], diff[i]["label"])


def test_labels_are_standardized_per_video_or_diff_normalized(store):
    raw = store.label("s1").astype(np.float64)
    z = (raw - raw.mean()) / raw.std()
    ds = ChunkDataset(store, ["s1"], "standardized")
    np.testing.assert_allclose(ds[1]["label"].numpy(), z[32:64], rtol=1e-5, atol=1e-6)
    diff = ChunkDataset(store, ["s1"], "diff_normalized")  # label_norm follows input_norm by default
    d = np.diff(raw)
    toolbox = np.append(d / d.std(), 0.0)  # rPPG-Toolbox diff_normalize_label on the raw label
    np.testing.assert_allclose(diff[1]["label"].numpy(), toolbox[32:64], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(diff_normalize_label(raw), toolbox, rtol=1e-5, atol=1e-6)


def test_constant_video_normalises_to_zeros_not_nan(tmp_path):
    s = write_tiny_store(tmp_path, {"a": (32, 60.0)})
    np.save(tmp_path / "frames" / "a.npy", np.full((32, SIZE, SIZE, 3), 7, np.uint8))
    for norm in ("standardized", "diff_normalized"):
        frames = ChunkDataset(s, ["a"], norm)[0]["frames"]
        assert torch.isfinite(frames).all() and not frames.any()


def test_bad_arguments_are_rejected(store):
    with pytest.raises(ConfigError, match="input_norm"):
        ChunkDataset(store, ["s1"], "raw")
    with pytest.raises(ConfigError, match="targets"):
        ChunkDataset(store, ["s1"], "standardized", targets="both")
    with pytest.raises(DataError, match="nope"):
        ChunkDataset(store, ["s1", "nope"], "standardized")
    with pytest.raises(ConfigError, match="pseudo-label file"):
        ChunkDataset(store, ["s1"], "standardized", targets="quantized")


# ----------------------------------------------------------------------------- pseudo labels


def test_quantized_targets_come_from_the_pseudo_label_file(store, tmp_path):
    path = tmp_path / "pl.parquet"
    books = write_hand_pseudo_labels(store, path)
    ds = ChunkDataset(store, ["s2", "s1"], "standardized", targets="quantized", pseudo_labels=path)
    item = ds[0]  # session order is the caller's: s2 first
    assert item["session"] == "s2" and item["q"].shape == (5, CHUNK) and item["k"].dtype == torch.int64
    _, y = labels_from_store(store, ["s2"], (0.75, 2.5))
    for n, book in enumerate(books):
        np.testing.assert_allclose(item["q"][n].numpy(), book.numpy()[item["k"][n].numpy()])
        np.testing.assert_array_equal(item["k"][n].numpy(), np.abs(y[0][:, None] - book.numpy()).argmin(-1))


def test_pseudo_labels_missing_a_chunk_name_the_session(store, tmp_path):
    path = tmp_path / "pl.parquet"
    write_hand_pseudo_labels(store, path, drop=("s1", 1))
    with pytest.raises(DataError, match=r"session s1: 2 pseudo-label chunks, store has 3"):
        ChunkDataset(store, ["s1"], "standardized", targets="quantized", pseudo_labels=path)
    # a file that covers only other sessions is fine for those
    ChunkDataset(store, ["s2"], "standardized", targets="quantized", pseudo_labels=path)


def test_pseudo_labels_of_another_chunk_length_or_level_count_are_rejected(store, tmp_path):
    ids = pd.DataFrame({"session": ["s2", "s2"], "chunk": [0, 1]})
    y = np.zeros((2, 16), np.float32)
    write_pseudo_labels(tmp_path / "short.parquet", ids, y, np.zeros((5, 2, 16)), np.zeros((5, 2, 16), int), {})
    with pytest.raises(DataError, match="chunks of 16 frames"):
        ChunkDataset(store, ["s2"], "standardized", targets="quantized", pseudo_labels=tmp_path / "short.parquet")
    y = np.zeros((2, CHUNK), np.float32)
    write_pseudo_labels(tmp_path / "l3.parquet", ids, y, np.zeros((3, 2, CHUNK)), np.zeros((3, 2, CHUNK), int), {})
    with pytest.raises(DataError, match="3 quantization levels"):
        ChunkDataset(store, ["s2"], "standardized", targets="quantized", pseudo_labels=tmp_path / "l3.parquet")
    k = np.zeros((5, 2, CHUNK), int)
    k[0, 0, 0] = 2  # a 1-bit code has indices 0 and 1 only
    write_pseudo_labels(tmp_path / "k.parquet", ids, y, np.zeros((5, 2, CHUNK)), k, {})
    with pytest.raises(DataError, match=r"out of range for the \[1\]-bit"):
        ChunkDataset(store, ["s2"], "standardized", targets="quantized", pseudo_labels=tmp_path / "k.parquet")


# ----------------------------------------------------------------------------- augmentation


def _hr(x, fs=FS):
    chain = ChainSettings(hr_method="welch")
    return estimate_hr(process_signal(x, fs, chain), fs, chain)


def test_stretch_halves_and_compress_doubles_the_hr_of_a_sinusoid():
    t = np.arange(160) / FS
    fast = np.sin(2 * np.pi * 2.0 * t)  # 120 bpm
    # 67.5 bpm: the compressed first half then holds whole cycles, so tiling it adds no phase jump
    slow = np.sin(2 * np.pi * 1.125 * t)
    assert _hr(fast) == pytest.approx(120, abs=2) and _hr(slow) == pytest.approx(67.5, abs=2)
    assert _hr(stretch_time(fast, offset=17)) == pytest.approx(60, abs=2)
    assert _hr(compress_time(slow)) == pytest.approx(135, abs=2)
    # output sample t is source (offset + t) / 2, odd ones interpolated
    x = np.arange(8.0)
    np.testing.assert_allclose(stretch_time(x, 2), [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5])
    np.testing.assert_allclose(compress_time(x), [0, 2, 4, 6, 0, 2, 4, 6])


def test_temporal_augment_follows_the_hr_rule_and_keeps_pseudo_labels_discrete():
    t = np.arange(160) / FS
    frames = np.broadcast_to(np.sin(2 * np.pi * 2.0 * t)[None, :, None, None], (3, 160, 2, 2)).copy()
    label = frames[0, :, 0, 0].copy()
    k = np.tile(np.arange(160) % 4, (5, 1))
    q = k.astype(np.float32) * 0.5
    actions = set()
    for seed in range(20):
        f, y, disc, action = temporal_augment(frames, label, 120.0, np.random.default_rng(seed), {"q": q, "k": k})
        actions.add(action)
        if action == "stretch":
            assert _hr(y) == pytest.approx(60, abs=2)
            np.testing.assert_allclose(f[0, :, 0, 0], y)
            assert set(np.unique(disc["k"])) <= {0, 1, 2, 3}
            np.testing.assert_allclose(disc["q"], disc["k"] * 0.5)  # still code values
        else:
            assert action == "none" and y is label
    assert actions == {"stretch", "none"}  # p = 0.5
    # 60-90 bpm: never changed; below 75: compressed
    assert all(temporal_augment(frames, label, 80.0, np.random.default_rng(s))[3] == "none" for s in range(10))
    assert {temporal_augment(frames, label, 60.0, np.random.default_rng(s))[3] for s in range(20)} == {
        "compress", "none"}


def test_augmentation_is_reproducible_per_epoch_and_changes_items(store):
    a = ChunkDataset(store, ["s1", "s2"], "standardized", augment=True, seed=3)
    b = ChunkDataset(store, ["s1", "s2"], "standardized", augment=True, seed=3)
    plain = ChunkDataset(store, ["s1", "s2"], "standardized")
    changed = 0
    for epoch in range(3):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for i in reversed(range(len(a))):  # order does not matter
            x, y = a[i], b[i]
            torch.testing.assert_close(x["frames"], y["frames"], rtol=0, atol=0)
            torch.testing.assert_close(x["label"], y["label"], rtol=0, atol=0)
            changed += not torch.equal(x["frames"], plain[i]["frames"])
    assert changed > 0
    a.set_epoch(0)
    epoch0 = [a[i]["frames"] for i in range(len(a))]
    a.set_epoch(1)
    assert any(not torch.equal(x, a[i]["frames"]) for i, x in enumerate(epoch0))


def test_flip_mirrors_the_width_axis(store):
    ds = ChunkDataset(store, ["s1"], "standardized", augment=True, seed=0)
    plain = ChunkDataset(store, ["s1"], "standardized")[0]
    seen_flip = False
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        if torch.equal(item["label"], plain["label"]) and torch.equal(item["frames"], plain["frames"].flip(-1)):
            seen_flip = True
    assert seen_flip


def test_chunks_with_a_graded_bad_label_are_left_out_of_training_whole(tmp_path):
    good = np.ones(100, dtype=bool)
    good[40:45] = False  # five bad label frames inside chunk 1 of s1 (frames 32..63)
    store = write_tiny_store(tmp_path, {"s1": (100, 72.0), "s2": (64, 120.0)}, good={"s1": good})
    quality = store.index.set_index(["session", "chunk"])["label_quality"]
    assert quality[("s1", 1)] == pytest.approx(27 / 32) and quality[("s1", 0)] == 1.0
    strict = ChunkDataset(store, ["s1", "s2"], "standardized", min_label_quality=1.0)
    assert strict.masked_chunks == [("s1", 1)]
    assert [(item["session"], item["chunk"]) for item in strict] == [("s1", 0), ("s1", 2), ("s2", 0), ("s2", 1)]
    # the kept chunks are normalised with the whole video's statistics, as without the mask
    full = ChunkDataset(store, ["s1", "s2"], "standardized")
    assert len(full) == 5 and not full.masked_chunks
    np.testing.assert_array_equal(strict[1]["frames"], full[2]["frames"])
    assert len(ChunkDataset(store, ["s1"], "standardized", min_label_quality=0.8)) == 3
