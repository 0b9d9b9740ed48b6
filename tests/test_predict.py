"""Predictions over a store: columns, alignment, the diff-model cumsum, the Parquet file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lqrppg.data import ChunkDataset
from lqrppg.errors import ConfigError, DataError
from lqrppg.models import get_model
from lqrppg.objectives import prediction
from lqrppg.predict import (
    COLUMNS,
    predict_store,
    predictions_to_signals,
    read_predictions,
    resolve_device,
    write_predictions,
)
from test_data import hand_codebooks, write_tiny_store


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # s1 has a 4-frame remainder that no chunk covers
    return write_tiny_store(tmp_path_factory.mktemp("store"), {"s1": (100, 70.0), "s2": (64, 110.0)})


def untrained(name: str):
    """A freshly initialised model and the checkpoint dict predict_store reads."""
    torch.manual_seed(0)
    model = get_model(name)(32, 16, 16)
    if name == "lqrppg":
        model.set_codebooks(hand_codebooks())
    ckpt = {"model_name": name, "model_config": {"frames": 32, "height": 16, "width": 16}, "selected_epoch": 1,
            "prep_id": "train-store", "run_info": {"fold": 0}}
    return model.eval(), ckpt


@torch.no_grad()
def chunk_outputs(model, store, sessions):
    ds = ChunkDataset(store, sessions, model.input_norm)
    return {(ds[i]["session"], ds[i]["chunk"]): prediction(model(ds[i]["frames"][None]))[0].numpy()
            for i in range(len(ds))}


def test_standardized_model_predictions_are_the_chunk_outputs(store):
    model, ckpt = untrained("lqrppg")
    df, prov = predict_store(model, ckpt, store, None, batch_size=2, device="cpu")
    assert list(df.columns) == COLUMNS and len(df) == 3 * 32 + 2 * 32
    assert prov["pred_domain"] == "signal" and prov["model_name"] == "lqrppg" and prov["n_chunks"] == 5
    assert prov["prep_id"] == store.prep_id and prov["train_prep_id"] == "train-store"
    outputs = chunk_outputs(model, store, ["s1", "s2"])
    for (session, chunk), out in outputs.items():
        rows = df[(df.session == session) & (df.chunk == chunk)]
        np.testing.assert_array_equal(rows.frame, np.arange(32 * chunk, 32 * chunk + 32))
        np.testing.assert_allclose(rows.pred, out, rtol=1e-4, atol=1e-5)  # batch of 2 vs 1
        np.testing.assert_array_equal(rows.label, store.label(session)[rows.frame].astype(np.float64))
    assert df.label.dtype == np.float64 and df.frame.max() == 95  # the remainder is not predicted


def test_diff_model_predictions_are_cumsummed_over_the_video(store):
    model, ckpt = untrained("physnet")
    df, prov = predict_store(model, ckpt, store, ["s2"], batch_size=4, device="auto")
    assert prov["pred_domain"] == "cumsum_of_diff" and set(df.session) == {"s2"}
    outputs = chunk_outputs(model, store, ["s2"])
    expected = np.cumsum(np.concatenate([outputs[("s2", 0)], outputs[("s2", 1)]]))
    np.testing.assert_allclose(df.pred.to_numpy(), expected, rtol=1e-5, atol=1e-5)


def test_file_round_trip_and_signals_in_chunk_order(store, tmp_path):
    model, ckpt = untrained("physnet")
    df, prov = predict_store(model, ckpt, store, None, batch_size=3, device="cpu")
    path = tmp_path / "preds" / "test.parquet"
    write_predictions(df.sample(frac=1.0, random_state=0), path, prov)  # rows shuffled on purpose
    back, meta = read_predictions(path)
    assert meta == {**prov, "run_info": {"fold": 0}} and len(back) == len(df)
    signals = predictions_to_signals(back)
    assert list(signals) == ["s1", "s2"]
    for session, (pred, label) in signals.items():
        expected = df[df.session == session]
        np.testing.assert_array_equal(pred, expected.pred.to_numpy())
        np.testing.assert_array_equal(label, expected.label.to_numpy())
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # atomic: no temp left behind


def test_mismatched_store_and_bad_files_are_refused(store, tmp_path):
    model, ckpt = untrained("physnet")
    ckpt = {**ckpt, "model_config": {"frames": 64, "height": 16, "width": 16}}
    with pytest.raises(ConfigError, match=r"trained on \(frames, height, width\) = \(64, 16, 16\)"):
        predict_store(model, ckpt, store, None, 2, "cpu")
    with pytest.raises(DataError, match="predictions file not found"):
        read_predictions(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="unreadable"):
        read_predictions(tmp_path / "bad.parquet")
    assert resolve_device("cpu") == torch.device("cpu")
