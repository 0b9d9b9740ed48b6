"""Bi-Mamba scan and C2F training-step timings on this CPU.

    python benchmarks/bench_mamba.py            # full run
    python benchmarks/bench_mamba.py --quick    # fewer repeats, skips the 128x128 step

Table 1: one BiMambaBlock (d_state 48) forward + backward, the chunked parallel scan
against the per-step loop (selective_scan_reference), same weights, same inputs, same
run: d_model 64 (a C2F stage) at L = 160 and 640, and d_model 1 (the LQ encoder).
Table 2: one LQC2F training step (forward, backward, AdamW step).
Every figure is the median of N timed runs after warm-up runs, with time.perf_counter.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from lqrppg.models import count_parameters
from lqrppg.models.lqc2f import LQC2F
from lqrppg.models.mamba import BiMambaBlock, auto_chunk, selective_scan, selective_scan_reference


def median_seconds(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_block(d_model: int, batch: int, length: int, chunk: int | None, warmup: int, repeats: int) -> float:
    """Median forward+backward seconds of one BiMambaBlock; chunk None = the per-step loop."""
    torch.manual_seed(0)
    block = BiMambaBlock(d_model, d_state=48, d_conv=4, expand=2)
    if chunk is None:
        block.mamba.scan_fn = selective_scan_reference
    else:
        block.mamba.scan_fn = lambda *a, **kw: selective_scan(*a, **kw, chunk=chunk)
    x = torch.randn(batch, length, d_model, requires_grad=True)

    def step() -> None:
        block.zero_grad(set_to_none=True)
        block(x).square().mean().backward()

    return median_seconds(step, warmup, repeats)


def bench_train_step(batch: int, frames: int, size: int, warmup: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = LQC2F(frames=frames, height=size, width=size).train()
    model.set_codebooks([torch.linspace(-2, 2, 2**n) for n in range(1, 6)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-5)
    clip = torch.randn(batch, 3, frames, size, size)
    targets = [torch.randint(0, 2**n, (batch, frames)) for n in range(1, 6)]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(clip)
        loss = sum(
            torch.nn.functional.cross_entropy(logits.flatten(0, 1), k.flatten())
            for logits, k in zip(out.logits, targets, strict=True)
        )
        loss.backward()
        optimizer.step()

    return median_seconds(step, warmup, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats; skip the 128x128 training step")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--chunks", type=int, nargs="+", help="scan chunk sizes to time (default: auto_chunk's)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    warmup, repeats = (1, 3) if args.quick else (2, 7)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs visible, torch threads {torch.get_num_threads()}, "
          f"median of {repeats} after {warmup} warm-up")  # fmt: skip
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load}  (other jobs on a shared machine inflate wall times)")

    print("\nBiMambaBlock forward+backward (d_state 48, expand 2): chunked scan vs per-step loop")
    print(f"{'d_model':>7} {'B':>3} {'L':>5} {'chunk':>5} {'chunked ms':>11} {'per-step ms':>12} {'speed-up':>9}")
    # d_model 64: a C2F stage; d_model 1: the LQ encoder (method.md §2.2), batch 16.
    for d_model, batch, length in ((64, 4, 160), (64, 4, 640), (1, 16, 160)):
        naive = time_block(d_model, batch, length, None, warmup, repeats)
        for chunk in args.chunks or [auto_chunk(batch, 2 * d_model, 48, torch.device("cpu"))]:
            chunked = time_block(d_model, batch, length, chunk, warmup, repeats)
            print(f"{d_model:>7} {batch:>3} {length:>5} {chunk:>5} {chunked * 1e3:>11.1f} {naive * 1e3:>12.1f} "
                  f"{naive / chunked:>8.1f}x")  # fmt: skip

    params = count_parameters(LQC2F(160, 128, 128))
    print(f"\nLQC2F training step (forward + backward + AdamW, B=2, T=160; {params:,} parameters)")
    print(f"{'H x W':>9} {'s/step':>8} {'clips/s':>8}")
    for size in (64,) if args.quick else (64, 128):
        seconds = bench_train_step(2, 160, size, warmup=1, repeats=max(3, repeats // 2))
        print(f"{size:>4}x{size:<4} {seconds:>8.2f} {2 / seconds:>8.2f}")


if __name__ == "__main__":
    main()
