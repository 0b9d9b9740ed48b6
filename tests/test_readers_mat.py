"""MMPD, SCAMPS and iBVP readers on fixtures written in the datasets' exact on-disk formats.

MMPD: MATLAB v5 files from ``scipy.io.savemat`` (compressed, as MATLAB writes them by
default, and uncompressed) with the attributes stored as strings like the real files.
SCAMPS: MATLAB v7.3 files, i.e. HDF5 with a 512-byte MATLAB header in the userblock
and the dimensions reversed as MATLAB writes them. iBVP: BMP frames and the CSV with
its header row.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from lqrppg.datasets import _matfile, align_label, available_datasets, get_reader, mmpd, scamps
from lqrppg.errors import ConfigError, DataError

RNG = np.random.default_rng(7)
#: A colour whose channels differ, so a BGR/RGB swap or a transposed axis shows.
RGB_FLOAT = (0.2, 0.5, 0.8)
RGB_UINT8 = (51, 128, 204)  # round(x·255); 127.5 rounds half to even, like the toolbox's np.round


def video_tensor(n_frames: int, height: int, width: int, dtype=np.float64) -> np.ndarray:
    """T×H×W×3 floats in [0, 1]: random, with a known colour at pixel (1, 2) and a frame counter at (0, 0)."""
    video = RNG.random((n_frames, height, width, 3)).astype(dtype)
    video[:, 1, 2] = RGB_FLOAT
    video[:, 0, 0, 0] = np.arange(n_frames) / 255.0
    return video


def as_uint8(video: np.ndarray) -> np.ndarray:
    return np.round(video * 255).astype(np.uint8)


# --- registry -------------------------------------------------------------------------------


def test_registry_knows_the_three_readers():
    assert {"mmpd", "scamps", "ibvp"} <= set(available_datasets())
    assert get_reader("mmpd").expected_sessions == 660
    assert get_reader("scamps").expected_sessions == 2800
    assert get_reader("ibvp").expected_sessions == 124


# --- MMPD -----------------------------------------------------------------------------------

MMPD_ATTRS = {
    "light": "LED-low",
    "motion": "Stationary",
    "exercise": "False",
    "skin_color": 3.0,  # numeric in the real files (the toolbox reads it as mat["skin_color"][0][0])
    "gender": "male",
    "glasser": "False",
    "hair_cover": "False",
    "makeup": "False",
}


def write_mmpd(root: Path, subject: int, index: int, *, video=None, ppg=None, compress=True, **attrs) -> Path:
    folder = root / f"subject{subject}"
    folder.mkdir(parents=True, exist_ok=True)
    video = video_tensor(6, 4, 5) if video is None else video
    ppg = np.sin(np.arange(video.shape[0]) / 2.0) if ppg is None else ppg
    path = folder / f"p{subject}_{index}.mat"
    variables = {"video": video, "GT_ppg": ppg[None, :], **MMPD_ATTRS, **attrs}
    scipy.io.savemat(str(path), variables, do_compression=compress)
    return path


def mmpd_reader(root: Path, **options):
    return get_reader("mmpd")(root, None, options)


def test_mmpd_lists_sessions_with_subject_and_task(tmp_path):
    for subject, index in [(10, 3), (2, 0), (1, 1), (1, 0), (1, 10)]:
        write_mmpd(tmp_path, subject, index)
    (tmp_path / "subject2" / "notes.mat").write_bytes(b"x")
    (tmp_path / "readme").mkdir()
    reader = mmpd_reader(tmp_path)
    sessions = reader.list_sessions()
    assert [(s.session, s.subject, s.task) for s in sessions] == [
        ("p1_0", "subject1", "0"), ("p1_1", "subject1", "1"), ("p1_10", "subject1", "10"),
        ("p2_0", "subject2", "0"), ("p10_3", "subject10", "3"),
    ]  # fmt: skip
    s = sessions[0]
    assert s.dataset == "mmpd" and s.fps == 30.0
    assert s.video_path == s.label_path == str(tmp_path / "subject1" / "p1_0.mat")
    assert reader.session_files(s) == [Path(s.video_path)]


def test_mmpd_file_of_another_subject_is_an_error(tmp_path):
    path = write_mmpd(tmp_path, 1, 0)
    path.rename(tmp_path / "subject1" / "p2_0.mat")
    with pytest.raises(DataError, match=r"p2_0\.mat: file of subject p2 inside subject1/"):
        mmpd_reader(tmp_path).list_sessions()


@pytest.mark.parametrize("compress", [True, False], ids=["compressed", "uncompressed"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mmpd_streams_frames_as_rgb_uint8(tmp_path, monkeypatch, compress, dtype):
    """Chunks far smaller than the video exercise the column-major to frame-major transposition."""
    video = video_tensor(7, 4, 5, dtype)
    write_mmpd(tmp_path, 1, 0, video=video, compress=compress)
    monkeypatch.setattr(mmpd, "_CHUNK_BYTES", 3 * 7 * 8)  # 3 pixel columns (or 6 for float32) per chunk
    monkeypatch.setattr(_matfile, "_IO_BYTES", 37)  # decompressor output in odd pieces
    reader = mmpd_reader(tmp_path)
    (s,) = reader.list_sessions()
    assert reader.frame_count(s) == 7
    frames = list(reader.iter_frames(s))
    assert len(frames) == 7
    assert all(f.dtype == np.uint8 and f.shape == (4, 5, 3) and f.flags.c_contiguous for f in frames)
    np.testing.assert_array_equal(np.stack(frames), as_uint8(video))
    assert tuple(frames[3][1, 2]) == RGB_UINT8
    assert [int(f[0, 0, 0]) for f in frames] == list(range(7))  # frames come in time order


def test_mmpd_out_of_range_pixels_are_clipped_and_logged(tmp_path, caplog):
    video = video_tensor(3, 2, 3)
    video[1, 0, 1, 2] = 1.2
    video[2, 1, 1, 0] = -0.1
    write_mmpd(tmp_path, 1, 0, video=video)
    reader = mmpd_reader(tmp_path)
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.mmpd"):
        frames = list(reader.iter_frames(reader.list_sessions()[0]))
    assert frames[1][0, 1, 2] == 255 and frames[2][1, 1, 0] == 0
    assert "2 pixel value(s) outside [0, 1] clipped" in caplog.text


def test_mmpd_label_is_gt_ppg_flattened(tmp_path):
    ppg = np.sin(np.arange(6) / 2.0) + 3
    write_mmpd(tmp_path, 1, 0, ppg=ppg)
    reader = mmpd_reader(tmp_path)
    (s,) = reader.list_sessions()
    label = reader.read_label(s)
    np.testing.assert_allclose(label.values, ppg)
    assert label.rate_hz == 30.0 and label.timestamps_s is None and label.quality is None
    aligned, method = align_label(label, 6, s.fps, None, reader.alignment, s.label_path)
    assert method == "linear_stretch"
    np.testing.assert_allclose(aligned, ppg, rtol=1e-6)  # one sample per frame: the stretch is a no-op


def test_mmpd_attributes_map_to_the_toolbox_codes(tmp_path):
    write_mmpd(tmp_path, 1, 0, light="Nature", motion="Watching Videos", exercise="True", skin_color=5.0,
               gender="female", glasser="True", hair_cover="False", makeup="True")  # fmt: skip
    write_mmpd(tmp_path, 1, 1, motion="Stationary (after exercise)")
    reader = mmpd_reader(tmp_path)
    first, second = reader.list_sessions()
    assert reader.attributes(first) == {"light": 4, "motion": 4, "exercise": 1, "skin_color": 5, "gender": 2,
                                        "glasser": 1, "hair_cover": 2, "makeup": 1}  # fmt: skip
    assert reader.attributes(second)["motion"] == 1


def test_mmpd_filters_keep_matching_sessions_and_log_the_rest(tmp_path, caplog):
    write_mmpd(tmp_path, 1, 0, motion="Walking")
    write_mmpd(tmp_path, 1, 1, motion="Watching Videos")  # old label of Walking
    write_mmpd(tmp_path, 2, 0, motion="Talking", light="Incandescent")
    write_mmpd(tmp_path, 2, 1, motion="Rotation")
    assert len(mmpd_reader(tmp_path).list_sessions()) == 4  # no filter: every condition
    with caplog.at_level(logging.INFO, logger="lqrppg.datasets.mmpd"):
        kept = mmpd_reader(tmp_path, motion=[4], release="mini").list_sessions()
    assert [s.session for s in kept] == ["p1_0", "p1_1"]
    assert "2 of 4 session(s) filtered out (keeping motion in [4])" in caplog.text
    kept = mmpd_reader(tmp_path, motion=[3, 4], light=[3]).list_sessions()
    assert [s.session for s in kept] == ["p2_0"]
    with pytest.raises(DataError, match="leave no session"):
        mmpd_reader(tmp_path, skin_color=[6]).list_sessions()


def test_mmpd_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"light: unknown code\(s\) \[5\]"):
        mmpd_reader(tmp_path, light=[5])
    with pytest.raises(ConfigError, match="release"):
        mmpd_reader(tmp_path, release="huge")
    with pytest.raises(ConfigError, match="known options: light"):
        mmpd_reader(tmp_path, lighting=[1])


def test_mmpd_unknown_attribute_value_is_named(tmp_path):
    path = write_mmpd(tmp_path, 1, 0, light="Candle")
    reader = mmpd_reader(tmp_path)
    with pytest.raises(DataError, match=re.escape(str(path)) + r": attribute 'light' has unknown value 'Candle'"):
        reader.attributes(reader.list_sessions()[0])
    with pytest.raises(DataError, match="Candle"):
        mmpd_reader(tmp_path, light=[1]).list_sessions()


def test_mmpd_release_size_mismatch_is_logged(tmp_path, caplog):
    write_mmpd(tmp_path, 1, 0)
    reader = mmpd_reader(tmp_path, release="full")
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.mmpd"):
        list(reader.iter_frames(reader.list_sessions()[0]))
    assert "frames are 5×4 but release 'full' has 320×240" in caplog.text


@pytest.mark.parametrize("compress", [True, False], ids=["compressed", "uncompressed"])
def test_mmpd_truncated_file_is_named(tmp_path, compress):
    path = write_mmpd(tmp_path, 1, 0, video=video_tensor(40, 8, 8), compress=compress)
    reader = mmpd_reader(tmp_path)
    (s,) = reader.list_sessions()
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    pattern = re.escape(str(path)) + ": truncated .mat file"
    with pytest.raises(DataError, match=pattern):
        reader.frame_count(s)
    with pytest.raises(DataError, match=pattern):
        list(reader.iter_frames(s))
    with pytest.raises(DataError, match=re.escape(str(path))):
        reader.read_label(s)  # GT_ppg is written after the video, so it is cut off too
    with pytest.raises(DataError, match=re.escape(str(path))):
        mmpd_reader(tmp_path, light=[1]).list_sessions()  # filtering reads the attributes


def test_mmpd_corrupt_compressed_video_is_named(tmp_path):
    path = write_mmpd(tmp_path, 1, 0, video=video_tensor(40, 8, 8))
    data = bytearray(path.read_bytes())
    data[400:800] = bytes(400)  # inside the video's zlib stream
    path.write_bytes(bytes(data))
    reader = mmpd_reader(tmp_path)
    with pytest.raises(DataError, match=re.escape(str(path)) + ": corrupt compressed data in variable 'video'"):
        list(reader.iter_frames(reader.list_sessions()[0]))


def test_mmpd_nan_label_and_missing_keys_are_named(tmp_path):
    path = write_mmpd(tmp_path, 1, 0, ppg=np.array([0.1, 0.2, np.nan, 0.3, 0.1, 0.0]))
    reader = mmpd_reader(tmp_path)
    (s,) = reader.list_sessions()
    with pytest.raises(DataError, match=re.escape(str(path)) + r": the label has 1 NaN/inf.*sample 2"):
        reader.read_label(s)
    scipy.io.savemat(str(path), {"frames": video_tensor(2, 2, 3), **MMPD_ATTRS})
    with pytest.raises(DataError, match=r"no 'video' variable \(found: exercise, frames, gender"):
        reader.frame_count(s)
    with pytest.raises(DataError, match=r"no 'GT_ppg' variable"):
        reader.read_label(s)


def test_mmpd_v73_file_is_named(tmp_path):
    path = tmp_path / "subject1" / "p1_0.mat"
    path.parent.mkdir()
    write_v73(path, video_tensor(3, 2, 3), np.arange(3.0), video_key="video")
    reader = mmpd_reader(tmp_path)
    with pytest.raises(DataError, match=re.escape(str(path)) + r": this is a MATLAB v7.3 \(HDF5\) file"):
        reader.frame_count(reader.list_sessions()[0])


# --- SCAMPS ---------------------------------------------------------------------------------


def write_v73(path: Path, video: np.ndarray, ppg: np.ndarray | None, *, layout: str = "cwht",
              chunks=None, video_key: str = "Xsub") -> Path:  # fmt: skip
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 after a 512-byte header, dimensions reversed.

    ``video`` is (T, H, W, 3). ``layout`` "cwht" stores it as the MATLAB array T×H×W×3
    (h5py sees (3, W, H, T): SCAMPS, per its README and rPPG-Toolbox); "tcwh" as the
    MATLAB array H×W×3×T (h5py sees (T, 3, W, H)).
    """
    stored = video.transpose(3, 2, 1, 0) if layout == "cwht" else video.transpose(0, 3, 2, 1)
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset(video_key, data=stored, chunks=chunks, compression="gzip" if chunks else None)
        ds.attrs["MATLAB_class"] = np.bytes_("double")
        if ppg is not None:
            f.create_dataset("d_ppg", data=ppg[None, :]).attrs["MATLAB_class"] = np.bytes_("double")
        f.create_dataset("d_br", data=np.zeros((1, video.shape[0]))).attrs["MATLAB_class"] = np.bytes_("double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  3 10:00:00 2022 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + bytes(8) + b"\x00\x02" + b"IM")
    return path


def write_scamps(root: Path, name: str, *, video=None, ppg=None, **kwargs) -> Path:
    path = root / f"{name}.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    video = video_tensor(6, 4, 5) if video is None else video
    ppg = np.cos(np.arange(video.shape[0]) / 3.0) if ppg is None else ppg
    return write_v73(path, video, ppg, **kwargs)


def scamps_reader(root: Path):
    return get_reader("scamps")(root)


def test_scamps_fixture_is_a_matlab_v73_file(tmp_path):
    path = write_scamps(tmp_path, "P000001")
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512 and f["Xsub"].shape == (3, 5, 4, 6)


def test_scamps_lists_flat_and_split_folders(tmp_path):
    for name in ["Train/P000010", "Train/P000002", "Val/P000005", "Test/P000007", "P000001"]:
        write_scamps(tmp_path, name)
    (tmp_path / "Train" / "labels.mat").write_bytes(b"x")
    reader = scamps_reader(tmp_path)
    sessions = reader.list_sessions()
    assert [(s.session, s.subject, s.task) for s in sessions] == [
        ("P000001", "P000001", ""), ("Test/P000007", "P000007", "Test"), ("Train/P000002", "P000002", "Train"),
        ("Train/P000010", "P000010", "Train"), ("Val/P000005", "P000005", "Val"),
    ]  # fmt: skip
    assert reader.session_files(sessions[1]) == [tmp_path / "Test" / "P000007.mat"]
    write_scamps(tmp_path, "Val/P000002")
    with pytest.raises(DataError, match="P000002 appears twice"):
        reader.list_sessions()


@pytest.mark.parametrize("layout", ["cwht", "tcwh"])
@pytest.mark.parametrize("chunks", [None, (1, 2, 3, 2)], ids=["contiguous", "chunked"])
def test_scamps_streams_frames_in_either_axis_order(tmp_path, monkeypatch, layout, chunks):
    monkeypatch.setattr(scamps, "_CHUNK_BYTES", 16)  # several slabs for the contiguous dataset
    video = video_tensor(6, 4, 5)
    write_scamps(tmp_path, "P000001", video=video, layout=layout, chunks=chunks)
    reader = scamps_reader(tmp_path)
    (s,) = reader.list_sessions()
    assert reader.frame_count(s) == 6
    frames = list(reader.iter_frames(s))
    assert all(f.dtype == np.uint8 and f.shape == (4, 5, 3) for f in frames)
    np.testing.assert_array_equal(np.stack(frames), as_uint8(video))
    assert tuple(frames[2][1, 2]) == RGB_UINT8
    assert [int(f[0, 0, 0]) for f in frames] == list(range(6))


def test_scamps_ambiguous_shape_is_resolved_by_the_label_length(tmp_path):
    video = video_tensor(4, 5, 3)  # h5py shape (3, 3, 5, 4): a colour axis fits in both places
    path = write_scamps(tmp_path, "P000001", video=video, ppg=np.arange(4.0))
    reader = scamps_reader(tmp_path)
    (s,) = reader.list_sessions()
    assert reader.frame_count(s) == 4  # only the (3, W, H, T) reading has 4 frames, like d_ppg
    np.testing.assert_array_equal(np.stack(list(reader.iter_frames(s))), as_uint8(video))
    write_scamps(tmp_path, "P000001", video=video_tensor(3, 3, 3), ppg=np.arange(3.0))
    with pytest.raises(DataError, match=re.escape(str(path)) + r": cannot tell the axes of 'Xsub'"):
        reader.frame_count(s)


def test_scamps_label_is_d_ppg_one_sample_per_frame(tmp_path):
    ppg = np.cos(np.arange(6) / 3.0)
    write_scamps(tmp_path, "P000001", ppg=ppg)
    reader = scamps_reader(tmp_path)
    (s,) = reader.list_sessions()
    label = reader.read_label(s)
    np.testing.assert_allclose(label.values, ppg)
    aligned, method = align_label(label, 6, s.fps, None, reader.alignment, s.label_path)
    assert method == "sample_count" and aligned.shape == (6,)


def test_scamps_missing_keys_are_named_with_the_keys_present(tmp_path):
    path = write_scamps(tmp_path, "P000001")
    reader = scamps_reader(tmp_path)
    (s,) = reader.list_sessions()
    write_v73(path, video_tensor(6, 4, 5), None)
    with pytest.raises(DataError, match=re.escape(str(path)) + r": no 'd_ppg' dataset \(keys present: Xsub, d_br\)"):
        reader.read_label(s)
    write_v73(path, video_tensor(6, 4, 5), np.arange(6.0), video_key="RawFrames")
    with pytest.raises(DataError, match=r"no 'Xsub' dataset \(keys present: RawFrames, d_br, d_ppg\)"):
        list(reader.iter_frames(s))


def test_scamps_truncated_or_v5_file_is_named(tmp_path):
    path = write_scamps(tmp_path, "P000001", video=video_tensor(30, 8, 8))
    reader = scamps_reader(tmp_path)
    (s,) = reader.list_sessions()
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.5)])
    with pytest.raises(DataError, match=re.escape(str(path)) + r": cannot open as a MATLAB v7.3 \(HDF5\) file"):
        list(reader.iter_frames(s))
    scipy.io.savemat(str(path), {"Xsub": np.zeros((2, 2, 3, 2)), "d_ppg": np.zeros(2)})
    with pytest.raises(DataError, match="it is a MATLAB v5 file"):
        reader.read_label(s)


def test_scamps_nan_label_is_named(tmp_path):
    path = write_scamps(tmp_path, "P000001", ppg=np.array([0.0, 1.0, np.inf, 0.5, 0.2, 0.1]))
    reader = scamps_reader(tmp_path)
    with pytest.raises(DataError, match=re.escape(str(path)) + r": the label has 1 NaN/inf"):
        reader.read_label(reader.list_sessions()[0])


# --- iBVP -----------------------------------------------------------------------------------

IBVP_HEADER = "BVP,SQPhysMD,SQ1,SQ2,Perfusion_Value"


def ibvp_frames(n: int) -> list[np.ndarray]:
    """RGB frames with a known colour patch and the frame number in the red channel at (0, 0)."""
    frames = []
    for i in range(n):
        rgb = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        rgb[1, 2] = RGB_UINT8
        rgb[0, 0, 0] = i
        frames.append(rgb)
    return frames


def write_ibvp(root: Path, name: str, n: int = 12, *, sq2=None, lines: list[str] | None = None,
               frame_name="{name}_rgb_{i}.bmp") -> dict:  # fmt: skip
    """One recording: BMP frames (unpadded numbers, so string order is wrong) and the CSV."""
    folder = root / name
    (folder / f"{name}_rgb").mkdir(parents=True)
    (folder / f"{name}_t").mkdir()  # thermal frames: present in the real data, not read
    (folder / f"{name}_t" / "0.raw").write_bytes(bytes(16))
    frames = ibvp_frames(n)
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"{name}_rgb" / frame_name.format(name=name, i=i)), rgb[..., ::-1])
    bvp = np.sin(np.arange(n) / 2.0)
    sq2 = np.linspace(0, 1, n) if sq2 is None else sq2
    if lines is None:
        lines = [IBVP_HEADER] + [f"{b:.6f},0.9,0.8,{q:.3f},1.5" for b, q in zip(bvp, sq2, strict=True)]
    (folder / f"{name}_bvp.csv").write_text("\n".join(lines) + "\n")
    return {"frames": frames, "bvp": bvp, "sq2": sq2}


def ibvp_reader(root: Path, **options):
    return get_reader("ibvp")(root, None, options)


def test_ibvp_lists_sessions_with_subject_and_task(tmp_path):
    for name in ["p10_a", "p01_b", "p01_a"]:
        write_ibvp(tmp_path, name, n=3)
    (tmp_path / "Confidential_No-media-use").mkdir()
    reader = ibvp_reader(tmp_path)
    sessions = reader.list_sessions()
    assert [(s.session, s.subject, s.task) for s in sessions] == [("p01_a", "p01", "a"), ("p01_b", "p01", "b"),
                                                                   ("p10_a", "p10", "a")]  # fmt: skip
    s = sessions[0]
    assert s.video_path == str(tmp_path / "p01_a" / "p01_a_rgb")
    assert s.label_path == str(tmp_path / "p01_a" / "p01_a_bvp.csv")
    files = reader.session_files(s)
    assert len(files) == 4 and files[-1] == Path(s.label_path)
    assert not any(f.suffix == ".raw" for f in files)  # thermal frames are not part of the session
    (tmp_path / "p10_a" / "p10_a_bvp.csv").unlink()
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "p10_a" / "p10_a_bvp.csv"))):
        reader.list_sessions()


def test_ibvp_frames_are_rgb_in_numeric_order(tmp_path):
    truth = write_ibvp(tmp_path, "p01_a", n=12)
    reader = ibvp_reader(tmp_path)
    (s,) = reader.list_sessions()
    names = [p.name for p in reader.session_files(s)[:-1]]
    assert names[9:11] == ["p01_a_rgb_9.bmp", "p01_a_rgb_10.bmp"] and names != sorted(names)
    frames = list(reader.iter_frames(s))
    assert reader.frame_count(s) == len(frames) == 12
    assert all(np.array_equal(a, b) for a, b in zip(frames, truth["frames"], strict=True))  # BMP is lossless
    assert tuple(frames[0][1, 2]) == RGB_UINT8


def test_ibvp_label_carries_the_quality_mask(tmp_path):
    sq2 = np.array([0.1, 0.3, 0.31, 0.9, 0.0, 1.0])
    truth = write_ibvp(tmp_path, "p01_a", n=6, sq2=sq2)
    (s,) = ibvp_reader(tmp_path).list_sessions()
    label = ibvp_reader(tmp_path).read_label(s)
    np.testing.assert_allclose(label.values, truth["bvp"], atol=1e-6)
    assert label.rate_hz == 30.0 and label.timestamps_s is None
    np.testing.assert_array_equal(label.quality, [0, 0, 1, 1, 0, 1])  # SQ2 > 0.3, as the toolbox keeps
    assert ibvp_reader(tmp_path, quality_threshold=0.5).read_label(s).quality.tolist() == [0, 0, 0, 1, 0, 1]
    assert ibvp_reader(tmp_path, quality_column="SQ1").read_label(s).quality.tolist() == [1] * 6
    assert ibvp_reader(tmp_path, mask_quality=False).read_label(s).quality is None
    with pytest.raises(ConfigError, match="quality_column"):
        ibvp_reader(tmp_path, quality_column="SQ3")


def test_ibvp_gap_in_frame_numbering_is_named(tmp_path):
    write_ibvp(tmp_path, "p01_a", n=8)
    folder = tmp_path / "p01_a" / "p01_a_rgb"
    (folder / "p01_a_rgb_5.bmp").unlink()
    reader = ibvp_reader(tmp_path)
    (s,) = reader.list_sessions()
    gap = re.escape(str(folder)) + r": the frame numbering has a gap: frame 5 is missing"
    with pytest.raises(DataError, match=gap):
        reader.frame_count(s)
    with pytest.raises(DataError, match="frame 5 is missing"):
        list(reader.iter_frames(s))


def test_ibvp_csv_header_in_the_wrong_place_is_named(tmp_path):
    rows = ["0.1,0.9,0.8,0.5,1.5", "0.2,0.9,0.8,0.5,1.5", "0.3,0.9,0.8,0.5,1.5"]
    write_ibvp(tmp_path, "p01_a", n=3, lines=rows)
    path = tmp_path / "p01_a" / "p01_a_bvp.csv"
    reader = ibvp_reader(tmp_path)
    (s,) = reader.list_sessions()
    with pytest.raises(DataError, match=re.escape(str(path)) + ": line 1 is data, not the header row"):
        reader.read_label(s)
    path.write_text("\n".join(["recorded with PhysioKit", "", IBVP_HEADER, *rows]) + "\n")
    with pytest.raises(DataError, match=re.escape(str(path)) + ": line 1 is not the header row.*header is on line 3"):
        reader.read_label(s)
    path.write_text("\n".join([IBVP_HEADER, rows[0], IBVP_HEADER, rows[1]]) + "\n")
    with pytest.raises(DataError, match=re.escape(str(path)) + ": line 3 is a second header row"):
        reader.read_label(s)
    path.write_text("\n".join(["BVP,SQ1", "0.1,0.2", "0.3,0.4"]) + "\n")
    with pytest.raises(DataError, match=r"no column SQ2 in the header \(found: BVP, SQ1\)"):
        reader.read_label(s)


def test_ibvp_nan_in_label_is_named_and_nan_grade_is_masked(tmp_path, caplog):
    write_ibvp(tmp_path, "p01_a", n=3, lines=[IBVP_HEADER, "0.1,1,1,0.5,1", "nan,1,1,0.5,1", "0.3,1,1,0.5,1"])
    path = tmp_path / "p01_a" / "p01_a_bvp.csv"
    reader = ibvp_reader(tmp_path)
    (s,) = reader.list_sessions()
    with pytest.raises(DataError, match=re.escape(str(path)) + r": the label has 1 NaN/inf.*sample 1"):
        reader.read_label(s)
    path.write_text("\n".join([IBVP_HEADER, "0.1,1,1,0.5,1", "0.2,1,1,0.5,1", "0.3,1,1,nan,1"]) + "\n")
    with caplog.at_level(logging.WARNING, logger="lqrppg.datasets.ibvp"):
        assert reader.read_label(s).quality.tolist() == [1, 1, 0]  # ungraded is not known to be good
    assert "column SQ2 has 1 NaN/inf grade(s), first on line 4" in caplog.text
