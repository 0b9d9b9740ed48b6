"""Streaming access to numeric variables of MATLAB v5 (``-v7``) .mat files.

``scipy.io.loadmat`` materialises a whole variable, which for an MMPD video is a
1800×240×320×3 float array (gigabytes). This module reads only the headers of a
file's top-level elements (:func:`scan`) and then streams one variable's real
part in storage order, chunk by chunk (:func:`iter_real_part`), from the file
directly or through an incremental zlib decompressor for ``miCOMPRESSED``
elements (what MATLAB writes by default since v7). Memory stays at one chunk.

Layout (MathWorks, "MAT-File Format", v5): a 128-byte header whose last two
bytes are the endian indicator (``IM`` = little-endian), then data elements,
each an 8-byte tag (type, byte count) or a 4-byte "small data element" tag; a
matrix (``miMATRIX``) holds the sub-elements array flags, dimensions, name and
real part, each padded to 8 bytes. Data are column-major (MATLAB order).

Every failure is a :class:`~lqrppg.errors.DataError` naming the file.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lqrppg.errors import DataError

__all__ = ["MatVariable", "iter_real_part", "scan"]

_HEADER_BYTES = 128
_MI_MATRIX = 14
_MI_COMPRESSED = 15
#: Storage types of numeric data (MATLAB may store a class in a narrower type).
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_CLASSES = {
    1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 6: "double", 7: "single", 8: "int8",
    9: "uint8", 10: "int16", 11: "uint16", 12: "int32", 13: "uint32", 14: "int64", 15: "uint64",
}  # fmt: skip
_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
_COMPLEX_FLAG = 0x0800
#: Decompressed bytes needed to parse a matrix header: tag, flags, dims, a name of
#: up to 63 characters and the real part's tag fit in far less.
_HEAD_BYTES = 1024
#: Bytes read from disk, or produced by the decompressor, per step.
_IO_BYTES = 1 << 20


@dataclass(frozen=True)
class MatVariable:
    """Where one top-level variable lives in the file, from its headers only."""

    name: str
    mclass: str
    dims: tuple[int, ...]
    #: Storage dtype of the real part (file byte order); None for non-numeric classes.
    dtype: np.dtype | None
    is_complex: bool
    compressed: bool
    #: File offset of the top-level element's tag, and its byte count after the tag.
    element_offset: int
    element_nbytes: int
    #: Start of the real-part data: a file offset, or for a compressed element an
    #: offset into its decompressed bytes.
    data_offset: int

    @property
    def size(self) -> int:
        return math.prod(self.dims)


class _Short(Exception):
    """The buffer ends inside a header; the caller decides whether that is truncation."""


def _tag(buf: bytes, pos: int, endian: str) -> tuple[int, int, int, int]:
    """(type, byte count, data start, next element) of the element at ``pos``."""
    if pos + 8 > len(buf):
        raise _Short
    mdtype, nbytes = struct.unpack_from(endian + "II", buf, pos)
    if mdtype >> 16:  # small data element: count in the upper half, data in the tag's second word
        return mdtype & 0xFFFF, mdtype >> 16, pos + 4, pos + 8
    return mdtype, nbytes, pos + 8, pos + 8 + nbytes + (-nbytes) % 8


def _parse_matrix(buf: bytes, endian: str, path: Path, where: str) -> tuple[str, str, tuple[int, ...],
                                                                             np.dtype | None, bool, int]:  # fmt: skip
    """(name, class, dims, real-part dtype, complex, real-part offset in ``buf``) of an miMATRIX."""
    _, _, pos, _ = _tag(buf, 0, endian)
    kind, nbytes, data, pos = _tag(buf, pos, endian)
    if kind != 6 or nbytes != 8 or data + 8 > len(buf):
        raise DataError(f"{path}: malformed MAT v5 matrix at {where} (bad array-flags sub-element)")
    (flags,) = struct.unpack_from(endian + "I", buf, data)
    mclass = _CLASSES.get(flags & 0xFF, f"class {flags & 0xFF}")
    kind, nbytes, data, pos = _tag(buf, pos, endian)
    if kind != 5 or nbytes % 4:
        raise DataError(f"{path}: malformed MAT v5 matrix at {where} (bad dimensions sub-element)")
    if data + nbytes > len(buf):
        raise _Short
    dims = tuple(struct.unpack_from(f"{endian}{nbytes // 4}i", buf, data))
    kind, nbytes, data, pos = _tag(buf, pos, endian)
    if data + nbytes > len(buf):
        raise _Short
    name = bytes(buf[data : data + nbytes]).decode("latin-1")
    if mclass not in _NUMERIC:
        return name, mclass, dims, None, False, -1
    kind, nbytes, data, _ = _tag(buf, pos, endian)
    if kind not in _MI_DTYPES:
        raise DataError(f"{path}: variable {name!r} stores its data as unsupported MAT type {kind}")
    dtype = np.dtype(endian + _MI_DTYPES[kind])
    if nbytes != math.prod(dims) * dtype.itemsize:
        raise DataError(
            f"{path}: variable {name!r} declares {nbytes} data bytes for dims {dims} of {dtype.name}"
        )
    return name, mclass, dims, dtype, bool(flags & _COMPLEX_FLAG), data


def _inflate_head(fh, start: int, nbytes: int, path: Path) -> bytes:
    """The first decompressed bytes of a compressed element (enough for its headers)."""
    fh.seek(start)
    inflater = zlib.decompressobj()
    out, pending, fed = b"", b"", 0
    try:
        while len(out) < _HEAD_BYTES and not inflater.eof:
            if not pending:
                if fed >= nbytes:
                    break
                pending = fh.read(min(4096, nbytes - fed))
                fed += len(pending)
                if not pending:
                    break
            out += inflater.decompress(pending, _HEAD_BYTES - len(out))
            pending = inflater.unconsumed_tail
    except zlib.error as err:
        raise DataError(f"{path}: corrupt compressed element at byte {start - 8} ({err})") from err
    return out


def _endian(head: bytes, path: Path) -> str:
    if len(head) < _HEADER_BYTES:
        raise DataError(f"{path}: truncated .mat file ({len(head)} bytes, shorter than the 128-byte header)")
    if head.startswith(b"\x89HDF") or b"MATLAB 7.3" in head[:116]:
        raise DataError(f"{path}: this is a MATLAB v7.3 (HDF5) file; a v5 .mat file was expected")
    indicator = head[126:128]
    if indicator == b"IM":
        return "<"
    if indicator == b"MI":
        return ">"
    raise DataError(f"{path}: not a MATLAB v5 .mat file (no endian indicator in the 128-byte header)")


def scan(path: Path) -> dict[str, MatVariable]:
    """Headers of every top-level variable, checking that each element fits in the file.

    Only a few hundred bytes per variable are read (and decompressed), so this is
    cheap even for multi-gigabyte files; a file cut short anywhere is reported.
    """
    path = Path(path)
    try:
        size = os.path.getsize(path)
        fh = open(path, "rb")
    except OSError as err:
        raise DataError(f"{path}: cannot open the .mat file ({err.strerror or err})") from err
    variables: dict[str, MatVariable] = {}
    with fh:
        endian = _endian(fh.read(_HEADER_BYTES), path)
        pos = _HEADER_BYTES
        while pos < size:
            fh.seek(pos)
            raw = fh.read(8)
            if len(raw) < 8:
                raise DataError(f"{path}: truncated .mat file (a partial element tag at byte {pos})")
            mdtype, nbytes = struct.unpack(endian + "II", raw)
            if mdtype >> 16:
                pos += 8
                continue
            if pos + 8 + nbytes > size:
                raise DataError(
                    f"{path}: truncated .mat file: the element at byte {pos} declares {nbytes} bytes "
                    f"but only {size - pos - 8} remain (file size {size} bytes)"
                )
            where = f"byte {pos}"
            if mdtype == _MI_COMPRESSED:
                buf, compressed = _inflate_head(fh, pos + 8, nbytes, path), True
            elif mdtype == _MI_MATRIX:
                fh.seek(pos)
                buf, compressed = fh.read(min(nbytes + 8, _HEAD_BYTES)), False
            else:
                buf = b""
            # Anything but a matrix (MATLAB writes no other top-level element) is skipped.
            if len(buf) >= 8 and struct.unpack_from(endian + "I", buf, 0)[0] == _MI_MATRIX:
                try:
                    name, mclass, dims, dtype, cplx, data = _parse_matrix(buf, endian, path, where)
                except _Short:
                    raise DataError(f"{path}: truncated or malformed variable header at {where}") from None
                offset = data if compressed or data < 0 else pos + data
                variables[name] = MatVariable(name, mclass, dims, dtype, cplx, compressed, pos, nbytes, offset)
            pos += 8 + nbytes
            if mdtype != _MI_COMPRESSED:
                pos += (-nbytes) % 8
    return variables


def _inflate(fh, var: MatVariable, path: Path) -> Iterator[memoryview]:
    """Decompressed bytes of a compressed element, in pieces of at most ``_IO_BYTES``."""
    fh.seek(var.element_offset + 8)
    inflater = zlib.decompressobj()
    left, pending = var.element_nbytes, b""
    try:
        while not inflater.eof:
            if not pending:
                if left <= 0:
                    return
                pending = fh.read(min(_IO_BYTES, left))
                if not pending:
                    return
                left -= len(pending)
            # max_length bounds the output: zeros compress ~1000:1, and a 1 MB read
            # must not turn into a gigabyte in memory.
            piece = inflater.decompress(pending, _IO_BYTES)
            pending = inflater.unconsumed_tail
            if piece:
                yield memoryview(piece)
    except zlib.error as err:
        raise DataError(f"{path}: corrupt compressed data in variable {var.name!r} ({err})") from err


def iter_real_part(path: Path, var: MatVariable, chunk_elems: int) -> Iterator[np.ndarray]:
    """The variable's real part in storage (column-major) order, ``chunk_elems`` at a time.

    Each chunk is a fresh 1-D array of ``var.dtype`` with exactly ``chunk_elems``
    elements, except the last. A file or stream that ends early is a DataError.
    """
    path = Path(path)
    if var.dtype is None:
        raise DataError(f"{path}: variable {var.name!r} is a {var.mclass} array, not numeric")
    itemsize = var.dtype.itemsize
    total = var.size * itemsize
    chunk_bytes = max(1, chunk_elems) * itemsize
    try:
        fh = open(path, "rb")
    except OSError as err:
        raise DataError(f"{path}: cannot open the .mat file ({err.strerror or err})") from err
    with fh:
        if not var.compressed:
            fh.seek(var.data_offset)
            done = 0
            while done < total:
                want = min(chunk_bytes, total - done)
                raw = fh.read(want)
                if len(raw) < want:
                    raise DataError(
                        f"{path}: truncated .mat file: variable {var.name!r} ends after {done + len(raw)} "
                        f"of its {total} data bytes"
                    )
                done += want
                yield np.frombuffer(raw, dtype=var.dtype)
            return
        skip, done = var.data_offset, 0
        chunk = np.empty(min(chunk_bytes, total), dtype=np.uint8)
        fill = 0
        for piece in _inflate(fh, var, path):
            if skip:
                cut = min(skip, len(piece))
                piece, skip = piece[cut:], skip - cut
            while piece and done < total:
                take = min(len(piece), chunk.size - fill)
                chunk[fill : fill + take] = np.frombuffer(piece, dtype=np.uint8, count=take)
                piece, fill = piece[take:], fill + take
                if fill == chunk.size:
                    done += fill
                    yield chunk.view(var.dtype)
                    chunk = np.empty(min(chunk_bytes, total - done), dtype=np.uint8) if done < total else chunk
                    fill = 0
            if done >= total:
                return
        raise DataError(
            f"{path}: truncated .mat file: the compressed variable {var.name!r} ends after "
            f"{done + fill} of its {total} data bytes"
        )
