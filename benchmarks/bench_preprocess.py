"""Preprocessing throughput, memory and store size against plain decoding of the same video.

Issue 4's targets, for one 60 s, 640x480, 30 fps video:

* preprocess frames/s >= 0.6x plain decoding of the same file, measured in the same run;
* peak memory <= 300 MB per worker, whatever the video length (60 s and 600 s shown);
* store size <= 1/8 of the same chunks stored as float64 by the rPPG-Toolbox.

What runs:

1. A synthetic UBFC-rPPG-layout session is rendered (a face with a known pulse) in the
   synthesizer's default codec (FFV1, lossless, like the raw UBFC-rPPG videos). Rendering
   runs at roughly real time on 2 cores, so the longer video is NOT rendered: it is the
   rendered clip repeated with cv2.VideoWriter, in MJPG (FFV1 writes and decodes at ~40
   frames/s, which would make a 600 s file take half an hour per pass). The clip is also
   re-encoded once in MJPG, so 60 s and 600 s are compared in the same codec.
2. Per video: plain decoding (cv2.VideoCapture.read of every frame, nothing else), then,
   in a fresh interpreter per (video, detection mode), ``preprocess_session`` (decode,
   face detection, crop, resize, streaming to the store, label alignment) with 'first'
   and 'every_n' detection, reporting its frames/s and the process's peak RSS (VmHWM,
   imports included). A fresh process per run keeps each peak its own.
3. The store's bytes on disk against the float64 chunks the toolbox caches for the same
   frames: T x S x S x 3 float64 per chunk plus a float64 label (one normalisation, e.g.
   DiffNormalized; the RhythmFormer-style 160x128x128x3 chunk of 62.9 MB), and 6 channels
   for DiffNormalized+Standardized concatenated (DeepPhys, TS-CAN, EfficientPhys).

Prints one table. Timings share the machine with whatever else runs, so ``--repeat N`` measures
every (video, mode) N times, each time right after its own plain decoding, and reports the median
ratio and its range. The CPU columns (process CPU time per frame of plain decoding and of
preprocessing, all threads) change much less with the load than the wall-clock ratio: on a
machine busy with other work the ratio tends to decode CPU / preprocess CPU, since the
preprocessing's threads no longer find idle cores.

    python benchmarks/bench_preprocess.py                  # 60 s and 600 s at 640x480 (~10-15 min)
    python benchmarks/bench_preprocess.py --quick          # 10 s and 30 s at 320x240 (< 1 min)
    python benchmarks/bench_preprocess.py --cache-dir DIR  # keep the videos in DIR and reuse them
    python benchmarks/bench_preprocess.py --repeat 3       # medians of 3 runs (3x the time)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lqrppg.preprocess.pipeline import PreprocessSettings
from lqrppg.synth import synthesize_dataset
from lqrppg.synth.spec import SynthDatasetSpec

log = logging.getLogger("bench_preprocess")

FPS = 30.0
TARGET_RATIO = 0.6
TARGET_RSS_MB = 300.0
TARGET_STORE_FRACTION = 1 / 8


@dataclass(frozen=True)
class Video:
    """One benchmark session folder in the UBFC-rPPG layout (``<raw>/subject1/vid.avi``)."""

    raw: Path
    seconds: float
    codec: str
    note: str

    @property
    def path(self) -> Path:
        return self.raw / "subject1" / "vid.avi"


def render_clip(root: Path, seconds: float, width: int, height: int) -> Video:
    """Render one synthetic session (or reuse it from a previous run in the same folder)."""
    raw = root / f"clip{seconds:g}s-{width}x{height}"
    video = Video(raw, seconds, "FFV1", "rendered by lqrppg.synth")
    if video.path.is_file():
        log.info("reusing %s", video.path)
        return video
    spec = SynthDatasetSpec(layout="ubfc-rppg", n_subjects=1, duration_s=seconds, frame_width=width,
                            frame_height=height, fps=FPS)
    started = time.perf_counter()
    synthesize_dataset(spec, raw, root / f"truth{seconds:g}s-{width}x{height}", seed=0)
    log.info("rendered %.0f s of video in %.0f s", seconds, time.perf_counter() - started)
    return video


def repeat_clip(clip: Video, repeats: int, codec: str = "MJPG") -> Video:
    """``clip`` played ``repeats`` times into a new ``codec`` video, with its label tiled to match.

    The source is decoded again for each repeat rather than held in memory (60 s of
    640x480 frames are 1.7 GB).
    """
    seconds = clip.seconds * repeats
    raw = clip.raw.with_name(f"{clip.raw.name}-x{repeats}-{codec}")
    note = f"the {clip.seconds:g} s {clip.codec} clip x{repeats}" if repeats > 1 else f"the {clip.codec} clip"
    note += f", written by cv2.VideoWriter in {codec}"
    video = Video(raw, seconds, codec, note)
    if video.path.is_file():
        log.info("reusing %s", video.path)
        return video
    video.path.parent.mkdir(parents=True, exist_ok=True)
    partial = video.path.with_suffix(".part.avi")
    started = time.perf_counter()
    writer = None
    try:
        for _ in range(repeats):
            cap = cv2.VideoCapture(str(clip.path))
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if writer is None:
                    size = (bgr.shape[1], bgr.shape[0])
                    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*codec), FPS, size, True)
                    if not writer.isOpened():
                        raise RuntimeError(f"OpenCV cannot write {codec} video")
                writer.write(bgr)
            cap.release()
    finally:
        if writer is not None:
            writer.release()
    lines = (clip.raw / "subject1" / "ground_truth.txt").read_text().split("\n")
    ppg, hr = (np.array(line.split(), dtype=float) for line in lines[:2])
    n = ppg.size * repeats
    tiled = [np.tile(ppg, repeats), np.tile(hr, repeats), np.arange(n) / FPS]
    (raw / "subject1" / "ground_truth.txt").write_text(
        "".join(" ".join(f"{v:.7e}" for v in line) + "\n" for line in tiled)
    )
    partial.rename(video.path)
    log.info("wrote %s (%s) in %.0f s", video.path, note, time.perf_counter() - started)
    return video


def decode_fps(path: Path) -> tuple[float, int, float]:
    """Frames/s of plain decoding, the floor any preprocessing is compared with; frames; CPU ms a frame."""
    cap = cv2.VideoCapture(str(path))
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while cap.read()[0]:
        n += 1
    cap.release()
    return n / (time.perf_counter() - start), n, (time.process_time() - cpu) / max(n, 1) * 1e3


_CHILD = """
import json, sys, time
from pathlib import Path
from lqrppg.datasets import get_reader
from lqrppg.preprocess.pipeline import PreprocessSettings, make_detector, preprocess_session

def peak_rss_mb():
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child
    # of a big parent (this benchmark after rendering video) would report the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

raw, out, settings = Path(sys.argv[1]), Path(sys.argv[2]), PreprocessSettings(**json.loads(sys.argv[3]))
reader = get_reader("ubfc-rppg")(raw, fps=30.0)
(session,) = reader.list_sessions()
make_detector(settings)  # load the cascade before the clock starts
out.mkdir(parents=True, exist_ok=True)
start, cpu = time.perf_counter(), time.process_time()
row = preprocess_session(reader, session, settings, out)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
store_bytes = sum(p.stat().st_size for p in out.rglob("*.npy"))
print(json.dumps({"frames": row["n_frames"], "fps": row["n_frames"] / seconds, "store_bytes": store_bytes,
                  "n_detections": row["n_detections"], "misses": row["n_detection_misses"],
                  "cpu_ms": cpu / row["n_frames"] * 1e3, "peak_rss_mb": peak_rss_mb()}))
"""


def preprocess_in_child(video: Video, settings: PreprocessSettings, out: Path) -> dict:
    """Preprocess ``video`` in a fresh interpreter; its frames/s, peak RSS and store bytes."""
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(video.raw), str(out), settings.model_dump_json()],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"preprocessing {video.path} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def float64_bytes(frames: int, settings: PreprocessSettings, channels: int) -> int:
    """Bytes of the toolbox's float64 cache of the same chunks: frames and label, per chunk."""
    n_chunks = frames // settings.chunk_length
    per_frame = settings.size * settings.size * channels * 8 + 8
    return n_chunks * settings.chunk_length * per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s and 30 s at 320x240 (under a minute)")
    parser.add_argument("--cache-dir", type=Path, help="keep the rendered videos here and reuse them")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="measure every video and mode N times and report medians (default 1)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("lqrppg", "lqrppg.synth"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    (seconds, repeats), (width, height) = ((10.0, 3), (320, 240)) if args.quick else ((60.0, 10), (640, 480))
    size = 32 if args.quick else 128
    modes = {
        "first": PreprocessSettings(size=size, chunk_length=160, detection="first"),
        "every_n": PreprocessSettings(size=size, chunk_length=160, detection="every_n", detect_every=30),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        root = args.cache_dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        clip = render_clip(root, seconds, width, height)
        # The long video repeats the MJPG copy: decoding it is ~20x faster than the FFV1 clip.
        same_codec = repeat_clip(clip, 1)
        videos = [clip, same_codec, repeat_clip(same_codec, repeats)]
        rows = []
        for video in videos:
            # Per repeat: plain decoding, then each mode, so every ratio compares runs made moments apart.
            runs: dict[str, list[tuple[float, float, dict]]] = {mode: [] for mode in modes}
            for k in range(args.repeat):
                floor, n_decoded, decode_cpu = decode_fps(video.path)
                log.info("%s: %d frames, plain decoding %.0f frames/s%s", video.path, n_decoded, floor,
                         f" (run {k + 1} of {args.repeat})" if args.repeat > 1 else "")
                for mode, settings in modes.items():
                    out = Path(tmp) / "stores" / f"{video.raw.name}-{mode}-{k}"
                    r = preprocess_in_child(video, settings, out)
                    runs[mode].append((floor, decode_cpu, r))
                    log.info("  %s: %.0f frames/s (%.2fx), peak %.0f MB", mode, r["fps"], r["fps"] / floor,
                             r["peak_rss_mb"])
            for mode, settings in modes.items():
                rows.append(summarize(runs[mode], video, mode, settings, width, height))
    print_table(rows, size)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def summarize(runs: list[tuple[float, float, dict]], video: Video, mode: str, settings: PreprocessSettings,
              width: int, height: int) -> dict:
    """One table row from the repeats of a (video, mode): medians, the ratio's range, the highest peak."""
    ratios = [r["fps"] / floor for floor, _, r in runs]
    last = runs[-1][2]
    return {
        "video": f"{video.seconds:g} s {width}x{height}", "codec": video.codec, "source": video.note,
        "frames": last["frames"], "detection": mode, "detections": last["n_detections"], "repeats": len(runs),
        "decode_fps": statistics.median(floor for floor, _, _ in runs),
        "preprocess_fps": statistics.median(r["fps"] for _, _, r in runs),
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "decode_cpu_ms": statistics.median(cpu for _, cpu, _ in runs),
        "preprocess_cpu_ms": statistics.median(r["cpu_ms"] for _, _, r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for _, _, r in runs), "store_bytes": last["store_bytes"],
        "float64_3ch_bytes": float64_bytes(last["frames"], settings, 3),
        "float64_6ch_bytes": float64_bytes(last["frames"], settings, 6),
    }  # fmt: skip


def print_table(rows: list[dict], size: int) -> None:
    header = (f"{'video':<15}{'codec':>6}{'frames':>7}{'detection':>10}{'decode f/s':>11}{'prep f/s':>9}"
              f"{'ratio':>7}{'range':>11}{'cpu ms/f':>12}{'peak MB':>8}{'store MB':>9}{'f64x3 MB':>9}"
              f"{'store/f64x3':>12}{'store/f64x6':>12}")
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        spread = f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}" if r["repeats"] > 1 else "-"
        cpu = f"{r['decode_cpu_ms']:.2f}/{r['preprocess_cpu_ms']:.2f}"
        print(f"{r['video']:<15}{r['codec']:>6}{r['frames']:>7}{r['detection']:>10}{r['decode_fps']:>11.1f}"
              f"{r['preprocess_fps']:>9.1f}{r['ratio']:>7.2f}{spread:>11}{cpu:>12}{r['peak_rss_mb']:>8.0f}"
              f"{r['store_bytes'] / 1e6:>9.1f}{r['float64_3ch_bytes'] / 1e6:>9.1f}"
              f"{r['store_bytes'] / r['float64_3ch_bytes']:>12.4f}{r['store_bytes'] / r['float64_6ch_bytes']:>12.4f}")
    print()
    for video in dict.fromkeys(r["video"] + " " + r["codec"] for r in rows):
        source = next(r["source"] for r in rows if r["video"] + " " + r["codec"] == video)
        print(f"{video}: {source}")
    repeats = rows[0]["repeats"] if rows else 1
    print(f"\nratio: median of {repeats} run(s), each against the plain decoding measured just before it; range: "
          "lowest-highest; cpu ms/f: process CPU time a frame, plain decoding / preprocessing (all threads)")
    print(f"targets: ratio >= {TARGET_RATIO} (60 s video); peak RSS <= {TARGET_RSS_MB:.0f} MB at every length; "
          f"store <= {TARGET_STORE_FRACTION:.3f} of float64 (crops {size}x{size}, chunks of 160 frames; f64x3: "
          "T x S x S x 3 float64 + float64 label per chunk, one normalisation; f64x6: DiffNormalized+Standardized)")
    for r in rows:
        fraction = r["store_bytes"] / r["float64_3ch_bytes"]
        checks = [f"ratio {'ok' if r['ratio'] >= TARGET_RATIO else 'MISSED'}",
                  f"peak {'ok' if r['peak_rss_mb'] <= TARGET_RSS_MB else 'MISSED'}",
                  f"store/f64x3 {'ok' if fraction <= TARGET_STORE_FRACTION else 'MISSED'}",
                  f"store/f64x6 {'ok' if fraction / 2 <= TARGET_STORE_FRACTION else 'MISSED'}"]
        print(f"  {r['video']} {r['codec']} {r['detection']}: {', '.join(checks)}")
    by_mode: dict[str, list[float]] = {}
    for r in rows:
        if r["codec"] == "MJPG":
            by_mode.setdefault(r["detection"], []).append(r["peak_rss_mb"])
    for mode, rss in by_mode.items():
        print(f"peak memory, {mode}: {rss[-1] / rss[0]:.2f}x from the shortest to the longest MJPG video")


if __name__ == "__main__":
    main()
