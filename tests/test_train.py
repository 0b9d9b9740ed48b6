"""The shared training loop: both model families, selection, determinism, resume, MLflow, errors."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lqrppg.errors import ConfigError, DataError
from lqrppg.models.lqc2f import C2FOutput
from lqrppg.models import get_model
from lqrppg.objectives import c2f_loss, get_objective, loss_name, prediction
from lqrppg.signal.chain import ChainSettings
from lqrppg.train import CRITERION, TrainSettings, _Job, load_checkpoint, train
from test_data import hand_codebooks, write_hand_pseudo_labels, write_tiny_store

TRAIN, VAL = ["a", "b", "c"], ["v"]
SETTINGS = TrainSettings(epochs=2, batch_size=2, device="cpu", eval_batch_size=2)
CHAIN = ChainSettings()
RUN_INFO = {"protocol": "test", "fold": 0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    sessions = {"a": (64, 70.0), "b": (64, 100.0), "c": (64, 80.0), "v": (96, 90.0)}
    return write_tiny_store(tmp_path_factory.mktemp("store"), sessions)


@pytest.fixture(scope="module")
def pseudo(store, tmp_path_factory):
    path = tmp_path_factory.mktemp("lq") / "pseudo_labels.parquet"
    return path, write_hand_pseudo_labels(store, path)


def run(model, store, out, settings=SETTINGS, **kwargs):
    return train(model, store, TRAIN, VAL, settings, out, seed=kwargs.pop("seed", 0), chain=CHAIN,
                 run_info=RUN_INFO, **kwargs)


def best_epoch(curves) -> int:
    """Epoch (1-based) with the lowest (val_mae, val_loss), NaN/None worst, earliest on ties."""
    def key(i):
        mae, loss = curves["val_mae"][i], curves["val_loss"][i]
        return (mae if mae is not None else np.inf, loss if loss is not None else np.inf, i)

    return min(range(len(curves["val_mae"])), key=key) + 1


def state_dicts_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- objectives


def test_c2f_loss_is_lower_for_a_perfect_prediction_and_uses_the_code_indices():
    torch.manual_seed(0)
    books = hand_codebooks()
    k = torch.stack([torch.randint(0, 2**n, (2, 16)) for n in range(1, 6)], dim=1)  # (B, 5, T)
    q = torch.stack([books[n][k[:, n]] for n in range(5)], dim=1)
    batch = {"q": q, "k": k}

    def output(scores):
        logits = [-(s.unsqueeze(-1) - b).abs() * 50 for s, b in zip(scores, books)]  # sharp: near one-hot
        recon = [(lg.softmax(-1) * b).sum(-1) for lg, b in zip(logits, books)]
        return C2FOutput(rppg=recon[-1], logits=logits, recon=recon)

    perfect = output([q[:, n] for n in range(5)])
    noisy = output([torch.randn(2, 16) for _ in range(5)])
    loss_p, parts_p = c2f_loss(perfect, batch, 30.0)
    loss_n, parts_n = c2f_loss(noisy, batch, 30.0)
    assert loss_p < loss_n and parts_p["cls"] < parts_n["cls"] and parts_p["rec"] < parts_n["rec"]
    assert float(loss_p) == pytest.approx(parts_p["cls"] + parts_p["rec"], rel=1e-5)
    manual = sum(F.cross_entropy(perfect.logits[n].reshape(-1, 2 ** (n + 1)), k[:, n].reshape(-1)) for n in range(5))
    assert parts_p["cls"] == pytest.approx(float(manual), rel=1e-6)
    # CE reads the indices k, not the values q: other indices, same q -> only L_cls changes
    shifted = {"q": q, "k": torch.stack([(k[:, n] + 1) % 2 ** (n + 1) for n in range(5)], dim=1)}
    _, parts_s = c2f_loss(perfect, shifted, 30.0)
    assert parts_s["cls"] > parts_p["cls"] + 1 and parts_s["rec"] == pytest.approx(parts_p["rec"])


def test_continuous_objective_is_negative_pearson_and_prediction_unwraps_outputs():
    t = torch.linspace(0, 4, 64)
    label = torch.sin(2 * torch.pi * 1.2 * t).repeat(2, 1)
    objective = get_objective(loss_name(get_model("physnet")))
    assert objective is get_objective("neg_pearson")
    assert float(objective(3 * label + 1, {"label": label}, 30.0)[0]) == pytest.approx(0, abs=1e-6)
    assert float(objective(-label, {"label": label}, 30.0)[0]) == pytest.approx(2, abs=1e-6)
    assert get_objective(loss_name(get_model("lqrppg"))) is c2f_loss
    mse = get_objective("mse")
    assert float(mse(label + 0.5, {"label": label}, 30.0)[0]) == pytest.approx(0.25, abs=1e-6)
    # a model class without a loss attribute trains with its label_type's default
    assert loss_name(type("M", (), {"label_type": "continuous"})) == "neg_pearson"
    out = C2FOutput(rppg=label, logits=[], recon=[])
    assert prediction(out) is label and prediction(label) is label
    with pytest.raises(ConfigError, match="no objective named 'regression'.*mse"):
        get_objective("regression")


# ----------------------------------------------------------------------------- both model families


def test_lqrppg_trains_on_pseudo_labels_and_writes_a_selected_checkpoint(store, pseudo, tmp_path):
    path, books = pseudo
    summary = run("lqrppg", store, tmp_path, pseudo_labels=path, codebooks=books)
    assert {p.name for p in tmp_path.iterdir()} >= {"last.pt", "checkpoint.pt", "run.json"}
    assert json.loads((tmp_path / "run.json").read_text()) == summary
    curves = summary["curves"]
    assert set(curves) == {"train_loss", "train_cls", "train_rec", "val_loss", "val_mae", "lr"}
    assert all(len(v) == 2 for v in curves.values()) and len(summary["epoch_seconds"]) == 2
    np.testing.assert_allclose(np.add(curves["train_cls"], curves["train_rec"]), curves["train_loss"], rtol=1e-5)
    assert all(np.isfinite(curves["val_loss"]))  # the file covers the val session: a real val loss
    assert summary["selection"]["epoch"] == best_epoch(curves)
    assert summary["selection"]["criterion"] == CRITERION and summary["n_parameters"] > 0
    assert summary["device"] == "cpu" and summary["model_config"] == {"frames": 32, "height": 16, "width": 16}

    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["selected_epoch"] == summary["selection"]["epoch"] and ckpt["criterion"] == CRITERION
    assert ckpt["train_sessions"] == TRAIN and ckpt["val_sessions"] == VAL and ckpt["run_info"] == RUN_INFO
    assert ckpt["prep_id"] == store.prep_id
    for n, book in enumerate(books, start=1):  # the codebooks travel with the weights
        torch.testing.assert_close(ckpt["state_dict"][f"codebook_{n}"], book)
    model, loaded = load_checkpoint(tmp_path / "checkpoint.pt", "lqrppg", {"frames": 32, "prep_id": store.prep_id})
    assert not model.training and loaded["selected_epoch"] == ckpt["selected_epoch"]
    assert model(torch.randn(1, 3, 32, 16, 16)).rppg.shape == (1, 32)


def test_lqrppg_without_val_pseudo_labels_selects_on_hr_mae_alone(store, tmp_path, caplog):
    path = tmp_path / "train_only.parquet"
    books = write_hand_pseudo_labels(store, path, sessions=TRAIN)
    with caplog.at_level(logging.WARNING, logger="lqrppg.train"):
        summary = run("lqrppg", store, tmp_path / "out", TrainSettings(epochs=1, batch_size=3, device="cpu"),
                      pseudo_labels=path, codebooks=books)
    assert "no validation loss" in caplog.text
    assert summary["curves"]["val_loss"] == [None] and summary["curves"]["val_mae"][0] is not None


THREE_EPOCHS = TrainSettings(epochs=3, batch_size=2, device="cpu")


@pytest.fixture(scope="module")
def straight(store, tmp_path_factory):
    """An uninterrupted 3-epoch PhysNet run: the reference for determinism and resume."""
    out = tmp_path_factory.mktemp("straight")
    run("physnet", store, out, THREE_EPOCHS)
    return out


def test_physnet_runs_are_deterministic_for_a_seed(store, straight, tmp_path):
    summary = run("physnet", store, tmp_path, THREE_EPOCHS)
    reference = json.loads((straight / "run.json").read_text())
    assert set(summary["curves"]) == {"train_loss", "train_neg_pearson", "val_loss", "val_mae", "lr"}
    assert summary["curves"] == reference["curves"]
    assert summary["selection"]["epoch"] == best_epoch(summary["curves"])
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state_dicts_equal(a["state_dict"], b["state_dict"])
    # the OneCycle schedule: warm-up from lr/25, peak lr, then annealed far below it
    lr = summary["curves"]["lr"]
    assert lr[0] == pytest.approx(THREE_EPOCHS.lr / 25) and lr[1] > lr[0] and max(lr) <= THREE_EPOCHS.lr


def test_selection_takes_the_best_validation_epoch_and_its_weights(store, tmp_path, monkeypatch):
    # Scripted validation results: epochs 2 and 3 tie on HR MAE, epoch 3 has the lower val loss.
    script = iter([(5.0, 0.1), (3.0, 2.0), (3.0, 1.0), (4.0, 0.0)])
    weights = []

    def scripted(job):
        weights.append({k: v.clone() for k, v in job.model.state_dict().items()})
        mae, loss = next(script)
        return {"val_loss": loss, "val_mae": mae}

    monkeypatch.setattr(_Job, "validate", scripted)
    summary = run("physnet", store, tmp_path, TrainSettings(epochs=4, batch_size=3, device="cpu"))
    assert summary["curves"]["val_mae"] == [5.0, 3.0, 3.0, 4.0]
    assert summary["selection"]["epoch"] == 3 == best_epoch(summary["curves"])
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["criterion_value"] == 3.0 and ckpt["val_loss"] == 1.0
    assert state_dicts_equal(ckpt["state_dict"], weights[2])
    assert not state_dicts_equal(ckpt["state_dict"], weights[3])


# ----------------------------------------------------------------------------- resume and MLflow


def test_interrupted_run_resumes_to_the_same_weights_and_mlflow_run(store, straight, tmp_path, monkeypatch, caplog):
    from mlflow import MlflowClient

    settings = THREE_EPOCHS

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = {"uri": uri, "experiment": "unit", "run_name": "physnet/toy/fold0", "tags": {"fold": "0"},
                "params": {"protocol": "test"}, "artifact_root": tmp_path / "artifacts"}
    save_last = _Job.save_last

    def crash_after_epoch_2(job, path, state, run_):
        save_last(job, path, state, run_)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_Job, "save_last", crash_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run("physnet", store, tmp_path / "resumed", settings, tracking=tracking)
    assert not (tmp_path / "resumed" / "checkpoint.pt").exists()
    client = MlflowClient(tracking_uri=uri)
    (killed,) = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    assert killed.info.status == "KILLED"

    monkeypatch.setattr(_Job, "save_last", save_last)
    with caplog.at_level(logging.INFO, logger="lqrppg.train"):
        summary = run("physnet", store, tmp_path / "resumed", settings, tracking=tracking)
    assert "after epoch 2 of 3" in caplog.text  # resumed, not retrained

    reference = json.loads((straight / "run.json").read_text())
    assert summary["curves"] == reference["curves"] and summary["selection"] == reference["selection"]
    for name in ("checkpoint.pt", "last.pt"):
        a = torch.load(straight / name, weights_only=True)
        b = torch.load(tmp_path / "resumed" / name, weights_only=True)
        key = "state_dict" if name == "checkpoint.pt" else "model"
        assert state_dicts_equal(a[key], b[key]), name

    # one MLflow run, continued: per-epoch curves, the selection as tags, the weights attached
    assert summary["run_id"] == killed.info.run_id
    mlrun = client.get_run(killed.info.run_id)
    assert mlrun.info.status == "FINISHED"
    history = client.get_metric_history(killed.info.run_id, "val_mae")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx(reference["curves"]["val_mae"])
    assert [m.step for m in client.get_metric_history(killed.info.run_id, "lr")] == [1, 2, 3]
    assert mlrun.data.tags["selected_epoch"] == str(summary["selection"]["epoch"])
    assert mlrun.data.tags["criterion"] == CRITERION and mlrun.data.tags["fold"] == "0"
    assert mlrun.data.params["protocol"] == "test" and mlrun.data.params["train.lr"] == str(settings.lr)
    assert {a.path for a in client.list_artifacts(killed.info.run_id)} == {"checkpoint.pt", "run.json"}

    # a rerun of a finished job trains nothing and rewrites the same selection
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lqrppg.train"):
        again = run("physnet", store, tmp_path / "resumed", settings, tracking=tracking)
    assert "after epoch 3 of 3" in caplog.text and again["curves"] == summary["curves"]
    assert [m.step for m in client.get_metric_history(killed.info.run_id, "val_mae")] == [1, 2, 3]


def test_last_pt_of_another_run_is_not_resumed(store, tmp_path, caplog):
    run("physnet", store, tmp_path, TrainSettings(epochs=1, batch_size=2, device="cpu"))
    with caplog.at_level(logging.WARNING, logger="lqrppg.train"):
        summary = run("physnet", store, tmp_path, TrainSettings(epochs=1, batch_size=3, device="cpu"))
    assert "differs in ['settings']" in caplog.text and len(summary["curves"]["val_mae"]) == 1


# ----------------------------------------------------------------------------- bad input


def test_the_split_must_have_a_disjoint_non_empty_validation_set(store, tmp_path):
    with pytest.raises(DataError, match="both the training and the validation split: b"):
        train("physnet", store, ["a", "b"], ["b"], SETTINGS, tmp_path, seed=0, chain=CHAIN, run_info={})
    with pytest.raises(DataError, match="validation split is empty"):
        train("physnet", store, ["a", "b"], [], SETTINGS, tmp_path, seed=0, chain=CHAIN, run_info={})
    with pytest.raises(DataError, match="sessions without chunks in the store: zz"):
        train("physnet", store, ["a"], ["zz"], SETTINGS, tmp_path, seed=0, chain=CHAIN, run_info={})
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        run("nope", store, tmp_path)
    assert not any(tmp_path.iterdir())


def test_quantized_models_need_matching_pseudo_labels_and_codebooks(store, pseudo, tmp_path):
    path, books = pseudo
    with pytest.raises(ConfigError, match="pseudo-label file and the codebooks"):
        run("lqrppg", store, tmp_path, codebooks=books)
    with pytest.raises(ConfigError, match="pseudo-label file and the codebooks"):
        run("lqrppg", store, tmp_path, pseudo_labels=path)
    with pytest.raises(ConfigError, match="codebook 5 .* needs 32 values, got 16"):
        run("lqrppg", store, tmp_path, pseudo_labels=path, codebooks=books[:4] + [books[3]])
    with pytest.raises(ConfigError, match="needs 5 codebooks"):
        run("lqrppg", store, tmp_path, pseudo_labels=path, codebooks=books[:4])
    missing = tmp_path / "missing_chunk.parquet"
    write_hand_pseudo_labels(store, missing, drop=("b", 1))
    with pytest.raises(DataError, match="session b: 1 pseudo-label chunks, store has 2"):
        run("lqrppg", store, tmp_path, pseudo_labels=missing, codebooks=books)
    other = [b * 0.5 for b in hand_codebooks()]
    with pytest.raises(DataError, match="1-bit pseudo labels are not values of the given 1-bit codebook"):
        run("lqrppg", store, tmp_path, pseudo_labels=path, codebooks=other)


def test_a_store_the_model_cannot_take_is_a_config_error(tmp_path):
    odd = write_tiny_store(tmp_path / "s", {"a": (60, 70.0), "v": (60, 90.0)}, chunk_length=30)
    with pytest.raises(ConfigError, match="'physnet' cannot take the chunks .* divisible by 4"):
        train("physnet", odd, ["a"], ["v"], SETTINGS, tmp_path / "o", seed=0, chain=CHAIN, run_info={})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_config_error(store, tmp_path):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        run("physnet", store, tmp_path, TrainSettings(device="cuda"))


def test_checkpoint_of_another_model_or_config_is_refused(store, tmp_path):
    run("physnet", store, tmp_path, TrainSettings(epochs=1, batch_size=3, device="cpu"))
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(ConfigError, match="checkpoint of model 'physnet', expected 'lqrppg'"):
        load_checkpoint(ckpt, expected_model="lqrppg")
    with pytest.raises(ConfigError, match="frames = 32, expected 160"):
        load_checkpoint(ckpt, expected_config={"frames": 160})
    with pytest.raises(ConfigError, match="prep_id = 'toy16x32', expected 'other'"):
        load_checkpoint(ckpt, expected_config={"prep_id": "other"})
    model, _ = load_checkpoint(ckpt, "physnet", {"frames": 32, "height": 16, "width": 16})
    assert not model.training
    torch.save({"something": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(DataError, match="not an lqrppg checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(DataError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_settings_are_strict_and_documented():
    with pytest.raises(ValueError, match="extra"):
        TrainSettings(epoch=3)
    assert all(field.description for field in TrainSettings.model_fields.values())
    assert TrainSettings().model_dump() == {"epochs": 50, "batch_size": 16, "lr": 3e-4, "weight_decay": 1e-5,
                                            "augment": False, "device": "auto", "threads": None,
                                            "eval_batch_size": 4, "min_label_quality": 1.0}
