"""FreqCE, negative Pearson and the hybrid loss against direct numpy computations."""

import numpy as np
import pytest
import torch

from lqrppg.losses import freq_ce, hybrid_loss, neg_pearson, normalized_psd, psd_bins


def numpy_normalized_psd(x: np.ndarray, fs: float) -> np.ndarray:
    """method.md §2.4 literally: Hann window, DFT power at fractional bins of 45…149 bpm, sum to 1."""
    n = x.size
    k = (np.arange(45, 150) / 60.0) / (fs / n)
    angle = 2 * np.pi * k[:, None] * np.arange(n)[None, :] / n
    xw = x * np.hanning(n)
    power = (np.cos(angle) @ xw) ** 2 + (np.sin(angle) @ xw) ** 2
    return power / power.sum()


def numpy_freq_ce(pred: np.ndarray, target: np.ndarray, fs_per_row) -> float:
    losses = []
    for p, t, fs in zip(pred, target, fs_per_row, strict=True):
        logits = numpy_normalized_psd(p, fs)
        cls = np.argmax(numpy_normalized_psd(t, fs))
        log_z = np.log(np.sum(np.exp(logits)))
        losses.append(log_z - logits[cls])
    return float(np.mean(losses))


def pulse(bpm: float, t_len: int = 160, fs: float = 30.0, phase: float = 0.0) -> np.ndarray:
    t = np.arange(t_len) / fs
    return np.sin(2 * np.pi * bpm / 60.0 * t + phase)


def test_psd_bins_are_fractional_dft_bins_of_integer_rates():
    bins = psd_bins(160, 30.0)
    assert bins.shape == (105,)
    # 60 bpm = 1 Hz; the DFT resolution is 30/160 Hz, so bin 160/30.
    assert bins[60 - 45].item() == pytest.approx(160 / 30)
    per_sample = psd_bins(160, torch.tensor([30.0, 25.0]))
    assert per_sample.shape == (2, 105)
    assert per_sample[1, 0].item() == pytest.approx(0.75 / (25 / 160))


def test_freq_ce_equals_direct_numpy_formula_on_random_input():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(5, 160))
    target = rng.normal(size=(5, 160))
    got = freq_ce(torch.tensor(pred), torch.tensor(target), 30.0)
    assert got.item() == pytest.approx(numpy_freq_ce(pred, target, [30.0] * 5), rel=1e-10)
    # float32 (the training dtype) agrees to float32 precision
    got32 = freq_ce(torch.tensor(pred, dtype=torch.float32), torch.tensor(target, dtype=torch.float32), 30.0)
    assert got32.item() == pytest.approx(numpy_freq_ce(pred, target, [30.0] * 5), rel=1e-5)
    np.testing.assert_allclose(
        normalized_psd(torch.tensor(pred), 30.0).numpy()[2], numpy_normalized_psd(pred[2], 30.0), rtol=1e-10
    )


def test_freq_ce_accepts_one_sampling_rate_per_sample():
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(3, 128))
    target = rng.normal(size=(3, 128))
    fs = [30.0, 25.0, 20.0]
    got = freq_ce(torch.tensor(pred), torch.tensor(target), torch.tensor(fs, dtype=torch.float64))
    assert got.item() == pytest.approx(numpy_freq_ce(pred, target, fs), rel=1e-10)
    with pytest.raises(ValueError):
        freq_ce(torch.tensor(pred), torch.tensor(target), torch.tensor([30.0, 25.0]))


def test_freq_ce_is_lower_when_pred_has_the_target_frequency():
    target = torch.tensor(pulse(72.0) + 0.3 * pulse(144.0), dtype=torch.float32)[None]
    same = torch.tensor(pulse(72.0, phase=1.0), dtype=torch.float32)[None]
    other = torch.tensor(pulse(120.0), dtype=torch.float32)[None]
    assert freq_ce(same, target, 30.0) < freq_ce(other, target, 30.0) - 0.05


def test_freq_ce_gradient_is_finite_for_a_signal_without_power():
    pred = torch.zeros(2, 160, requires_grad=True)
    target = torch.tensor(np.stack([pulse(60.0), pulse(90.0)]), dtype=torch.float32)
    loss = freq_ce(pred, target, 30.0)
    loss.backward()
    assert loss.item() == pytest.approx(np.log(105), rel=1e-6)  # flat logits
    assert torch.isfinite(pred.grad).all()


def test_neg_pearson_is_0_for_identical_and_2_for_negated_and_scale_invariant():
    x = torch.tensor(np.stack([pulse(70.0), pulse(100.0) + 0.1]), dtype=torch.float64)
    assert neg_pearson(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert neg_pearson(-x, x).item() == pytest.approx(2.0, abs=1e-7)
    assert neg_pearson(3.0 * x + 5.0, x).item() == pytest.approx(0.0, abs=1e-7)
    # per sample, then the batch mean: one identical row and one negated row average to 1
    mixed = torch.stack([x[0], -x[1]])
    assert neg_pearson(mixed, x).item() == pytest.approx(1.0, abs=1e-7)


def test_neg_pearson_of_a_constant_prediction_has_finite_gradient():
    pred = torch.ones(1, 64, requires_grad=True)
    target = torch.randn(1, 64)
    loss = neg_pearson(pred, target)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert torch.isfinite(pred.grad).all()


def test_hybrid_loss_is_the_weighted_sum():
    rng = np.random.default_rng(2)
    pred = torch.tensor(rng.normal(size=(4, 160)), requires_grad=True)
    target = torch.tensor(rng.normal(size=(4, 160)))
    expected = 0.2 * neg_pearson(pred, target) + freq_ce(pred, target, 30.0)
    got = hybrid_loss(pred, target, 30.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    got.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
