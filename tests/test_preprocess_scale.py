"""Preprocessing at scale: downscaled detection, box smoothing, label quality, DNN config, the pool."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest

from fixtures_layouts import FACE_BOX, face_frames, write_avi, write_ubfc_label, write_ubfc_rppg
from lqrppg.datasets import get_reader
from lqrppg.datasets.base import LabelSeries, align_label, align_quality
from lqrppg.errors import ConfigError, DataError
from lqrppg.preprocess.face import HaarFaceDetector, available_detectors, downscale, expand_box
from lqrppg.preprocess.pipeline import PreprocessSettings, preprocess_dataset, preprocess_session
from lqrppg.preprocess.store import ChunkStore

SMALL = PreprocessSettings(size=32, chunk_length=30)
UBFC = get_reader("ubfc-rppg")


def leftovers(parent, keep):
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


# ----------------------------------------------------------------------------- downscaled detection


def synth_face_frame(seed: int, width: int = 640, height: int = 480) -> tuple[np.ndarray, tuple[float, ...]]:
    """One still frame of a synthetic subject (lqrppg.synth) and its true face box."""
    from lqrppg.synth.face import build_subject, sample_look
    from lqrppg.synth.render import render_frames, simulate_illumination, simulate_motion
    from lqrppg.synth.spec import SynthDatasetSpec

    rng = np.random.default_rng(seed)
    look = sample_look(rng, (0.0, 0.5), SynthDatasetSpec(layout="ubfc-rppg").face_size)
    layers = build_subject(look, width, height, 0.01, (0.33, 0.77, 0.53))
    still = np.zeros(1)
    motion = simulate_motion(30.0, 0.0, 0.0, still, still, layers, width, height, rng)
    light = simulate_illumination(1, 30.0, 0.0, 0.0, 7.0, rng)
    return next(iter(render_frames(layers, still, motion, light, 0.0, 0.0, rng))), layers.face_box


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


@pytest.mark.parametrize("seed", [0, 1])
def test_detection_on_a_half_size_copy_finds_the_full_resolution_box(seed):
    frame, truth = synth_face_frame(seed)
    full = HaarFaceDetector().detect(frame)
    half = HaarFaceDetector(max_side=320).detect(frame)
    assert full is not None and half is not None
    assert np.abs(half.astype(int) - full.astype(int)).max() <= 6  # pixels of the 640x480 frame
    assert iou(half, truth) > 0.7 and half.dtype == np.int32


def test_downscale_keeps_small_frames_and_reports_the_scales():
    frame = np.zeros((480, 640, 3), np.uint8)
    small, sx, sy = downscale(frame, 320)
    assert small.shape == (240, 320, 3) and (sx, sy) == (0.5, 0.5)
    same, sx, sy = downscale(frame, 640)
    assert same is frame and (sx, sy) == (1.0, 1.0)
    assert downscale(frame, None)[0] is frame


def test_the_pipeline_crops_the_full_resolution_frame_around_the_downscaled_box(tmp_path):
    write_ubfc_rppg(tmp_path / "raw", ["subject1"], n_frames=30)
    reader = UBFC(tmp_path / "raw")
    (s,) = reader.list_sessions()
    rows = {}
    for side in (None, 160):
        settings = SMALL.model_copy(update={"detect_max_side": side})
        rows[side] = preprocess_session(reader, s, settings, tmp_path / f"out{side}")
    full = np.load(tmp_path / "outNone" / "boxes" / "subject1.npy")[0]
    half = np.load(tmp_path / "out160" / "boxes" / "subject1.npy")[0]
    assert np.abs(full - half).max() <= 8  # boxes in 320x240 frame pixels, ~80 px wide
    crops = np.load(tmp_path / "out160" / "frames" / "subject1.npy")
    assert crops.shape == (30, 32, 32, 3)  # cut from the full frame: same size, not a 160-px copy


# ----------------------------------------------------------------------------- box smoothing


def write_step_session(root: Path, shift: int = 40) -> None:
    """A face that jumps right by ``shift`` pixels at frame 30 and stays there until frame 80."""
    folder = root / "subject1"
    folder.mkdir(parents=True)
    pulse = np.sin(np.arange(80) / 5)
    write_avi(folder / "vid.avi", face_frames(pulse, motion_px=[0] * 30 + [shift] * 50), 30.0)
    write_ubfc_label(folder / "ground_truth.txt", pulse, 30.0)


@pytest.mark.parametrize("redetect_margin", [None, 1.0])
@pytest.mark.parametrize(
    ("smoothing", "expected"),
    [  # offsets of the box from its rest position after the detections at frames 30, 40, 50, 60, 70
        ({"box_smoothing": "median", "median_window": 3}, [0, 40, 40, 40, 40]),
        ({"box_smoothing": "ema", "ema_alpha": 0.5}, [20, 30, 35, 37.5, 38.75]),
        ({"box_smoothing": "ema", "ema_alpha": 1.0}, [40, 40, 40, 40, 40]),
    ],
)
def test_every_n_smooths_a_jump_of_the_face_as_configured(tmp_path, smoothing, expected, redetect_margin):
    write_step_session(tmp_path / "raw")
    reader = UBFC(tmp_path / "raw")
    settings = SMALL.model_copy(
        update={"detection": "every_n", "detect_every": 10, "redetect_margin": redetect_margin, **smoothing}
    )
    row = preprocess_session(reader, reader.list_sessions()[0], settings, tmp_path / "out")
    assert row["n_detections"] == 8 and row["n_detection_misses"] == 0
    xs = np.load(tmp_path / "out" / "boxes" / "subject1.npy")[:, 0]
    rest = xs[0]
    # A full search finds the still face at the same pixel every time; a search near the known face
    # samples the cascade on another grid and may differ by a pixel (the still face's box then holds).
    assert np.abs(xs[:30] - rest).max() <= (0 if redetect_margin is None else 1)
    for k, offset in zip(range(30, 80, 10), expected, strict=True):
        assert (xs[k : k + 10] == xs[k]).all()  # held between detections
        assert xs[k] - rest == pytest.approx(offset, abs=2.5)


def test_new_settings_change_the_prep_id_and_are_validated():
    base = PreprocessSettings()
    assert (base.detect_max_side, base.box_smoothing, base.ema_alpha, base.detector_model) == (320, "median", 0.5, None)
    changes = [{"detect_max_side": None}, {"box_smoothing": "ema"}, {"ema_alpha": 0.2},
               {"detector_model": "m.onnx"}, {"label_quality_threshold": 0.5}]  # fmt: skip
    assert len({base.prep_id(), *(PreprocessSettings(**c).prep_id() for c in changes)}) == len(changes) + 1
    for bad in ({"ema_alpha": 0}, {"ema_alpha": 1.5}, {"detect_max_side": 0}, {"label_quality_threshold": 2}):
        with pytest.raises(ValueError):
            PreprocessSettings(**bad)


# ----------------------------------------------------------------------------- label quality


class GradedUbfc(UBFC):
    """UBFC-rPPG with an iBVP-like graded label: per-sample quality from quality.txt, where present."""

    def read_label(self, s):
        label = super().read_label(s)
        path = Path(s.label_path).with_name("quality.txt")
        return dataclasses.replace(label, quality=np.loadtxt(path)) if path.is_file() else label


def test_label_quality_masks_frames_and_grades_each_chunk(tmp_path):
    write_ubfc_rppg(tmp_path / "raw", ["subject1", "subject2"], n_frames=70)
    quality = np.ones(70)
    quality[35:41] = 0.3  # six frames of chunk 1 at the threshold (bad), none elsewhere
    quality[10] = 0.31  # just above: good
    np.savetxt(tmp_path / "raw" / "subject1" / "quality.txt", quality)
    reader = GradedUbfc(tmp_path / "raw")
    store = ChunkStore(preprocess_dataset(reader, reader.list_sessions(), SMALL, tmp_path / "store"))
    index = store.index
    assert index["label_quality"].tolist() == pytest.approx([1.0, 0.8, 1.0, 1.0])
    np.testing.assert_array_equal(store.label_mask("subject1"), quality > 0.3)
    assert store.label_mask("subject2").all()
    sessions = store.sessions.set_index("session")
    assert sessions.loc["subject1", ["has_label_quality", "n_masked_frames", "n_masked_chunks"]].tolist() == [
        True, 6, 1,
    ]  # fmt: skip
    assert sessions.loc["subject2", ["has_label_quality", "n_masked_chunks"]].tolist() == [False, 0]
    assert json.loads((store.path / "store.json").read_text())["masked_chunks"] == {"subject1": 1}
    # Masked frames stay in the store: time stays continuous, chunks are graded, not cut.
    assert store.frames("subject1").shape[0] == 70


def test_quality_follows_the_label_alignment():
    values, quality = np.sin(np.arange(10.0)), np.r_[np.ones(5), np.zeros(5)]
    stretch = LabelSeries(values, None, None, quality)
    aligned, method = align_label(stretch, 19, 30.0, None, "linear_stretch", "x")
    q = align_quality(stretch, 19, None, method, "x")
    np.testing.assert_allclose(q, np.interp(np.linspace(1, 10, 19), np.arange(1, 11), quality))
    timed = LabelSeries(values, np.arange(10) * 0.1, 10.0, quality)
    frame_t = np.array([0.0, 0.25, 0.45, 0.9])
    _, method = align_label(timed, 4, 10.0, frame_t, "timestamps", "x")
    assert method == "timestamps"
    np.testing.assert_allclose(align_quality(timed, 4, frame_t, method, "x"), [1, 1, 0.5, 0])
    assert align_quality(LabelSeries(values, None, None), 19, None, method, "x") is None
    with pytest.raises(DataError, match="x: 3 quality values for 10 label samples"):
        align_quality(LabelSeries(values, None, None, np.ones(3)), 10, None, "sample_count", "x")
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        align_quality(LabelSeries(values, None, None, np.full(10, 2.0)), 10, None, "sample_count", "x")
    nan = align_quality(LabelSeries(values, None, None, np.r_[np.nan, np.ones(9)]), 10, None, "sample_count", "x")
    assert nan[0] == 0 and nan.dtype == np.float32


# ----------------------------------------------------------------------------- the DNN detector


def test_yunet_is_registered_and_needs_its_model_file(tmp_path):
    assert {"haar", "yunet"} <= set(available_detectors())
    write_ubfc_rppg(tmp_path / "raw", ["subject1"], n_frames=30)
    reader = UBFC(tmp_path / "raw")
    sessions = reader.list_sessions()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model")
    cases = [
        (None, r"preprocess\.detector_model must name the YuNet ONNX file.*face_detection_yunet"),
        (tmp_path / "missing.onnx", r"preprocess\.detector_model: YuNet model file .*missing\.onnx does not exist"),
        (garbage, r"preprocess\.detector_model: OpenCV cannot load .*garbage\.onnx.*OpenCV Zoo"),
    ]
    for model, message in cases:
        settings = SMALL.model_copy(update={"detector": "yunet", "detector_model": model})
        with pytest.raises(ConfigError, match=message):
            preprocess_dataset(reader, sessions, settings, tmp_path / "store")
    haar = SMALL.model_copy(update={"detector_model": tmp_path / "missing.xml"})
    with pytest.raises(ConfigError, match="Haar cascade file .*missing.xml does not exist"):
        preprocess_dataset(reader, sessions, haar, tmp_path / "store")
    assert leftovers(tmp_path, {"raw", "garbage.onnx"}) == []


# ----------------------------------------------------------------------------- the worker pool

#: Frames the endless session would yield if nothing stopped it (tens of seconds of work).
ENDLESS = 20_000


class FaultyUbfc(UBFC):
    """UBFC-rPPG whose sessions misbehave by name, inside the worker processes.

    ``subject1`` yields the same face frame ENDLESS times and records how many it
    yielded when it is closed; ``subject2`` raises a plain RuntimeError after five
    frames; ``subject3`` kills its process, as the kernel's OOM killer would.
    """

    def iter_frames(self, s):
        if s.session == "subject1":
            first = next(iter(super().iter_frames(s)))
            n = 0
            try:
                while n < ENDLESS:
                    yield first
                    n += 1
            finally:
                (self.root / "subject1.count").write_text(str(n))
        elif s.session == "subject2":
            frames = super().iter_frames(s)
            for _ in range(5):
                yield next(frames)
            raise RuntimeError("decoder exploded")
        elif s.session == "subject3":
            os._exit(3)
        else:
            yield from super().iter_frames(s)


def test_a_failing_worker_stops_the_running_sessions_and_leaves_no_store(tmp_path):
    write_ubfc_rppg(tmp_path / "raw", ["subject1", "subject2"], n_frames=40)
    reader = FaultyUbfc(tmp_path / "raw")
    with pytest.raises(RuntimeError, match="decoder exploded") as caught:
        preprocess_dataset(reader, reader.list_sessions(), SMALL, tmp_path / "store", workers=2)
    assert "while preprocessing ubfc-rppg session subject2" in caught.value.__notes__
    # The endless session was stopped when subject2 failed, not left to run for minutes.
    assert int((tmp_path / "raw" / "subject1.count").read_text()) < ENDLESS
    assert leftovers(tmp_path, {"raw"}) == []


def test_a_worker_that_dies_fails_the_job_naming_the_unfinished_sessions(tmp_path):
    write_ubfc_rppg(tmp_path / "raw", ["subject3", "subject4"], n_frames=40)
    reader = FaultyUbfc(tmp_path / "raw")
    with pytest.raises(BrokenProcessPool) as caught:
        preprocess_dataset(reader, reader.list_sessions(), SMALL, tmp_path / "store", workers=2)
    note = " ".join(caught.value.__notes__)
    assert re.search(r"ubfc-rppg worker process died .* sessions .*subject3", note)
    assert leftovers(tmp_path, {"raw"}) == []


def test_face_box_fixture_is_what_the_half_size_detector_sees():
    """The fixtures' 320x240 frames are not downscaled by the default detect_max_side."""
    frame = next(face_frames(np.zeros(1)))
    box = HaarFaceDetector(max_side=PreprocessSettings().detect_max_side).detect(frame)
    assert box is not None and expand_box(box, 1.5, 320, 240) == expand_box(FACE_BOX, 1.5, 320, 240)


# ----------------------------------------------------------------------------- re-detection near the face


class RecordingDetector:
    """A detector whose face is 10 pixels further right at each call; records how it was called."""

    def __init__(self, near: bool = True) -> None:
        self.calls: list[tuple] = []
        if not near:
            self.detect_near = None  # type: ignore[assignment]

    def _face(self) -> np.ndarray:
        return np.array([10 * len(self.calls), 20, 50, 50], dtype=np.int32)

    def detect(self, rgb):
        self.calls.append(("full",))
        return self._face()

    def detect_near(self, rgb, near, margin):
        self.calls.append(("near", tuple(np.asarray(near).tolist()), margin))
        return self._face()


def test_every_n_searches_near_the_median_of_the_faces_found_in_frame_order():
    from lqrppg.preprocess.pipeline import _Detections

    frame = np.zeros((240, 320, 3), np.uint8)
    detector = RecordingDetector()
    detect = _Detections(detector, SMALL.model_copy(update={"detection": "every_n", "redetect_margin": 0.75}))
    found = [float(detect(frame)[0]) for _ in range(8)]
    # The first detection searches the whole frame, then near the face found there (so that every
    # box comes from a search near a face); each later one near the median of the last five faces.
    assert found == [20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    assert detector.calls[:2] == [("full",), ("near", (10.0, 20.0, 50.0, 50.0), 0.75)]
    for k, call in enumerate(detector.calls[2:], start=1):
        assert call == ("near", (float(np.median(found[max(0, k - 5) : k])), 20.0, 50.0, 50.0), 0.75)
    # A full search every time: 'first' detection, redetect_margin null, or a detector without detect_near.
    every_n = SMALL.model_copy(update={"detection": "every_n"})
    cases = [(SMALL, RecordingDetector()), (every_n, RecordingDetector(near=False)),
             (every_n.model_copy(update={"redetect_margin": None}), RecordingDetector())]  # fmt: skip
    for settings, det in cases:
        detect = _Detections(det, settings)
        for _ in range(3):
            detect(frame)
        assert det.calls == [("full",)] * 3


@pytest.mark.parametrize("shift", [40, 120])
def test_a_face_that_jumps_out_of_the_search_region_is_found_in_the_whole_frame(tmp_path, shift):
    """A jump of 120 pixels takes the 53-pixel face out of the region searched near it (3 x its size)."""
    write_step_session(tmp_path / "raw", shift=shift)
    reader = UBFC(tmp_path / "raw")
    boxes = {}
    for margin in (None, 1.0):
        settings = SMALL.model_copy(
            update={"detection": "every_n", "detect_every": 10, "median_window": 1, "redetect_margin": margin}
        )
        row = preprocess_session(reader, reader.list_sessions()[0], settings, tmp_path / f"out{margin}")
        assert row["n_detections"] == 8 and row["n_detection_misses"] == 0
        boxes[margin] = np.load(tmp_path / f"out{margin}" / "boxes" / "subject1.npy")
    # Both searches jitter by a few pixels of the cascade's sampling (here 80-pixel boxes).
    assert np.abs(boxes[1.0] - boxes[None]).max() <= 5
    assert boxes[1.0][30, 0] - boxes[1.0][29, 0] == pytest.approx(shift, abs=4)
