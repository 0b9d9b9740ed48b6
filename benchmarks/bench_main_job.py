"""Wall time of the main job (`snakemake --cores 8 --resources gpu=1`) from a clean start.

Copies the workflow and the default config into a fresh folder (nothing cached: no data, no
results, no .snakemake), runs the main job there, and prints the total wall time against the
targets (issue 2: the synthetic unsupervised part <= 10 min; issue 3: the whole default DAG
<= 15 min on a 2-core CPU), then the time per rule, summed over its jobs, parsed from
Snakemake's own log. Run it with nothing else on the machine: the CPU is shared.

    python benchmarks/bench_main_job.py                 # the default config
    python benchmarks/bench_main_job.py --keep DIR      # keep the run folder for inspection
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
DONE = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
TARGETS_MIN = {"unsupervised table (issue 2)": 10.0, "whole default DAG (issue 3)": 15.0}


def parse_log(text: str) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-rule job durations (s) and, per output table, when it was finished (s after the start)."""
    now = first = None
    started: dict[str, datetime] = {}
    pending_rule = None
    durations: dict[str, list[float]] = defaultdict(list)
    finished_rules: dict[str, float] = {}
    for line in text.splitlines():
        if m := STAMP.match(line.strip()):
            now = datetime.strptime(m[1], "%a %b %d %H:%M:%S %Y")
            first = first or now
        elif m := START.match(line.strip()):
            pending_rule = m[1]
        elif (m := JOBID.match(line)) and pending_rule and now:
            started[m[1]] = now
            pending_rule = None
        elif (m := DONE.match(line.strip())) and now:
            if m[1] in started:
                durations[m[2]].append((now - started[m[1]]).total_seconds())
            finished_rules[m[2]] = (now - first).total_seconds()
    return durations, finished_rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temp folder)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="lqrppg-main-job-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    for folder in ("workflow", "config"):
        shutil.copytree(ROOT / folder, work / folder, dirs_exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "8", "--resources", "gpu=1"]
    tic = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"the main job failed (exit {proc.returncode}) in {work}:\n{log[-4000:]}")
    durations, finished = parse_log(log)

    print(f"main job: {' '.join(cmd[2:])}  in {work}")
    print(f"{'milestone':<34}{'minutes':>9}{'target':>9}  ok")
    milestones = {"unsupervised table (issue 2)": finished.get("table_unsupervised", float("nan")),
                  "whole default DAG (issue 3)": wall}
    for name, seconds in milestones.items():
        target = TARGETS_MIN[name]
        print(f"{name:<34}{seconds / 60:>9.2f}{target:>9.1f}  {'yes' if seconds / 60 <= target else 'NO'}")
    print(f"\n{'rule':<22}{'jobs':>5}{'sum s':>9}{'max s':>8}{'share':>7}")
    total = sum(sum(v) for v in durations.values()) or 1.0
    for rule, times in sorted(durations.items(), key=lambda kv: -sum(kv[1])):
        print(f"{rule:<22}{len(times):>5}{sum(times):>9.0f}{max(times):>8.0f}{sum(times) / total:>7.0%}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
