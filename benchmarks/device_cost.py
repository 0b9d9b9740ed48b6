"""The cost benchmark on a CUDA machine (the authors' protocol), writing cost.csv/cost.md to an out dir.

    python benchmarks/device_cost.py OUT_DIR [--passes N] [--setting T H W]

Every registered model at its published input and at --setting (default 160x128x128, the paper's
cost table), batch 1, 10 warm-ups, then timed passes with a synchronize after each. Runs without
MLflow or Snakemake (only torch, pandas, pydantic), so it works on a bare GPU machine; the table is
the same one `lqrppg bench` writes. Timings are only comparable within one run.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from lqrppg.bench import run_cost_benchmark, write_cost_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--passes", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--setting", type=int, nargs=3, default=(160, 128, 128), metavar=("T", "H", "W"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tic = time.perf_counter()
    df = run_cost_benchmark(None, tuple(args.setting), device=args.device, warmup=args.warmup,
                            passes=args.passes, memory=not args.no_memory)
    logging.info("benchmark took %.0f s", time.perf_counter() - tic)
    from lqrppg.models.mamba import _cuda_kernel

    meta = {"scan": "mamba-ssm kernel" if _cuda_kernel() is not None else "PyTorch chunked scan (no mamba-ssm)",
            "setting": "x".join(map(str, args.setting))}
    write_cost_tables(df, args.out_dir, meta)
    cols = ["method", "setting", "thop_macs_m", "flop_macs_m", "throughput_kfps", "peak_memory_mb"]
    print(df[cols].to_string())


if __name__ == "__main__":
    main()
