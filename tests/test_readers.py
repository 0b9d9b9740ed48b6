"""Dataset readers on fixtures written in the datasets' exact layouts."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import fixtures_layouts
from fixtures_layouts import face_frames, write_avi, write_pure, write_ubfc_label, write_ubfc_rppg
from lqrppg import datasets
from lqrppg.datasets import LabelSeries, align_label, available_datasets, get_reader
from lqrppg.errors import ConfigError, DataError


def ubfc(root: Path, fps: float | None = None):
    return get_reader("ubfc-rppg")(root, fps)


def pure(root: Path):
    return get_reader("pure")(root)


# --- registry -------------------------------------------------------------------------------


def test_registry_knows_both_readers_and_rejects_unknown_names():
    assert {"ubfc-rppg", "pure"} <= set(available_datasets())
    assert get_reader("pure").name == "pure"
    with pytest.raises(ConfigError, match=r"'nope'.*pure.*ubfc-rppg"):
        get_reader("nope")


def test_registry_discovers_a_new_reader_module_without_edits(tmp_path, monkeypatch):
    """Adding a dataset is one file: the registry imports every module of the package."""
    (tmp_path / "toyset.py").write_text(
        "from lqrppg.datasets import register_dataset\n"
        "from lqrppg.datasets.ubfc_rppg import UbfcRppgReader\n"
        "@register_dataset('toyset')\n"
        "class ToyReader(UbfcRppgReader):\n"
        "    pass\n"
    )
    monkeypatch.setattr(datasets, "__path__", [*datasets.__path__, str(tmp_path)])
    monkeypatch.setattr(datasets.DATASETS, "_discovered", False)
    monkeypatch.setattr(datasets.DATASETS, "_entries", dict(datasets.DATASETS._entries))
    monkeypatch.delitem(sys.modules, "lqrppg.datasets.toyset", raising=False)
    assert get_reader("toyset").name == "toyset"
    assert "toyset" in available_datasets()


# --- UBFC-rPPG ------------------------------------------------------------------------------


def test_ubfc_lists_sessions_in_natural_order(tmp_path):
    write_ubfc_rppg(tmp_path, ["subject10", "subject2", "subject1"], n_frames=8)
    (tmp_path / "notes").mkdir()
    (tmp_path / "readme.txt").write_text("not a session")
    sessions = ubfc(tmp_path).list_sessions()
    assert [s.session for s in sessions] == ["subject1", "subject2", "subject10"]
    s = sessions[0]
    assert (s.dataset, s.subject, s.task, s.fps) == ("ubfc-rppg", "subject1", "", 30.0)
    assert s.video_path == str(tmp_path / "subject1" / "vid.avi")
    assert s.label_path == str(tmp_path / "subject1" / "ground_truth.txt")
    assert ubfc(tmp_path).session_files(s) == [Path(s.video_path), Path(s.label_path)]


def test_ubfc_frames_are_rgb_and_complete_and_label_is_line_one(tmp_path):
    truth = write_ubfc_rppg(tmp_path, ["subject1"], n_frames=12)["subject1"]
    reader = ubfc(tmp_path)
    (s,) = reader.list_sessions()
    frames = list(reader.iter_frames(s))
    expected = list(face_frames(truth.pulse))
    assert reader.frame_count(s) == len(frames) == 12
    assert frames[0].dtype == np.uint8 and frames[0].shape == (240, 320, 3)
    # FFV1 is lossless, so the decoded frames equal the written RGB frames exactly.
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    assert tuple(frames[0][0, 0]) == (50, 80, 110)  # background is blue-ish: channel order is RGB
    label = reader.read_label(s)
    np.testing.assert_allclose(label.values, truth.pulse, atol=1e-6)
    assert label.rate_hz == 30.0 and label.timestamps_s is None


def test_missing_root_or_empty_root_explains_how_to_get_the_data(tmp_path):
    with pytest.raises(DataError, match=r"does not exist(.|\n)*ubfcrppg"):
        ubfc(tmp_path / "absent").list_sessions()
    with pytest.raises(DataError, match=r"no session found(.|\n)*subjectN/vid.avi"):
        ubfc(tmp_path).list_sessions()


def test_ubfc_missing_label_file_is_named(tmp_path):
    write_ubfc_rppg(tmp_path, ["subject1", "subject2"], n_frames=4)
    reader = ubfc(tmp_path)
    sessions = reader.list_sessions()
    label = tmp_path / "subject2" / "ground_truth.txt"
    label.unlink()
    with pytest.raises(DataError, match=re.escape(str(label))):
        reader.list_sessions()
    with pytest.raises(DataError, match=re.escape(str(label))):
        reader.read_label(sessions[1])


def test_ubfc_unreadable_video_is_named(tmp_path):
    write_ubfc_rppg(tmp_path, ["subject1"], n_frames=4)
    video = tmp_path / "subject1" / "vid.avi"
    video.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    reader = ubfc(tmp_path)
    with pytest.raises(DataError, match=re.escape(str(video)) + ".*cannot open"):
        list(reader.iter_frames(reader.list_sessions()[0]))


def test_ubfc_truncated_video_reports_both_frame_counts(tmp_path):
    """A cut raw AVI opens, declares all its frames, and decodes fewer (like subject33)."""
    folder = tmp_path / "subject1"
    folder.mkdir()
    video = folder / "vid.avi"
    write_avi(video, face_frames(np.zeros(20)), 30.0, codec="")  # uncompressed, like UBFC
    write_ubfc_label(folder / "ground_truth.txt", np.sin(np.arange(20.0)), 30.0)
    video.write_bytes(video.read_bytes()[: int(video.stat().st_size * 0.6)])
    reader = ubfc(tmp_path)
    (s,) = reader.list_sessions()
    assert reader.frame_count(s) == 20  # the container still declares 20 frames
    with pytest.raises(DataError, match=re.escape(str(video)) + r": decoded only \d+ of the 20 frames"):
        list(reader.iter_frames(s))


def test_ubfc_container_fps_mismatch_is_logged(tmp_path, caplog):
    write_ubfc_rppg(tmp_path, ["subject1"], n_frames=4, fps=25.0)
    reader = ubfc(tmp_path, fps=30.0)
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.ubfc_rppg"):
        list(reader.iter_frames(reader.list_sessions()[0]))
    assert "25.000 fps but 30 fps is configured" in caplog.text


def test_ubfc_nan_in_label_is_named(tmp_path):
    write_ubfc_rppg(tmp_path, ["subject1"], n_frames=6)
    label = tmp_path / "subject1" / "ground_truth.txt"
    write_ubfc_label(label, np.array([0.1, 0.2, np.nan, 0.3, 0.1, 0.0]), 30.0)
    reader = ubfc(tmp_path)
    with pytest.raises(DataError, match=re.escape(str(label)) + r".*NaN/inf.*sample 2"):
        reader.read_label(reader.list_sessions()[0])


def test_ubfc_label_shorter_than_video_by_more_than_a_second_is_named(tmp_path):
    write_ubfc_rppg(tmp_path, ["subject1"], n_frames=64)
    label_path = tmp_path / "subject1" / "ground_truth.txt"
    reader = ubfc(tmp_path)
    (s,) = reader.list_sessions()
    write_ubfc_label(label_path, np.sin(np.arange(20.0)), 30.0)  # 44 frames = 1.47 s short
    with pytest.raises(DataError, match=re.escape(str(label_path)) + r".*shorter than the video by 1.47 s"):
        align_label(reader.read_label(s), 64, 30.0, None, reader.alignment, s.label_path)
    write_ubfc_label(label_path, np.sin(np.arange(50.0)), 30.0)  # 14 frames short: absorbed
    aligned, method = align_label(reader.read_label(s), 64, 30.0, None, reader.alignment, s.label_path)
    assert method == "linear_stretch" and aligned.shape == (64,) and aligned.dtype == np.float32


# --- PURE -----------------------------------------------------------------------------------


def test_pure_lists_sessions_with_subject_and_task(tmp_path):
    write_pure(tmp_path, ["10-01", "02-03", "01-02"], n_frames=6)
    (tmp_path / "README").mkdir()
    sessions = pure(tmp_path).list_sessions()
    assert [(s.session, s.subject, s.task) for s in sessions] == [("01-02", "01", "02"), ("02-03", "02", "03"),
                                                                   ("10-01", "10", "01")]  # fmt: skip
    assert sessions[0].video_path == str(tmp_path / "01-02" / "01-02")
    assert sessions[0].label_path == str(tmp_path / "01-02" / "01-02.json")
    files = pure(tmp_path).session_files(sessions[0])
    assert len(files) == 7 and files[-1] == Path(sessions[0].label_path)


def test_pure_missing_json_is_named(tmp_path):
    write_pure(tmp_path, ["01-01"], n_frames=3)
    (tmp_path / "01-01" / "01-01.json").unlink()
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "01-01" / "01-01.json"))):
        pure(tmp_path).list_sessions()


def test_pure_frames_are_sorted_by_the_integer_timestamp(tmp_path, monkeypatch):
    """Timestamps crossing a digit boundary sort wrongly as strings; the reader sorts numerically."""
    monkeypatch.setattr(fixtures_layouts, "PURE_START_NS", 9_950_000_000)
    truth = write_pure(tmp_path, ["01-01"], n_frames=6)["01-01"]
    reader = pure(tmp_path)
    (s,) = reader.list_sessions()
    names = [p.name for p in reader.session_files(s)[:-1]]
    assert names != sorted(names)  # string order would be wrong
    times = reader.frame_timestamps_s(s)
    np.testing.assert_allclose(times - times[0], truth.frame_times_s, atol=1e-6)
    frames = list(reader.iter_frames(s))
    assert reader.frame_count(s) == len(frames) == 6
    expected = list(face_frames(truth.pulse))
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))  # PNG: lossless, RGB


def test_pure_timestamp_alignment_survives_dropped_frames(tmp_path):
    truth = write_pure(tmp_path, ["01-01"], n_frames=90, drop_frames=range(20, 35))["01-01"]
    reader = pure(tmp_path)
    (s,) = reader.list_sessions()
    label = reader.read_label(s)
    assert label.rate_hz == pytest.approx(60.0, rel=1e-3)
    times = reader.frame_timestamps_s(s)
    assert times.size == 75
    by_time, method = align_label(label, times.size, s.fps, times, reader.alignment, s.label_path)
    assert method == "timestamps"
    stretched, _ = align_label(label, times.size, s.fps, times, "linear_stretch", s.label_path)
    true_wave = 50 + 40 * truth.pulse
    assert np.abs(by_time - true_wave).max() < 1.0  # rounding of the integer waveform only
    assert np.abs(stretched - true_wave).max() > 20.0  # half a second of drift


def test_pure_malformed_json_is_named(tmp_path):
    write_pure(tmp_path, ["01-01"], n_frames=3)
    path = tmp_path / "01-01" / "01-01.json"
    reader = pure(tmp_path)
    (s,) = reader.list_sessions()
    path.write_text('{"/FullPackage": [{"Timestamp": 1, ')
    with pytest.raises(DataError, match=re.escape(str(path)) + ": malformed JSON"):
        reader.read_label(s)
    path.write_text(json.dumps({"/FullPackage": [{"Timestamp": 1, "Value": {"pulseRate": 60}}]}))
    with pytest.raises(DataError, match=re.escape(str(path)) + r".*Value.waveform"):
        reader.read_label(s)


def test_pure_unreadable_png_is_named(tmp_path):
    write_pure(tmp_path, ["01-01"], n_frames=3)
    reader = pure(tmp_path)
    (s,) = reader.list_sessions()
    broken = reader.session_files(s)[1]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=re.escape(str(broken)) + ": unreadable PNG"):
        list(reader.iter_frames(s))


def test_pure_cross_check_with_image_list_warns(tmp_path, caplog):
    write_pure(tmp_path, ["01-01"], n_frames=4)
    reader = pure(tmp_path)
    (s,) = reader.list_sessions()
    reader.session_files(s)[0].unlink()  # a frame listed in /Image but missing on disk
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.pure"):
        assert reader.frame_timestamps_s(s).size == 3
    assert "1 /Image entries without a file" in caplog.text


# --- align_label ----------------------------------------------------------------------------


def test_linear_stretch_maps_first_and_last_samples_to_first_and_last_frames():
    label = LabelSeries(np.array([0.0, 1.0, 2.0, 3.0]), None, None)
    aligned, method = align_label(label, 7, 30.0, None, "linear_stretch", "lbl")
    assert method == "linear_stretch"
    np.testing.assert_allclose(aligned, [0, 0.5, 1, 1.5, 2, 2.5, 3])


def test_timestamps_without_timestamps_fall_back_and_say_so():
    label = LabelSeries(np.sin(np.arange(60.0)), None, 60.0)
    aligned, method = align_label(label, 30, 30.0, np.arange(30) / 30, "timestamps", "lbl")
    assert method == "linear_stretch" and aligned.shape == (30,)


@pytest.mark.parametrize(
    ("values", "times", "rate", "method", "message"),
    [
        (np.array([]), None, None, "linear_stretch", "empty"),
        (np.full(90, 2.0), None, None, "linear_stretch", "constant"),
        (np.array([0.0, np.inf, 1.0]), None, None, "linear_stretch", "NaN/inf"),
        (np.sin(np.arange(40.0)), None, 60.0, "linear_stretch", "label lasts 0.67 s"),
        (np.sin(np.arange(40.0)), np.arange(40) / 60, 60.0, "timestamps", "leave 1.32 s"),
    ],
)
def test_bad_labels_are_rejected_naming_the_file(values, times, rate, method, message):
    label = LabelSeries(values, times, rate)
    with pytest.raises(DataError, match=f"^the/label.json: .*{re.escape(message)}"):
        align_label(label, 60, 30.0, np.arange(60) / 30, method, "the/label.json")
