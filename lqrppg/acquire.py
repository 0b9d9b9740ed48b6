"""Acquisition: fetch (where allowed), verify a dataset folder and write its manifest.

The manifest (one row per file: session, subject, task, role, path, size, mtime, SHA-256)
is what every later stage reads instead of re-listing the folder, so a dataset that
changed on disk after acquisition is caught (:func:`verify_manifest`) instead of silently
mixing old and new files. Beside it, ``verification.json`` records what was checked:
sessions found and expected, known defects flagged by name, and per session the frame
count, label length and their ratio (the effective label rate).

Nothing is written unless every session passes: a dataset that is partly broken must stop
the pipeline, never silently shrink it (datasets.md §4).
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import logging
import os
import re
import stat
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import pandas as pd
from tqdm import tqdm

from lqrppg.datasets import get_reader
from lqrppg.datasets.base import DatasetReader, Session, align_label, natural_key
from lqrppg.errors import DataError
from lqrppg.io import atomic_path, write_text

log = logging.getLogger(__name__)

SESSION_COLUMNS = ["dataset", "session", "subject", "task", "video_path", "label_path", "fps"]
REPORT_NAME = "verification.json"
#: hashlib releases the GIL for large updates, so big reads let threads hash in parallel.
CHUNK_BYTES = 4 << 20
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: HTTP statuses worth retrying (the server may recover); any other error status is final.
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def open_reader(reader_name: str, root: Path, fps: float | None, options: dict | None = None) -> DatasetReader:
    return get_reader(reader_name)(Path(root), fps=fps, options=options)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# ----------------------------------------------------------------------------- acquisition
def acquire(
    reader: DatasetReader,
    manifest_path: Path,
    *,
    dataset: str | None = None,
    download: Any = None,
    report_path: Path | None = None,
    workers: int | None = None,
    decode_all: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """Fetch the data if ``download`` (a DownloadSpec) is given, verify it, write the outputs.

    The report is written before the manifest, so the manifest's presence means both are
    complete. Raises DataError (and writes nothing) when any check fails.
    """
    if download is not None:
        fetch_download(download, reader.root, what=dataset or reader.name)
    manifest, report = verify_dataset(reader, workers=workers, decode_all=decode_all)
    if dataset is not None:
        manifest.insert(0, "dataset_name", dataset)
        report = {"dataset_name": dataset, **report}
    manifest_path = Path(manifest_path)
    write_text(report_path or manifest_path.with_name(REPORT_NAME), json.dumps(report, indent=2) + "\n")
    write_manifest(manifest, manifest_path)
    log.info("wrote %s (%d files) and its verification report", manifest_path, len(manifest))
    return manifest, report


def build_manifest(reader: DatasetReader, workers: int | None = None) -> pd.DataFrame:
    """List, check and hash every file of every session of ``reader``'s dataset."""
    return verify_dataset(reader, workers=workers)[0]


def verify_dataset(
    reader: DatasetReader, *, workers: int | None = None, decode_all: bool = False
) -> tuple[pd.DataFrame, dict]:
    """Check the layout and every session; return the manifest and the verification report.

    Every session is checked (in a thread pool) before failing, so one run lists every
    broken file instead of one per attempt.
    """
    sessions = reader.list_sessions()  # DataError with the access instructions if absent
    layout = _layout_report(reader, sessions)
    sizes = {s.session: reader.session_files(s) for s in sessions}
    total = sum(_size(p) for files in sizes.values() for p in files)
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, mininterval=2.0,
               desc=f"verifying {reader.name}")
    lock = threading.Lock()

    def progress(n: int) -> None:
        with lock:
            bar.update(n)

    def check(s: Session) -> tuple[list[dict], dict]:
        return _check_session(reader, s, sizes[s.session], progress, decode_all)

    errors: list[str] = []
    results: dict[str, tuple[list[dict], dict]] = {}
    with bar, ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        futures = {s.session: pool.submit(check, s) for s in sessions}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except DataError as err:
                errors.append(str(err))
            except OSError as err:  # a file vanished or became unreadable mid-check
                errors.append(f"{err.filename or name}: cannot read ({err.strerror or err})")
    if errors:
        head = (f"{reader.name} at {reader.root}: {len(errors)} of {len(sessions)} session(s) failed "
                "verification; no manifest written")
        raise DataError(f"{errors[0]} ({head})" if len(errors) == 1 else head + ":\n" + "\n".join(errors))

    rows = [row for s in sessions for row in results[s.session][0]]
    manifest = pd.DataFrame(rows)
    per_session = [results[s.session][1] for s in sessions]
    report = {
        "reader": reader.name,
        "root": str(reader.root),
        "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "ok",
        **layout,
        "files": len(manifest),
        "bytes": int(manifest["size"].sum()),
        "per_session": per_session,
    }
    log.info("%s: %d sessions, %d subjects, %d files, %.1f MB verified", reader.name, len(sessions),
             manifest["subject"].nunique(), len(manifest), report["bytes"] / 1e6)
    return manifest, report


def _size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0  # reported as missing by the session check


def _layout_report(reader: DatasetReader, sessions: list[Session]) -> dict:
    """Session count against the release, known defects by name, entries outside the layout."""
    names = [s.session for s in sessions]
    found = set(names)
    known = dict(reader.known_issues)
    gaps = _grid_gaps(names)
    expected = reader.expected_sessions
    if expected is not None and len(names) < expected:
        which = [g for g in gaps or [] if g not in known]
        log.warning("%s: found %d of the %d sessions of the complete release under %s; missing: %s",
                    reader.name, len(names), expected, reader.root,
                    ", ".join(which) if which else "cannot tell which from the names")
    elif expected is not None and len(names) > expected:
        log.warning("%s: found %d sessions, more than the %d of the public release", reader.name, len(names), expected)
    unknown_gaps = [g for g in gaps or [] if g not in known]
    if unknown_gaps:
        log.warning("%s: the session names leave gaps (not known defects of the release): %s",
                    reader.name, ", ".join(unknown_gaps))

    flagged = []
    for name, issue in known.items():
        present = name in found
        flagged.append({"session": name, "present": present, "issue": issue})
        if present:
            log.warning("%s: session %s has a known issue, checked below: %s", reader.name, name, issue)
        else:
            log.info("%s: session %s is absent (known: %s)", reader.name, name, issue)

    top = set()
    for s in sessions:
        for p in (s.video_path, s.label_path):
            try:
                top.add(Path(p).relative_to(reader.root).parts[0])
            except (ValueError, IndexError):
                pass
    stray = sorted((p for p in reader.root.iterdir() if p.name not in top and not p.name.startswith(".")),
                   key=lambda p: natural_key(p.name))
    stray_dirs = [p.name for p in stray if p.is_dir()]
    if stray_dirs:
        log.warning("%s: ignoring folder(s) under %s that do not match the expected layout: %s",
                    reader.name, reader.root, ", ".join(stray_dirs))
    return {
        "sessions": {"found": len(names), "expected": expected, "missing": unknown_gaps,
                     "names": names},
        "flagged": flagged,
        "ignored": [p.name + ("/" if p.is_dir() else "") for p in stray],
    }


def _grid_gaps(names: list[str]) -> list[str] | None:
    """Names missing from the full grid of numbered parts (PURE's subject × task), or None.

    Each numbered part spans the range seen in the names, so a hole inside it (PURE's
    06-02) is found; one at either end is not.

    Only names with at least two numbered parts in one template qualify: a single running
    number (UBFC's subjectN) has gaps by design, so nothing can be inferred from it.
    """
    if not names:
        return None
    split = [re.split(r"(\d+)", n) for n in names]
    template = split[0][0::2]
    widths = [len(d) for d in split[0][1::2]]
    if len(widths) < 2 or any(p[0::2] != template or [len(d) for d in p[1::2]] != widths for p in split):
        return None
    values = [[int(p[1 + 2 * i]) for p in split] for i in range(len(widths))]
    fields = [range(min(v), max(v) + 1) for v in values]
    size = 1
    for f in fields:
        size *= len(f)
    if size > 4 * len(names):
        return None  # too sparse to be a grid with a few holes
    present = set(names)
    gaps = []
    for combo in itertools.product(*fields):
        parts = [template[0]]
        for value, width, text in zip(combo, widths, template[1:]):
            parts += [str(value).zfill(width), text]
        name = "".join(parts)
        if name not in present:
            gaps.append(name)
    return gaps


def _check_session(
    reader: DatasetReader, s: Session, files: list[Path], progress: Callable[[int], None], decode_all: bool
) -> tuple[list[dict], dict]:
    """Hash the session's files and check its video and label; DataError names the file."""
    rows = []
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path} (session {s.session}): missing file")
        before = path.stat()
        digest = sha256_chunked(path, progress)
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise DataError(f"{path} (session {s.session}): changed while it was being hashed; run acquire again")
        rows.append({
            **{c: getattr(s, c) for c in SESSION_COLUMNS},
            "file": str(path),
            "role": "label" if str(path) == s.label_path else "video",
            "size": after.st_size,
            "mtime_ns": after.st_mtime_ns,
            "sha256": digest,
        })

    first = _first_frame(reader, s)
    declared = reader.frame_count(s)
    if decode_all or declared is None:
        n_frames, decoded = _decode_count(reader, s), "all"
    elif Path(s.video_path).is_file() and not _last_frame_readable(s.video_path, declared):
        # A truncated container still declares its full length (UBFC subject33): decode it
        # all, so the reader's own check reports how many frames there really are.
        log.warning("%s: the last declared frame (%d) cannot be read; decoding the whole video",
                    s.video_path, declared)
        n_frames, decoded = _decode_count(reader, s), "all"
    else:
        n_frames, decoded = declared, "first+last" if Path(s.video_path).is_file() else "first"

    label = reader.read_label(s)
    frame_times = reader.frame_timestamps_s(s) if reader.alignment == "timestamps" else None
    # The same rule preprocessing applies, so a label that cannot cover the video fails here.
    _, method = align_label(label, n_frames, s.fps, frame_times, reader.alignment,
                            f"{s.label_path} (session {s.session})")
    n_label = int(label.values.size)
    info = {
        "session": s.session,
        "subject": s.subject,
        "task": s.task,
        "frames": int(n_frames),
        "frames_declared": None if declared is None else int(declared),
        "decoded": decoded,
        "frame_size": [int(v) for v in first.shape],
        "label_samples": n_label,
        "label_per_frame": round(n_label / n_frames, 6),
        "label_rate_hz": None if label.rate_hz is None else round(float(label.rate_hz), 6),
        "alignment": method,
        "known_issue": reader.known_issues.get(s.session),
    }
    return rows, info


def _first_frame(reader: DatasetReader, s: Session):
    frames = reader.iter_frames(s)
    try:
        first = next(frames, None)
    finally:
        frames.close()  # releases the decoder without running the end-of-video checks
    if first is None:
        raise DataError(f"{s.video_path} (session {s.session}): the video yields no frame")
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype.name != "uint8":
        raise DataError(f"{s.video_path} (session {s.session}): first frame is {first.dtype} {first.shape}, "
                        "not an RGB uint8 image")
    return first


def _decode_count(reader: DatasetReader, s: Session) -> int:
    return sum(1 for _ in reader.iter_frames(s))


def _last_frame_readable(video: str, n_frames: int) -> bool:
    cap = cv2.VideoCapture(video)
    try:
        if not cap.isOpened() or n_frames <= 0:
            return False
        cap.set(cv2.CAP_PROP_POS_FRAMES, n_frames - 1)
        ok, _ = cap.read()
        return bool(ok)
    finally:
        cap.release()


def sha256_chunked(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """Hex SHA-256 of a file, reading into one reused buffer and reporting bytes read."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK_BYTES)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
            if progress is not None:
                progress(n)
    return digest.hexdigest()


def write_manifest(manifest: pd.DataFrame, out: Path) -> None:
    with atomic_path(out) as tmp:
        manifest.to_parquet(tmp, index=False)


# ------------------------------------------------------------------ manifest re-verification
def sessions_from_manifest(manifest_path: Path) -> list[Session]:
    """The sessions a manifest lists, after checking its files are still as acquired."""
    manifest = pd.read_parquet(manifest_path)
    verify_manifest(manifest, manifest_path)
    per_session = manifest.drop_duplicates("session")[SESSION_COLUMNS]
    return [
        Session(**{**row, "fps": float(row["fps"])}) for row in per_session.to_dict("records")
    ]


def _rehash_cache_path(source: Path) -> Path:
    return Path(source).with_name(f".{Path(source).name}.rehashed.json")


def verify_manifest(manifest: pd.DataFrame, source: Path, workers: int | None = None) -> None:
    """Fail if a file listed in the manifest is gone or its content changed since acquisition.

    Size and mtime as recorded: unchanged (no read). A new mtime with the same size, as a DVC
    checkout or a copy leaves, is hashed; the same content passes and is remembered beside the
    manifest (the manifest itself is a tracked product and is not rewritten), so the next
    check is cheap again.
    """
    source = Path(source)
    has_mtime = "mtime_ns" in manifest.columns
    cache_path = _rehash_cache_path(source)
    cache = _read_cache(cache_path)
    suspects = []
    for row in manifest.itertuples():
        path = Path(row.file)
        try:
            st = path.stat()
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path} (session {row.session}) listed in {source} no longer exists; re-run acquire")
        if st.st_size != row.size:
            raise DataError(
                f"{path} (session {row.session}) changed on disk since acquisition "
                f"({st.st_size} bytes, manifest {source} says {row.size}); re-run acquire"
            )
        if has_mtime and st.st_mtime_ns == row.mtime_ns:
            continue
        if cache.get(str(path)) == [st.st_size, st.st_mtime_ns, row.sha256]:
            continue
        suspects.append((path, row, st))
    if not suspects:
        return

    log.info("%d file(s) listed in %s have a new modification time (e.g. after a DVC checkout); "
             "checking their content", len(suspects), source)
    digests = _hash_many([p for p, _, _ in suspects], workers, f"re-hashing {source.parent.name}")
    for (path, row, st), digest in zip(suspects, digests):
        if digest != row.sha256:
            raise DataError(
                f"{path} (session {row.session}) changed on disk since acquisition: its content no "
                f"longer matches the SHA-256 recorded in {source}; re-run acquire"
            )
        cache[str(path)] = [st.st_size, st.st_mtime_ns, row.sha256]
    try:
        write_text(cache_path, json.dumps(cache) + "\n")
    except OSError as err:  # a read-only results folder only costs speed next time
        log.debug("cannot record re-verified files in %s: %s", cache_path, err)


def _read_cache(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _hash_many(paths: list[Path], workers: int | None, desc: str) -> list[str]:
    total = sum(_size(p) for p in paths)
    lock = threading.Lock()
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, mininterval=2.0, desc=desc) as bar:
        def progress(n: int) -> None:
            with lock:
                bar.update(n)

        with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            try:
                return list(pool.map(lambda p: sha256_chunked(p, progress), paths))
            except OSError as err:
                raise DataError(f"{err.filename}: cannot read ({err.strerror or err}); re-run acquire") from err


# --------------------------------------------------------------------------------- download
def fetch_download(
    spec: Any,
    root: Path,
    *,
    what: str = "dataset",
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``spec.url`` into ``root`` (resuming), check its SHA-256, extract it if asked.

    ``spec`` is a :class:`lqrppg.config.DownloadSpec`. The download goes to ``<name>.part``
    and is renamed only after its hash matches, so a bad or partial file is never used. A
    marker ``.<name>.extracted`` holding the hash makes a later acquire skip both steps
    (the archive itself may then be deleted to save space).
    """
    root = Path(root)
    name = spec.filename or PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(spec.url).path)).name
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise DataError(f"{what}: cannot derive a file name from {spec.url}; set download.filename in the config")
    expected = spec.sha256.lower()
    root.mkdir(parents=True, exist_ok=True)
    dest, marker = root / name, root / f".{name}.extracted"
    if spec.extract and marker.is_file() and marker.read_text().strip() == expected:
        log.info("%s: %s already downloaded and extracted into %s", what, name, root)
        return dest
    if dest.is_file():
        actual = sha256_chunked(dest)
        if actual != expected:
            raise DataError(
                f"{dest} exists but its SHA-256 is {actual}, not the {expected} the config gives for {spec.url}; "
                "delete it to download again, or correct the configured sha256"
            )
        log.info("%s: %s already downloaded (SHA-256 matches)", what, dest)
    else:
        _download(spec.url, dest, expected, what=what, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
    if spec.extract:
        extract_archive(dest, root)
        write_text(marker, expected + "\n")
    return dest


def _download(url: str, dest: Path, expected: str, *, what: str, retries: int, backoff_s: float,
              timeout_s: float) -> None:
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            wait = min(backoff_s * 2 ** (attempt - 1), 60.0)
            log.warning("%s: download interrupted (%s); resuming in %.0f s (retry %d of %d)",
                        what, last_error, wait, attempt, retries)
            time.sleep(wait)
        try:
            if _download_once(url, part, timeout_s):
                break
            last_error = "connection closed before the end of the file"
        except urllib.error.HTTPError as err:
            if err.code not in _RETRY_STATUS:
                raise DataError(f"{what}: downloading {url} failed: HTTP {err.code} {err.reason}") from None
            last_error = f"HTTP {err.code}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            last_error = str(getattr(err, "reason", None) or err)
    else:
        raise DataError(f"{what}: downloading {url} failed after {retries + 1} attempts ({last_error}); "
                        f"run acquire again to resume from {part}")
    actual = sha256_chunked(part)
    if actual != expected:
        part.unlink(missing_ok=True)
        raise DataError(
            f"{what}: the file downloaded from {url} has SHA-256 {actual}, but the config expects {expected}; "
            "it was discarded and nothing was extracted. Check the URL and download.sha256 in the config"
        )
    os.replace(part, dest)
    log.info("%s: downloaded %s (%d bytes, SHA-256 verified)", what, dest, dest.stat().st_size)


def _download_once(url: str, part: Path, timeout_s: float) -> bool:
    """Fetch the rest of ``url`` into ``part``; True when the whole file is there."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "lqrppg-acquire"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Nothing left to send: either the part is complete or it is longer than the file.
            total = _total_from_content_range(err.headers.get("Content-Range"))
            if total == offset:
                return True
            part.unlink()
            return False
        raise
    with response:
        status = getattr(response, "status", None) or 200
        mode = "ab"
        if status == 206:
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise http.client.HTTPException(f"server resumed at byte {start}, not {offset}")
        else:
            if offset:
                log.info("%s: the server ignores range requests; downloading from the start", url)
            mode, offset = "wb", 0
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        got = 0
        with open(part, mode) as fh, tqdm(total=None if remaining is None else offset + remaining, initial=offset,
                                          unit="B", unit_scale=True, unit_divisor=1024, mininterval=2.0,
                                          desc=f"downloading {part.name[:-5]}") as bar:
            while block := response.read(CHUNK_BYTES):
                fh.write(block)
                got += len(block)
                bar.update(len(block))
    return remaining is None or got >= remaining


def _start_from_content_range(value: str | None) -> int | None:
    match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    return int(match[1]) if match else None


def _total_from_content_range(value: str | None) -> int | None:
    match = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)", value or "")
    return int(match[1]) if match else None


def extract_archive(archive: Path, root: Path) -> None:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) into ``root``; refuse any member that would land
    outside it (absolute paths, ``..``, links pointing out, device files)."""
    archive, root = Path(archive), Path(root)
    lower = archive.name.lower()
    if lower.endswith(".zip") or (not lower.endswith(_TAR_SUFFIXES) and zipfile.is_zipfile(archive)):
        _extract_zip(archive, root)
    elif lower.endswith(_TAR_SUFFIXES) or tarfile.is_tarfile(archive):
        _extract_tar(archive, root)
    else:
        log.info("%s is not a zip or tar archive; kept as downloaded", archive)


def _safe_target(root: Path, name: str, archive: Path) -> Path:
    member = PurePosixPath(name.replace("\\", "/"))
    bad = member.is_absolute() or ".." in member.parts or (member.parts and ":" in member.parts[0])
    target = (root / member).resolve()
    if bad or not target.is_relative_to(root.resolve()):
        raise DataError(f"{archive}: member {name!r} would be written outside {root}; refusing to extract")
    return target


def _extract_zip(archive: Path, root: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _safe_target(root, info.filename, archive)
            for info in tqdm(members, desc=f"extracting {archive.name}", unit="file", mininterval=2.0):
                zf.extract(info, root)
    except zipfile.BadZipFile as err:
        raise DataError(f"{archive}: not a valid zip archive ({err})") from err


def _extract_tar(archive: Path, root: Path) -> None:
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _safe_target(root, m.name, archive)
                if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
                    raise DataError(f"{archive}: member {m.name!r} is a device or pipe; refusing to extract")
                if m.issym() or m.islnk():
                    base = PurePosixPath(m.name).parent if m.issym() else PurePosixPath()
                    _safe_target(root, str(base / m.linkname), archive)
            # The 'data' filter re-checks every member as the standard library defines safe.
            tf.extractall(root, members=tqdm(members, desc=f"extracting {archive.name}", unit="file",
                                             mininterval=2.0), filter="data")
    except tarfile.FilterError as err:
        raise DataError(f"{archive}: unsafe archive member ({err}); refusing to extract") from err
    except (tarfile.TarError, EOFError) as err:
        raise DataError(f"{archive}: not a valid tar archive ({err})") from err


__all__ = [
    "REPORT_NAME", "SESSION_COLUMNS", "acquire", "build_manifest", "extract_archive", "fetch_download",
    "open_reader", "sessions_from_manifest", "sha256_chunked", "verify_dataset", "verify_manifest",
    "write_manifest",
]
