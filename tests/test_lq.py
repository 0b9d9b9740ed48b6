"""Label quantization: label chain, EMA quantizer, fitting and selection, files."""

import json
import logging

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from scipy import signal as sps

from lqrppg.errors import DataError
from lqrppg.lq.fit import (
    LQSettings,
    codebooks_json,
    fit_quantizers,
    load_codebooks,
    load_quantizers,
    read_quantizer_info,
    save_codebooks,
    save_quantizers,
)
from lqrppg.lq.labels import bandpass_chunks, chunk_labels, labels_from_store, standardize_video_label
from lqrppg.lq.pseudo_labels import apply_quantizers, check_against_store, read_pseudo_labels, write_pseudo_labels
from lqrppg.lq.quantizer import EMAScalarQuantizer, LabelQuantizer
from lqrppg.signal.chain import ChainSettings

FS = 30.0
T = 160


def pulse_chunks(n: int, seed: int, t_len: int = T) -> np.ndarray:
    """Pulse-like labels: 50-140 bpm fundamentals with two harmonics, drift and noise, as y_bpf."""
    rng = np.random.default_rng(seed)
    t = np.arange(t_len) / FS
    rows = []
    for _ in range(n):
        f = rng.uniform(50, 140) / 60.0
        phase = rng.uniform(0, 2 * np.pi, size=3)
        x = (
            np.sin(2 * np.pi * f * t + phase[0])
            + 0.5 * np.sin(4 * np.pi * f * t + phase[1])
            + 0.2 * np.sin(6 * np.pi * f * t + phase[2])
            + 0.3 * t  # baseline wander, removed by the band-pass
            + 0.2 * rng.normal(size=t_len)
        )
        rows.append(x)
    return bandpass_chunks(np.stack(rows), FS, (0.75, 2.5))


SETTINGS = LQSettings(bits=[1, 2], epochs=3, batch_size=16, min_epoch=1)
CHAIN = ChainSettings()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny (d_model = 1): on a shared 2-core runner, intra-op threads cost
    more in synchronisation than they gain (measured ~5x slower), so the module runs on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return pulse_chunks(64, seed=0), pulse_chunks(16, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    y_train, y_val = data
    return fit_quantizers(y_train, y_val, FS, SETTINGS, CHAIN, seed=0)


# ----------------------------------------------------------------------------- labels


def test_standardize_video_label_is_a_zscore_and_maps_constant_to_zero():
    x = np.array([1.0, 2.0, 3.0, 6.0])
    z = standardize_video_label(x)
    np.testing.assert_allclose(z, (x - x.mean()) / x.std())
    np.testing.assert_array_equal(standardize_video_label(np.full(5, 3.0)), 0.0)


def test_chunk_labels_drops_the_remainder():
    chunks = chunk_labels(np.arange(10), 3)
    np.testing.assert_array_equal(chunks, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])


def test_bandpass_chunks_filters_each_chunk_then_zscores_it():
    rng = np.random.default_rng(3)
    chunks = rng.normal(size=(3, 96)) + np.linspace(0, 5, 96)
    got = bandpass_chunks(chunks, FS, (0.75, 2.5))
    b, a = sps.butter(1, [0.75 / 15, 2.5 / 15], btype="bandpass")
    expected = sps.filtfilt(b, a, chunks, axis=1)
    expected = (expected - expected.mean(1, keepdims=True)) / (expected.std(1, keepdims=True) + 1e-6)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


class FakeStore:
    """Duck-typed ChunkStore: an index and per-session labels."""

    def __init__(self, labels: dict[str, np.ndarray], chunk_length: int, fps: float = FS):
        self.fps = fps
        self._labels = labels
        rows = []
        for session, label in labels.items():
            rows += [(session, "s" + session, k, k * chunk_length, (k + 1) * chunk_length, fps)
                     for k in range(len(label) // chunk_length)]
        self.index = pd.DataFrame(rows, columns=["session", "subject", "chunk", "start", "stop", "fps"])

    def label(self, session):
        return self._labels[session]


def test_labels_from_store_follows_the_label_chain():
    rng = np.random.default_rng(4)
    labels = {"a": rng.normal(size=250).astype(np.float32) + 7, "b": rng.normal(size=200).astype(np.float32)}
    store = FakeStore(labels, chunk_length=64)
    ids, y = labels_from_store(store, None, (0.75, 2.5))
    assert ids.to_dict("list") == {"session": ["a"] * 3 + ["b"] * 3, "chunk": [0, 1, 2, 0, 1, 2]}
    # the z-score runs over the WHOLE video (including the dropped remainder), then chunk-wise filtering
    expected_a = bandpass_chunks(chunk_labels(standardize_video_label(labels["a"]), 64), FS, (0.75, 2.5))
    np.testing.assert_allclose(y[:3], expected_a, atol=1e-6)
    ids_b, y_b = labels_from_store(store, ["b"], (0.75, 2.5))
    assert list(ids_b["session"]) == ["b"] * 3
    np.testing.assert_allclose(y_b, y[3:])


def test_labels_from_store_reads_a_real_chunk_store(tmp_path):
    from lqrppg.preprocess.store import ChunkStore, SessionWriter, write_store_tables

    rng = np.random.default_rng(5)
    rows, labels = [], {}
    for session, n in (("s1", 100), ("s2", 70)):
        with SessionWriter(tmp_path, session, size=2) as writer:
            for _ in range(n):
                writer.append(np.zeros((2, 2, 3), np.uint8), (0, 0, 2, 2), np.zeros(3))
            labels[session] = rng.normal(size=n).astype(np.float32)
            writer.finish(labels[session])
        rows.append({"session": session, "subject": session, "task": "t", "n_frames": n, "fps": FS,
                     "alignment": "sample_count", "face_fallback": False, "n_detections": n,
                     "label_path": "", "video_path": ""})
    write_store_tables(tmp_path, dataset="synth", fps=FS, prep_id="x", settings={"size": 2},
                       chunk_length=32, sessions=rows)
    ids, y = labels_from_store(ChunkStore(tmp_path), None, (0.75, 2.5))
    assert ids.to_dict("list") == {"session": ["s1"] * 3 + ["s2"] * 2, "chunk": [0, 1, 2, 0, 1]}
    expected = bandpass_chunks(chunk_labels(standardize_video_label(labels["s2"]), 32), FS, (0.75, 2.5))
    np.testing.assert_allclose(y[3:], expected, atol=1e-6)


def test_labels_from_store_rejects_nan_labels_and_unknown_sessions():
    label = np.ones(200, dtype=np.float32)
    label[17] = np.nan
    store = FakeStore({"bad-session": label}, chunk_length=64)
    with pytest.raises(DataError, match="bad-session"):
        labels_from_store(store, None, (0.75, 2.5))
    with pytest.raises(DataError, match="nope"):
        labels_from_store(store, ["nope"], (0.75, 2.5))


# ----------------------------------------------------------------------------- quantizer


def test_parameter_count_per_bit_depth():
    # Counted: encoder parameters (5 convs, positional embedding, Bi-Mamba block) + the codebook
    # `quantizer.embeddings.weight` (K) + the EMA accumulator `quantizer.ema_w` (K); the cluster
    # sizes are counters and are not counted. method.md §2.2: 814-874 for K = 2…32.
    counts = []
    for bits in range(1, 6):
        model = LabelQuantizer(bits, T)
        encoder = sum(p.numel() for p in model.encoder.parameters())
        k = 2**bits
        assert model.quantizer.embeddings.weight.shape == (k, 1)
        assert model.quantizer.ema_w.shape == (k, 1)
        assert model.num_parameters() == encoder + 2 * k
        counts.append(model.num_parameters())
    assert 800 <= counts[0] <= 830 and 860 <= counts[-1] <= 890, counts
    assert counts[-1] - counts[0] == 2 * (32 - 2)


def test_state_dict_uses_the_authors_codebook_names_and_codebook_is_not_a_parameter():
    model = LabelQuantizer(2, T)
    keys = set(model.state_dict())
    assert {"quantizer.embeddings.weight", "quantizer.ema_w", "quantizer.ema_cluster_size"} <= keys
    assert all(not name.startswith("quantizer.") for name, _ in model.named_parameters())
    assert model.quantizer.ema_cluster_size.abs().sum() == 0
    assert model.codebook.abs().max() <= 1 / 4


def test_ema_update_matches_hand_computation():
    vq = EMAScalarQuantizer(2, decay=0.99, eps=1e-5)
    with torch.no_grad():
        vq.embeddings.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        vq.ema_w.copy_(torch.tensor([[0.2], [-0.1]]))
    z = torch.tensor([[-0.8, -1.2, 0.9, 1.5, 0.7]], requires_grad=True)
    q, k, commitment = vq.train()(z)

    assert k.tolist() == [[0, 0, 1, 1, 1]]
    # q comes from the codebook before this batch's update
    assert q.detach()[0].tolist() == pytest.approx([-1.0, -1.0, 1.0, 1.0, 1.0])
    diffs = [-0.2, 0.2, 0.1, -0.5, 0.3]
    assert commitment.item() == pytest.approx(0.5 * np.mean(np.square(diffs)), rel=1e-6)

    g, eps = 0.99, 1e-5
    size = [(1 - g) * 2, (1 - g) * 3]
    total = sum(size)
    size = [(s + eps) / (total + 2 * eps) * total for s in size]
    w = [g * 0.2 + (1 - g) * (-2.0), g * -0.1 + (1 - g) * 3.1]
    assert vq.ema_cluster_size.tolist() == pytest.approx(size, rel=1e-6)
    assert vq.ema_w[:, 0].tolist() == pytest.approx(w, rel=1e-6)
    assert vq.codebook.tolist() == pytest.approx([w[0] / size[0], w[1] / size[1]], rel=1e-5)


def test_straight_through_gradient_is_identity():
    vq = EMAScalarQuantizer(4).eval()
    z = torch.randn(3, 20, requires_grad=True)
    q, k, _ = vq(z)
    torch.testing.assert_close(q, vq.codebook[k])  # forward value is the code
    weights = torch.randn(3, 20)
    (q * weights).sum().backward()
    torch.testing.assert_close(z.grad, weights)


def test_eval_mode_does_not_update_buffers():
    vq = EMAScalarQuantizer(8)
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    vq(torch.randn(4, 50))
    for key, value in vq.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    vq.train()
    vq(torch.randn(4, 50))
    assert not torch.equal(vq.state_dict()["ema_cluster_size"], before["ema_cluster_size"])


def test_encoder_rejects_a_different_length():
    with pytest.raises(ValueError, match="160"):
        LabelQuantizer(1, T)(torch.zeros(2, 100))


# ----------------------------------------------------------------------------- fit


def test_settings_are_strict_and_documented():
    for name, info in LQSettings.model_fields.items():
        assert info.description, f"LQSettings.{name} has no description"
    with pytest.raises(ValueError):
        LQSettings(bitz=[1])
    with pytest.raises(ValueError):
        LQSettings(bits=[1, 1])
    assert LQSettings().bits == [1, 2, 3, 4, 5] and LQSettings().min_epoch == 5


def test_fit_selects_the_validation_mae_argmin_and_reduces_reconstruction_error(fitted, data):
    _, y_val = data
    assert [f.bits for f in fitted.fits] == [1, 2]
    for fit in fitted.fits:
        assert len(fit.train_loss) == len(fit.val_mae) == SETTINGS.epochs
        assert np.all(np.isfinite(fit.val_mae))
        assert fit.selected_epoch == 1 + int(np.argmin(fit.val_mae))  # argmin picks the earliest tie
        assert fit.criterion == fit.val_mae[fit.selected_epoch - 1]
        torch.testing.assert_close(fit.codebook, fit.state_dict["quantizer.embeddings.weight"][:, 0])

    # reconstruction error of the selected 1-bit quantizer vs the same architecture untrained
    torch.manual_seed(0)
    untrained = LabelQuantizer(1, T).eval()
    trained = LabelQuantizer(1, T)
    trained.load_state_dict(fitted.by_bits(1).state_dict)
    q_before, _ = apply_quantizers([untrained], y_val)
    q_after, _ = apply_quantizers([trained], y_val)
    mse_before = float(np.mean((q_before[0] - y_val) ** 2))
    mse_after = float(np.mean((q_after[0] - y_val) ** 2))
    assert mse_after < 0.8 * mse_before, (mse_before, mse_after)
    assert fitted.by_bits(1).val_mse[-1] < mse_before


def test_one_bit_codebook_has_two_distinct_values_and_q_uses_only_codes(fitted, data):
    _, y_val = data
    book = fitted.by_bits(1).codebook
    assert book.shape == (2,) and book[0] != book[1]
    model = LabelQuantizer(1, T)
    model.load_state_dict(fitted.by_bits(1).state_dict)
    q, k = apply_quantizers([model], y_val)
    assert set(np.unique(q[0]).tolist()) <= set(book.tolist())
    np.testing.assert_array_equal(q[0], book.numpy()[k[0]])
    assert len(np.unique(k[0])) == 2  # both codes are used on pulse-like labels


def test_fit_is_deterministic_for_a_seed(data):
    y_train, y_val = data
    settings = LQSettings(bits=[1], epochs=1, min_epoch=1)
    a = fit_quantizers(y_train[:32], y_val, FS, settings, CHAIN, seed=7)
    b = fit_quantizers(y_train[:32], y_val, FS, settings, CHAIN, seed=7)
    torch.testing.assert_close(a.fits[0].codebook, b.fits[0].codebook, rtol=0, atol=0)
    assert a.fits[0].train_loss == b.fits[0].train_loss
    for key, value in a.fits[0].state_dict.items():
        torch.testing.assert_close(value, b.fits[0].state_dict[key], rtol=0, atol=0)


def test_fit_requires_validation_and_clamps_min_epoch(data, caplog):
    y_train, y_val = data
    with pytest.raises(DataError, match="validation"):
        fit_quantizers(y_train, y_val[:0], FS, SETTINGS, CHAIN, seed=0)
    settings = LQSettings(bits=[1], epochs=1, min_epoch=5)
    with caplog.at_level(logging.WARNING, logger="lqrppg.lq.fit"):
        result = fit_quantizers(y_train[:16], y_val[:4], FS, settings, CHAIN, seed=0)
    assert "min_epoch" in caplog.text
    assert result.fits[0].selected_epoch == 1 and result.fits[0].min_epoch == 1


# ----------------------------------------------------------------------------- files


def test_quantizer_file_round_trip_in_eval_mode(fitted, data, tmp_path):
    _, y_val = data
    path = tmp_path / "lq" / "quantizers.pt"
    save_quantizers(fitted, path)
    rng_before = torch.get_rng_state()
    models = load_quantizers(path)
    assert torch.equal(torch.get_rng_state(), rng_before)  # loading does not shift the caller's RNG
    assert [m.bits for m in models] == [1, 2]
    assert all(not m.training for m in models)
    for model, fit in zip(models, fitted.fits, strict=True):
        torch.testing.assert_close(model.codebook, fit.codebook, rtol=0, atol=0)
    info = read_quantizer_info(path)
    json.dumps(info)  # metadata-ready
    assert info["quantizers"][0]["selected_epoch"] == fitted.fits[0].selected_epoch
    assert info["settings"]["bits"] == [1, 2]
    with pytest.raises(DataError, match="missing.pt"):
        load_quantizers(tmp_path / "missing.pt")


def test_codebooks_json_round_trip_and_size_check(fitted, tmp_path):
    data = codebooks_json(fitted)
    assert len(data["1"]) == 2 and len(data["2"]) == 4
    assert data["selected_epoch"] == {"1": fitted.fits[0].selected_epoch, "2": fitted.fits[1].selected_epoch}
    path = tmp_path / "codebooks.json"
    save_codebooks(fitted, path)
    books = load_codebooks(path, bits=(1, 2))
    torch.testing.assert_close(books[1], fitted.fits[1].codebook)
    with pytest.raises(DataError, match="3-bit"):
        load_codebooks(path)  # bits 3..5 are absent
    data["2"] = data["2"][:3]
    bad = tmp_path / "bad_codebooks.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"bad_codebooks\.json.*2-bit"):
        load_codebooks(bad, bits=(1, 2))


def test_applying_does_not_change_the_codebook(fitted, data):
    _, y_val = data
    model = LabelQuantizer(2, T)
    model.load_state_dict(fitted.by_bits(2).state_dict)
    model.train()  # even a module left in training mode must not drift
    before = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    q, k = apply_quantizers([model], y_val)
    assert q.dtype == np.float32 and k.dtype == np.int16 and q.shape == (1, *y_val.shape)
    for key, value in model.quantizer.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def make_pseudo_labels(n_sessions=2, n_chunks=3, t_len=16, levels=5, seed=0):
    rng = np.random.default_rng(seed)
    ids = pd.DataFrame({
        "session": np.repeat([f"sess{i}" for i in range(n_sessions)], n_chunks),
        "chunk": np.tile(np.arange(n_chunks), n_sessions),
    })
    n = len(ids)
    y = rng.normal(size=(n, t_len)).astype(np.float32)
    k = np.stack([rng.integers(0, 2 ** (b + 1), size=(n, t_len)) for b in range(levels)]).astype(np.int16)
    q = (k * 0.1).astype(np.float32)
    return ids, y, q, k


def test_pseudo_label_parquet_round_trip(tmp_path):
    ids, y, q, k = make_pseudo_labels()
    path = tmp_path / "pseudo_labels.parquet"
    meta = {"run": "lq/synth/fold0", "codebooks": {"1": [-0.5, 0.7]}}
    write_pseudo_labels(path, ids, y, q, k, meta)
    table = pq.read_table(path)
    expected_columns = ["session", "chunk", "frame", "y_bpf", *[f"q{i}" for i in range(1, 6)],
                        *[f"k{i}" for i in range(1, 6)]]
    assert table.column_names == expected_columns
    assert table.num_rows == 6 * 16
    ids2, y2, q2, k2, meta2 = read_pseudo_labels(path)
    pd.testing.assert_frame_equal(ids2, ids.astype({"chunk": np.int64}))
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(q2, q)
    np.testing.assert_array_equal(k2, k)
    assert k2.dtype == np.int16 and meta2 == meta
    # row order in the file does not matter
    shuffled = tmp_path / "shuffled.parquet"
    pq.write_table(table.take(np.random.default_rng(0).permutation(table.num_rows)), shuffled)
    _, y3, _, k3, _ = read_pseudo_labels(shuffled)
    assert {tuple(r) for r in y3.tolist()} == {tuple(r) for r in y.tolist()}


def test_read_pseudo_labels_rejects_ragged_chunks(tmp_path):
    ids, y, q, k = make_pseudo_labels()
    path = tmp_path / "pl.parquet"
    write_pseudo_labels(path, ids, y, q, k, {})
    table = pq.read_table(path)
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(table.slice(0, table.num_rows - 1), ragged)  # last chunk loses a frame
    with pytest.raises(DataError, match="ragged.parquet"):
        read_pseudo_labels(ragged)


def test_check_against_store_names_what_differs():
    ids, _, _, _ = make_pseudo_labels(n_sessions=2, n_chunks=3, t_len=16)
    store = FakeStore({"sess0": np.zeros(50), "sess1": np.zeros(48)}, chunk_length=16).index
    check_against_store(ids, 16, store)  # matches
    with pytest.raises(DataError, match="length 20"):
        check_against_store(ids, 20, store)
    fewer = FakeStore({"sess0": np.zeros(50), "sess1": np.zeros(32)}, chunk_length=16).index
    with pytest.raises(DataError, match="sess1: 3 pseudo-label chunks, store has 2"):
        check_against_store(ids, 16, fewer)
    other = FakeStore({"sess0": np.zeros(50), "sess9": np.zeros(48)}, chunk_length=16).index
    with pytest.raises(DataError, match="sess9"):
        check_against_store(ids, 16, other)
    check_against_store(ids, 16, other, sessions=["sess0"])  # only the named sessions are compared
