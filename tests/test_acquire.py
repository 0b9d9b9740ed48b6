"""Acquisition on real files: layout checks, the verification report, known defects by
name, clean failures that write nothing, the manifest's content check, downloads from a
real local HTTP server (resume, hash mismatch, unsafe archives), and Snakemake not
rerunning the data stages after a DVC-style mtime reset."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import tiny_config
from fixtures_layouts import face_frames, write_avi, write_pure, write_ubfc_label, write_ubfc_rppg

from lqrppg.acquire import acquire, fetch_download, open_reader, sessions_from_manifest, verify_dataset
from lqrppg.cli import main
from lqrppg.config import DownloadSpec
from lqrppg.datasets.pure import PureReader
from lqrppg.errors import DataError


def _ubfc(root: Path):
    return open_reader("ubfc-rppg", root, 30.0)


def _run_cli(caplog, *argv) -> tuple[int, list[logging.LogRecord]]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lqrppg"):
        code = main([str(a) for a in argv])
    return code, [r for r in caplog.records if r.levelno >= logging.ERROR]


def _config(tmp_path: Path, root: Path, **dataset) -> Path:
    cfg = {
        "results_dir": str(tmp_path / "results"),
        "datasets": {"ubfc": {"reader": "ubfc-rppg", "root": str(root), "fps": 30.0, **dataset}},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------------- verification
def test_manifest_and_verification_report(tmp_path):
    root = tmp_path / "UBFC"
    write_ubfc_rppg(root, ["subject1", "subject2"], n_frames=40)
    (root / "Subject 3").mkdir()  # misnamed: not a session, but reported
    (root / "README.txt").write_text("notes")
    out = tmp_path / "results/raw/ubfc/manifest.parquet"

    manifest, report = acquire(_ubfc(root), out, dataset="ubfc", workers=2)

    stored = pd.read_parquet(out)
    assert len(stored) == 4 and set(stored["role"]) == {"video", "label"}
    assert stored["sha256"].str.fullmatch("[0-9a-f]{64}").all()
    video = root / "subject1/vid.avi"
    row = stored.set_index("file").loc[str(video)]
    assert row["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()
    assert row["size"] == video.stat().st_size and row["mtime_ns"] == video.stat().st_mtime_ns

    written = json.loads((out.parent / "verification.json").read_text())
    assert written == report
    assert written["status"] == "ok" and written["dataset_name"] == "ubfc"
    assert written["sessions"]["found"] == 2 and written["sessions"]["names"] == ["subject1", "subject2"]
    assert written["ignored"] == ["README.txt", "Subject 3/"]
    assert written["flagged"] == [{"session": "subject33", "present": False, "issue": _ubfc(root).known_issues["subject33"]}]
    per = {s["session"]: s for s in written["per_session"]}
    assert per["subject1"]["frames"] == 40 and per["subject1"]["label_samples"] == 40
    assert per["subject1"]["label_per_frame"] == 1.0 and per["subject1"]["decoded"] == "first+last"
    assert per["subject1"]["frame_size"] == [240, 320, 3]


def test_pure_gaps_and_known_issues_are_named(tmp_path, caplog):
    root = tmp_path / "PURE"
    write_pure(root, ["06-01", "06-03", "07-01", "07-03"], n_frames=6)

    class CompletePure(PureReader):  # a release that should hold the 6 recordings of the grid
        expected_sessions = 6

    reader = CompletePure(root)
    with caplog.at_level(logging.INFO, logger="lqrppg"):
        _, report = verify_dataset(reader, workers=2)

    # 06-02 is a known absence; 07-02 is a real gap and is named in the shortfall warning
    assert report["sessions"]["missing"] == ["07-02"]
    assert re.search(r"found 4 of the 6 .*missing: 07-02", caplog.text)
    flagged = {f["session"]: f for f in report["flagged"]}
    assert set(flagged) == {"06-02", "07-05"} and not flagged["06-02"]["present"]
    assert "does not exist" in flagged["06-02"]["issue"]
    per = {s["session"]: s for s in report["per_session"]}
    # 60 Hz label on 30 fps frames: about two samples per frame, aligned by timestamps
    assert per["06-01"]["frames"] == 6 and per["06-01"]["alignment"] == "timestamps"
    assert 2.0 < per["06-01"]["label_per_frame"] < 4.0


def test_flagged_session_present_is_checked_and_reported(tmp_path, caplog):
    root = tmp_path / "UBFC"
    write_ubfc_rppg(root, ["subject33"], n_frames=30)
    with caplog.at_level(logging.WARNING, logger="lqrppg"):
        _, report = verify_dataset(_ubfc(root))
    assert report["flagged"][0]["present"] and "subject33" in caplog.text
    assert report["per_session"][0]["known_issue"].startswith("a damaged vid.avi")


def test_every_broken_session_is_named_and_nothing_is_written(tmp_path):
    root = tmp_path / "UBFC"
    write_ubfc_rppg(root, ["subject1", "subject2", "subject33"], n_frames=64)
    # subject33: an uncompressed AVI cut short, as the damaged download decodes
    bad_video = root / "subject33/vid.avi"
    write_avi(bad_video, face_frames(np.sin(np.arange(64.0))), 30.0, codec="")
    bad_video.write_bytes(bad_video.read_bytes()[: int(bad_video.stat().st_size * 0.6)])
    # subject2: a label far shorter than the video
    write_ubfc_label(root / "subject2/ground_truth.txt", np.sin(np.arange(20.0)), 30.0)
    out = tmp_path / "results/raw/ubfc/manifest.parquet"

    with pytest.raises(DataError) as err:
        acquire(_ubfc(root), out, dataset="ubfc")
    text = str(err.value)
    assert "2 of 3 session(s) failed verification; no manifest written" in text
    assert re.search(r"subject33/vid.avi: decoded only \d+ of the 64 frames", text)
    assert "subject2/ground_truth.txt" in text and "shorter than the video" in text
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_missing_dataset_is_one_clean_message(tmp_path, caplog, capsys):
    missing = tmp_path / "nowhere"
    code, errors = _run_cli(caplog, "acquire", "--config", _config(tmp_path, missing), "--dataset", "ubfc")
    assert code == 1 and len(errors) == 1
    message = errors[0].getMessage()
    assert str(missing) in message  # the root that was checked
    assert "request it from its authors" in message and "licence" in message  # where and on what terms
    assert "<root>/subjectN/vid.avi" in message  # the layout expected
    assert errors[0].exc_info is None and "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_empty_root_gets_the_same_instructions(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    code, errors = _run_cli(caplog, "acquire", "--config", _config(tmp_path, tmp_path / "empty"), "--dataset", "ubfc")
    assert code == 1 and len(errors) == 1
    assert "no session found" in errors[0].getMessage() and "licence" in errors[0].getMessage()


# ------------------------------------------------------------------ manifest content check
def test_mtime_reset_passes_but_edited_content_is_named(tmp_path):
    root = tmp_path / "UBFC"
    write_ubfc_rppg(root, ["subject1", "subject2"], n_frames=32)
    out = tmp_path / "manifest.parquet"
    acquire(_ubfc(root), out)
    files = sorted(p for p in root.rglob("*") if p.is_file())

    # as a DVC checkout leaves them: same bytes, new mtimes
    later = time.time() + 100
    for path in files:
        os.utime(path, (later, later))
    assert [s.session for s in sessions_from_manifest(out)] == ["subject1", "subject2"]
    cache = json.loads((tmp_path / ".manifest.parquet.rehashed.json").read_text())
    assert set(cache) == {str(p) for p in files}
    sessions_from_manifest(out)  # the re-verified mtimes are remembered: a cheap check again

    # an edit that keeps the size: only the content check can see it
    label = root / "subject2/ground_truth.txt"
    text = label.read_text()
    label.write_text(text.replace("e", "E", 1))
    assert label.stat().st_size == len(text)
    with pytest.raises(DataError, match=r"subject2/ground_truth.txt .*changed on disk since acquisition"):
        sessions_from_manifest(out)


# -------------------------------------------------------------------------------- download
class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drops = 0  # responses to cut off half way, like a dropped connection
        self.ignore_range = False

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves bytes from memory and honours ``Range: bytes=N-`` as a real server does."""

    server: _Server

    def do_GET(self):  # noqa: N802 (http.server's name)
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        data = srv.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if srv.drops > 0:
            srv.drops -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _zip_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def _spec(server, name, data, **kw) -> DownloadSpec:
    return DownloadSpec(url=server.url(name), sha256=hashlib.sha256(data).hexdigest(), **kw)


def test_download_resumes_after_a_dropped_connection(tmp_path, server):
    data = np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    server.files["blob.bin"] = data
    server.drops = 2
    dest = fetch_download(_spec(server, "blob.bin", data, extract=False), tmp_path / "root", retries=3, backoff_s=0)
    assert dest.read_bytes() == data and not (tmp_path / "root/blob.bin.part").exists()
    # each retry asked only for the bytes still missing
    assert [r for _, r in server.requests] == [None, "bytes=150000-", "bytes=225000-"]


def test_download_resumes_a_part_left_by_an_earlier_run(tmp_path, server):
    data = bytes(range(256)) * 1000
    server.files["blob.bin"] = data
    root = tmp_path / "root"
    root.mkdir()
    (root / "blob.bin.part").write_bytes(data[:100_000])
    fetch_download(_spec(server, "blob.bin", data, extract=False), root, backoff_s=0)
    assert (root / "blob.bin").read_bytes() == data and server.requests == [("/blob.bin", "bytes=100000-")]


def test_server_without_range_support_restarts_cleanly(tmp_path, server):
    data = bytes(range(256)) * 500
    server.files["blob.bin"] = data
    server.ignore_range = True
    root = tmp_path / "root"
    root.mkdir()
    (root / "blob.bin.part").write_bytes(b"x" * 5000)  # a stale part that must not be kept
    fetch_download(_spec(server, "blob.bin", data, extract=False), root, backoff_s=0)
    assert (root / "blob.bin").read_bytes() == data


def test_hash_mismatch_is_a_clear_error_and_the_file_is_not_used(tmp_path, server):
    server.files["data.zip"] = _zip_of(_fixture_dataset(tmp_path / "src"))
    spec = DownloadSpec(url=server.url("data.zip"), sha256="0" * 64)
    root = tmp_path / "root"
    with pytest.raises(DataError, match=r"SHA-256 [0-9a-f]{64}, but the config expects 0{64}.*discarded"):
        fetch_download(spec, root, backoff_s=0)
    assert sorted(p.name for p in root.iterdir()) == []  # no archive, no part, nothing extracted


def test_http_error_is_named_without_retrying(tmp_path, server):
    spec = DownloadSpec(url=server.url("gone.zip"), sha256="0" * 64)
    with pytest.raises(DataError, match=r"gone.zip failed: HTTP 404"):
        fetch_download(spec, tmp_path / "root", retries=3, backoff_s=0)
    assert len(server.requests) == 1


def _fixture_dataset(folder: Path) -> Path:
    write_ubfc_rppg(folder, ["subject1", "subject2"], n_frames=24)
    return folder


def test_acquire_downloads_extracts_verifies_and_skips_next_time(tmp_path, server, caplog):
    archive = _zip_of(_fixture_dataset(tmp_path / "src"))
    server.files["ubfc.zip"] = archive
    root = tmp_path / "UBFC"
    download = {"url": server.url("ubfc.zip"), "sha256": hashlib.sha256(archive).hexdigest()}
    config = _config(tmp_path, root, download=download)

    code, errors = _run_cli(caplog, "acquire", "--config", config, "--dataset", "ubfc")
    assert (code, errors) == (0, [])
    manifest = pd.read_parquet(tmp_path / "results/raw/ubfc/manifest.parquet")
    assert sorted(manifest["session"].unique()) == ["subject1", "subject2"]
    report = json.loads((tmp_path / "results/raw/ubfc/verification.json").read_text())
    assert report["ignored"] == ["ubfc.zip"]

    # the marker makes a second acquire skip the download, even with the archive deleted
    (root / "ubfc.zip").unlink()
    code, _ = _run_cli(caplog, "acquire", "--config", config, "--dataset", "ubfc")
    assert code == 0 and len(server.requests) == 1


def _tar_with(member: tarfile.TarInfo, payload: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ok = tarfile.TarInfo("subject1/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(payload) if member.isfile() else 0
        tf.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return buf.getvalue()


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    "name, archive",
    [
        ("evil.tar.gz", lambda: _tar_with(tarfile.TarInfo("../evil.txt"), b"pwned")),
        ("abs.tar.gz", lambda: _tar_with(tarfile.TarInfo("/tmp/lqrppg-evil.txt"), b"pwned")),
        ("link.tar.gz", lambda: _tar_with(_symlink("subject1/link", "../../outside"))),
        ("evil.zip", lambda: _zip_bytes({"subject1/ok.txt": b"ok", "../evil.txt": b"pwned"})),
    ],
    ids=["tar-dotdot", "tar-absolute", "tar-symlink-out", "zip-dotdot"],
)
def test_unsafe_archive_is_refused(tmp_path, server, name, archive):
    data = archive()
    server.files[name] = data
    root = tmp_path / "deep/root"
    with pytest.raises(DataError, match="outside|refusing"):
        fetch_download(_spec(server, name, data), root, backoff_s=0)
    assert not (tmp_path / "deep/evil.txt").exists() and not Path("/tmp/lqrppg-evil.txt").exists()
    assert not (root / f".{name}.extracted").exists()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member, payload in members.items():
            zf.writestr(member, payload)
    return buf.getvalue()


def test_tar_archive_is_extracted(tmp_path, server):
    src = _fixture_dataset(tmp_path / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(src, arcname=".")
    server.files["ubfc.tar.gz"] = buf.getvalue()
    root = tmp_path / "root"
    fetch_download(_spec(server, "ubfc.tar.gz", buf.getvalue()), root, backoff_s=0)
    assert (root / "subject2/vid.avi").read_bytes() == (src / "subject2/vid.avi").read_bytes()
    _, report = verify_dataset(_ubfc(root))
    assert report["sessions"]["found"] == 2


# ------------------------------------------------------------------ Snakemake after DVC checkout
def _snakemake(workspace, env, *args, check=True):
    proc = subprocess.run(
        ["snakemake", "--cores", "2", *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_mtime_reset_reruns_nothing_but_edits_are_caught(workspace, tool_env, monkeypatch, caplog):
    from lqrppg.config import load_config

    cfg = tiny_config()
    cfg["synthetic"]["synth-calm"].update(n_subjects=2, duration_s=6.0)
    del cfg["synthetic"]["synth-motion"]
    cfg["protocols"]["cross"] = []
    write_ubfc_rppg(workspace / "UBFC", ["subject1", "subject2"], n_frames=64)
    cfg["datasets"] = {"ubfc": {"reader": "ubfc-rppg", "root": "UBFC", "fps": 30.0}}
    config_path = workspace / "config/config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(workspace)
    project = load_config([config_path])
    targets = [str(project.store_path(d)) for d in ("synth-calm", "ubfc")]

    _snakemake(workspace, tool_env, *targets)
    assert (workspace / "results/raw/ubfc/verification.json").is_file()

    # a DVC checkout rewrites every tracked raw file (and folder) with the current time; one
    # of them is also edited, which an mtime cannot tell from a checkout
    later = time.time() + 60
    raw = [workspace / "data/raw/synth-calm", workspace / "data/truth/synth-calm", workspace / "UBFC"]
    for top in raw:
        for path in [top, *top.rglob("*")]:
            os.utime(path, (later, later))
    label = workspace / "UBFC/subject1/ground_truth.txt"
    label.write_text(label.read_text().replace("e", "E", 1))
    assert "Nothing to be done" in _snakemake(workspace, tool_env, "-n", *targets)

    # the stages accept the same bytes under new mtimes, and name the edited file
    assert len(sessions_from_manifest(workspace / "results/raw/synth-calm/manifest.parquet")) == 2
    code, errors = _run_cli(caplog, "preprocess", "--config", config_path, "--dataset", "ubfc",
                            "--out", workspace / "store-again")
    assert code == 1 and len(errors) == 1
    assert "UBFC/subject1/ground_truth.txt" in errors[0].getMessage()
    assert "changed on disk since acquisition" in errors[0].getMessage()

    # a changed synthetic spec still reaches acquire (through the stamp) despite ancient()
    cfg["synthetic"]["synth-calm"]["camera_noise_std"] = 2.0
    config_path.write_text(yaml.safe_dump(cfg))
    plan = _snakemake(workspace, tool_env, "-n", *targets)
    assert re.search(r"synthesize\s+1", plan) and re.search(r"acquire\s+1", plan), plan
    assert re.search(r"preprocess\s+1", plan), plan
