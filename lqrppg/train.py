"""One training loop for every model of the registry (method.md §4-5, §9 rules 1-2, 5, 8).

    model   registry class at the store's (chunk_length, size, size); LQC2F gets frozen codebooks
    data    ChunkDataset (normalised at load time), seeded shuffling, num_workers=0
    loss    objectives[model.loss]: C2F loss on pseudo labels, negative Pearson, MSE, or a model's own
    optim   AdamW + OneCycleLR(max_lr = lr) stepped every batch
    select  after every epoch, whole-video HR MAE on the VALIDATION sessions (ties: val loss);
            the test set is never touched here

Files in ``out_dir``: ``last.pt`` (everything needed to resume, rewritten every epoch),
``checkpoint.pt`` (the selected weights, a plain dict) and ``run.json`` (selection, curves,
cost). All are written atomically and load with ``torch.load(weights_only=True)``: only
tensors, numbers, strings and plain containers are saved. A rerun with the same inputs
resumes from ``last.pt`` and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lqrppg.data import ChunkDataset, chunk_length_of
from lqrppg.errors import ConfigError, DataError
from lqrppg.evaluation import per_video_table
from lqrppg.io import atomic_path, sha256_file, write_text
from lqrppg.lq.fit import load_codebooks
from lqrppg.models import count_parameters, get_model
from lqrppg.objectives import get_objective, loss_name
from lqrppg.predict import assemble_predictions, predict_chunks, predictions_to_signals, resolve_device
from lqrppg.preprocess.store import ChunkStore
from lqrppg.signal.chain import ChainSettings
from lqrppg.tracking import TrainingRun, git_sha

__all__ = ["CHECKPOINT_FORMAT", "CRITERION", "TrainSettings", "load_checkpoint", "train"]

log = logging.getLogger(__name__)

CRITERION = "val_hr_mae_bpm"  # whole-video HR MAE of the prediction vs the label, validation sessions
CHECKPOINT_FORMAT = "lqrppg.checkpoint/1"
LAST_FORMAT = "lqrppg.last/1"
#: Settings that change the numbers; a last.pt written with other values is not resumed.
_IDENTITY_FIELDS = {"epochs", "batch_size", "lr", "weight_decay", "augment", "min_label_quality"}


class TrainSettings(BaseModel):
    """Stage-2 hyper-parameters (defaults: method.md §5, UBFC intra)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(50, ge=1, description="Training epochs; one validation pass after each.")
    batch_size: int = Field(16, ge=1, description="Chunks per training batch.")
    lr: float = Field(3e-4, gt=0, description="AdamW learning rate, also OneCycleLR's max_lr.")
    weight_decay: float = Field(1e-5, ge=0, description="AdamW weight decay.")
    augment: bool = Field(
        False, description="HR-dependent ×2 time stretch/compress (p=0.5) and horizontal flip (p=0.5), method.md §6."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' uses CUDA when available, else CPU.")
    threads: int | None = Field(
        None, ge=1, description="torch intra-op CPU threads for this job (torch.set_num_threads); null = leave as is."
    )
    eval_batch_size: int = Field(4, ge=1, description="Chunks per batch in the validation pass.")
    min_label_quality: float = Field(
        1.0, ge=0, le=1,
        description="Training chunks need at least this share of frames with a good label (datasets that grade "
        "their label, e.g. iBVP); the rest are left out whole, and listed in run.json.",
    )


# ----------------------------------------------------------------------------- the loop


def train(
    model_name: str,
    store: ChunkStore | str | os.PathLike,
    train_sessions: Sequence[str],
    val_sessions: Sequence[str],
    settings: TrainSettings,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    chain: ChainSettings,
    pseudo_labels: str | os.PathLike | None = None,
    codebooks: Sequence[torch.Tensor] | str | os.PathLike | None = None,
    tracking: Mapping[str, Any] | None = None,
    run_info: Mapping[str, Any],
    model_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model_name``, select the epoch on validation, write out_dir files; returns run.json.

    ``model_options`` are the model's constructor options (its ``Options`` class); they are saved
    with the frame and face sizes in ``model_config``, so a checkpoint rebuilds the same model.
    """
    store = store if isinstance(store, ChunkStore) else ChunkStore(store)
    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        job = _Job(model_name, store, list(train_sessions), list(val_sessions), settings, seed, chain,
                   pseudo_labels, codebooks, dict(run_info), dict(model_options or {}))
        state = job.resume(out_dir / "last.pt")
        run = _open_run(tracking, job, state)
        model, loader, optimizer, scheduler = job.model, job.loader, job.optimizer, job.scheduler
        try:
            for epoch in range(state["epoch"] + 1, settings.epochs + 1):
                tic = time.perf_counter()
                job.train_set.set_epoch(epoch)
                lr = optimizer.param_groups[0]["lr"]  # the rate of the epoch's first step
                progress = (epoch - 1) / settings.epochs  # for curriculum losses (PhysFormer)
                model.train()
                sums: dict[str, float] = {}
                for batch in tqdm(loader, desc=f"epoch {epoch}/{settings.epochs}", leave=False, disable=None):
                    batch = {k: v.to(job.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
                    loss, parts = job.objective(model(batch["frames"]), batch, job.fs, progress=progress)
                    if not torch.isfinite(loss):
                        raise RuntimeError(f"non-finite training loss at epoch {epoch}: {parts}")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()  # OneCycleLR is stepped per batch (method.md §5)
                    for key, value in {"loss": float(loss.detach()), **parts}.items():
                        sums[key] = sums.get(key, 0.0) + value * len(batch["frames"])
                metrics = {f"train_{k}": v / len(job.train_set) for k, v in sums.items()}
                metrics.update(job.validate(), lr=lr)
                state = job.record(state, epoch, metrics, time.perf_counter() - tic)
                if run is not None:
                    run.log_metrics(metrics, step=epoch)  # one batch per epoch (DESIGN §5)
                job.save_last(out_dir / "last.pt", state, run)
            summary = job.finish(out_dir, state, run)
        except BaseException as err:
            if run is not None:  # a killed job's run can be resumed later; last.pt names it
                run.finish("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise
        if run is not None:
            run.finish("FINISHED")
        return summary
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- setup and bookkeeping


def _nan_to_none(x: Any) -> Any:
    """JSON has no NaN: recursive copy with non-finite floats as None."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def _selection_key(val_mae: float, val_loss: float | None) -> tuple[float, float]:
    """Lower is better: validation HR MAE, then validation loss; NaN counts as worst."""
    def finite(v: float | None) -> float:
        return v if v is not None and math.isfinite(v) else math.inf

    return finite(val_mae), finite(val_loss)


def model_config_for(store: ChunkStore) -> dict[str, int]:
    """(frames, height, width) the models are built at: the store's chunk length and crop size."""
    first = str(store.index["session"].iloc[0])
    h, w = store.frames(first).shape[1:3]
    return {"frames": chunk_length_of(store), "height": int(h), "width": int(w)}


class _Job:
    """Everything one training job builds once: model, data, optimiser; and its file formats."""

    def __init__(self, model_name, store, train_sessions, val_sessions, settings, seed, chain,
                 pseudo_labels, codebooks, run_info, model_options) -> None:
        _check_split(store, train_sessions, val_sessions)
        self.model_name, self.store, self.settings, self.seed = model_name, store, settings, int(seed)
        self.train_sessions, self.val_sessions = train_sessions, val_sessions
        # Saved in files that load with weights_only=True: plain JSON types only (Paths become strings).
        self.run_info = json.loads(json.dumps(run_info, default=str))
        self.chain = chain.model_copy(update={"window_s": None})  # selection uses whole-video HR
        cls = get_model(model_name)
        shape = model_config_for(store)
        try:
            cls.check_input(**shape)
        except ValueError as err:
            raise ConfigError(f"model {model_name!r} cannot take the chunks of {store.path}: {err}") from None
        if model_options and getattr(cls, "Options", None) is None:
            raise ConfigError(f"model {model_name!r} takes no options, got {sorted(model_options)}")
        if model_options:  # validated once more here: the command can run without the config check
            model_options = cls.Options.model_validate(model_options).model_dump()
        self.config = {**shape, **model_options}
        self.device = resolve_device(settings.device)  # CUDA only when asked for or 'auto' finds one
        self.fs = store.fps
        self.objective = get_objective(loss_name(cls))

        torch.manual_seed(self.seed)  # model init, then the loader's own generator: same numbers per seed
        self.model = cls(**self.config)
        quantized = cls.label_type == "quantized"
        books = _set_codebooks(self.model, codebooks, pseudo_labels) if quantized else None
        if not quantized and pseudo_labels is not None:
            log.info("model %s trains on the continuous label; pseudo labels %s are not used",
                     model_name, pseudo_labels)
        self.model.to(self.device)
        data_args = dict(input_norm=cls.input_norm, label_norm=cls.label_norm, seed=self.seed)
        self.train_set = ChunkDataset(store, train_sessions, targets=cls.label_type,
                                      pseudo_labels=pseudo_labels if quantized else None,
                                      augment=settings.augment, min_label_quality=settings.min_label_quality,
                                      **data_args)
        if quantized:
            _check_pseudo_labels_use(books, self.train_set, pseudo_labels)
        self.val_set, self.val_objective = self._val_dataset(pseudo_labels if quantized else None, data_args)

        self.generator = torch.Generator().manual_seed(self.seed)
        # num_workers=0: loading is a memmap slice plus arithmetic, and the sample order and
        # augmentation draws then depend on the seed alone. Pinned memory only helps CUDA copies.
        pin = self.device.type == "cuda"
        self.loader = DataLoader(self.train_set, batch_size=settings.batch_size, shuffle=True,
                                 generator=self.generator, num_workers=0, pin_memory=pin)
        self.val_loader = DataLoader(self.val_set, batch_size=settings.eval_batch_size, shuffle=False,
                                     num_workers=0, pin_memory=pin)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=settings.lr, total_steps=settings.epochs * len(self.loader))
        self.identity = {
            "model_name": model_name,
            "model_config": self.config,
            "prep_id": store.prep_id,
            "train_sessions": train_sessions,
            "val_sessions": val_sessions,
            "seed": self.seed,
            "settings": settings.model_dump(include=_IDENTITY_FIELDS),
            "codebooks": [c.tolist() for c in books] if books is not None else None,
            "pseudo_labels_sha256": sha256_file(pseudo_labels) if quantized else None,
        }

    def _val_dataset(self, pseudo_labels, data_args):
        """Validation data; its loss needs pseudo labels for the val sessions, which a file may lack."""
        if pseudo_labels is not None:
            try:
                return ChunkDataset(self.store, self.val_sessions, targets="quantized",
                                    pseudo_labels=pseudo_labels, **data_args), self.objective
            except DataError as err:
                log.warning("no validation loss (pseudo labels do not cover the validation sessions: %s); "
                            "selection uses the validation HR MAE alone", err)
            return ChunkDataset(self.store, self.val_sessions, targets="continuous", **data_args), None
        return ChunkDataset(self.store, self.val_sessions, targets="continuous", **data_args), self.objective

    def validate(self) -> dict[str, float]:
        """Val loss and whole-video HR MAE: chunks predicted, concatenated per video, through the chain."""
        preds, loss = predict_chunks(self.model, self.val_loader, self.device, self.val_objective, self.fs)
        diff = self.model.label_norm == "diff_normalized"
        signals = predictions_to_signals(assemble_predictions(self.store, preds, diff_domain=diff))
        table = per_video_table({s: (p, {"label": y}) for s, (p, y) in signals.items()}, self.fs, self.chain)
        mae = float(np.mean(np.abs(table["hr_pred"] - table["hr_label"]))) if len(table) else math.nan
        return {"val_loss": math.nan if loss is None else loss, "val_mae": mae}

    # -- state ---------------------------------------------------------------------

    def fresh_state(self) -> dict[str, Any]:
        return {"epoch": 0, "curves": {}, "epoch_seconds": [], "best": None, "run_id": None}

    def record(self, state: dict[str, Any], epoch: int, metrics: dict[str, float], seconds: float) -> dict[str, Any]:
        """Append one epoch to the curves and keep the best-so-far weights (a CPU copy)."""
        for key, value in metrics.items():
            state["curves"].setdefault(key, []).append(float(value))
        state["epoch_seconds"].append(seconds)
        state["epoch"] = epoch
        best = state["best"]
        key = _selection_key(metrics["val_mae"], metrics["val_loss"])
        if best is None or key < _selection_key(best["value"], best["val_loss"]):
            weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            state["best"] = {"epoch": epoch, "value": metrics["val_mae"], "val_loss": metrics["val_loss"],
                             "state_dict": weights}
        log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f  val_mae %.2f bpm  (best: epoch %d)  %.1f s",
                 epoch, self.settings.epochs, metrics["train_loss"], metrics["val_loss"], metrics["val_mae"],
                 state["best"]["epoch"], seconds)
        return state

    def save_last(self, path: Path, state: dict[str, Any], run: TrainingRun | None) -> None:
        rng = {"torch": torch.get_rng_state(), "loader": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        payload = {
            "format": LAST_FORMAT, "identity": self.identity, **state,
            "run_id": run.run_id if run is not None else state.get("run_id"),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": rng,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    def resume(self, path: Path) -> dict[str, Any]:
        """State after the last finished epoch of a matching ``last.pt``; a fresh state otherwise."""
        if not path.is_file():
            return self.fresh_state()
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a damaged scratch file only costs a restart
            log.warning("%s is unreadable (%s); training from scratch", path, err)
            return self.fresh_state()
        if saved.get("format") != LAST_FORMAT or saved.get("identity") != self.identity:
            differ = sorted(k for k in self.identity if saved.get("identity", {}).get(k) != self.identity[k])
            log.warning("%s is from a different run (differs in %s); training from scratch", path, differ)
            return self.fresh_state()
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"]["torch"])
        self.generator.set_state(saved["rng"]["loader"])
        if "cuda" in saved["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
        log.info("resuming %s after epoch %d of %d", path, saved["epoch"], self.settings.epochs)
        return {k: saved[k] for k in self.fresh_state()}

    def finish(self, out_dir: Path, state: dict[str, Any], run: TrainingRun | None) -> dict[str, Any]:
        """Write checkpoint.pt (selected weights) and run.json; tag and attach them to the MLflow run."""
        best = state["best"]
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "model_name": self.model_name,
            "model_config": self.config,
            "state_dict": best["state_dict"],
            "selected_epoch": best["epoch"],
            "criterion": CRITERION,
            "criterion_value": best["value"],
            "val_loss": best["val_loss"],
            "prep_id": self.store.prep_id,
            "train_sessions": self.train_sessions,
            "val_sessions": self.val_sessions,
            "run_info": self.run_info,
            "run_id": run.run_id if run is not None else None,
        }
        with atomic_path(out_dir / "checkpoint.pt") as tmp:
            torch.save(checkpoint, tmp)
        summary = _nan_to_none({
            "model_name": self.model_name,
            "model_config": self.config,
            "selection": {"epoch": best["epoch"], "criterion": CRITERION, "value": best["value"],
                          "val_loss": best["val_loss"], "tie_break": "val_loss"},
            "curves": state["curves"],
            "epochs": self.settings.epochs,
            "n_parameters": count_parameters(self.model),
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
            "epoch_seconds": state["epoch_seconds"],
            "steps_per_epoch": len(self.loader),
            "masked_chunks": [f"{s}#{c}" for s, c in self.train_set.masked_chunks],
            "run_id": run.run_id if run is not None else None,
            "seed": self.seed,
            "settings": self.settings.model_dump(),
            "chain": self.chain.model_dump(),
            "prep_id": self.store.prep_id,
            "store": str(self.store.path),
            "train_sessions": self.train_sessions,
            "val_sessions": self.val_sessions,
            "run_info": self.run_info,
        })
        write_text(out_dir / "run.json", json.dumps(summary, indent=2) + "\n")
        if run is not None:
            run.set_tags({"selected_epoch": best["epoch"], "criterion": CRITERION,
                          "criterion_value": best["value"]})
            run.log_metrics({f"selected_{CRITERION}": best["value"]}, step=best["epoch"])
            run.log_artifact(out_dir / "checkpoint.pt")
            run.log_artifact(out_dir / "run.json")
        log.info("selected epoch %d (%s = %.3f) -> %s", best["epoch"], CRITERION, best["value"],
                 out_dir / "checkpoint.pt")
        return summary


def _check_split(store: ChunkStore, train_sessions: list[str], val_sessions: list[str]) -> None:
    """A true validation split (method.md §9 rule 1): non-empty and disjoint from training."""
    if not train_sessions:
        raise DataError("no training sessions")
    if not val_sessions:
        raise DataError("the validation split is empty; selection needs a true validation split "
                        "(method.md §9 rule 1): carve it out of the training subjects")
    if overlap := sorted(set(train_sessions) & set(val_sessions)):
        raise DataError(f"sessions in both the training and the validation split: {', '.join(overlap)}")
    known = set(store.index["session"])
    if missing := sorted(set(train_sessions + val_sessions) - known):
        raise DataError(f"{store.path}: sessions without chunks in the store: {', '.join(missing)}")


def _set_codebooks(model: nn.Module, codebooks, pseudo_labels) -> list[torch.Tensor]:
    """Put the frozen LQ codebooks into a quantized-target model; ConfigError when missing or malformed."""
    if pseudo_labels is None or codebooks is None:
        raise ConfigError(f"model {model.name!r} trains on LQ pseudo labels: give both the pseudo-label file "
                          "and the codebooks (lqrppg quantize fit / apply)")
    if isinstance(codebooks, (str, os.PathLike)):
        codebooks = load_codebooks(codebooks)
    try:
        model.set_codebooks(list(codebooks))
    except ValueError as err:
        raise ConfigError(f"codebooks do not fit model {model.name!r}: {err}") from None
    return [c.detach().cpu() for c in model.codebooks()]


def _check_pseudo_labels_use(books: list[torch.Tensor], dataset: ChunkDataset, path) -> None:
    """Pseudo labels q must be the codebook values at indices k, else they come from another LQ run."""
    q, k = dataset.pseudo_labels()
    for n, book in enumerate(books):
        if k[n].size and not np.allclose(book.numpy()[k[n]], q[n], atol=1e-5):
            raise DataError(f"{path}: the {n + 1}-bit pseudo labels are not values of the given {n + 1}-bit "
                            "codebook; were they made with another quantizer run?")


def _open_run(tracking: Mapping[str, Any] | None, job: _Job, state: dict[str, Any]) -> TrainingRun | None:
    """The MLflow run of this job: the resumed one when last.pt names it, else a new one."""
    if tracking is None:
        return None
    tags = {"model": job.model_name, "git_sha": git_sha(), **dict(tracking.get("tags", {}))}
    params = {"train": job.settings.model_dump(), "seed": job.seed, **dict(tracking.get("params", {}))}
    args = dict(uri=tracking["uri"], experiment=tracking["experiment"], run_name=tracking.get("run_name", ""),
                tags=tags, params=params, artifact_root=tracking.get("artifact_root"))
    if state.get("run_id"):
        try:
            return TrainingRun(**args, run_id=state["run_id"])
        except Exception as err:  # noqa: BLE001 - e.g. another tracking store: keep training, new run
            log.warning("cannot reopen MLflow run %s (%s); starting a new run", state["run_id"], err)
    run = TrainingRun(**args)
    for i in range(state["epoch"]):  # epochs trained before this run existed
        run.log_metrics({k: v[i] for k, v in state["curves"].items()}, step=i + 1)
    return run


# ----------------------------------------------------------------------------- loading


def load_checkpoint(
    path: str | os.PathLike,
    expected_model: str | None = None,
    expected_config: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on the CPU, checkpoint dict) of a ``checkpoint.pt``.

    ``expected_config`` may hold frames/height/width and prep_id; any that differ from the
    checkpoint's raise ConfigError naming both, as does another ``expected_model``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not our checkpoint"
        raise DataError(f"{path}: unreadable checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not an lqrppg checkpoint (format {CHECKPOINT_FORMAT} expected)")
    if expected_model is not None and ckpt["model_name"] != expected_model:
        raise ConfigError(f"{path}: checkpoint of model {ckpt['model_name']!r}, expected {expected_model!r}")
    got = {**ckpt["model_config"], "prep_id": ckpt["prep_id"]}
    for key, want in (expected_config or {}).items():
        if key not in got:
            raise ConfigError(f"unknown checkpoint config key {key!r}; known: {sorted(got)}")
        if got[key] != want:
            raise ConfigError(f"{path}: checkpoint has {key} = {got[key]!r}, expected {want!r} "
                              f"(checkpoint config {got})")
    model = get_model(ckpt["model_name"])(**ckpt["model_config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
