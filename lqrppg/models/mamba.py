"""Bidirectional Mamba (selective state-space model) in pure PyTorch.

LQ-rPPG builds every sequence stage from one block, ``x + BiMamba(LayerNorm(x))``: the
C2F model with d_model = 64 (method.md §3.4) and each LQ encoder with d_model = 1 (§2.2).
The authors run a Vim/VideoMamba fork of mamba-ssm's CUDA kernels; this file is the
same computation in plain PyTorch, so the package installs and trains anywhere, and it
uses the compiled kernel only when it happens to be installed and the tensors are on CUDA.

Layout (method.md §3.7). Parameter names and shapes are those of mamba-ssm's
``Mamba`` with the VideoMamba ``bimamba=True`` / Vim ``bimamba_type="v2"`` extension,
so the released state dicts load key for key:

    in_proj   Linear d_model -> 2*d_inner, no bias     shared by both directions
    conv1d    depthwise Conv1d d_inner, k=d_conv       forward direction
    x_proj    Linear d_inner -> dt_rank + 2*d_state    (Δ, B, C are input dependent)
    dt_proj   Linear dt_rank -> d_inner, bias
    A_log     (d_inner, d_state)                       A = -exp(A_log)
    D         (d_inner,)                               skip connection
    conv1d_b, x_proj_b, dt_proj_b, A_b_log, D_b        backward direction
    out_proj  Linear d_inner -> d_model, no bias       shared by both directions

The selective scan (per channel d and state n, over time t):

    h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t          y_t = C_t · h_t + D u_t,  then y *= silu(z)

:func:`selective_scan` evaluates it as a chunked parallel scan (no Python loop over time
steps); :func:`selective_scan_reference` is the per-step loop, for tests and benchmarks.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BiMamba", "BiMambaBlock", "auto_chunk", "selective_scan", "selective_scan_reference"]

log = logging.getLogger(__name__)

#: Scan chunk sizing on CPU: aim for a chunk working set (B x chunk x d_inner x d_state
#: floats) near 2**18.5 (~1.5 MB, cache-sized), within [4, 64] steps. Measured on CPU
#: (benchmarks/bench_mamba.py --chunks): d_model 64 is best at chunk 16 for B = 4 and at
#: 4 for B = 16; the LQ encoder (d_model 1, B = 16) at 32-64.
CPU_CHUNK_ELEMENTS = 2**18.5
MIN_CHUNK, MAX_CHUNK = 4, 64
#: On CUDA (without mamba-ssm) every op is a kernel launch, so fewer, larger chunks are
#: better. Not tuned: no GPU was available when this was written.
CUDA_CHUNK = 64


def auto_chunk(batch: int, d_inner: int, d_state: int, device: torch.device) -> int:
    """The default scan chunk length for this problem size and device (a power of two)."""
    if device.type != "cpu":
        return CUDA_CHUNK
    steps = CPU_CHUNK_ELEMENTS / max(1, batch * d_inner * d_state)
    return int(min(max(2 ** round(math.log2(steps)), MIN_CHUNK), MAX_CHUNK))


# -----------------------------------------------------------------------------
# The chunked scan.
#
# The per-step state h is (B, L, d_inner, d_state), 48x larger than the input; the fused
# CUDA kernel never stores it, and neither does this scan. Time is cut into chunks; each
# chunk's decays and states are built, used and dropped while they are still in cache,
# and only the state entering each chunk is kept. Backward recomputes one chunk at a time
# from that state and walks the chunks in reverse, as the kernel does. Inside a chunk the
# recurrence h_t = a_t h_{t-1} + x_t is a doubling (Hillis-Steele) scan.
#
# Why not the closed form h_t = exp(cum_t) * sum_{s<=t} exp(-cum_s) x_s with cumsums of
# log a? exp(-cum_s) overflows float32 (beyond e^88) once the decay inside a chunk passes
# 88 nats, and here it does: A reaches -48 (d_state = 48), and in the C2F model the Δ bias
# is initialised to 0, so Δ ≈ softplus(0) = 0.69 and a single step decays ~33 nats. The
# doubling scan only multiplies decays a <= 1 together, so it cannot overflow for any Δ.


def _chunk_terms(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, s: int, e: int) -> tuple[Tensor, Tensor]:
    """Decays a = exp(Δ A) (zero-order hold) and inputs x = Δ u B of steps [s, e): (B, e-s, d, n)."""
    dt = delta[:, s:e, :, None]
    return torch.exp(dt * A), (dt * u[:, s:e, :, None]) * B[:, s:e, None, :]


def _scan_chunk(a: Tensor, x: Tensor, h0: Tensor | None, reverse: bool = False) -> Tensor:
    """All states of one chunk; a and x (time is dim 1 of (B, c, ...)) are left untouched.

    Forward: h_t = a_t h_{t-1} + x_t from h_{-1} = h0. Reverse: h_t = a_t h_{t+1} + x_t from
    h_c = h0. h0 is (B, ...), or None for a zero state.
    """
    c, k, step = x.shape[1], 1, 0
    buffers = [(torch.empty_like(a), torch.empty_like(x)) for _ in range(min(2, c - 1))]
    while k < c:
        # After this step x[t] sums the recurrence over the 2k steps ending at t (starting at t,
        # if reverse) and a[t] is the product of their decays. Each step reads one buffer pair
        # and writes the other, one fused pass per tensor.
        a_next, x_next = buffers[step % 2]
        new, old = (slice(None, -k), slice(k, None)) if reverse else (slice(k, None), slice(None, -k))
        edge = slice(c - k, None) if reverse else slice(None, k)  # nothing k steps away: complete
        torch.addcmul(x[:, new], a[:, new], x[:, old], out=x_next[:, new])
        torch.mul(a[:, new], a[:, old], out=a_next[:, new])
        x_next[:, edge], a_next[:, edge] = x[:, edge], a[:, edge]
        a, x = a_next, x_next
        k, step = 2 * k, step + 1
    if h0 is None:
        return x if step else x.clone()
    # a[t] now decays h0 all the way to step t
    return x.addcmul_(a, h0.unsqueeze(1)) if step else torch.addcmul(x, a, h0.unsqueeze(1))


class _SelectiveScan(torch.autograd.Function):
    """y_t = C_t · h_t on time-major (B, L, d) u, Δ and (B, L, n) B, C; A is (d, n).

    Saves only the inputs and the (B, d, n) state entering each chunk. The contractions over
    d or n are written as multiply-and-sum: on CPU that is ~3x faster than the batched
    matrix-vector products einsum turns them into.
    """

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:  # type: ignore
        h, starts, ys = None, [], []
        for s in range(0, u.shape[1], chunk):
            starts.append(h)
            states = _scan_chunk(*_chunk_terms(u, delta, A, B, s, s + chunk), h)
            ys.append((states * C[:, s : s + chunk, None, :]).sum(-1))
            h = states[:, -1].clone()  # a copy, so the chunk's states can be freed
        starts[0] = torch.zeros_like(h)
        ctx.save_for_backward(u, delta, A, B, C, torch.stack(starts))
        ctx.chunk = chunk
        return torch.cat(ys, 1)

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, None]:  # type: ignore[override]
        u, delta, A, B, C, starts = ctx.saved_tensors
        chunk = ctx.chunk
        grad_u, grad_delta, grad_B, grad_C = (torch.empty_like(t) for t in (u, delta, B, C))
        grad_A = torch.zeros_like(A)
        carry = None  # gradient reaching this chunk's last state from the later chunks
        for j in reversed(range(len(starts))):
            s, e = j * chunk, min((j + 1) * chunk, u.shape[1])
            dt, ut, gy, Bt, Ct = delta[:, s:e], u[:, s:e], grad_y[:, s:e], B[:, s:e], C[:, s:e]
            # Recompute the chunk: decays a_t, states h_t and h_{t-1}.
            decay, x = _chunk_terms(u, delta, A, B, s, e)
            h = _scan_chunk(decay, x, starts[j] if j else None)
            h_prev = torch.cat([starts[j].unsqueeze(1), h[:, :-1]], 1)
            grad_C[:, s:e] = (h * gy.unsqueeze(-1)).sum(2)  # Σ_d g_y h
            # dL/dh_t = C_t g_y_t + a_{t+1} dL/dh_{t+1}: the same recurrence, backwards in time.
            decay_next = torch.cat([decay[:, 1:], torch.ones_like(decay[:, :1])], 1)
            g_h = _scan_chunk(decay_next, gy.unsqueeze(-1) * Ct.unsqueeze(2), carry, reverse=True)
            carry = decay[:, 0] * g_h[:, 0]  # into h_{s-1}, the previous chunk's last state
            # Through x_t = Δ_t u_t B_t.
            g_hB = (g_h * Bt.unsqueeze(2)).sum(-1)  # Σ_n g_h B, (B, c, d)
            grad_u[:, s:e] = g_hB * dt
            grad_B[:, s:e] = (g_h * (dt * ut).unsqueeze(-1)).sum(2)
            # Through a_t = exp(Δ_t A): dL/d(Δ_t A) = dL/da_t · a_t = g_h_t h_{t-1} a_t.
            q = g_h.mul_(h_prev).mul_(decay)
            grad_delta[:, s:e] = g_hB * ut + (q * A).sum(-1)
            grad_A += (q * dt.unsqueeze(-1)).sum((0, 1))
        return grad_u, grad_delta, grad_A, grad_B, grad_C, None


# -----------------------------------------------------------------------------
# Selective scan, with mamba-ssm's call signature:
#   u, delta, z: (B, d_inner, L)   A: (d_inner, d_state)   B, C: (B, d_state, L)   D: (d_inner,)


def _time_major(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, delta_bias: Tensor | None, delta_softplus: bool
) -> tuple[Tensor, ...]:
    """Apply the Δ bias/softplus; return u, Δ (B, L, d), A, B, C (B, L, n) in float32 (float64 kept)."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    u, delta, B, C = (t.to(dtype).transpose(1, 2).contiguous() for t in (u, delta, B, C))
    return u, delta, A.to(dtype), B, C


def _skip_and_gate(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None, dtype: torch.dtype) -> Tensor:
    """(B, L, d) scan output -> (B, d, L), plus D u, gated by silu(z)."""
    y = y.transpose(1, 2)
    if D is not None:
        y = y + u.to(y.dtype) * D.to(y.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(dtype)


@functools.cache
def _cuda_kernel() -> Callable[..., Tensor] | None:
    """mamba-ssm's fused selective_scan_fn if it is installed, else None (imported lazily).

    Never imported at module load: the compiled package is optional, and a broken build of
    it must not break the rest of the package (anchors.md §2.1, §3 pain point 5).
    """
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except (ImportError, OSError) as exc:  # OSError: a wheel built against another CUDA/torch
        log.debug("mamba_ssm selective_scan_fn unavailable (%s); using the PyTorch scan", exc)
        return None
    return selective_scan_fn


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    *,
    chunk: int | None = None,
    use_kernel: bool | None = None,
) -> Tensor:
    """Mamba-1 selective scan; same arguments and result as mamba-ssm's ``selective_scan_fn``.

    ``chunk``: time steps per chunk of the PyTorch scan (None: :func:`auto_chunk`).
    ``use_kernel``: None uses the CUDA kernel when it is importable and ``u`` is on CUDA;
    False always uses the PyTorch chunked scan; True requires the kernel.
    """
    if use_kernel is None:
        use_kernel = u.is_cuda and _cuda_kernel() is not None
    if use_kernel:
        kernel = _cuda_kernel()
        if kernel is None or not u.is_cuda:
            raise RuntimeError("use_kernel=True needs the mamba-ssm package and CUDA tensors")
        return kernel(
            u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(),
            D, z=None if z is None else z.contiguous(), delta_bias=delta_bias, delta_softplus=delta_softplus,
        )  # fmt: skip
    u_t, delta_t, A_t, B_t, C_t = _time_major(u, delta, A, B, C, delta_bias, delta_softplus)
    if chunk is None:
        chunk = auto_chunk(u.shape[0], u.shape[1], A.shape[1], u.device)
    y = _SelectiveScan.apply(u_t, delta_t, A_t, B_t, C_t, max(1, int(chunk)))
    return _skip_and_gate(y, u, D, z, u.dtype)


def selective_scan_reference(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """The same scan as a Python loop over time steps, differentiated by autograd.

    Structured like mamba-ssm's ``selective_scan_ref``: discretise every step, then loop.
    Slow; it is the ground truth for tests and the baseline of the benchmark.
    """
    u_t, delta_t, A_t, B_t, C_t = _time_major(u, delta, A, B, C, delta_bias, delta_softplus)
    decay = torch.exp(delta_t.unsqueeze(-1) * A_t)  # (B, L, d, n)
    drive = (delta_t * u_t).unsqueeze(-1) * B_t.unsqueeze(2)
    h = decay.new_zeros(decay.shape[0], *decay.shape[2:])
    ys = []
    # unbind, not decay[:, t]: the backward of L separate index ops would allocate L
    # full-size gradient tensors (quadratic in L); unbind's backward is a single stack.
    for a_t, x_t, c_t in zip(decay.unbind(1), drive.unbind(1), C_t.unbind(1), strict=True):
        h = a_t * h + x_t
        ys.append(torch.matmul(h, c_t.unsqueeze(-1)).squeeze(-1))
    return _skip_and_gate(torch.stack(ys, 1), u, D, z, u.dtype)


# -----------------------------------------------------------------------------
# The bidirectional Mamba mixer and the residual block.


class BiMamba(nn.Module):
    """Bidirectional Mamba-1 mixer: (B, L, d_model) -> (B, L, d_model).

    The forward branch scans left to right. The backward branch takes the *same* in_proj
    output flipped in time, runs its own conv1d_b/x_proj_b/dt_proj_b/A_b/D_b, and is
    flipped back. Both share in_proj and out_proj.

    Combining the branches: ``out_proj(y_f + y_b)``, the plain sum, unless
    ``divide_out=True`` (then the average). The sum is what both public forks do when a
    caller only switches bidirectionality on: VideoMamba's ``Mamba(bimamba=True)`` always
    sums, and Vim's ``Mamba(bimamba_type="v2")`` sums by default (``if_devide_out=False``;
    only Vim's own image model passes True). The LQ-rPPG model "calls Mamba with a
    bidirectional option" and nothing more (method.md §3.7), so the sum is the likelier
    match for the released weights. The choice is a fixed factor 2 in front of out_proj,
    so it matters only when loading those weights.
    """

    # mamba-ssm runs this mixer as one fused kernel: a thop-style profiler sees none of it (lqrppg.bench).
    fused_kernel = True

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        *,
        divide_out: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        chunk: int | None = None,
    ) -> None:
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.divide_out = divide_out
        self.chunk = chunk
        #: The scan implementation; benchmarks swap in selective_scan_reference.
        self.scan_fn: Callable[..., Tensor] = functools.partial(selective_scan, chunk=chunk)

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        for suffix in ("", "_b"):  # forward branch, then backward branch
            conv = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=True)
            x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
            dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
            self._init_dt_proj(dt_proj, dt_min, dt_max, dt_init_floor)
            # S4D-real initialisation: A = -(1, 2, ..., d_state) in every channel, stored as log(-A).
            A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
            A_log = nn.Parameter(torch.log(A))
            D = nn.Parameter(torch.ones(self.d_inner))
            A_log._no_weight_decay = True  # mamba-ssm's marker, for optimiser param groups
            D._no_weight_decay = True
            setattr(self, "conv1d" + suffix, conv)
            setattr(self, "x_proj" + suffix, x_proj)
            setattr(self, "dt_proj" + suffix, dt_proj)
            setattr(self, "A_log" if not suffix else "A_b_log", A_log)
            setattr(self, "D" + suffix, D)

    def _init_dt_proj(self, dt_proj: nn.Linear, dt_min: float, dt_max: float, floor: float) -> None:
        """mamba-ssm's Δ init: weight U(±dt_rank^-0.5); bias so softplus(bias) ~ logU[dt_min, dt_max]."""
        std = self.dt_rank**-0.5
        nn.init.uniform_(dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=floor)
        with torch.no_grad():  # inverse of softplus: x = dt + log(1 - exp(-dt))
            dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def branch(self, xz: Tensor, backward: bool) -> Tensor:
        """One direction on in_proj's output (B, 2*d_inner, L) -> y (B, d_inner, L).

        The backward branch sees time reversed and returns its output in forward time, so
        y_f at t depends on steps <= t and y_b at t on steps >= t.
        """
        sfx = "_b" if backward else ""
        conv1d, x_proj, dt_proj = (getattr(self, n + sfx) for n in ("conv1d", "x_proj", "dt_proj"))
        A_log, D = (self.A_b_log, self.D_b) if backward else (self.A_log, self.D)
        if backward:
            xz = xz.flip(-1)
        length = xz.shape[-1]
        x, z = xz.chunk(2, dim=1)
        x = F.silu(conv1d(x)[..., :length])  # padding d_conv-1 then crop = causal conv
        dt, B, C = torch.split(x_proj(x.transpose(1, 2)), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, dt_proj.weight).transpose(1, 2)  # its bias is added inside the scan
        y = self.scan_fn(
            x, dt, -torch.exp(A_log.float()), B.transpose(1, 2), C.transpose(1, 2), D,
            z=z, delta_bias=dt_proj.bias, delta_softplus=True,
        )  # fmt: skip
        return y.flip(-1) if backward else y

    def forward(self, x: Tensor) -> Tensor:
        xz = self.in_proj(x).transpose(1, 2)  # (B, 2*d_inner, L)
        y = self.branch(xz, backward=False) + self.branch(xz, backward=True)
        if self.divide_out:
            y = 0.5 * y
        return self.out_proj(y.transpose(1, 2))


class BiMambaBlock(nn.Module):
    """Pre-norm residual block ``x + BiMamba(LayerNorm(x))`` on (B, L, d_model)."""

    def __init__(self, d_model: int, d_state: int = 48, d_conv: int = 4, expand: int = 2, **mamba_kwargs) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mamba = BiMamba(d_model, d_state, d_conv, expand, **mamba_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mamba(self.norm(x))
