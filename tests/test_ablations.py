"""The ablation mechanisms (issue 5): bit cap, final-head-only supervision, the continuous-label
backbone, fixed (uniform / Lloyd-Max) codebooks, model entries in the config, and the overlay
that puts them in the DAG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lqrppg.config import load_config, validate_config
from lqrppg.data import ChunkDataset
from lqrppg.errors import ConfigError
from lqrppg.lq.fit import LQSettings, fit_quantizers, lloyd_max_codebook, load_quantizers, save_quantizers, uniform_codebook
from lqrppg.lq.labels import bandpass_chunks
from lqrppg.lq.pseudo_labels import apply_quantizers
from lqrppg.models import get_model
from lqrppg.objectives import c2f_loss, get_objective, loss_name
from lqrppg.signal.chain import ChainSettings
from tests.conftest import tiny_config
from tests.test_data import write_tiny_store

ROOT = Path(__file__).resolve().parents[1]
T, S = 32, 16


def _c2f(**options):
    torch.manual_seed(0)
    model = get_model("lqrppg")(T, S, S, **options)
    model.set_codebooks([torch.linspace(-1, 1, 2**n) for n in range(1, 6)])
    return model.eval()


def _targets(batch: int = 2):
    k = torch.stack([torch.randint(0, 2**n, (batch, T)) for n in range(1, 6)], dim=1)
    q = torch.stack([torch.linspace(-1, 1, 2**n)[k[:, n - 1]] for n in range(1, 6)], dim=1)
    return {"q": q, "k": k}


# ----------------------------------------------------------------------------- C2F options


def test_bit_cap_uses_the_coarser_codebooks_and_labels():
    x = torch.randn(2, 3, T, S, S)
    full, capped = _c2f()(x), _c2f(bits=2)(x)
    assert full.levels == (1, 2, 3, 4, 5) and capped.levels == (1, 2, 2, 2, 2)
    assert [lg.shape[-1] for lg in capped.logits] == [2, 4, 4, 4, 4]  # 2-bit codebooks from stage 2 on
    # the output takes values between the 2-bit codes only
    assert capped.recon[-1].min() >= -1 - 1e-6 and capped.recon[-1].max() <= 1 + 1e-6
    batch = _targets()
    loss, _ = c2f_loss(capped, batch, 30.0)
    # the loss is that of the capped levels' targets: change a 5-bit target, nothing moves ...
    moved = {**batch, "k": batch["k"].clone()}
    moved["k"][:, 4] = (moved["k"][:, 4] + 1) % 32
    assert float(c2f_loss(capped, moved, 30.0)[0].detach()) == pytest.approx(float(loss.detach()))
    # ... change a 2-bit target and it does
    moved["k"][:, 1] = (moved["k"][:, 1] + 1) % 4
    assert float(c2f_loss(capped, moved, 30.0)[0].detach()) != pytest.approx(float(loss.detach()))


def test_final_head_only_supervision_returns_one_level_and_same_prediction():
    x = torch.randn(2, 3, T, S, S)
    full, final = _c2f()(x), _c2f(hierarchical=False)(x)
    assert final.levels == (5,) and len(final.logits) == len(final.recon) == 1
    torch.testing.assert_close(final.rppg, full.rppg)  # same weights, same forward: only the loss differs
    loss_final, _ = c2f_loss(final, _targets(), 30.0)
    loss_full, _ = c2f_loss(full, _targets(), 30.0)
    assert float(loss_final.detach()) < float(loss_full.detach())  # one level's terms instead of five


def test_unknown_or_out_of_range_options_are_rejected():
    with pytest.raises(Exception, match="bits"):
        get_model("lqrppg")(T, S, S, bits=6)
    with pytest.raises(Exception, match="extra|depth"):
        get_model("lqrppg")(T, S, S, depth=3)


def test_continuous_backbone_needs_no_codebooks_and_trains_on_bandpassed_labels(tmp_path):
    cls = get_model("c2f-continuous")
    assert cls.label_type == "continuous" and cls.label_norm == "bandpassed" and loss_name(cls) == "c2f_continuous"
    torch.manual_seed(0)
    model = cls(T, S, S)
    out = model(torch.randn(2, 3, T, S, S))
    assert out.rppg.shape == (2, T) and len(out.recon) == 5 and out.logits[0] is None
    # the objective sums the hybrid loss of every supervised output against the label
    label = torch.sin(torch.linspace(0, 12, T)).repeat(2, 1)
    loss, parts = get_objective("c2f_continuous")(out, {"label": label}, 30.0)
    assert torch.isfinite(loss) and parts["rec"] > 0
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # its label is y_bpf of method.md §1: per chunk band-passed and z-scored
    store = write_tiny_store(tmp_path / "store", {"s1": (96, 72.0)}, size=S, chunk_length=T)
    ds = ChunkDataset(store, ["s1"], "standardized", label_norm="bandpassed")
    std = ChunkDataset(store, ["s1"], "standardized")
    for i in range(len(ds)):
        expected = bandpass_chunks(std[i]["label"].numpy()[None].astype(np.float64), store.fps)[0]
        np.testing.assert_allclose(ds[i]["label"].numpy(), expected, atol=1e-5)
        assert abs(float(ds[i]["label"].mean())) < 1e-4


# ----------------------------------------------------------------------------- fixed codebooks


def test_uniform_and_lloyd_max_codebooks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20000)
    uni = uniform_codebook(x, 4)
    assert np.allclose(np.diff(uni), np.diff(uni)[0])  # equal-width cells
    lm = lloyd_max_codebook(x, 4)
    # the Lloyd-Max quantizer of a unit Gaussian (Max 1960): ±0.4528, ±1.510
    np.testing.assert_allclose(lm, [-1.510, -0.4528, 0.4528, 1.510], atol=0.03)
    # it is the MSE-optimal one: lower distortion than the uniform codebook of the same size
    def mse(c):
        return float(np.mean((x - c[np.abs(x[:, None] - c).argmin(1)]) ** 2))
    assert mse(lm) < mse(uni)
    assert np.array_equal(lm, lloyd_max_codebook(x, 4))  # deterministic


@pytest.mark.parametrize("kind", ["uniform", "kmeans"])
def test_fixed_codebook_quantizers_quantize_y_bpf_directly_and_round_trip(kind, tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(T) / 30.0
    y = np.stack([np.sin(2 * np.pi * rng.uniform(1, 2) * t + rng.uniform(0, 6)) for _ in range(24)])
    y = ((y - y.mean(1, keepdims=True)) / y.std(1, keepdims=True)).astype(np.float32)
    settings = LQSettings(bits=[1, 3], epochs=1, min_epoch=1, codebook=kind)
    result = fit_quantizers(y[:16], y[16:], 30.0, settings, ChainSettings(hr_method="welch"), seed=0)
    assert [f.bits for f in result.fits] == [1, 3] and all(f.selected_epoch == 0 for f in result.fits)
    save_quantizers(result, tmp_path / "q.pt")
    quantizers = load_quantizers(tmp_path / "q.pt")
    q, k = apply_quantizers(quantizers, y)
    for n, fit in enumerate(result.fits):
        book = fit.codebook.numpy()
        # the encoder is the identity: every value goes to its nearest code
        nearest = np.abs(y[..., None] - book).argmin(-1)
        np.testing.assert_array_equal(k[n], nearest)
        np.testing.assert_allclose(q[n], book[nearest], atol=1e-6)


# ----------------------------------------------------------------------------- config


def _cfg(**models):
    raw = tiny_config()
    raw["models"] = models
    return raw


def test_model_entries_name_a_registry_model_with_options():
    cfg = validate_config(_cfg(lqrppg={}, **{"lq-3bit": {"model": "lqrppg", "options": {"bits": 3}, "main": False,
                                                         "codebook": "kmeans", "epochs": 2}}))
    assert cfg.registry_model("lq-3bit") == "lqrppg" and cfg.codebook_kind("lq-3bit") == "kmeans"
    assert cfg.codebook_kind("lqrppg") == "learned" and cfg.main_models() == ["lqrppg"]
    assert cfg.train_settings("lq-3bit").epochs == 2  # entry-only fields never reach the training settings


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"model": "nosuchnet"}, r"models\.x\.model: unknown model 'nosuchnet'"),
        ({"model": "lqrppg", "options": {"bitz": 3}}, r"unknown config key 'models\.x\.options\.bitz'"),
        ({"model": "lqrppg", "options": {"bits": 9}}, r"models\.x\.options\.bits: Input should be less than or equal to 5"),
        ({"model": "physnet", "options": {"bits": 3}}, r"models\.x\.options: model 'physnet' takes no options"),
        ({"model": "physnet", "codebook": "uniform"}, r"models\.x\.codebook: model 'physnet' trains on the continuous"),
        ({"model": "lqrppg", "input_size": 128}, r"models\.x\.input_size: the model takes 128x128 faces but the store"),
    ],
)
def test_bad_model_entries_fail_at_validation_naming_the_key(entry, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(_cfg(x=entry))


def test_ablation_groups_must_name_configured_entries_and_datasets():
    raw = _cfg(lqrppg={})
    raw["ablations"] = [{"name": "a", "models": ["lqrppg", "ghost"], "datasets": ["synth-calm"]}]
    with pytest.raises(ConfigError, match=r"ablations\.a\.models names entries not under 'models': \['ghost'\]"):
        validate_config(raw)
    raw["ablations"] = [{"name": "a", "models": ["lqrppg"], "datasets": ["nowhere"]}]
    with pytest.raises(ConfigError, match=r"ablations\.a\.datasets names unknown datasets \['nowhere'\]"):
        validate_config(raw)


def test_an_ablation_curve_must_place_each_of_its_groups_keys():
    raw = _cfg(lqrppg={}, **{"lq-2": {"model": "lqrppg", "options": {"bits": 2}, "main": False}})
    group = {"name": "bits", "models": ["lq-2", "lqrppg"], "datasets": ["synth-calm"]}
    raw["ablations"] = [{**group, "curve": {"of": "model", "label": "bits", "values": {"lq-2": 2, "lqrppg": 5}}}]
    assert validate_config(raw).ablations[0].curve.values == {"lq-2": 2.0, "lqrppg": 5.0}
    raw["ablations"] = [{**group, "curve": {"of": "model", "label": "bits", "values": {"lq-2": 2}}}]
    with pytest.raises(ConfigError, match=r"ablations\.bits\.curve\.values must give a position to each"):
        validate_config(raw)
    raw["ablations"] = [{**group, "curve": {"of": "dataset", "label": "x", "values": {"synth-calm": 1}}}]
    with pytest.raises(ConfigError, match=r"ablations\.bits\.curve needs at least 2 datasets"):
        validate_config(raw)


def test_yaml_merge_keys_work_and_written_duplicates_still_fail(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("a: &x {n: 1, m: 2}\nb: {<<: *x, m: 3}\n")
    from lqrppg.config import _UniqueKeyLoader

    assert yaml.load(good.read_text(), Loader=_UniqueKeyLoader)["b"] == {"n": 1, "m": 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config([bad])


def test_the_ablation_overlay_puts_every_ablation_in_the_dag(workspace, tool_env):
    cfg = load_config([ROOT / "config/config.yaml", ROOT / "config/ablations.yaml"])
    assert cfg.main_models() == ["lqrppg", "physnet"]  # ablation entries stay out of the main tables
    assert [cfg.synthetic[f"synth-noise-{n}"].label.level for n in (0, 2, 4)] == [0.0, 2.0, 4.0]
    assert cfg.synthetic["synth-noise-2"].n_subjects == cfg.synthetic["synth-calm"].n_subjects
    # the label-noise curve puts each dataset at its label's distortion level
    noise = next(g for g in cfg.ablations if g.name == "label-noise")
    assert noise.curve.values == {d: cfg.synthetic[d].label.level for d in noise.datasets}
    (workspace / "config/ablations.yaml").write_text((ROOT / "config/ablations.yaml").read_text())
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", "config/ablations.yaml",
         "--resources", "gpu=1", "--quiet", "rules"],
        cwd=workspace, env=tool_env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    plan = out.stdout + out.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in plan.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    folds = load_config([workspace / "config/config.yaml", workspace / "config/ablations.yaml"]).protocols.intra.folds
    # 2 main models + 8 ablation-only entries on synth-calm, 2 entries on each of 3 noise datasets, 2 cross
    assert counts["train"] == folds * (2 + 8 + 3 * 2) + 2
    assert counts["table_ablation"] == 1
    assert counts["figure_ablation"] == 1  # the label-noise and levels groups are also drawn as curves
    # the learned, uniform and k-means codebooks are fitted separately
    assert counts["fit_quantizers"] >= 3 * folds
