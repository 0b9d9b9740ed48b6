"""Preprocessing throughput and memory against plain decoding of the same video.

Writes one synthetic UBFC-rPPG-layout session per duration (a real face video with a
known pulse, lossless AVI), then in the same run measures:

* plain decode: cv2.VideoCapture reading every frame and doing nothing else (the floor);
* preprocess: ``preprocess_session`` (decode, Haar detection, crop, resize, streaming to
  the chunk store, label alignment) with 'first' and 'every_n' detection;
* peak memory (max RSS) of a fresh process preprocessing each duration, to show it stays
  flat as the video gets longer.

Prints a table; the targets are ratios measured in the same run (issue 2: preprocess
>= 0.5x decode speed; memory flat in video length).

    python benchmarks/bench_preprocess.py            # 60 s and 240 s at 640x480
    python benchmarks/bench_preprocess.py --quick    # 20 s and 60 s at 320x240
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from lqrppg.datasets import get_reader
from lqrppg.preprocess.pipeline import PreprocessSettings, preprocess_session
from lqrppg.synth import synthesize_dataset
from lqrppg.synth.spec import SynthDatasetSpec


def make_video(root: Path, duration_s: float, width: int, height: int) -> Path:
    spec = SynthDatasetSpec(layout="ubfc-rppg", n_subjects=1, duration_s=duration_s,
                            frame_width=width, frame_height=height)
    synthesize_dataset(spec, root / "raw", root / "truth", seed=0)
    return root / "raw"


def decode_fps(video: Path) -> float:
    cap = cv2.VideoCapture(str(video))
    n, start = 0, time.perf_counter()
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n / (time.perf_counter() - start)


def preprocess_fps(raw: Path, settings: PreprocessSettings, out: Path) -> tuple[float, int]:
    reader = get_reader("ubfc-rppg")(raw, fps=30.0)
    (session,) = reader.list_sessions()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    row = preprocess_session(reader, session, settings, out)
    return row["n_frames"] / (time.perf_counter() - start), row["n_frames"]


def peak_rss_mb(raw: Path, settings: PreprocessSettings, out: Path) -> float:
    """Max RSS of a fresh interpreter that preprocesses the session (includes imports)."""
    code = (
        "import resource, sys, json; from pathlib import Path\n"
        "from lqrppg.datasets import get_reader\n"
        "from lqrppg.preprocess.pipeline import PreprocessSettings, preprocess_session\n"
        f"r = get_reader('ubfc-rppg')(Path({str(raw)!r}), fps=30.0)\n"
        f"s = PreprocessSettings(**json.loads({settings.model_dump_json()!r}))\n"
        f"Path({str(out)!r}).mkdir(parents=True, exist_ok=True)\n"
        f"preprocess_session(r, r.list_sessions()[0], s, Path({str(out)!r}))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short videos at 320x240")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    durations, (w, h) = ((20.0, 60.0), (320, 240)) if args.quick else ((60.0, 240.0), (640, 480))
    modes = {
        "first": PreprocessSettings(size=128, detection="first"),
        "every_n": PreprocessSettings(size=128, detection="every_n", detect_every=30),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for duration in durations:
            raw = make_video(Path(tmp) / f"d{int(duration)}", duration, w, h)
            video = next(raw.glob("*/vid.avi"))
            floor = decode_fps(video)
            for mode, settings in modes.items():
                fps, n = preprocess_fps(raw, settings, Path(tmp) / f"out-{duration}-{mode}")
                rss = peak_rss_mb(raw, settings, Path(tmp) / f"rss-{duration}-{mode}")
                rows.append({"video": f"{duration:.0f} s {w}x{h}", "frames": n, "detection": mode,
                             "decode_fps": round(floor, 1), "preprocess_fps": round(fps, 1),
                             "ratio": round(fps / floor, 3), "peak_rss_mb": round(rss, 1)})
    header = f"{'video':<16}{'frames':>8}{'detection':>11}{'decode f/s':>12}{'prep f/s':>10}{'ratio':>8}{'peak MB':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['video']:<16}{r['frames']:>8}{r['detection']:>11}{r['decode_fps']:>12}{r['preprocess_fps']:>10}"
              f"{r['ratio']:>8}{r['peak_rss_mb']:>9}")
    by_mode = {}
    for r in rows:
        by_mode.setdefault(r["detection"], []).append(r["peak_rss_mb"])
    for mode, rss in by_mode.items():
        print(f"memory growth {mode}: {rss[-1] / rss[0]:.2f}x for {durations[-1] / durations[0]:.0f}x longer video")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
