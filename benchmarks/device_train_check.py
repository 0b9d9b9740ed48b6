"""Train every continuous-label model of the registry for one epoch on CUDA (a tiny store), and
check that training and prediction ran on the GPU with finite losses. For a device machine:

    python benchmarks/device_train_check.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lqrppg.models import available_models, get_model
from lqrppg.predict import predict_store
from lqrppg.signal.chain import ChainSettings
from lqrppg.train import TrainSettings, load_checkpoint, train
from tests.test_data import write_tiny_store


def main() -> None:
    assert torch.cuda.is_available(), "needs CUDA"
    with tempfile.TemporaryDirectory() as tmp:
        store = write_tiny_store(Path(tmp) / "store", {"a": (320, 70.0), "b": (320, 100.0), "v": (320, 90.0)},
                                 size=64, chunk_length=160)
        settings = TrainSettings(epochs=2, batch_size=2, device="cuda", eval_batch_size=2)
        print(f"{'model':16s} {'device':8s} {'train_loss':>10s} {'s/epoch':>8s} {'pred finite':>11s}")
        for name in available_models():
            if get_model(name).label_type != "continuous":
                continue
            out = Path(tmp) / name
            tic = time.perf_counter()
            run = train(name, store, ["a", "b"], ["v"], settings, out, seed=0, chain=ChainSettings(),
                        run_info={"protocol": "device-check"})
            seconds = (time.perf_counter() - tic) / settings.epochs
            model, ckpt = load_checkpoint(out / "checkpoint.pt")
            df, _ = predict_store(model, ckpt, store, ["v"], batch_size=2, device="cuda")
            device = str(next(model.parameters()).device)
            print(f"{name:16s} {device:8s} {run['curves']['train_loss'][-1]:10.4f} {seconds:8.2f} "
                  f"{bool(np.isfinite(df['pred']).all())!s:>11s}")


if __name__ == "__main__":
    main()
