"""The synthetic datasets on disk: exact layouts, truth, determinism, faces, and the pulse in the pixels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy import signal

from lqrppg.synth import LabelDistortion, SynthDatasetSpec, default_datasets, synthesize_dataset
from lqrppg.synth.face import build_subject, load_portrait, sample_look
from lqrppg.synth.layouts import write_video
from lqrppg.synth.render import face_boxes, prefetch, render_frames, simulate_illumination, simulate_motion

SMALL = {"frame_width": 160, "frame_height": 120}
CALM = SynthDatasetSpec(layout="ubfc-rppg", n_subjects=2, duration_s=12.0, motion=0.1, lighting_change=0.02,
                        camera_noise_std=0.5, **SMALL)
MOTION = SynthDatasetSpec(layout="pure", n_subjects=2, tasks_per_subject=2, duration_s=5.0, motion=1.0,
                          lighting_change=0.12, camera_noise_std=3.0, skin_tone=(-1.0, 0.0), **SMALL)
SCI = re.compile(r"^-?\d\.\d{7}e[+-]\d{2}$")
CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def _make(tmp: Path, name: str, spec: SynthDatasetSpec, seed: int) -> tuple[Path, Path]:
    raw, truth = tmp / "raw" / name, tmp / "truth" / name
    synthesize_dataset(spec, raw, truth, seed=seed)
    return raw, truth


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="module")
def calm(out):
    return _make(out, "calm", CALM, 7)


@pytest.fixture(scope="module")
def motion(out):
    return _make(out, "motion", MOTION, 7)


def _video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _png_frames(folder: Path) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("Image*.png"))]


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return ix * iy / (aw * ah + bw * bh - ix * iy)


def _face_found(frame: np.ndarray, box) -> bool:
    """Haar finds the true face with OpenCV's defaults and with the stricter minNeighbors=5, minSize=30."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    for settings in ({"minNeighbors": 3}, {"minNeighbors": 5, "minSize": (30, 30)}):
        found = CASCADE.detectMultiScale(gray, scaleFactor=1.1, **settings)
        if not any(_iou(d, box) > 0.3 for d in found):
            return False
    return True


def test_ubfc_layout_is_exact(calm):
    raw, truth = calm
    assert sorted(p.name for p in raw.iterdir()) == ["subject1", "subject2"]
    for folder in raw.iterdir():
        assert sorted(p.name for p in folder.iterdir()) == ["ground_truth.txt", "vid.avi"]
        lines = (folder / "ground_truth.txt").read_text().splitlines()
        assert len(lines) == 3
        ppg, hr, times = (line.split() for line in lines)
        n = len(_video_frames(folder / "vid.avi"))
        assert n == CALM.n_frames == len(ppg) == len(hr) == len(times)
        assert all(SCI.match(v) for v in ppg + hr + times)
        assert np.allclose(np.array(times, float), np.arange(n) / CALM.fps)
        hr_values = np.array(hr, float)
        assert np.array_equal(hr_values, np.round(hr_values)) and 40 <= hr_values.min() <= hr_values.max() <= 180
        ppg_values = np.array(ppg, float)
        assert 0.0 <= ppg_values.min() and ppg_values.max() <= 1.0 and ppg_values.std() > 0.05


def test_pure_layout_is_exact(motion):
    raw, _ = motion
    sessions = ["01-01", "01-02", "02-01", "02-02"]
    assert sorted(p.name for p in raw.iterdir()) == sessions
    for name in sessions:
        assert sorted(p.name for p in (raw / name).iterdir()) == [name, f"{name}.json"]
        pngs = sorted(p.name for p in (raw / name / name).iterdir())
        assert len(pngs) == MOTION.n_frames and all(re.fullmatch(r"Image\d{19}\.png", p) for p in pngs)
        doc = json.loads((raw / name / f"{name}.json").read_text())
        assert set(doc) == {"/FullPackage", "/Image"}
        image_ns = np.array([entry["Timestamp"] for entry in doc["/Image"]])
        assert all(entry.keys() == {"Timestamp"} for entry in doc["/Image"])
        assert [f"Image{ns}.png" for ns in image_ns] == pngs
        assert np.diff(image_ns) / 1e9 == pytest.approx(1 / MOTION.fps, abs=1e-6)
        packets = doc["/FullPackage"]
        assert all(p.keys() == {"Timestamp", "Value"} for p in packets)
        values = [p["Value"] for p in packets]
        assert all(v.keys() == {"waveform", "pulseRate", "o2saturation", "signalStrength"} for v in values)
        assert all(isinstance(x, int) for v in values for x in v.values())
        label_ns = np.array([p["Timestamp"] for p in packets])
        assert np.diff(label_ns) / 1e9 == pytest.approx(1 / 60, abs=1e-6)
        assert label_ns[0] <= image_ns[0] and label_ns[-1] >= image_ns[-1], "60 Hz label spans the video"
        assert label_ns[-1] - image_ns[-1] < 1e9 / 60
        waveform = np.array([v["waveform"] for v in values])
        assert 0 <= waveform.min() and waveform.max() <= 127 and waveform.std() > 5


def test_truth_matches_sessions(calm, motion):
    for (raw, truth), spec in ((calm, CALM), (motion, MOTION)):
        table = pd.read_parquet(truth / "sessions.parquet")
        assert {"session", "subject", "task", "mean_hr_bpm", "fps", "n_frames"} <= set(table.columns)
        assert sorted(table.session) == sorted(p.name for p in raw.iterdir())
        expected = [f"{s}.parquet" for s in table.session] + ["sessions.parquet"]
        assert sorted(p.name for p in truth.iterdir()) == sorted(expected)
        for row in table.itertuples():
            frames = pd.read_parquet(truth / f"{row.session}.parquet")
            assert list(frames.columns[:4]) == ["frame", "time_s", "bvp_true", "hr_true_bpm"]
            assert len(frames) == row.n_frames == spec.n_frames and row.fps == spec.fps
            assert frames.hr_true_bpm.mean() == pytest.approx(row.mean_hr_bpm)
            assert spec.hr_range_bpm[0] - 10 < row.mean_hr_bpm < spec.hr_range_bpm[1] + 10
    pure = pd.read_parquet(motion[1] / "sessions.parquet").set_index("session")
    assert pure.loc["02-01", "subject"] == "02" and pure.loc["02-01", "task"] == "01"
    ubfc = pd.read_parquet(calm[1] / "sessions.parquet").set_index("session")
    assert ubfc.loc["subject2", "subject"] == "subject2" and ubfc.loc["subject2", "task"] == ""


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    short = {"n_subjects": 1, "duration_s": 3.0}
    calm, pure = CALM.model_copy(update=short), MOTION.model_copy(update={**short, "tasks_per_subject": 1})
    first, again, other = (_make(tmp_path, f"calm-{i}", calm, seed)[0] for i, seed in enumerate((7, 7, 8)))
    gt = "subject1/ground_truth.txt"
    assert (first / gt).read_bytes() == (again / gt).read_bytes()
    assert (first / gt).read_bytes() != (other / gt).read_bytes()
    videos = [_video_frames(root / "subject1" / "vid.avi") for root in (first, again, other)]
    assert all(np.array_equal(a, b) for a, b in zip(videos[0], videos[1], strict=True))
    assert not np.array_equal(videos[0][0], videos[2][0])

    first, again, other = (_make(tmp_path, f"pure-{i}", pure, seed)[0] for i, seed in enumerate((7, 7, 8)))
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert (first / "01-01/01-01.json").read_bytes() != (other / "01-01/01-01.json").read_bytes()


def test_label_sweep_keeps_video_and_truth(tmp_path):
    short = {"n_subjects": 1, "duration_s": 3.0}
    noisier = {"label": LabelDistortion(level=2.0)}
    for name, spec in (("calm", CALM.model_copy(update=short)), ("pure", MOTION.model_copy(update=short))):
        raw_a, truth_a = _make(tmp_path, f"{name}-a", spec, 7)
        raw_b, truth_b = _make(tmp_path, f"{name}-b", spec.model_copy(update=noisier), 7)
        table_a, table_b = (pd.read_parquet(t / "sessions.parquet") for t in (truth_a, truth_b))
        assert table_a.drop(columns="label_delay_s").equals(table_b.drop(columns="label_delay_s"))
        session = table_a.session[0]
        assert (truth_a / f"{session}.parquet").read_bytes() == (truth_b / f"{session}.parquet").read_bytes()
        if spec.layout == "ubfc-rppg":
            video_a, video_b = (_video_frames(raw / session / "vid.avi") for raw in (raw_a, raw_b))
            assert all(np.array_equal(a, b) for a, b in zip(video_a, video_b, strict=True))
            label_a, label_b = ((raw / session / "ground_truth.txt").read_text().splitlines() for raw in (raw_a, raw_b))
            assert label_a[0] != label_b[0] and label_a[1:] == label_b[1:]
        else:
            frames = sorted(p.name for p in (raw_a / session / session).iterdir())
            assert frames == sorted(p.name for p in (raw_b / session / session).iterdir())
            assert all(
                (raw_a / session / session / f).read_bytes() == (raw_b / session / session / f).read_bytes()
                for f in frames
            )
            doc_a, doc_b = (json.loads((raw / session / f"{session}.json").read_text()) for raw in (raw_a, raw_b))
            assert doc_a["/Image"] == doc_b["/Image"]
            packets_a, packets_b = doc_a["/FullPackage"], doc_b["/FullPackage"]
            assert [p["Timestamp"] for p in packets_a] == [p["Timestamp"] for p in packets_b]
            assert [p["Value"]["pulseRate"] for p in packets_a] == [p["Value"]["pulseRate"] for p in packets_b]
            assert [p["Value"]["waveform"] for p in packets_a] != [p["Value"]["waveform"] for p in packets_b]


def test_rerun_replaces_output_atomically(out):
    spec = CALM.model_copy(update={"n_subjects": 1, "duration_s": 1.0})
    raw, truth = _make(out, "rerun", spec, 1)
    (raw / "stale.txt").write_text("left over")
    _make(out, "rerun", spec, 1)
    assert sorted(p.name for p in raw.iterdir()) == ["subject1"]
    assert not [p for p in raw.parent.iterdir() if p.name.startswith(".")], "no temporary folders left"


def test_pulse_is_in_the_skin_pixels_only(calm):
    raw, truth = calm
    table = pd.read_parquet(truth / "sessions.parquet")
    for row in table.itertuples():
        frames = np.array(_video_frames(raw / row.session / "vid.avi"), np.float64)
        gt = pd.read_parquet(truth / f"{row.session}.parquet")
        x, y, w, h = gt[["face_x", "face_y", "face_w", "face_h"]].median().to_numpy()
        rows, cols = slice(int(y + 0.55 * h), int(y + 0.75 * h)), slice(int(x + 0.2 * w), int(x + 0.8 * w))
        cheeks = frames[:, rows, cols, 1].mean(axis=(1, 2))
        corner = frames[:, :12, :12, 1].mean(axis=(1, 2))
        sos = signal.butter(2, [0.7, 3.0], btype="bandpass", fs=row.fps, output="sos")
        green, background = (signal.sosfiltfilt(sos, s) for s in (cheeks, corner))
        truth_bp = signal.sosfiltfilt(sos, gt.bvp_true.to_numpy())
        assert np.corrcoef(green, truth_bp)[0, 1] > 0.8
        assert abs(np.corrcoef(background, truth_bp)[0, 1]) < 0.3
        n = 1 << 16
        freqs = np.fft.rfftfreq(n, 1 / row.fps) * 60
        power = np.abs(np.fft.rfft(green * np.hanning(len(green)), n)) ** 2
        band = (freqs > 40) & (freqs < 180)
        assert abs(freqs[band][np.argmax(power[band])] - row.mean_hr_bpm) < 3.0


@pytest.mark.parametrize("name", ["synth-calm", "synth-motion"])
def test_haar_finds_the_face_in_every_sampled_frame_at_default_size(tmp_path, name):
    preset = default_datasets()[name]
    spec = preset.model_copy(update={"n_subjects": 2, "duration_s": 2.0})
    raw, truth = _make(tmp_path, name, spec, 11)
    for row in pd.read_parquet(truth / "sessions.parquet").itertuples():
        if spec.layout == "ubfc-rppg":
            frames = _video_frames(raw / row.session / "vid.avi")
        else:
            frames = _png_frames(raw / row.session / row.session)
        assert frames[0].shape == (preset.frame_height, preset.frame_width, 3)
        boxes = pd.read_parquet(truth / f"{row.session}.parquet")[["face_x", "face_y", "face_w", "face_h"]].to_numpy()
        for k in range(0, len(frames), 6):
            assert _face_found(frames[k], boxes[k]), f"{name} {row.session} frame {k}: no face"


@pytest.mark.parametrize("tone", [-1.0, 1.0])
@pytest.mark.parametrize(("width", "height"), [(320, 240), (160, 120)])
def test_haar_finds_extreme_skin_tones_in_motion(tone, width, height):
    n = 120
    rng = np.random.default_rng(int(tone * 10) + width)
    look = sample_look(rng, (tone, tone), SynthDatasetSpec(layout="pure").face_size)
    layers = build_subject(look, width, height, 0.01, (0.33, 0.77, 0.53))
    t = np.arange(n) / 30.0
    motion = simulate_motion(30.0, 1.5, 1.0, np.sin(t), np.sin(7 * t), layers, width, height, rng)
    light = simulate_illumination(n, 30.0, 0.15, 0.02, 7.0, rng)
    boxes = face_boxes(layers, motion)
    frames = list(render_frames(layers, np.sin(7 * t), motion, light, 0.06, 4.0, rng))
    for k in range(0, n, 8):
        assert _face_found(frames[k], boxes[k]), f"tone {tone} frame {k}: no face"


def test_default_codec_is_lossless(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    spec = SynthDatasetSpec(layout="ubfc-rppg", frame_width=64, frame_height=48)
    write_video(tmp_path / "v.avi", frames, len(frames), spec)
    assert all(np.array_equal(a, b) for a, b in zip(frames, _video_frames(tmp_path / "v.avi"), strict=True))


def test_portrait_masks_are_sensible():
    portrait = load_portrait()
    skin, alpha = portrait.skin > 0.5, portrait.alpha > 0.5
    assert 3000 < skin.sum() < 9000 and (skin & ~alpha).sum() == 0
    x, y, w, h = portrait.face_box
    grown = skin[y - h // 5 : y + h + h // 5, x - w // 5 : x + w + w // 5]
    assert grown.sum() == skin.sum(), "skin is the face (the Haar box grown by 20% on each side)"


def test_prefetch_passes_items_and_errors_through():
    assert list(prefetch(iter(range(50)), depth=4)) == list(range(50))

    def broken():
        yield 1
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        list(prefetch(broken()))
    consumer = prefetch(iter(range(1000)), depth=2)
    assert next(consumer) == 0
    consumer.close()  # abandoning the iterator must stop the producer thread, not hang
