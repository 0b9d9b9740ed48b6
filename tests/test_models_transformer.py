"""PhysFormer and RhythmMamba: contracts, sizes, published parameter counts, losses, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lqrppg.losses import (
    PHYSFORMER_BPM,
    label_distribution,
    label_hr_bpm,
    physformer_loss,
    physformer_weights,
    rhythm_loss,
)
from lqrppg.models import available_models, count_parameters, get_model
from lqrppg.models.mamba import BiMamba
from lqrppg.models.physformer import PhysFormer
from lqrppg.models.rhythmmamba import FrequencyFFN, Mamba, MultiTemporalMambaBlock, RhythmMamba
from lqrppg.objectives import get_objective, loss_name

FS = 30.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sine(bpm: float, n: int = 160, phase: float = 0.0, fs: float = FS) -> np.ndarray:
    return np.sin(2 * np.pi * bpm / 60.0 * np.arange(n) / fs + phase)


def _rows(*signals: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.stack(signals), dtype=torch.float32)


# -- contracts and shapes ---------------------------------------------------------------


def test_registered_with_their_contracts() -> None:
    assert {"physformer", "rhythmmamba"} <= set(available_models())
    assert get_model("physformer") is PhysFormer and get_model("rhythmmamba") is RhythmMamba
    assert (PhysFormer.input_norm, PhysFormer.label_norm) == ("diff_normalized", "diff_normalized")
    assert (RhythmMamba.input_norm, RhythmMamba.label_norm) == ("standardized", "standardized")
    for cls, loss in ((PhysFormer, "physformer"), (RhythmMamba, "rhythm")):
        assert cls.label_type == "continuous"
        assert cls.published_input == (160, 128, 128)
        assert loss_name(cls) == loss
        assert callable(get_objective(loss))
    # Only the mixer that stands for mamba-ssm's fused kernel is marked as one.
    assert Mamba.fused_kernel is True
    assert not hasattr(RhythmMamba, "fused_kernel") and not hasattr(PhysFormer, "fused_kernel")


@pytest.mark.parametrize(
    ("cls", "size", "match"),
    [
        (PhysFormer, (30, 128, 128), "frame count divisible by 4"),
        (PhysFormer, (0, 128, 128), "frame count divisible by 4"),
        (PhysFormer, (32, 48, 64), "height and width divisible by 32"),
        (PhysFormer, (32, 16, 16), "height and width divisible by 32"),
        (RhythmMamba, (15, 32, 32), "even frame count of at least 8"),
        (RhythmMamba, (6, 32, 32), "even frame count of at least 8"),
        (RhythmMamba, (16, 20, 32), "height and width divisible by 8"),
    ],
)
def test_check_input_names_the_rule(cls: type, size: tuple[int, int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls.check_input(*size)
    with pytest.raises(ValueError, match=match):
        cls(*size)


def test_physformer_output_shape_and_input_checks() -> None:
    torch.manual_seed(0)
    model = PhysFormer(8, 32, 32).eval()  # the published depth
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 32, 32)).shape == (2, 8)
        # the token grid follows from H, W (the toolbox hard-codes 4x4): 32x64 -> 1x2 patches
        assert model(torch.randn(1, 3, 4, 32, 64)).shape == (1, 4)
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(torch.randn(2, 8, 3, 32, 32))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 3, 10, 32, 32))


def test_rhythmmamba_output_shape_and_input_checks() -> None:
    torch.manual_seed(0)
    model = RhythmMamba(8, 8, 8).eval()  # the published depth
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 8, 8)).shape == (2, 8)
        assert model(torch.randn(1, 3, 10, 8, 16)).shape == (1, 10)  # T/2 = 5: a remainder token
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(torch.randn(1, 8, 3, 8, 8))
    with pytest.raises(ValueError, match="even frame count"):
        model(torch.randn(1, 3, 9, 8, 8))


# -- published sizes ----------------------------------------------------------------------
# method.md §7: PhysFormer 7.38 M; RhythmMamba (24 blocks, dim 96) 4.92 M, 5.67 M with a
# bidirectional Mamba. The exact counts follow from the upstream layer sizes; the tolerance
# against the published, rounded figure is half a unit of its last digit (0.005 M).


def test_physformer_parameter_count_matches_published() -> None:
    n = count_parameters(PhysFormer(160, 128, 128))
    assert n == 7_380_865
    assert abs(n - 7.38e6) <= 0.005e6
    assert count_parameters(PhysFormer(32, 32, 32)) == n  # independent of the input size


@pytest.mark.parametrize(
    ("bidirectional", "exact", "published"), [(False, 4_922_125, 4.92e6), (True, 5_673_229, 5.67e6)]
)
def test_rhythmmamba_parameter_count_matches_published(bidirectional: bool, exact: int, published: float) -> None:
    n = count_parameters(RhythmMamba(160, 128, 128, bidirectional=bidirectional))
    assert n == exact
    assert abs(n - published) <= 0.005e6


def test_thop_style_parameter_counts_match_the_cost_table() -> None:
    # method.md §7's thop column: 1.065 M for RhythmMamba (the fused Mamba mixers and the
    # FFN's bare r, i, rb, ib are invisible to thop), 7.38 M for PhysFormer (all visible).
    # Parameters only: they do not depend on the input, so a tiny forward suffices.
    from lqrppg.bench import thop_style_count

    rhythm = thop_style_count(RhythmMamba(8, 8, 8), torch.randn(1, 3, 8, 8, 8)).params
    assert rhythm == 4_922_125 - 24 * (86_592 + 2 * 192 * 192 + 2 * 192)  # minus Mamba, r, i, rb, ib
    assert abs(rhythm - 1.065e6) <= 0.0005e6
    assert thop_style_count(PhysFormer(4, 32, 32), torch.randn(1, 3, 4, 32, 32)).params == 7_380_865


# -- pieces of RhythmMamba ------------------------------------------------------------------


def test_unidirectional_mamba_is_bimamba_forward_branch_and_causal() -> None:
    torch.manual_seed(0)
    uni, bi = Mamba(8, d_state=4), BiMamba(8, d_state=4)
    missing, unexpected = bi.load_state_dict(uni.state_dict(), strict=False)
    assert not unexpected and all(k.endswith("_b") or "_b." in k or k == "A_b_log" for k in missing)
    x = torch.randn(2, 12, 8)
    with torch.no_grad():
        expected = bi.out_proj(bi.branch(bi.in_proj(x).transpose(1, 2), backward=False).transpose(1, 2))
        torch.testing.assert_close(uni(x), expected)
        later = x.clone()
        later[:, 7:] += 1.0
        torch.testing.assert_close(uni(later)[:, :7], uni(x)[:, :7])  # steps <= 6 ignore the future
        # the scan goes through the swappable ``scan_fn``, as in BiMamba (the cost benchmark counts it there)
        calls = []
        uni.scan_fn = lambda *args, _scan=uni.scan_fn, **kwargs: calls.append(1) or _scan(*args, **kwargs)
        uni(x)
        assert calls == [1]


def test_frequency_ffn_uses_only_the_diagonals_as_upstream_einsum() -> None:
    torch.manual_seed(0)
    ffn = FrequencyFFN(4, 2).eval()
    x = torch.randn(3, 10, 4)
    with torch.no_grad():
        h = ffn.fc1(x.transpose(1, 2)).transpose(1, 2)
        spec = torch.fft.fft(h, dim=1, norm="ortho")
        # upstream's formula, einsum 'bnc,cc->bnc' included
        def mix(part: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bnc,cc->bnc", part, weight)

        real = torch.relu(mix(spec.real, ffn.r) - mix(spec.imag, ffn.i) + ffn.rb)
        imag = torch.relu(mix(spec.imag, ffn.r) + mix(spec.real, ffn.i) + ffn.ib)
        back = torch.fft.ifft(torch.complex(real, imag), dim=1, norm="ortho").real
        expected = ffn.fc2(back.transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(ffn(x), expected)


def test_multi_temporal_block_matches_upstream_in_place_averaging() -> None:
    torch.manual_seed(0)
    block = MultiTemporalMambaBlock(96, 2).eval()
    x = torch.randn(2, 10, 96)  # 4 segments of 2 and a remainder of 2

    def upstream(x: torch.Tensor) -> torch.Tensor:  # Block_mamba's loop, as written upstream
        b, d, _ = x.shape
        segment, tt = 4, d // 4
        x_r = x.repeat(segment, 1, 1)
        x_o = x_r.clone()
        for i in range(1, segment):
            x_o[i * b : (i + 1) * b, : d - i * tt] = x_r[i * b : (i + 1) * b, i * tt :]
        x_o = block.attn(x_o)
        for i in range(1, segment):
            for j in range(i):
                x_o[:b, tt * i : tt * (i + 1)] = (
                    x_o[:b, tt * i : tt * (i + 1)] + x_o[b * (j + 1) : b * (j + 2), tt * (i - j - 1) : tt * (i - j)]
                )
            x_o[:b, tt * i : tt * (i + 1)] = x_o[:b, tt * i : tt * (i + 1)] / (i + 1)
        return x_o[:b]

    with torch.no_grad():
        torch.testing.assert_close(block.multi_temporal(x), upstream(x))


# -- losses -----------------------------------------------------------------------------------


def test_rhythm_loss_is_02_neg_pearson_plus_freq_ce_on_a_hand_example() -> None:
    n = 160
    label = _sine(72.5, n)  # Welch HR ~72.5 bpm -> class int(72.5) - 45 = 27
    t = np.arange(n) / FS
    pred = 0.7 * np.sin(2 * np.pi * 1.1 * t + 0.3) + 0.2 * np.cos(2 * np.pi * 2.0 * t) + 5.0
    assert int(label_hr_bpm(_rows(label), FS, (45, 150), filtered=True)[0]) == 72

    z = (pred - pred.mean()) / pred.std(ddof=1)  # the trainer's normalisation
    r = np.corrcoef(z, label)[0, 1]
    window = np.hanning(n)
    k = (np.arange(45, 150) / 60.0) / (FS / n)
    angle = 2 * np.pi * k[:, None] * np.arange(n)[None, :] / n
    power = (np.sin(angle) @ (z * window)) ** 2 + (np.cos(angle) @ (z * window)) ** 2
    logits = power / power.sum()
    ce = -logits[27] + np.log(np.exp(logits).sum())
    expected = 0.2 * (1 - r) + ce

    loss, parts = rhythm_loss(_rows(pred), _rows(label), FS)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert parts["neg_pearson"] == pytest.approx(1 - r, rel=1e-5)
    assert parts["freq_ce"] == pytest.approx(ce, rel=1e-5)


def test_physformer_loss_prefers_the_matching_prediction() -> None:
    label = _rows(_sine(90), _sine(66))
    matched = 3.0 * label + 1.0
    half_period = _rows(_sine(90, phase=np.pi), _sine(66, phase=np.pi))
    other_rate = _rows(_sine(130), _sine(110))
    loss, parts = physformer_loss(matched, label, FS)
    loss_shift, parts_shift = physformer_loss(half_period, label, FS)
    loss_rate, parts_rate = physformer_loss(other_rate, label, FS)
    assert float(loss) < float(loss_shift) and float(loss) < float(loss_rate)
    assert parts["neg_pearson"] < 1e-4 < parts_shift["neg_pearson"]
    assert parts["freq_ce"] < parts_rate["freq_ce"] and parts["kl"] < parts_rate["kl"]
    # z-normalised first, like the trainer: invariant to the output's scale and offset
    torch.testing.assert_close(physformer_loss(label, label, FS)[0], loss)


def test_physformer_curriculum_follows_the_toolbox_schedule() -> None:
    # Toolbox: a = 1, b = 1 * 1.0 ** (epoch / 10) while epoch <= 10, then a = 0.05, b = 5;
    # its configs train 10 epochs, so within a run the weights stay (1, 1).
    for progress in (0.0, 0.35, 0.95):
        assert physformer_weights(progress) == (1.0, 1.0)
    assert physformer_weights(10 / 30, epochs=30) == (1.0, 1.0)  # epoch 10: not yet
    assert physformer_weights(11 / 30, epochs=30) == (0.05, 5.0)  # epoch 11 onwards
    assert physformer_weights(0.99, epochs=30) == (0.05, 5.0)

    label = _rows(_sine(80), _sine(100))
    pred = label + 0.5 * _rows(_sine(120), _sine(50))
    early, parts = physformer_loss(pred, label, FS, progress=0.2, epochs=30)
    late, parts_late = physformer_loss(pred, label, FS, progress=0.8, epochs=30)
    assert parts == parts_late
    assert float(early) == pytest.approx(parts["neg_pearson"] + parts["freq_ce"] + parts["kl"], rel=1e-6)
    assert float(late) == pytest.approx(0.05 * parts["neg_pearson"] + 5.0 * (parts["freq_ce"] + parts["kl"]), rel=1e-6)


def test_physformer_label_distribution() -> None:
    dist = label_distribution(torch.tensor([90.0, 40.0]), PHYSFORMER_BPM, std=1.0)
    assert dist.shape == (2, 140)
    assert int(dist[0].argmax()) == 50 and float(dist[0].sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(dist[0, 50]) == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-6)
    assert float(dist.min()) == pytest.approx(1e-15)  # floored, as in the reference


# -- training ---------------------------------------------------------------------------------


def _pulse_batch(t: int, h: int) -> dict[str, torch.Tensor]:
    """Two clips whose mean colour follows the label's pulse (90 and 66 bpm), plus noise."""
    g = torch.Generator().manual_seed(3)
    label = _rows(_sine(90, t), _sine(66, t))
    frames = 0.5 * torch.randn(2, 3, t, h, h, generator=g) + label[:, None, :, None, None]
    return {"frames": frames, "label": label}


@pytest.fixture(
    scope="module",
    params=[
        (lambda: PhysFormer(16, 32, 32, dropout=0.0), 32),
        (lambda: RhythmMamba(16, 16, 16, drop_path=0.0), 16),
    ],
    ids=["physformer", "rhythmmamba"],
)
def trained(request) -> tuple[torch.nn.Module, list[float], dict[str, torch.Tensor | None]]:
    """A few Adam steps of the published-depth model (without dropout / drop path, so the
    steps are deterministic) on one fixed batch with the model's own objective: the losses,
    and the gradients of the first step."""
    build, h = request.param
    torch.manual_seed(0)
    model = build().train()
    objective = get_objective(model.loss)
    batch = _pulse_batch(16, h)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses, first_grads = [], {}
    for step in range(5):
        optimizer.zero_grad()
        value, _ = objective(model(batch["frames"]), batch, FS)
        value.backward()
        if step == 0:
            first_grads = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
        optimizer.step()
        losses.append(float(value.detach()))
    return model, losses, first_grads


def test_a_few_steps_reduce_the_loss(trained) -> None:
    _, losses, _ = trained
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


def test_gradients_reach_every_parameter(trained) -> None:
    model, _, grads = trained
    # Both losses z-normalise the output over time, so the head's bias (a constant offset)
    # cannot change them: its gradient is zero by construction, upstream too.
    head_bias = grads.pop("ConvBlockLast.bias")
    assert head_bias is not None and float(head_bias.abs().max()) < 1e-5
    dead = [name for name, g in grads.items() if g is None or not bool(g.abs().sum() > 0)]
    assert dead == []
    if isinstance(model, RhythmMamba):  # upstream's einsum reads only the diagonals of r and i
        for n in range(len(model.blocks)):
            for g in (grads[f"blocks.{n}.mlp.r"], grads[f"blocks.{n}.mlp.i"]):
                assert torch.count_nonzero(g - torch.diag_embed(g.diagonal())) == 0
