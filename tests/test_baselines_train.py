"""Every supervised model of the registry trains, selects and predicts through the one shared
trainer, with its own input normalisation, label normalisation and loss (issue 5)."""

from __future__ import annotations

import numpy as np
import pytest

from lqrppg.models import available_models, get_model
from lqrppg.objectives import get_objective, loss_name
from lqrppg.predict import predict_store
from lqrppg.signal.chain import ChainSettings
from lqrppg.train import TrainSettings, load_checkpoint, train
from tests.test_data import write_tiny_store

T, SIZE = 40, 32  # every model takes it: PhysFormer needs H % 32, TS-CAN T % 10, PhysNet T % 4
CONTINUOUS = [m for m in available_models() if get_model(m).label_type == "continuous"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    sessions = {"a": (80, 70.0), "b": (80, 100.0), "v": (80, 90.0)}
    return write_tiny_store(tmp_path_factory.mktemp("store"), sessions, size=SIZE, chunk_length=T)


def test_the_registry_holds_the_papers_baselines():
    assert {"deepphys", "tscan", "efficientphys", "physformer", "rhythmmamba", "physnet", "lqrppg",
            "c2f-continuous"} <= set(available_models())
    for name in available_models():
        cls = get_model(name)
        get_objective(loss_name(cls))  # every model's loss is registered
        cls.check_input(*cls.published_input)  # and its published input is one it takes


@pytest.mark.parametrize("name", CONTINUOUS)
def test_each_baseline_trains_and_predicts_through_the_shared_trainer(name, store, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=2, device="cpu", eval_batch_size=2)
    run = train(name, store, ["a", "b"], ["v"], settings, tmp_path, seed=0, chain=ChainSettings(),
                run_info={"protocol": "test"})
    assert run["model_name"] == name and run["selection"]["epoch"] == 1
    assert np.isfinite(run["curves"]["train_loss"][0])
    model, checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert type(model) is get_model(name)
    df, provenance = predict_store(model, checkpoint, store, ["v"], batch_size=2, device="cpu")
    assert len(df) == 80 and np.isfinite(df["pred"]).all()
    # a model of the differenced label predicts differences: they are integrated back
    diff = get_model(name).label_norm == "diff_normalized"
    assert provenance["pred_domain"] == ("cumsum_of_diff" if diff else "signal")
