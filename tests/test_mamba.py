"""The pure-PyTorch bidirectional Mamba: chunked scan vs the per-step loop, layout, init."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from lqrppg.models import mamba
from lqrppg.models.mamba import BiMamba, BiMambaBlock, selective_scan, selective_scan_reference


def _scan_inputs(b: int, d: int, n: int, length: int, seed: int = 0, dt_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Random selective-scan arguments in mamba-ssm's layout, A spanning -1..-48 like d_state = 48."""
    g = torch.Generator().manual_seed(seed)
    return {
        "u": torch.randn(b, d, length, generator=g),
        "delta": dt_scale * torch.randn(b, d, length, generator=g),
        "A": -torch.linspace(1, 48, n).repeat(d, 1) * (0.5 + torch.rand(d, n, generator=g)),
        "B": torch.randn(b, n, length, generator=g),
        "C": torch.randn(b, n, length, generator=g),
        "D": torch.randn(d, generator=g),
        "z": torch.randn(b, d, length, generator=g),
        "delta_bias": torch.randn(d, generator=g) - 2.0,
    }


@pytest.mark.parametrize("length", [1, 7, 16, 31, 32, 33, 100])
@pytest.mark.parametrize("chunk", [1, 8, 32])
def test_chunked_scan_matches_per_step_loop(length: int, chunk: int) -> None:
    args = _scan_inputs(2, 6, 5, length, seed=length)
    y = selective_scan(**args, delta_softplus=True, chunk=chunk)
    y_ref = selective_scan_reference(**args, delta_softplus=True)
    assert y.shape == y_ref.shape == (2, 6, length)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5 * y_ref.abs().max().item())


def test_scan_without_optional_terms_matches_loop() -> None:
    args = _scan_inputs(1, 4, 3, 20)
    for key in ("D", "z", "delta_bias"):
        args.pop(key)
    args["delta"] = args["delta"].abs()  # delta used as given (no softplus) must be >= 0
    torch.testing.assert_close(selective_scan(**args, chunk=4), selective_scan_reference(**args))


def test_scan_is_finite_when_the_closed_form_would_overflow() -> None:
    # Δ ≈ 5 with A down to -48 decays ~240 nats per step: exp(-cumsum) overflows float32
    # inside any chunk, the doubling scan must not.
    args = _scan_inputs(1, 4, 8, 70, dt_scale=0.0)
    args["delta_bias"] = torch.full((4,), 5.0)
    y = selective_scan(**args, delta_softplus=True, chunk=32)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, selective_scan_reference(**args, delta_softplus=True))


def test_scan_gradients_match_per_step_loop() -> None:
    args = _scan_inputs(2, 4, 3, 37, seed=3)
    weight = torch.randn(2, 4, 37)
    grads = []
    for fn in (lambda **kw: selective_scan(**kw, chunk=8), selective_scan_reference):
        leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
        (fn(**leaves, delta_softplus=True) * weight).sum().backward()
        grads.append({k: v.grad for k, v in leaves.items()})
    for key in args:
        torch.testing.assert_close(grads[0][key], grads[1][key], rtol=1e-4, atol=1e-5, msg=f"grad of {key}")


@pytest.mark.parametrize("chunk", [1, 3, 4, 16])
def test_chunked_scan_gradcheck(chunk: int) -> None:
    # float64 finite differences against the hand-written backward (chunk carry included)
    args = {k: v.double().requires_grad_() for k, v in _scan_inputs(2, 3, 2, 11, seed=chunk).items()}
    args["A"] = (args["A"].detach() / 24).requires_grad_()  # keep exp(ΔA) away from 0: a useful check
    names = list(args)

    def fn(*tensors: torch.Tensor) -> torch.Tensor:
        return selective_scan(**dict(zip(names, tensors, strict=True)), delta_softplus=True, chunk=chunk)

    assert torch.autograd.gradcheck(fn, tuple(args.values()))


def test_scan_leaves_inputs_untouched() -> None:
    args = _scan_inputs(1, 3, 4, 40)
    before = {k: v.clone() for k, v in args.items()}
    selective_scan(**args, delta_softplus=True, chunk=8)
    assert all(torch.equal(args[k], before[k]) for k in args)


def test_auto_chunk_targets_a_cache_sized_working_set() -> None:
    cpu = torch.device("cpu")
    assert mamba.auto_chunk(4, 128, 48, cpu) == 16  # a C2F stage, B = 4
    assert mamba.auto_chunk(16, 128, 48, cpu) == 4  # a C2F stage, B = 16
    assert mamba.auto_chunk(16, 2, 48, cpu) == 64  # the LQ encoder: capped
    assert mamba.auto_chunk(1, 1, 1, torch.device("meta")) == mamba.CUDA_CHUNK


# -- BiMamba module ------------------------------------------------------------------


def test_bimamba_parameter_layout_matches_authors_checkpoints() -> None:
    m = BiMamba(d_model=64, d_state=48, d_conv=4, expand=2)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    d_inner, rank = 128, math.ceil(64 / 16)
    branch = {
        "conv1d.weight": (d_inner, 1, 4), "conv1d.bias": (d_inner,),
        "x_proj.weight": (rank + 2 * 48, d_inner),
        "dt_proj.weight": (d_inner, rank), "dt_proj.bias": (d_inner,),
    }  # fmt: skip
    expected = {"in_proj.weight": (2 * d_inner, 64), "out_proj.weight": (64, d_inner)}
    expected |= {"A_log": (d_inner, 48), "D": (d_inner,), "A_b_log": (d_inner, 48), "D_b": (d_inner,)}
    expected |= branch | {k.replace(".", "_b.", 1): v for k, v in branch.items()}
    assert shapes == expected
    assert sum(p.numel() for p in BiMambaBlock(64).parameters()) == 65_408  # method.md §7: 65.4 k


def test_bimamba_init_follows_mamba_ssm() -> None:
    torch.manual_seed(0)
    m = BiMamba(d_model=32, d_state=16)
    for A_log, D, dt_proj in ((m.A_log, m.D, m.dt_proj), (m.A_b_log, m.D_b, m.dt_proj_b)):
        torch.testing.assert_close(-torch.exp(A_log), -torch.arange(1.0, 17.0).repeat(64, 1))
        assert torch.equal(D, torch.ones(64))
        dt = torch.nn.functional.softplus(dt_proj.bias)
        assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 1e-1 * 1.001
    assert not torch.equal(m.dt_proj.bias, m.dt_proj_b.bias)  # independently sampled


def test_bimamba_block_shapes_and_residual() -> None:
    block = BiMambaBlock(d_model=8, d_state=4)
    x = torch.randn(3, 21, 8)
    assert block(x).shape == (3, 21, 8)
    with torch.no_grad():
        block.mamba.out_proj.weight.zero_()
    torch.testing.assert_close(block(x), x)  # x + BiMamba(LayerNorm(x)) with a zero mixer
    assert BiMambaBlock(d_model=1)(torch.randn(2, 10, 1)).shape == (2, 10, 1)  # the LQ encoder's width


def _swap_directions(m: BiMamba) -> BiMamba:
    swapped = BiMamba(m.d_model, m.d_state, m.d_conv, m.d_inner // m.d_model)
    state = m.state_dict()
    renamed = {}
    for key, value in state.items():
        if key.startswith(("conv1d", "x_proj", "dt_proj")):
            head, rest = key.split(".", 1)
            other = head[:-2] if head.endswith("_b") else head + "_b"
            renamed[f"{other}.{rest}"] = value
        else:
            renamed[key] = value
    renamed["A_log"], renamed["A_b_log"] = state["A_b_log"], state["A_log"]
    renamed["D"], renamed["D_b"] = state["D_b"], state["D"]
    swapped.load_state_dict(renamed)
    return swapped


def test_reversing_time_swaps_the_two_directions() -> None:
    torch.manual_seed(1)
    m = BiMamba(d_model=8, d_state=6)
    x = torch.randn(2, 19, 8)
    torch.testing.assert_close(_swap_directions(m)(x.flip(1)), m(x).flip(1), rtol=1e-5, atol=1e-6)
    # and the model is genuinely not time-symmetric without the swap
    assert not torch.allclose(m(x.flip(1)), m(x).flip(1), atol=1e-4)


def test_forward_branch_is_causal_and_backward_branch_anticausal() -> None:
    torch.manual_seed(2)
    m = BiMamba(d_model=8, d_state=6)
    x = torch.randn(1, 30, 8)
    x2 = x.clone()
    x2[:, 15] += 1.0
    with torch.no_grad():
        xz, xz2 = m.in_proj(x).transpose(1, 2), m.in_proj(x2).transpose(1, 2)
        fwd_changed = (m.branch(xz, False) - m.branch(xz2, False)).abs().amax(dim=1)[0] > 0
        bwd_changed = (m.branch(xz, True) - m.branch(xz2, True)).abs().amax(dim=1)[0] > 0
    assert not fwd_changed[:15].any() and fwd_changed[15:].all()
    assert bwd_changed[:16].all() and not bwd_changed[16:].any()


def test_divide_out_halves_the_mixer_output() -> None:
    torch.manual_seed(3)
    summed = BiMamba(d_model=8, d_state=4)
    averaged = BiMamba(d_model=8, d_state=4, divide_out=True)
    averaged.load_state_dict(summed.state_dict())
    x = torch.randn(2, 9, 8)
    torch.testing.assert_close(averaged(x), 0.5 * summed(x))


def test_module_gradients_match_reference_scan() -> None:
    torch.manual_seed(4)
    m = BiMambaBlock(d_model=16, d_state=8)
    x = torch.randn(2, 40, 16)
    grads = []
    for scan_fn in (m.mamba.scan_fn, selective_scan_reference):
        m.mamba.scan_fn = scan_fn
        m.zero_grad()
        m(x).pow(2).sum().backward()
        grads.append({k: p.grad.clone() for k, p in m.named_parameters()})
    for key in grads[0]:
        torch.testing.assert_close(grads[0][key], grads[1][key], rtol=1e-4, atol=1e-5, msg=key)


def test_missing_cuda_kernel_degrades_to_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    # A blocked/broken mamba_ssm import must not raise: the PyTorch scan is used instead.
    monkeypatch.setitem(__import__("sys").modules, "mamba_ssm", None)
    mamba._cuda_kernel.cache_clear()
    try:
        assert mamba._cuda_kernel() is None
        args = _scan_inputs(1, 2, 3, 5)
        assert selective_scan(**args).shape == (1, 2, 5)
        with pytest.raises(RuntimeError, match="mamba-ssm"):
            selective_scan(**args, use_kernel=True)
    finally:
        mamba._cuda_kernel.cache_clear()


_HAS_KERNEL = torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm") is not None


@pytest.mark.skipif(not _HAS_KERNEL, reason="needs CUDA and the mamba-ssm package")
def test_cuda_kernel_matches_pytorch_scan() -> None:
    args = {k: v.cuda() for k, v in _scan_inputs(2, 16, 8, 100).items()}
    y_kernel = selective_scan(**args, delta_softplus=True, use_kernel=True)
    y_torch = selective_scan(**args, delta_softplus=True, use_kernel=False)
    torch.testing.assert_close(y_kernel, y_torch, rtol=1e-4, atol=1e-4)
    block = BiMambaBlock(64).cuda()
    x = torch.randn(2, 160, 64, device="cuda")
    y_fast = block(x)
    block.mamba.scan_fn = lambda *a, **kw: selective_scan(*a, **kw, use_kernel=False)
    torch.testing.assert_close(y_fast, block(x), rtol=1e-4, atol=1e-4)
