"""Cost benchmark: parameters, MACs, throughput and peak memory of every registered model.

Reproduces the paper's cost table (method.md §7 and §10) and LQ-rPPG's claimed ratios to
RhythmMamba (−88% params, −29% MACs, +191% throughput), measured in one run on one device.

For each model and each setting (its ``published_input``, and the default config's
(chunk_length, size, size) when given) one row holds:

``params_m``           true trainable parameters (every ``requires_grad`` tensor), millions.
``thop_params_m``,     what the thop profiler reports, as the authors measured it
``thop_macs_m``        (``model_Para_MACs_Thro.py``): :func:`thop_style_count`, per frame.
``flop_macs_m``        MACs per frame from :class:`torch.utils.flop_counter.FlopCounterMode`
                       (FLOPs / 2 / frames): every matmul and convolution wherever it sits,
                       Mamba projections included, plus the selective scan (``scan_macs_m``).
``throughput_kfps``    batch 1, one clip of ``clip`` frames (160; a model whose frame rule rejects
                       it takes the nearest valid length, ``clip_frames``), ``warmup`` untimed
                       passes, then ``passes`` timed ones, each followed by a device synchronize;
                       throughput = clip_frames / mean pass time / 1000. The timed passes of all
                       models are interleaved (pass i of every model, then pass i + 1), so load
                       from other processes hits every model alike and ratios stay comparable.
``peak_memory_mb``     MiB (2**20 bytes) for one inference pass on the same clip, measured in a
                       fresh subprocess per model so no other model's memory is included:
                       on CUDA ``torch.cuda.max_memory_allocated`` after a reset (weights, input,
                       activations); on CPU the peak resident set size (VmHWM, reset after a
                       first pass through /proc/self/clear_refs) above the resident size right
                       after importing torch and the models: weights, input, activations and the
                       allocator's and math libraries' working memory. ``memory_method`` says
                       which one a row used.

Timing protocols. The authors time on CUDA with 10 warm-ups and 1000 timed passes
(:data:`CUDA_WARMUP`, :data:`CUDA_PASSES`, the defaults on CUDA). A CPU pass at 128x128 takes
seconds (PhysFormer), so the CPU defaults are 1 warm-up and 3 timed passes: throughput on CPU
is a coarse figure, and only ratios measured in the same run mean anything.

The thop-style counter
----------------------
thop (github.com/Lyken17/pytorch-OpCounter, ``thop/profile.py`` and
``thop/vision/basic_hooks.py``, release 0.1.1) attaches forward hooks to modules whose *exact*
type has a counting rule, runs one no-grad forward in eval mode, then walks the module tree:
a module with a rule contributes what its hooks recorded (its own parameters, recursively, once,
and the ops of every call) and is not descended into; ``nn.Sequential``/``nn.ModuleList`` and
modules without a rule contribute nothing themselves and are descended into. Consequences that
:func:`thop_style_count` reproduces:

* bare ``nn.Parameter``s owned by a module without a rule (positional embeddings, Mamba's
  ``A_log`` and ``D``) are never counted;
* a layer whose weight is used functionally (``F.linear(x, layer.weight)``) is never called, so
  its hook never fires: zero ops and zero params. mamba-ssm's fused path
  (``mamba_inner_fn``) uses in_proj/conv1d/x_proj/dt_proj/out_proj weights that way, so
  *nothing* inside a Mamba mixer is counted. This package's :class:`~lqrppg.models.mamba.BiMamba`
  calls some of those layers as modules (it is plain PyTorch), so the counter treats it, and any
  module class with ``fused_kernel = True``, as opaque: zero ops, zero params, no recursion;
* subclasses of a layer type get no rule (thop looks up ``type(m)``), except a class that declares
  ``thop_as``: this package's re-implementation of that layer (the fusion stem's
  :class:`~lqrppg.models.lqc2f.DifferenceConv2d`), which thop on the authors' code sees as the
  plain layer. Activations other than
  ReLU/LeakyReLU/PReLU/Softmax and all tensor functions (``torch.matmul``, attention, elementwise
  ops) count nothing;
* the root module's own parameters are not added (only its ops, if its type has a rule).

Per-call ops ("MACs" in thop's sense; the authors divide by 160 frames):

    Conv{1,2,3}d, ConvTranspose{1,2,3}d   out.numel() * (in_channels // groups) * prod(kernel)
                                          (no bias; a strided transposed conv is over-counted by
                                          its stride, as in thop)
    BatchNorm{1,2,3}d, SyncBatchNorm,     2 * in.numel(), doubled if affine / elementwise_affine
    LayerNorm, InstanceNorm{1,2,3}d
    Linear                                in_features * out.numel()
    AvgPool{1,2,3}d                       out.numel()
    AdaptiveAvgPool{1,2,3}d               int((prod(in.shape[2:] / out.shape[2:]) + 1) * out.numel())
    Softmax                               (in.numel() / n) * (3n - 1), n = in.shape[dim]
    PReLU                                 in.numel() (eval mode)
    Upsample & co.                        out.numel() * {nearest 1, linear 5, bilinear 11,
                                          bicubic 259}; other modes 0
    ReLU, ReLU6, LeakyReLU, MaxPool*,     0 (but their parameters, if any, are counted)
    AdaptiveMaxPool*, Dropout, ZeroPad2d,
    PixelShuffle

thop also has rules for RNN/GRU/LSTM layers; no model here uses them, so they are not modelled
(a warning is logged if one appears).

Validation (C2F = ``get_model("lqrppg")(160, 128, 128)``; the authors' thop: 0.134 M params,
57.09 M MACs per frame, method.md §7): this counter gives 0.134 M (134,093) params and 57.088 M
MACs per frame, no gap: everything it skips is inside the four Mamba mixers (65.3 k params each
without the LayerNorm) or the positional embedding (10.2 k), 405,453 − 134,093 = 271,360 in all.
(Without the opaque rule our BiMamba would add the in_proj, conv1d, x_proj and out_proj layers
it calls as modules, since only dt_proj is used functionally; mamba-ssm's fused path calls none.)
PhysNet at 128x128 gives 0.769 M (768,577) params and 438.243 M MACs per frame, the paper
table's 0.77 M / 438.24 M. The FLOP counter gives PhysNet 434.50 M: thop adds BatchNorm ops
(4 per element) and counts the strided temporal transposed convolutions by output size.
At their published settings RhythmMamba gives 1.065 M / 80.90 M (paper: 1.065 M "1.07M" /
80.90 M) and PhysFormer 7.381 M / 316.29 M (paper: 7.38 M / 316.29 M).

The selective scan in the FLOP counter
--------------------------------------
FlopCounterMode counts matmuls, convolutions and attention but no elementwise op, and the
scan is all elementwise (here and in mamba-ssm's kernel). So the scan's multiply-adds are added
analytically, per call of a module's ``scan_fn`` (mamba-ssm's ``selective_scan_fn`` signature:
u (B, D, L), A (D, N)): per state element Δ·A, (Δu)·B, the update a·h + x and the readout C·h,
4 MACs; per channel Δ·u, the skip D·u and the gate ·silu(z), 1 MAC each (exp, softplus and
silu are not counted, as activations are not). That is 4·B·L·D·N + 3·B·L·D MACs, close to the
9·B·L·D·N of the rule VMamba registers for fvcore (``flops_selective_scan_fn``, after
state-spaces/mamba#110).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from lqrppg.errors import ConfigError

__all__ = [
    "CUDA_PASSES",
    "CUDA_WARMUP",
    "CPU_PASSES",
    "CPU_WARMUP",
    "DISPLAY_NAMES",
    "PAPER_RATIOS",
    "BenchSettings",
    "ThopCount",
    "flop_counter_macs",
    "is_opaque",
    "nearest_valid_frames",
    "run_cost_benchmark",
    "thop_style_count",
    "write_cost_tables",
]

log = logging.getLogger(__name__)

#: The authors' timing protocol (method.md §7): batch 1, 10 warm-ups, 1000 timed passes.
CUDA_WARMUP, CUDA_PASSES = 10, 1000
#: CPU defaults: a pass at 128x128 takes up to seconds, so a coarse figure.
CPU_WARMUP, CPU_PASSES = 1, 3

#: Method names as the paper's tables spell them.
DISPLAY_NAMES = {
    "lqrppg": "LQ-rPPG",
    "c2f-continuous": "C2F (continuous label)",
    "physnet": "PhysNet",
    "deepphys": "DeepPhys",
    "tscan": "TS-CAN",
    "efficientphys": "EfficientPhys",
    "physformer": "PhysFormer",
    "rhythmformer": "RhythmFormer",
    "rhythmmamba": "RhythmMamba",
}

#: The abstract's claims for LQ-rPPG vs RhythmMamba, as ratios of thop counts / throughput
#: (method.md §7: 0.13/1.07 params, 57.09/80.90 MACs, +191% throughput).
PAPER_RATIOS = {"thop_params_m": 1 - 0.88, "thop_macs_m": 1 - 0.29, "throughput_kfps": 1 + 1.91}
#: (target, reference) the quoted ratios are about; another pair gets no "quoted" row.
PAPER_PAIR = ("lqrppg", "rhythmmamba")

#: Columns of a cost row and what the ratio section compares (column, label).
RATIO_METRICS = (
    ("params_m", "Params, true (M)"),
    ("thop_params_m", "Params, thop-style (M)"),
    ("thop_macs_m", "MACs/frame, thop-style (M)"),
    ("flop_macs_m", "MACs/frame, FLOP counter (M)"),
    ("throughput_kfps", "Throughput (Kfps)"),
    ("peak_memory_mb", "Peak memory (MiB)"),
)

COLUMNS = [
    "row_type", "method", "model", "setting", "frames", "height", "width", "channels",
    "params_m", "thop_params_m", "thop_macs_m", "flop_macs_m", "scan_macs_m",
    "throughput_kfps", "peak_memory_mb", "mean_pass_ms", "median_pass_ms",
    "clip_frames", "warmup", "passes", "device", "torch_threads", "memory_method",
]  # fmt: skip


#: Integer columns: nullable, so ratio rows can leave them empty without turning them to floats.
INT_COLUMNS = dict.fromkeys(
    ["frames", "height", "width", "channels", "clip_frames", "warmup", "passes", "torch_threads"], "Int64"
)


class BenchSettings(BaseModel):
    """Options of ``lqrppg bench`` (keyword arguments of :func:`run_cost_benchmark`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[str] | None = Field(default=None, description="Registered model names; null means every one.")
    device: str = Field(
        default="cpu", description="torch device to measure on ('cpu', 'cuda', 'cuda:1'; 'auto' in the CLI: CUDA when present)."
    )
    warmup: int | None = Field(
        default=None, ge=0, description=f"Untimed passes per model; null: {CPU_WARMUP} on CPU, {CUDA_WARMUP} on CUDA."
    )
    passes: int | None = Field(
        default=None, ge=1, description=f"Timed passes per model; null: {CPU_PASSES} on CPU, {CUDA_PASSES} on CUDA."
    )
    clip: int = Field(default=160, ge=1, description="Frames of the throughput clip (batch 1).")
    published: bool = Field(default=True, description="Measure each model at its published input size.")
    memory: bool = Field(default=True, description="Measure peak memory (one subprocess per model and setting).")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads; null keeps torch's default.")
    reference: str = Field(default="rhythmmamba", description="Model the ratio section compares against.")
    target: str = Field(default="lqrppg", description="Model whose ratios to the reference are reported.")


# ------------------------------------------------------------------------------ thop-style count


def is_opaque(module: nn.Module) -> bool:
    """True for modules a thop profiler cannot see into (a fused kernel does all their work)."""
    from lqrppg.models.mamba import BiMamba

    return isinstance(module, BiMamba) or getattr(type(module), "fused_kernel", False) is True


def _prod(values: Sequence[int] | torch.Size) -> int:
    return math.prod(int(v) for v in values)


def _ops_conv(m: nn.Module, x: Tensor, y: Tensor) -> float:
    # m.in_channels is thop's in_c (the input's channel count) for any conv called on (N, C, ...) input,
    # and stays right for a layer declaring thop_as nn.Conv2d that takes its input in another form.
    return y.numel() * (m.in_channels // m.groups) * _prod(m.weight.shape[2:])


def _ops_norm(m: nn.Module, x: Tensor, y: Tensor) -> float:
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    return 2 * x.numel() * (2 if affine else 1)


def _ops_linear(m: nn.Module, x: Tensor, y: Tensor) -> float:
    return m.in_features * y.numel()


def _ops_out_numel(m: nn.Module, x: Tensor, y: Tensor) -> float:
    return y.numel()


def _ops_in_numel(m: nn.Module, x: Tensor, y: Tensor) -> float:
    return x.numel() if not m.training else 0


def _ops_adaptive_avg(m: nn.Module, x: Tensor, y: Tensor) -> float:
    kernel = math.prod(i / o for i, o in zip(x.shape[2:], y.shape[2:], strict=True))
    return int((kernel + 1) * y.numel())


def _ops_softmax(m: nn.Module, x: Tensor, y: Tensor) -> float:
    dim = m.dim if m.dim is not None else (0 if x.ndim in (0, 1, 3) else 1)  # torch's implicit dim
    n = x.shape[dim]
    return (x.numel() // n) * (3 * n - 1)


_UPSAMPLE_FACTOR = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 224 + 35}


def _ops_upsample(m: nn.Module, x: Tensor, y: Tensor) -> float:
    return y.numel() * _UPSAMPLE_FACTOR.get(m.mode, 0)


def _ops_zero(m: nn.Module, x: Tensor, y: Tensor) -> float:
    return 0


#: Exact module type -> ops of one call (x: the first input, y: the output).
THOP_RULES: dict[type[nn.Module], Callable[[nn.Module, Tensor, Tensor], float]] = {
    **dict.fromkeys(
        (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), _ops_conv
    ),
    **dict.fromkeys(
        (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm,
         nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d),
        _ops_norm,
    ),  # fmt: skip
    nn.Linear: _ops_linear,
    **dict.fromkeys((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), _ops_out_numel),
    **dict.fromkeys((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d), _ops_adaptive_avg),
    nn.Softmax: _ops_softmax,
    nn.PReLU: _ops_in_numel,
    **dict.fromkeys((nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d), _ops_upsample),
    **dict.fromkeys(
        (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
         nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Dropout, nn.ZeroPad2d, nn.PixelShuffle),
        _ops_zero,
    ),  # fmt: skip
}


@dataclass
class ThopCount:
    """Totals of :func:`thop_style_count` for one forward (ops over the whole input)."""

    ops: int
    params: int
    per_module: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (ops, params)


def thop_type(m: nn.Module) -> type[nn.Module]:
    """The type thop's lookup sees: ``type(m)``, or the layer a class re-implements (``thop_as``)."""
    return getattr(type(m), "thop_as", type(m))


def _first_tensor(inputs: tuple[Any, ...]) -> Tensor | None:
    return next((v for v in inputs if isinstance(v, Tensor)), None)


def thop_style_count(model: nn.Module, *inputs: Any, **kwargs: Any) -> ThopCount:
    """What thop's ``profile(model, inputs)`` would report (see the module docstring).

    Runs one forward in eval mode under ``torch.no_grad`` (the training flag is restored).
    """
    records: dict[nn.Module, list[float]] = {}  # module -> [ops, params]; params set when it fires
    handles = []

    def hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        x, y = _first_tensor(args), out if isinstance(out, Tensor) else _first_tensor(tuple(out))
        if x is None or y is None:
            return
        record = records[m]
        record[0] += THOP_RULES[thop_type(m)](m, x, y)
        record[1] = sum(p.numel() for p in m.parameters())

    def attach(m: nn.Module) -> None:
        if is_opaque(m):
            return  # nothing below is hooked: a fused kernel never calls its layers
        if isinstance(m, nn.RNNBase):
            log.warning("thop-style count: %s is not modelled (thop has an RNN rule); counted as zero", type(m).__name__)
        if thop_type(m) in THOP_RULES:
            records[m] = [0.0, 0]
            handles.append(m.register_forward_hook(hook))
        for child in m.children():
            attach(child)

    training = model.training
    model.eval()
    attach(model)
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()
        model.train(training)

    per_module: dict[str, tuple[int, int]] = {}

    def walk(m: nn.Module, prefix: str) -> tuple[float, int]:
        ops, params = 0.0, 0
        for name, child in m.named_children():
            path = f"{prefix}{name}"
            if is_opaque(child):
                per_module[path] = (0, 0)
                continue
            if child in records and not isinstance(child, (nn.Sequential, nn.ModuleList)):
                c_ops, c_params = records[child]
                per_module[path] = (int(c_ops), int(c_params))
            else:
                c_ops, c_params = walk(child, path + ".")
            ops, params = ops + c_ops, params + c_params
        return ops, params

    ops, params = walk(model, "")
    if model in records:  # thop adds the root's own ops, never its params
        ops += records[model][0]
    return ThopCount(ops=int(ops), params=int(params), per_module=per_module)


# ------------------------------------------------------------------------------ FLOP counter


def scan_macs(u: Tensor, A: Tensor, D: Tensor | None, z: Tensor | None) -> int:
    """Multiply-adds of one selective scan: 4·B·L·D·N + (1 + [D] + [z])·B·L·D (module docstring)."""
    batch, channels, length = u.shape
    per_channel = 1 + (D is not None) + (z is not None)
    return batch * length * channels * (4 * A.shape[-1] + per_channel)


@contextlib.contextmanager
def _counting_scans(model: nn.Module) -> Iterator[list[int]]:
    """Wrap every module's ``scan_fn`` so each call adds its :func:`scan_macs` to the yielded list."""
    counted: list[int] = []
    wrapped = []
    for m in model.modules():
        fn = m.__dict__.get("scan_fn")
        if not callable(fn):
            continue

        def counting(u, delta, A, B, C, D=None, z=None, *args, _fn=fn, **kwargs):  # noqa: N803
            counted.append(scan_macs(u, A, D, z))
            return _fn(u, delta, A, B, C, D, z, *args, **kwargs)

        m.__dict__["scan_fn"] = counting
        wrapped.append((m, fn))
    try:
        yield counted
    finally:
        for m, fn in wrapped:
            m.__dict__["scan_fn"] = fn


def flop_counter_macs(model: nn.Module, *inputs: Any) -> tuple[int, int]:
    """(total MACs, of which selective scan) of one no-grad eval forward: FlopCounterMode FLOPs / 2
    plus the analytic scan MACs (FlopCounterMode counts no elementwise op)."""
    from torch.utils.flop_counter import FlopCounterMode

    training = model.training
    model.eval()
    try:
        with torch.no_grad(), _counting_scans(model) as scans, FlopCounterMode(display=False) as counter:
            model(*inputs)
    finally:
        model.train(training)
    scan = sum(scans)
    return counter.get_total_flops() // 2 + scan, scan


def _count_both(model: nn.Module, x: Tensor) -> tuple[ThopCount, int, int]:
    """thop-style count and FLOP-counter MACs from one forward."""
    from torch.utils.flop_counter import FlopCounterMode

    with _counting_scans(model) as scans, FlopCounterMode(display=False) as counter:
        thop = thop_style_count(model, x)
    scan = sum(scans)
    return thop, counter.get_total_flops() // 2 + scan, scan


# ------------------------------------------------------------------------------ models and inputs


def input_channels(cls: type[nn.Module]) -> int:
    """6 for models fed DiffNormalized and Standardized frames together, else 3."""
    return 6 if getattr(cls, "input_norm", None) == "diff_and_standardized" else 3


def nearest_valid_frames(cls: type[nn.Module], frames: int, height: int, width: int) -> int:
    """``frames`` if the model accepts it, else the nearest length it does (the shorter on a tie)."""
    for distance in range(frames + 1):
        for t in (frames - distance, frames + distance) if distance else (frames,):
            if t < 1:
                continue
            try:
                cls.check_input(t, height, width)
            except ValueError:
                continue
            return t
    raise ConfigError(f"model {getattr(cls, 'name', cls.__name__)} accepts no clip length near {frames} at {height}x{width}")


def build_model(name: str, frames: int, height: int, width: int, device: torch.device | str = "cpu") -> nn.Module:
    """Model ``name`` at (frames, height, width), in eval mode, ready for a forward on random input.

    A quantized C2F model needs its frozen codebooks; the cost does not depend on their values,
    so unset (NaN) ones are filled with evenly spaced values.
    """
    from lqrppg.models import get_model

    cls = get_model(name)
    torch.manual_seed(0)
    model = cls(frames, height, width)
    codebooks = getattr(model, "codebooks", None)
    if callable(codebooks) and hasattr(model, "set_codebooks"):
        values = list(codebooks())
        if values and not all(bool(torch.isfinite(c).all()) for c in values):
            model.set_codebooks([torch.linspace(-2.0, 2.0, c.numel()) for c in values])
    return model.to(device).eval()


def make_input(name: str, frames: int, height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """A batch-1 random clip (1, C, frames, height, width) for model ``name``."""
    from lqrppg.models import get_model

    g = torch.Generator().manual_seed(1)
    return torch.randn(1, input_channels(get_model(name)), frames, height, width, generator=g).to(device)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ peak memory


def _proc_status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_memory_child(spec_json: str) -> None:
    """Subprocess body: one model's peak memory for one inference pass; prints a JSON line."""
    spec = json.loads(spec_json)
    from lqrppg.models import available_models

    available_models()  # imports every model module: part of the baseline, not of the model
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.cuda.init()
    baseline = _proc_status_bytes("VmRSS")
    model = build_model(spec["name"], spec["frames"], spec["height"], spec["width"], device)
    x = make_input(spec["name"], spec["frames"], spec["height"], spec["width"], device)
    with torch.no_grad():
        out = model(x)  # first pass: lazy initialisation (kernels, thread pools, allocator caches)
        _sync(device)
        del out
        gc.collect()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            model(x)
            _sync(device)
            peak = torch.cuda.max_memory_allocated(device)
            method = "CUDA max_memory_allocated (weights+input+activations), fresh process"
        elif baseline is not None and _reset_peak_rss():
            model(x)
            peak = (_proc_status_bytes("VmHWM") or 0) - baseline
            method = "CPU peak RSS above post-import RSS (VmHWM reset after a first pass), fresh process"
        else:
            model(x)
            baseline = baseline or 0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
            method = "CPU peak RSS (ru_maxrss) above post-import RSS, fresh process"
    print(json.dumps({"peak_bytes": int(peak), "method": method}))


def measure_peak_memory(
    name: str, frames: int, height: int, width: int, device: str = "cpu", threads: int | None = None, timeout: float = 1800
) -> tuple[float, str]:
    """(peak MiB, method) of one inference pass of model ``name``, measured in a fresh subprocess."""
    spec = {"name": name, "frames": frames, "height": height, "width": width, "device": device, "threads": threads}
    code = "import sys; from lqrppg.bench import _peak_memory_child; _peak_memory_child(sys.argv[1])"
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, env=env, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peak-memory subprocess for {name} {frames}x{height}x{width} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["peak_bytes"] / 2**20, result["method"]


# ------------------------------------------------------------------------------ the benchmark


@dataclass
class _Job:
    """One (model, setting) row and what it needs for timing."""

    row: dict[str, Any]
    model: nn.Module | None = None
    x: Tensor | None = None
    times: list[float] = field(default_factory=list)


def _settings_for(cls: type[nn.Module], published: bool, default_setting: tuple[int, int, int] | None) -> list[tuple[str, tuple[int, int, int]]]:
    settings: list[tuple[str, tuple[int, int, int]]] = []
    if published:
        settings.append(("published", tuple(cls.published_input)))
    if default_setting is not None:
        default_setting = tuple(int(v) for v in default_setting)
        if settings and settings[0][1] == default_setting:
            settings[0] = ("published = default", default_setting)
        else:
            settings.append(("default", default_setting))
    return settings


def run_cost_benchmark(
    models: Sequence[str] | None = None,
    default_setting: tuple[int, int, int] | None = None,
    *,
    device: str = "cpu",
    warmup: int | None = None,
    passes: int | None = None,
    clip: int = 160,
    published: bool = True,
    memory: bool = True,
    threads: int | None = None,
    reference: str = "rhythmmamba",
    target: str = "lqrppg",
) -> pd.DataFrame:
    """Measure every model in ``models`` (default: all registered) at its published setting and at
    ``default_setting`` = (chunk_length, size, size) of the config; returns the cost table.

    Rows with ``row_type == "model"`` hold one model at one setting; ``"ratio"`` rows hold
    ``target`` / ``reference`` for each setting both were measured at (each metric column holds
    the ratio); a ``"quoted"`` row holds the paper's claimed ratios. Run metadata is in
    ``df.attrs``. The keyword arguments are the fields of :class:`BenchSettings`.
    """
    from lqrppg.models import available_models, count_parameters, get_model

    names = list(models) if models is not None else list(available_models())
    unknown = [n for n in names if n not in available_models()]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; registered: {list(available_models())}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    on_cuda = dev.type == "cuda"
    warmup = (CUDA_WARMUP if on_cuda else CPU_WARMUP) if warmup is None else warmup
    passes = (CUDA_PASSES if on_cuda else CPU_PASSES) if passes is None else passes
    if threads is not None:
        torch.set_num_threads(threads)
    n_threads = torch.get_num_threads()
    device_name = torch.cuda.get_device_name(dev) if on_cuda else _cpu_name()
    device_label = f"{dev.type}: {device_name}" + ("" if on_cuda else f", {n_threads} threads")

    jobs: list[_Job] = []
    for name in names:
        cls = get_model(name)
        for setting, (frames, height, width) in _settings_for(cls, published, default_setting):
            cls.check_input(frames, height, width)
            log.info("counting %s at %s %dx%dx%d", name, setting, frames, height, width)
            model = build_model(name, frames, height, width, dev)
            x = make_input(name, frames, height, width, dev)
            try:
                thop, macs, scan = _count_both(model, x)
            except Exception as exc:
                exc.add_note(f"while counting the cost of model {name!r} at {frames}x{height}x{width}")
                raise
            params = count_parameters(model)
            clip_frames = nearest_valid_frames(cls, clip, height, width)
            if clip_frames != frames:
                model = build_model(name, clip_frames, height, width, dev)
                x = make_input(name, clip_frames, height, width, dev)
            row = {
                "row_type": "model", "method": DISPLAY_NAMES.get(name, name), "model": name, "setting": setting,
                "frames": frames, "height": height, "width": width, "channels": x.shape[1],
                "params_m": params / 1e6, "thop_params_m": thop.params / 1e6,
                "thop_macs_m": thop.ops / frames / 1e6, "flop_macs_m": macs / frames / 1e6,
                "scan_macs_m": scan / frames / 1e6, "clip_frames": clip_frames, "warmup": warmup, "passes": passes,
                "device": device_label, "torch_threads": n_threads,
            }  # fmt: skip
            if memory:
                model_cpu_free = on_cuda  # the subprocess needs the GPU memory to itself
                if model_cpu_free:
                    model.cpu()
                    torch.cuda.empty_cache()
                row["peak_memory_mb"], row["memory_method"] = measure_peak_memory(
                    name, clip_frames, height, width, device, n_threads
                )
                if model_cpu_free:
                    model.to(dev)
            else:
                row["peak_memory_mb"], row["memory_method"] = float("nan"), "not measured"
            jobs.append(_Job(row=row, model=model, x=x))

    _time_interleaved(jobs, warmup, passes, dev)
    for job in jobs:
        mean = sum(job.times) / len(job.times)
        job.row["mean_pass_ms"] = mean * 1e3
        job.row["median_pass_ms"] = float(pd.Series(job.times).median()) * 1e3
        job.row["throughput_kfps"] = job.row["clip_frames"] / mean / 1e3
        job.model = job.x = None

    df = pd.DataFrame([job.row for job in jobs], columns=COLUMNS)
    df = pd.concat([df, _ratio_rows(df, target, reference)], ignore_index=True).astype(INT_COLUMNS)
    df.attrs.update(
        {
            "device": device_label, "torch": torch.__version__, "torch_threads": n_threads, "clip": clip,
            "warmup": warmup, "passes": passes, "target": target, "reference": reference,
            "memory_method": "; ".join(sorted(set(df.loc[df.row_type == "model", "memory_method"].dropna()))),
        }
    )  # fmt: skip
    return df


def _time_interleaved(jobs: list[_Job], warmup: int, passes: int, device: torch.device) -> None:
    """Warm up every model, then time pass i of every model before pass i + 1 of any."""
    with torch.no_grad():
        for job in jobs:
            for _ in range(warmup):
                job.model(job.x)
            _sync(device)
        for _ in range(passes):
            for job in jobs:
                _sync(device)
                start = time.perf_counter()
                job.model(job.x)
                _sync(device)
                job.times.append(time.perf_counter() - start)


def _ratio_rows(df: pd.DataFrame, target: str, reference: str) -> pd.DataFrame:
    """target / reference per setting both were measured at, plus the paper's quoted ratios."""
    rows = []
    models = df[df.row_type == "model"]
    label = f"{DISPLAY_NAMES.get(target, target)} / {DISPLAY_NAMES.get(reference, reference)}"
    for setting in models.setting.unique():
        t = models[(models.model == target) & (models.setting == setting)]
        r = models[(models.model == reference) & (models.setting == setting)]
        if t.empty or r.empty:
            continue
        t, r = t.iloc[0], r.iloc[0]
        row = {"row_type": "ratio", "method": f"{label} (measured)", "model": f"{target}/{reference}",
               "setting": setting, "device": t.device, "torch_threads": t.torch_threads,
               "clip_frames": t.clip_frames, "warmup": t.warmup, "passes": t.passes}  # fmt: skip
        for column, _ in RATIO_METRICS:
            row[column] = t[column] / r[column] if r[column] else float("nan")
        rows.append(row)
    if not rows:
        if target in set(models.model) or reference in set(models.model):
            log.warning("ratio section skipped: %s and %s were not both measured at one setting", target, reference)
        return pd.DataFrame(columns=COLUMNS)
    if (target, reference) == PAPER_PAIR:
        rows.append({"row_type": "quoted", "method": f"{label} (paper, quoted)", "model": f"{target}/{reference}",
                     "setting": "paper", **PAPER_RATIOS})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


# ------------------------------------------------------------------------------ tables


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _change(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "–"
    pct = (ratio - 1) * 100
    return f"{'+' if pct >= 0 else '−'}{abs(pct):.0f}% (×{ratio:.3g})"


def cost_markdown(df: pd.DataFrame, meta: Mapping[str, Any] | None = None) -> str:
    """The cost table in the paper's layout, extra columns after, then the ratio section."""
    info = {**df.attrs, **(meta or {})}
    lines = ["# Cost per frame (batch 1)", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "- Params: true trainable parameters; MACs: per frame, torch FlopCounterMode (+ selective scan); "
        "thop columns: what thop reports (fused Mamba kernels and bare nn.Parameters invisible), per frame.",
        "- Throughput: clip frames / mean pass time (batch 1, warm-up then timed passes, synchronized).",
        "- Peak memory in MiB; method per row in cost.csv (memory_method).",
        "",
        "| Method | Params (M) | MACs (M) | Throughput (Kfps) | Peak memory (M) | thop Params (M) | thop MACs (M) "
        "| Setting (T×H×W) | Clip (frames) | Device |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    models = df[df.row_type == "model"]
    for _, r in models.iterrows():
        setting = f"{r.frames}×{r.height}×{r.width} ({r.setting})"
        lines.append(
            f"| {r.method} | {_fmt(r.params_m, 3)} | {_fmt(r.flop_macs_m)} | {_fmt(r.throughput_kfps, 3)} "
            f"| {_fmt(r.peak_memory_mb)} | {_fmt(r.thop_params_m, 3)} | {_fmt(r.thop_macs_m)} | {setting} "
            f"| {r.clip_frames} | {r.device} |"
        )
    ratios = df[df.row_type == "ratio"]
    if not ratios.empty:
        quoted_rows = df[df.row_type == "quoted"]
        quoted = quoted_rows.iloc[0] if not quoted_rows.empty else None
        target, reference = ratios.iloc[0].model.split("/")
        t_name, r_name = DISPLAY_NAMES.get(target, target), DISPLAY_NAMES.get(reference, reference)
        lines += [
            "",
            f"## {t_name} vs {r_name} (measured in the same run)",
            "",
            f"| Setting | Quantity | {t_name} | {r_name} | Ratio, change |" + (" Paper (quoted) |" if quoted is not None else ""),
            "|---|---|---|---|---|" + ("---|" if quoted is not None else ""),
        ]
        for _, ratio in ratios.iterrows():
            t = models[(models.model == target) & (models.setting == ratio.setting)].iloc[0]
            r = models[(models.model == reference) & (models.setting == ratio.setting)].iloc[0]
            for column, label in RATIO_METRICS:
                line = f"| {ratio.setting} | {label} | {_fmt(t[column], 3)} | {_fmt(r[column], 3)} | {_change(ratio[column])} |"
                if quoted is not None:  # the paper's claims are about its published setting
                    paper = quoted[column] if "published" in str(ratio.setting) else float("nan")
                    line += f" {_change(paper).split(' ')[0] if pd.notna(paper) else '–'} |"
                lines.append(line)
        if quoted is not None:
            lines += [
                "",
                "Paper (quoted): the abstract's −88% params, −29% MACs, +191% throughput; per method.md §7 they are "
                "thop counts (0.13 M / 1.07 M params, 57.09 M / 80.90 M MACs per frame) and CUDA throughput "
                "(160-frame clip, 10 warm-ups, 1000 timed passes).",
            ]
    return "\n".join(lines) + "\n"


def write_cost_tables(df: pd.DataFrame, out_dir: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``cost.csv`` (every column, every row) and ``cost.md`` atomically into ``out_dir``."""
    from lqrppg.io import atomic_path, write_text

    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / "cost.csv", out_dir / "cost.md"
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    write_text(md_path, cost_markdown(df, meta))
    return csv_path, md_path
