"""The C2F model, PhysNet and the model registry, on tiny inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from lqrppg.errors import ConfigError
from lqrppg.models import available_models, count_parameters, get_model, register_model
from lqrppg.models.lqc2f import LQC2F, C2FOutput, FusionStem, soft_quantize
from lqrppg.models.physnet import PhysNet

T, H, W = 32, 32, 32


def _codebooks(shift: float = 0.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2**n, generator=g) + shift for n in range(1, 6)]


@pytest.fixture(scope="module")
def c2f() -> LQC2F:
    torch.manual_seed(0)
    model = LQC2F(frames=T, height=H, width=W)
    model.set_codebooks(_codebooks())
    return model


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.randn(2, 3, T, H, W, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def train_step(c2f: LQC2F, clip: torch.Tensor) -> tuple[C2FOutput, dict[str, torch.Tensor | None]]:
    """One training-mode forward and backward (shared: the CPU forward is the slow part)."""
    c2f.train()
    c2f.zero_grad()
    out = c2f(clip)
    loss = sum(x.square().mean() for x in out.recon) + out.logits[0].mean()
    loss.backward()
    grads = {name: p.grad for name, p in c2f.named_parameters()}
    c2f.eval()
    return out, grads


# -- LQC2F -------------------------------------------------------------------------


def test_c2f_parameter_count_matches_released_checkpoint() -> None:
    model = LQC2F(frames=160, height=128, width=128)  # constructed only, no forward
    assert count_parameters(model) == pytest.approx(405_453, rel=0.01)

    def n(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    # method.md §7 breakdown
    assert n(model.stem3) == pytest.approx(77_000, rel=0.01)
    assert all(n(block) == pytest.approx(65_400, rel=0.01) for block in model.blocks)
    assert n(model.estimator) == pytest.approx(37_200, rel=0.01)
    assert n(model.stem) == pytest.approx(18_600, rel=0.01)
    assert model.pos_embed.numel() == 160 * 64


def test_c2f_forward_shapes_and_normalisation(c2f: LQC2F, train_step: tuple) -> None:
    out = train_step[0]
    assert out.rppg.shape == (2, T)
    assert [tuple(x.shape) for x in out.logits] == [(2, T, k) for k in (2, 4, 8, 16, 32)]
    assert [tuple(x.shape) for x in out.recon] == [(2, T)] * 5
    assert all(torch.isfinite(x).all() for x in (out.rppg, *out.logits, *out.recon))
    # per-chunk z-normalisation of the 5-bit reconstruction
    torch.testing.assert_close(out.rppg.mean(-1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.rppg.std(-1), torch.ones(2), atol=1e-3, rtol=0)
    r5 = out.recon[4]
    torch.testing.assert_close(out.rppg, (r5 - r5.mean(-1, keepdim=True)) / (r5.std(-1, keepdim=True) + 1e-6))
    # logits are minus the distance to the codebook, so recon lies inside the codebook's range
    for level, (recon, codebook) in enumerate(zip(out.recon, c2f.codebooks(), strict=True)):
        assert (out.logits[level] <= 0).all()
        assert recon.min() >= codebook.min() - 1e-6 and recon.max() <= codebook.max() + 1e-6


def test_soft_quantize_definition() -> None:
    score = torch.tensor([[0.0, 2.0]])
    codebook = torch.tensor([-1.0, 1.0])
    logits, recon = soft_quantize(score, codebook)
    torch.testing.assert_close(logits, torch.tensor([[[-1.0, -1.0], [-3.0, -1.0]]]))
    p = torch.softmax(torch.tensor([-3.0, -1.0]), 0)
    torch.testing.assert_close(recon, torch.tensor([[0.0, (p * codebook).sum().item()]]))


def test_c2f_every_parameter_gets_a_gradient(train_step: tuple) -> None:
    grads = train_step[1]
    missing = [name for name, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert missing == []


def test_codebooks_are_persistent_buffers_not_parameters(c2f: LQC2F, clip: torch.Tensor) -> None:
    state = c2f.state_dict()
    for n, size in enumerate((2, 4, 8, 16, 32), start=1):
        assert state[f"codebook_{n}"].shape == (size,)
    assert not any("codebook" in name for name, _ in c2f.named_parameters())
    # a fresh model loaded from the state dict gives the same output
    fresh = LQC2F(frames=T, height=H, width=W)
    fresh.load_state_dict(state)
    c2f.eval()
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(clip[:1]).rppg, c2f(clip[:1]).rppg)


def test_changing_codebooks_changes_reconstruction(clip: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = LQC2F(frames=T, height=H, width=W).eval()
    model.set_codebooks(_codebooks())
    with torch.no_grad():
        before = model(clip[:1]).recon
        model.set_codebooks(_codebooks(shift=0.5))
        after = model(clip[:1]).recon
    assert all(not torch.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_unset_or_invalid_codebooks_fail_loudly(clip: torch.Tensor) -> None:
    model = LQC2F(frames=T, height=H, width=W)
    with pytest.raises(RuntimeError, match="set_codebooks"):
        model(clip)
    with pytest.raises(ValueError, match="5 codebooks"):
        model.set_codebooks(_codebooks()[:4])
    with pytest.raises(ValueError, match="codebook 3"):
        model.set_codebooks([*_codebooks()[:2], torch.zeros(7), *_codebooks()[3:]])
    model.set_codebooks([c.reshape(-1, 1) for c in _codebooks()])  # (K, 1), as the LQ embedding stores them
    torch.testing.assert_close(model.codebook_2, _codebooks()[1])
    model.load_state_dict(LQC2F(frames=T, height=H, width=W).state_dict())  # NaN codebooks again
    with pytest.raises(RuntimeError, match="codebook_1"):
        model(clip)


def test_c2f_init_follows_authors() -> None:
    torch.manual_seed(0)
    model = LQC2F(frames=T, height=H, width=W)
    assert torch.equal(model.pos_embed, torch.zeros_like(model.pos_embed))
    for block in model.blocks:  # the Linear re-init also zeroes the Δ-projection bias
        assert torch.equal(block.mamba.dt_proj.bias, torch.zeros(128))
        assert block.mamba.in_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
        torch.testing.assert_close(block.mamba.A_log, torch.log(torch.arange(1.0, 49.0)).repeat(128, 1))
    conv = model.stem.stem12[0]  # LeCun normal: std sqrt(1 / fan_in)
    assert conv.weight.std().item() == pytest.approx((1 / (12 * 49)) ** 0.5, rel=0.1)
    assert torch.equal(conv.bias, torch.zeros(8))


def test_fusion_stem_differences_match_rhythmmamba() -> None:
    # RhythmMamba builds the four clamped frame differences with concatenations and convolves the
    # 12 stacked channels; the stem's DifferenceConv2d must give that convolution, by linearity.
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 16, 16)
    d = 5
    x1 = torch.cat([x[:, :1], x[:, :1], x[:, : d - 2]], 1)
    x2 = torch.cat([x[:, :1], x[:, : d - 1]], 1)
    x4 = torch.cat([x[:, 1:], x[:, d - 1 :]], 1)
    x5 = torch.cat([x[:, 2:], x[:, d - 1 :], x[:, d - 1 :]], 1)
    stacked = torch.cat([x2 - x1, x - x2, x4 - x, x5 - x4], 2).reshape(10, 12, 16, 16)
    stem = FusionStem().eval()
    conv = stem.stem12[0]
    nn.init.normal_(conv.bias)  # a zero bias would hide a bias added once per shift instead of once
    expected = nn.functional.conv2d(stacked, conv.weight, conv.bias, conv.stride, conv.padding)
    seen = {}

    def keep_output(_module: torch.nn.Module, _inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        seen["conv"] = output

    conv.register_forward_hook(keep_output)
    out = stem(x)
    assert out.shape == (10, 16, 2, 2)
    torch.testing.assert_close(seen["conv"], expected)


def test_fusion_stem_gradients_match_the_stacked_convolution() -> None:
    torch.manual_seed(1)
    stem = FusionStem()
    x = torch.randn(1, 6, 3, 16, 16, requires_grad=True)
    conv = stem.stem12[0]
    index = torch.arange(-2, 8).clamp(0, 5)
    padded = x[:, index]
    diff = padded[:, 1:] - padded[:, :-1]
    stacked = torch.cat([diff[:, j : j + 6] for j in range(4)], 2).reshape(6, 12, 16, 16)
    plain = nn.functional.conv2d(stacked, conv.weight, conv.bias, conv.stride, conv.padding)
    ours = conv(diff.permute(0, 1, 3, 4, 2).contiguous())
    grads_plain = torch.autograd.grad(plain.square().sum(), [x, conv.weight, conv.bias], retain_graph=True)
    grads_ours = torch.autograd.grad(ours.square().sum(), [x, conv.weight, conv.bias])
    for g_ours, g_plain in zip(grads_ours, grads_plain, strict=True):
        torch.testing.assert_close(g_ours, g_plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [(T, 30, 32), (T, 32, 36), (T, 4, 4)])
def test_c2f_rejects_sizes_not_divisible_by_8(size: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        LQC2F(*size)


def test_c2f_rejects_wrong_clip_length(c2f: LQC2F) -> None:
    with pytest.raises(ValueError, match="32 frames"):
        c2f(torch.randn(1, 3, 24, H, W))


# -- PhysNet -----------------------------------------------------------------------


def test_physnet_parameter_count() -> None:
    assert count_parameters(PhysNet(128, 72, 72)) == pytest.approx(770_000, rel=0.02)  # ~0.77 M
    assert count_parameters(PhysNet(32, 32, 32)) == count_parameters(PhysNet(128, 72, 72))


def test_physnet_forward_tiny() -> None:
    torch.manual_seed(0)
    model = PhysNet(frames=T, height=H, width=W)
    x = torch.randn(2, 3, T, H, W)
    y = model(x)
    assert y.shape == (2, T) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert model.ConvBlock1[0].weight.grad is not None


def test_physnet_rejects_frames_not_divisible_by_4() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        PhysNet(30, 32, 32)
    with pytest.raises(ValueError, match="divisible by 4"):
        PhysNet(32, 32, 32)(torch.randn(1, 3, 30, 32, 32))


# -- registry ----------------------------------------------------------------------


def test_registry_names_and_contracts() -> None:
    assert {"lqrppg", "physnet"} <= set(available_models())
    assert get_model("lqrppg") is LQC2F and get_model("physnet") is PhysNet
    assert (LQC2F.input_norm, LQC2F.label_type) == ("standardized", "quantized")
    assert (PhysNet.input_norm, PhysNet.label_type) == ("diff_normalized", "continuous")
    assert LQC2F.name == "lqrppg"


def test_unknown_model_is_a_config_error_listing_known_models() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nosuchnet'.*lqrppg.*physnet"):
        get_model("nosuchnet")


def test_registering_twice_or_without_a_contract_fails() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_model("physnet")(type("Other", (PhysNet,), {}))

    class NoContract(torch.nn.Module):
        input_norm = "raw"

    with pytest.raises(ValueError, match="input_norm"):
        register_model("no-contract")(NoContract)
    assert "no-contract" not in available_models()


def test_check_input_is_available_before_building() -> None:
    get_model("lqrppg").check_input(160, 128, 128)
    with pytest.raises(ValueError, match="divisible by 8"):
        get_model("lqrppg").check_input(160, 100, 128)
    with pytest.raises(ValueError, match="divisible by 4"):
        get_model("physnet").check_input(150, 72, 72)
