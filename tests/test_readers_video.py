"""UBFC-Phys, COHFACE and V4V readers on tiny fixtures written in the datasets' exact layouts."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import pytest

from fixtures_layouts import face_frames, write_avi
from lqrppg.datasets import align_label, available_datasets, get_reader
from lqrppg.errors import ConfigError, DataError
from lqrppg.preprocess.pipeline import PreprocessSettings, preprocess_dataset
from lqrppg.preprocess.store import ChunkStore

#: A colour far from grey in every channel, so a swapped channel order is obvious.
COLOUR = (200, 60, 20)
SIDE = 16
#: Tiny frames carry no face: preprocessing falls back to the whole frame.
TINY = PreprocessSettings(size=8, chunk_length=10, no_face="full_frame")


def colour_frames(n: int) -> list[np.ndarray]:
    return [np.full((SIDE, SIDE, 3), COLOUR, dtype=np.uint8) for _ in range(n)]


def pulse(times: np.ndarray, hr_bpm: float = 72.0) -> np.ndarray:
    return np.sin(2 * np.pi * hr_bpm / 60 * times)


def assert_colour(frame: np.ndarray) -> None:
    """Lossy codecs move a flat colour by a few levels at most; a channel swap moves it by 180."""
    assert frame.dtype == np.uint8 and frame.shape == (SIDE, SIDE, 3)
    np.testing.assert_allclose(frame.reshape(-1, 3).mean(axis=0), COLOUR, atol=8)


# --- fixtures in the on-disk layouts ----------------------------------------------------------


def write_ubfc_phys(
    root: Path, sessions: Iterable[str], *, n_frames: int = 12, fps: float = 35.0, label_s: float | None = None
) -> dict[str, np.ndarray]:
    """``sN/vid_sN_TK.avi`` (MJPG, like the real data) and ``sN/bvp_sN_TK.csv`` (64 Hz, no header)."""
    labels = {}
    for name in sessions:
        subject = name.split("_")[0]
        folder = root / subject
        folder.mkdir(parents=True, exist_ok=True)
        write_avi(folder / f"vid_{name}.avi", colour_frames(n_frames), fps, codec="MJPG")
        t = np.arange(int(round((label_s if label_s is not None else n_frames / fps) * 64))) / 64
        labels[name] = pulse(t)
        (folder / f"bvp_{name}.csv").write_text("".join(f"{float(v)!r}\n" for v in labels[name]))
    return labels


def write_cohface(
    root: Path,
    sessions: Iterable[str],
    *,
    n_frames: int = 10,
    fps: float = 20.0,
    label_s: float | None = None,
    with_time: bool = True,
    frames: list[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """``<subject>/<rec>/data.avi`` (XVID) and ``data.hdf5`` with pulse (256 Hz), time and respiration."""
    labels = {}
    for name in sessions:
        subject, rec = name.split("-")
        folder = root / subject / rec
        folder.mkdir(parents=True, exist_ok=True)
        write_avi(folder / "data.avi", frames or colour_frames(n_frames), fps, codec="XVID")
        t = np.arange(int(round((label_s if label_s is not None else n_frames / fps) * 256))) / 256
        labels[name] = pulse(t)
        with h5py.File(folder / "data.hdf5", "w") as h5:
            h5["pulse"] = labels[name]
            h5["respiration"] = np.cos(2 * np.pi * 0.25 * t)
            if with_time:
                h5["time"] = t
    return labels


def write_v4v(root: Path, videos: dict[str, Iterable[str]], *, n_frames: int = 10, fps: float = 25.0,
              label_names: dict[str, str] | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """``<split>/video/<stem>.mkv`` and ``<split>/signal/*.txt`` (1000 Hz, one value per line).

    The label is named as the challenge names it (``F001-T1-BP.txt`` in train,
    ``F001-T1.txt`` in val/test) unless ``label_names`` maps the stem to another name.
    """
    labels = {}
    for split, stems in videos.items():
        (root / split / "video").mkdir(parents=True, exist_ok=True)
        (root / split / "signal").mkdir(parents=True, exist_ok=True)
        for stem in stems:
            write_avi(root / split / "video" / f"{stem}.mkv", colour_frames(n_frames), fps, codec="MJPG")
            default = stem.replace("_", "-") + ("-BP.txt" if split == "train" else ".txt")
            name = (label_names or {}).get(stem, default)
            t = np.arange(int(round(n_frames / fps * 1000))) / 1000
            labels[f"{split}-{stem}"] = 80 + 20 * pulse(t)
            (root / split / "signal" / name).write_text("".join(f"{float(v)!r}\n" for v in labels[f"{split}-{stem}"]))
    return labels


def reader(name: str, root: Path, fps: float | None = None, **options):
    return get_reader(name)(root, fps, options)


def test_all_three_readers_are_registered():
    assert {"ubfc-phys", "cohface", "v4v"} <= set(available_datasets())
    assert (get_reader("ubfc-phys").default_fps, get_reader("cohface").default_fps, get_reader("v4v").default_fps) == (
        35.0, 20.0, 25.0)  # fmt: skip
    assert get_reader("ubfc-phys").expected_sessions == 168 and get_reader("cohface").expected_sessions == 160


# --- UBFC-Phys --------------------------------------------------------------------------------


def test_ubfc_phys_lists_sessions_in_natural_order_with_subject_and_task(tmp_path):
    write_ubfc_phys(tmp_path, ["s10_T1", "s2_T3", "s2_T1", "s1_T2"], n_frames=3)
    (tmp_path / "s1" / "eda_s1_T2.csv").write_text("0.1\n")  # other modalities are not sessions
    (tmp_path / "s1" / "info_s1.txt").write_text("notes")
    (tmp_path / "docs").mkdir()
    r = reader("ubfc-phys", tmp_path)
    sessions = r.list_sessions()
    assert [(s.session, s.subject, s.task) for s in sessions] == [
        ("s1_T2", "s1", "T2"), ("s2_T1", "s2", "T1"), ("s2_T3", "s2", "T3"), ("s10_T1", "s10", "T1")]  # fmt: skip
    s = sessions[0]
    assert (s.dataset, s.fps) == ("ubfc-phys", 35.0)
    assert s.video_path == str(tmp_path / "s1" / "vid_s1_T2.avi")
    assert s.label_path == str(tmp_path / "s1" / "bvp_s1_T2.csv")
    assert r.session_files(s) == [Path(s.video_path), Path(s.label_path)]
    assert r.excluded_sessions == []


def test_ubfc_phys_streams_rgb_frames_and_reads_the_64hz_label(tmp_path):
    truth = write_ubfc_phys(tmp_path, ["s1_T1"], n_frames=7)["s1_T1"]
    r = reader("ubfc-phys", tmp_path)
    (s,) = r.list_sessions()
    assert r.frame_count(s) == 7
    stream = r.iter_frames(s)
    assert_colour(next(stream))  # frames come one at a time
    assert 1 + sum(1 for _ in stream) == 7
    label = r.read_label(s)
    np.testing.assert_array_equal(label.values, truth)
    assert label.rate_hz == 64.0 and label.timestamps_s is None
    assert r.alignment == "linear_stretch"


def test_ubfc_phys_options_filter_tasks_and_apply_the_published_exclusion_list(tmp_path, caplog):
    names = ["s3_T1", "s4_T1", "s5_T2", "s1_T2", "s7_T3"]  # s3_T1 and s1_T2 are on the published list
    write_ubfc_phys(tmp_path, names, n_frames=2)
    every = [s.session for s in reader("ubfc-phys", tmp_path).list_sessions()]
    assert every == ["s1_T2", "s3_T1", "s4_T1", "s5_T2", "s7_T3"]  # exclusion is off by default
    with caplog.at_level(logging.INFO, logger="lqrppg.datasets.ubfc_phys"):
        r = reader("ubfc-phys", tmp_path, exclude_published=True)
        assert [s.session for s in r.list_sessions()] == ["s4_T1", "s5_T2", "s7_T3"]
    assert r.excluded_sessions == ["s1_T2", "s3_T1"]
    assert "leaving out session s3_T1 (on the published exclusion list)" in caplog.text
    r = reader("ubfc-phys", tmp_path, tasks=["T1"], exclude=["s4_T1"])
    assert [s.session for s in r.list_sessions()] == ["s3_T1"]
    assert r.excluded_sessions == ["s1_T2", "s4_T1", "s5_T2", "s7_T3"]
    r = reader("ubfc-phys", tmp_path, tasks=["T2", "T3"], exclude_published=True)
    assert [s.session for s in r.list_sessions()] == ["s5_T2", "s7_T3"]


def test_ubfc_phys_published_list_has_67_videos():
    from lqrppg.datasets.ubfc_phys import PUBLISHED_EXCLUSIONS

    per_task = [sum(name.endswith(f"_T{k}") for name in PUBLISHED_EXCLUSIONS) for k in (1, 2, 3)]
    assert len(PUBLISHED_EXCLUSIONS) == 67 and per_task == [14, 30, 23]
    assert {"s3_T1", "s1_T2", "s53_T3"} <= PUBLISHED_EXCLUSIONS and "s2_T1" not in PUBLISHED_EXCLUSIONS
    assert set(get_reader("ubfc-phys").known_issues) == PUBLISHED_EXCLUSIONS  # acquisition flags them by name


def test_ubfc_phys_excluded_session_with_missing_files_does_not_fail(tmp_path, caplog):
    write_ubfc_phys(tmp_path, ["s1_T1", "s2_T1"], n_frames=2)
    (tmp_path / "s2" / "bvp_s2_T1.csv").unlink()
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "s2" / "bvp_s2_T1.csv"))):
        reader("ubfc-phys", tmp_path).list_sessions()
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.ubfc_phys"):
        sessions = reader("ubfc-phys", tmp_path, exclude=["s2_T1", "s9_T9"]).list_sessions()
    assert [s.session for s in sessions] == ["s1_T1"]
    assert "'exclude' names session(s) not under" in caplog.text and "s9_T9" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tasks": ["task1"]}, "look like 'T1'"),
        ({"exclude": ["s3-T1"]}, "look like 's3_T1'"),
        ({"exclude_published": "maybe"}, "exclude_published"),
        ({"task": ["T1"]}, r"known options: exclude_published, tasks, exclude"),
    ],
)
def test_ubfc_phys_bad_options_are_config_errors(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        reader("ubfc-phys", tmp_path, **options)


def test_ubfc_phys_missing_video_is_named(tmp_path):
    write_ubfc_phys(tmp_path, ["s1_T1", "s1_T2"], n_frames=2)
    video = tmp_path / "s1" / "vid_s1_T2.avi"
    video.unlink()
    with pytest.raises(DataError, match=r"missing file\(s\): " + re.escape(str(video))):
        reader("ubfc-phys", tmp_path).list_sessions()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BVP\n0.1\n0.2\n", r"line 1 is not a number \('BVP'\); .* has no header row"),
        ("0.1\n0.2\n0.3\nn/a\n0.5\n", r"line 4 is not a number \('n/a'\)"),
        ("", "the label is empty"),
        ("\n\n", "the label is empty"),
        ("0.1\n0.2\nnan\n0.3\n", r"the label has 1 NaN/inf value\(s\), first at sample 2"),
    ],
)
def test_ubfc_phys_bad_bvp_csv_is_named(tmp_path, text, message):
    write_ubfc_phys(tmp_path, ["s1_T1"], n_frames=2)
    r = reader("ubfc-phys", tmp_path)
    (s,) = r.list_sessions()
    Path(s.label_path).write_text(text)
    with pytest.raises(DataError, match="^" + re.escape(s.label_path) + ": " + message):
        r.read_label(s)


def test_ubfc_phys_label_shorter_than_the_video_is_caught(tmp_path):
    write_ubfc_phys(tmp_path, ["s1_T1"], n_frames=105, label_s=1.5)  # 3 s of video, 1.5 s of BVP
    r = reader("ubfc-phys", tmp_path)
    (s,) = r.list_sessions()
    with pytest.raises(DataError, match=re.escape(s.label_path) + r": label lasts 1.50 s .*64 Hz.* 3.00 s"):
        align_label(r.read_label(s), 105, s.fps, None, r.alignment, s.label_path)


def test_ubfc_phys_unreadable_and_truncated_videos_are_named(tmp_path):
    write_ubfc_phys(tmp_path, ["s1_T1", "s2_T1"], n_frames=30)
    r = reader("ubfc-phys", tmp_path)
    garbage, cut = r.list_sessions()
    Path(garbage.video_path).write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=re.escape(garbage.video_path) + ": OpenCV cannot open"):
        list(r.iter_frames(garbage))
    video = Path(cut.video_path)
    video.write_bytes(video.read_bytes()[: int(video.stat().st_size * 0.5)])
    assert r.frame_count(cut) == 30  # the header still declares every frame
    with pytest.raises(DataError, match=re.escape(cut.video_path) + r": decoded only \d+ of the 30 frames"):
        list(r.iter_frames(cut))


def test_ubfc_phys_container_fps_mismatch_is_logged(tmp_path, caplog):
    write_ubfc_phys(tmp_path, ["s1_T1"], n_frames=2, fps=30.0)
    r = reader("ubfc-phys", tmp_path)  # 35 fps configured
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.ubfc_phys"):
        list(r.iter_frames(r.list_sessions()[0]))
    assert "30.000 fps but 35 fps is configured" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.ubfc_phys"):
        list(reader("ubfc-phys", tmp_path, fps=30.2).iter_frames(r.list_sessions()[0]))  # within 1%
    assert "fps is configured" not in caplog.text


def test_ubfc_phys_preprocesses_into_a_store_with_a_stretched_label(tmp_path):
    """The whole path on a real face: Haar crop, streamed frames, label stretched from 64 Hz."""
    raw = tmp_path / "raw"
    (raw / "s1").mkdir(parents=True)
    n, fps = 40, 35.0
    write_avi(raw / "s1" / "vid_s1_T1.avi", face_frames(pulse(np.arange(n) / fps)), fps, codec="MJPG")
    t = np.arange(int(n / fps * 64)) / 64
    (raw / "s1" / "bvp_s1_T1.csv").write_text("".join(f"{v:.6f}\n" for v in pulse(t)))
    r = reader("ubfc-phys", raw)
    store = ChunkStore(preprocess_dataset(r, r.list_sessions(), PreprocessSettings(size=16, chunk_length=20),
                                          tmp_path / "store"))  # fmt: skip
    row = store.sessions.iloc[0]
    assert (row.session, row.subject, row.task, row.n_frames, row.alignment) == ("s1_T1", "s1", "T1", 40,
                                                                                  "linear_stretch")  # fmt: skip
    assert not row.face_fallback and len(store.index) == 2
    assert store.frames("s1_T1").shape == (40, 16, 16, 3)
    label = store.label("s1_T1")
    assert label.dtype == np.float32 and label.shape == (40,)
    assert np.corrcoef(label, pulse(np.arange(n) / fps))[0, 1] > 0.98  # stretch of a label as long as the video


# --- COHFACE ----------------------------------------------------------------------------------


def test_cohface_lists_subject_recording_sessions_in_natural_order(tmp_path):
    write_cohface(tmp_path, ["10-0", "2-1", "1-3", "1-0"], n_frames=2)
    (tmp_path / "protocols").mkdir()
    (tmp_path / "1" / "notes").mkdir()
    r = reader("cohface", tmp_path)
    sessions = r.list_sessions()
    assert [(s.session, s.subject, s.task) for s in sessions] == [
        ("1-0", "1", "0"), ("1-3", "1", "3"), ("2-1", "2", "1"), ("10-0", "10", "0")]  # fmt: skip
    s = sessions[0]
    assert (s.dataset, s.fps) == ("cohface", 20.0)
    assert s.video_path == str(tmp_path / "1" / "0" / "data.avi")
    assert s.label_path == str(tmp_path / "1" / "0" / "data.hdf5")
    assert r.session_files(s) == [Path(s.video_path), Path(s.label_path)]


def test_cohface_streams_rgb_frames_and_reads_pulse_with_its_time_axis(tmp_path):
    truth = write_cohface(tmp_path, ["1-0"], n_frames=8)["1-0"]
    r = reader("cohface", tmp_path)
    (s,) = r.list_sessions()
    frames = list(r.iter_frames(s))
    assert r.frame_count(s) == len(frames) == 8
    assert_colour(frames[0])
    label = r.read_label(s)
    np.testing.assert_array_equal(label.values, truth)
    np.testing.assert_allclose(label.timestamps_s, np.arange(truth.size) / 256)
    assert label.rate_hz == pytest.approx(256.0)
    np.testing.assert_allclose(r.frame_timestamps_s(s), np.arange(8) / 20)


def test_cohface_timestamp_alignment_differs_from_the_stretch_when_the_video_stops_early(tmp_path):
    """The pulse runs 3 s but only 2 s of frames exist (frames lost at the end of the recording)."""
    write_cohface(tmp_path, ["1-0"], n_frames=40, label_s=3.0)
    r = reader("cohface", tmp_path)
    (s,) = r.list_sessions()
    label, times = r.read_label(s), r.frame_timestamps_s(s)
    by_time, method = align_label(label, 40, s.fps, times, r.alignment, s.label_path)
    stretched, _ = align_label(label, 40, s.fps, times, "linear_stretch", s.label_path)
    truth = pulse(np.arange(40) / 20)
    assert method == "timestamps"
    assert np.abs(by_time - truth).max() < 0.01
    assert np.abs(stretched - truth).max() > 0.5  # the stretch squeezes 3 s of pulse onto 2 s


def test_cohface_without_time_falls_back_to_linear_stretch(tmp_path, caplog):
    write_cohface(tmp_path, ["1-0"], n_frames=10, with_time=False)
    r = reader("cohface", tmp_path)
    (s,) = r.list_sessions()
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.cohface"):
        label = r.read_label(s)
    assert label.timestamps_s is None and label.rate_hz == 256.0
    assert "no 'time' dataset" in caplog.text
    aligned, method = align_label(label, 10, s.fps, r.frame_timestamps_s(s), r.alignment, s.label_path)
    assert method == "linear_stretch" and aligned.shape == (10,)


def test_cohface_preprocesses_with_timestamp_alignment(tmp_path):
    write_cohface(tmp_path / "raw", ["1-0", "1-1"], n_frames=20, label_s=1.5)
    r = reader("cohface", tmp_path / "raw")
    store = ChunkStore(preprocess_dataset(r, r.list_sessions(), TINY, tmp_path / "store"))
    rows = store.sessions.set_index("session")
    assert list(rows.index) == ["1-0", "1-1"]
    assert (rows["alignment"] == "timestamps").all() and (rows["n_frames"] == 20).all()
    assert rows.loc["1-1", "task"] == "1" and rows.loc["1-1", "subject"] == "1"
    np.testing.assert_allclose(store.label("1-0"), pulse(np.arange(20) / 20), atol=0.01)


def test_cohface_hdf5_without_pulse_names_the_keys_it_has(tmp_path):
    write_cohface(tmp_path, ["1-0"], n_frames=2)
    r = reader("cohface", tmp_path)
    (s,) = r.list_sessions()
    with h5py.File(s.label_path, "a") as h5:
        del h5["pulse"]
    with pytest.raises(DataError, match=re.escape(s.label_path) + r": no 'pulse' .*\(it has: respiration, time\)"):
        r.read_label(s)


@pytest.mark.parametrize(
    ("pulse_values", "time_values", "message"),
    [
        (np.array([]), np.array([]), "the label is empty"),
        (np.array([0.1, np.nan, 0.3]), np.arange(3) / 256, r"the label has 1 NaN/inf value\(s\), first at sample 1"),
        (np.array([0.1, 0.2, 0.3]), np.arange(4) / 256, "'pulse' has 3 samples but 'time' has 4"),
        (np.array([0.1, 0.2, 0.3]), np.array([0.0, 0.2, 0.1]), "'time' is not strictly increasing"),
    ],
)
def test_cohface_bad_pulse_is_named(tmp_path, pulse_values, time_values, message):
    write_cohface(tmp_path, ["1-0"], n_frames=2)
    r = reader("cohface", tmp_path)
    (s,) = r.list_sessions()
    with h5py.File(s.label_path, "w") as h5:
        h5["pulse"] = pulse_values
        h5["time"] = time_values
    with pytest.raises(DataError, match="^" + re.escape(s.label_path) + ": " + message):
        r.read_label(s)


def test_cohface_missing_unreadable_files_are_named(tmp_path):
    write_cohface(tmp_path, ["1-0", "1-1"], n_frames=2)
    r = reader("cohface", tmp_path)
    first, second = r.list_sessions()
    Path(first.label_path).write_text("not an HDF5 file")
    with pytest.raises(DataError, match=re.escape(first.label_path) + ": cannot read the HDF5 file"):
        r.read_label(first)
    Path(second.video_path).write_bytes(b"\0" * 3000)
    with pytest.raises(DataError, match=re.escape(second.video_path) + ": OpenCV cannot open"):
        list(r.iter_frames(second))
    Path(second.label_path).unlink()
    with pytest.raises(DataError, match=r"missing file\(s\): " + re.escape(second.label_path)):
        r.list_sessions()
    with pytest.raises(DataError, match=re.escape(second.label_path) + ": the label file is missing"):
        r.read_label(second)


# --- V4V --------------------------------------------------------------------------------------


def test_v4v_lists_every_split_with_the_official_label_names(tmp_path):
    write_v4v(tmp_path, {"train": ["F001_T1", "M010_T10"], "val": ["F002_T2"], "test": ["M003_T3"]},
              n_frames=2, label_names={"M003_T3": "M003_T3.txt"})  # fmt: skip
    (tmp_path / "train" / "video" / "README.txt").write_text("not a video")
    r = reader("v4v", tmp_path)
    sessions = r.list_sessions()
    assert [(s.session, s.subject, s.task) for s in sessions] == [
        ("test-M003_T3", "M003", "T3"), ("train-F001_T1", "F001", "T1"), ("train-M010_T10", "M010", "T10"),
        ("val-F002_T2", "F002", "T2")]  # fmt: skip
    by_name = {s.session: s for s in sessions}
    assert by_name["train-F001_T1"].video_path == str(tmp_path / "train" / "video" / "F001_T1.mkv")
    assert by_name["train-F001_T1"].label_path == str(tmp_path / "train" / "signal" / "F001-T1-BP.txt")
    assert by_name["val-F002_T2"].label_path == str(tmp_path / "val" / "signal" / "F002-T2.txt")
    assert by_name["test-M003_T3"].label_path == str(tmp_path / "test" / "signal" / "M003_T3.txt")
    assert all(s.dataset == "v4v" and s.fps == 25.0 for s in sessions)


def test_v4v_streams_rgb_mkv_frames_and_reads_the_1000hz_label(tmp_path):
    truth = write_v4v(tmp_path, {"train": ["F001_T1"]}, n_frames=6)["train-F001_T1"]
    r = reader("v4v", tmp_path, splits=["train"])
    (s,) = r.list_sessions()
    frames = list(r.iter_frames(s))
    assert r.frame_count(s) == len(frames) == 6
    assert_colour(frames[-1])
    label = r.read_label(s)
    np.testing.assert_array_equal(label.values, truth)
    assert label.rate_hz == 1000.0 and label.timestamps_s is None and truth.size == 240


def test_v4v_splits_option_selects_folders_and_a_missing_split_is_an_error(tmp_path):
    write_v4v(tmp_path, {"train": ["F001_T1"], "val": ["F002_T1"]}, n_frames=2)
    assert [s.session for s in reader("v4v", tmp_path, splits=["val"]).list_sessions()] == ["val-F002_T1"]
    assert len(reader("v4v", tmp_path, splits=["train", "val"]).list_sessions()) == 2
    with pytest.raises(DataError, match=r"split folder\(s\) missing: " + re.escape(str(tmp_path / "test" / "video"))):
        reader("v4v", tmp_path).list_sessions()
    with pytest.raises(DataError, match=r"no session found(.|\n)*vision4vitals"):
        reader("v4v", tmp_path, splits=["test"]).list_sessions()
    with pytest.raises(ConfigError, match="splits"):
        reader("v4v", tmp_path, splits=["training"])
    with pytest.raises(ConfigError, match="named twice"):
        reader("v4v", tmp_path, splits=["val", "val"])


def test_v4v_missing_label_names_every_accepted_name(tmp_path):
    write_v4v(tmp_path, {"train": ["F001_T1"], "val": ["F002_T2"]}, n_frames=2,
              label_names={"F001_T1": "F001_T1.txt", "F002_T2": "F002-T2-BP.txt"})  # fmt: skip
    signal = {split: tmp_path / split / "signal" for split in ("train", "val")}
    expected = [
        str(signal["train"] / "F001-T1-BP.txt"),
        f"{signal['val'] / 'F002-T2.txt'} or {signal['val'] / 'F002_T2.txt'}",
    ]
    with pytest.raises(DataError, match=re.escape("missing label file(s): " + ", ".join(expected))):
        reader("v4v", tmp_path, splits=["train", "val"]).list_sessions()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BP\n80\n81\n", r"line 1 is not a number \('BP'\)"),
        ("80\n81\n82 mmHg\nx\n", r"line 4 is not a number \('x'\)"),
        ("", "the label is empty"),
        ("80\ninf\n81\n", r"the label has 1 NaN/inf value\(s\), first at sample 1"),
    ],
)
def test_v4v_bad_label_text_is_named(tmp_path, text, message):
    write_v4v(tmp_path, {"val": ["F002_T2"]}, n_frames=2)
    r = reader("v4v", tmp_path, splits=["val"])
    (s,) = r.list_sessions()
    Path(s.label_path).write_text(text)
    with pytest.raises(DataError, match="^" + re.escape(s.label_path) + ": " + message):
        r.read_label(s)


def test_v4v_truncated_mkv_is_an_error(tmp_path):
    write_v4v(tmp_path, {"test": ["F001_T1"]}, n_frames=60)
    r = reader("v4v", tmp_path, splits=["test"])
    (s,) = r.list_sessions()
    video = Path(s.video_path)
    whole = video.read_bytes()
    video.write_bytes(whole[: len(whole) // 2])
    assert r.frame_count(s) == 60  # Matroska's duration still implies every frame
    with pytest.raises(DataError, match=re.escape(s.video_path) + r": decoded only \d+ of the 60 frames.*re-download"):
        list(r.iter_frames(s))
    video.write_bytes(whole[:200])
    with pytest.raises(DataError, match=re.escape(s.video_path) + ": OpenCV cannot open"):
        list(r.iter_frames(s))


def test_v4v_tolerates_a_frame_count_estimate_off_by_less_than_a_second(tmp_path, caplog):
    """Matroska stores no frame count; the duration-based estimate may exceed the frames by a few."""
    write_v4v(tmp_path, {"test": ["F001_T1"]}, n_frames=60)
    r = reader("v4v", tmp_path, splits=["test"])
    (s,) = r.list_sessions()
    video = Path(s.video_path)
    whole = video.read_bytes()
    video.write_bytes(whole[: int(len(whole) * 0.9)])  # loses the last few frames
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.v4v"):
        n = sum(1 for _ in r.iter_frames(s))
    assert 60 - 25 < n < 60
    assert f"decoded only {n} of the 60 frames the container declares (within the container's estimate)" in caplog.text


def test_v4v_preprocess_keeps_the_split_in_the_session_name(tmp_path):
    write_v4v(tmp_path / "raw", {"train": ["F001_T1"], "test": ["F001_T1"]}, n_frames=20)
    r = reader("v4v", tmp_path / "raw", splits=["train", "test"])
    store = ChunkStore(preprocess_dataset(r, r.list_sessions(), TINY, tmp_path / "store"))
    rows = store.sessions.set_index("session")
    assert list(rows.index) == ["test-F001_T1", "train-F001_T1"]
    assert (rows["subject"] == "F001").all() and (rows["alignment"] == "linear_stretch").all()
    assert store.frames("train-F001_T1").shape == (20, 8, 8, 3) and len(store.index) == 4
