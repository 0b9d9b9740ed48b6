"""Face detection and cropping.

Detectors implement the small :class:`FaceDetector` protocol and register under a
name with :func:`register_detector`; :func:`get_detector` finds them. Modules of
this package named ``face_*`` are imported on first use, so another detector (a
DNN one, say) is one new file, ``lqrppg/preprocess/face_<name>.py``.

A detector factory is called with two keyword options, both from the preprocessing
settings: ``max_side`` (detect on a copy downscaled so its longer side is at most
this; boxes come back in full-frame pixels) and ``model`` (a model file: a cascade
XML for Haar, an ONNX file for YuNet). Detection cost grows with the pixel count,
so halving the side makes it about 3-4× cheaper while the box stays within a few
pixels; the crop itself is always cut from the full-resolution frame.

A detector may also offer ``detect_near(rgb, near, margin)``: the face searched for
first around ``near``, a face box found before (see :meth:`HaarFaceDetector.detect_near`),
with the whole frame searched when none is there. 'every_n' detection uses it, where
the detector has it, to re-detect a face at a fraction of the cost of a full search.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from lqrppg.errors import ConfigError
from lqrppg.registry import Registry

Box = tuple[int, int, int, int]


class FaceDetector(Protocol):
    """Finds the main face in an RGB frame."""

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        """The largest face as int (x, y, w, h), or None when there is none."""


def search_region(near: np.ndarray | Box, margin: float, width: int, height: int, align: int = 1) -> Box:
    """``near`` (x, y, w, h) enlarged by ``margin`` x its width and height on every side, inside the frame.

    The region (x, y, w, h) is in the pixels of ``near``; its edges are moved outwards to
    multiples of ``align`` pixels (or to the frame's edge), so a box that moves by a pixel
    or two usually gives the same region.
    """
    x, y, w, h = (float(v) for v in near[:4])
    x0 = max(0, int(np.floor((x - margin * w) / align)) * align)
    y0 = max(0, int(np.floor((y - margin * h) / align)) * align)
    x1 = min(width, int(np.ceil((x + w + margin * w) / align)) * align)
    y1 = min(height, int(np.ceil((y + h + margin * h) / align)) * align)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


#: Factories (usually the classes) of the detectors, called as ``factory(max_side=..., model=...)``;
#: modules named ``face_*`` register here.
DETECTORS: Registry[Callable[..., FaceDetector]] = Registry("face detector", __package__, prefix="face_")
register_detector = DETECTORS.register
available_detectors = DETECTORS.names


@functools.cache
def get_detector(name: str, max_side: int | None = None, model: Path | None = None) -> FaceDetector:
    """A detector instance by name and options, built once per process (models take time to load)."""
    return DETECTORS.get(name)(max_side=max_side, model=model)


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float, float]:
    """``image`` shrunk (INTER_AREA) so its longer side is at most ``max_side``, and the x, y scales.

    A frame that is small enough is returned as is (no copy) with scales of 1.
    """
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image, 1.0, 1.0
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, size[0] / width, size[1] / height


def upscale_box(box: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """A box (x, y, w, h) found on a copy downscaled by (sx, sy), in full-frame int pixels."""
    x, y, w, h = (float(v) for v in box[:4])
    return np.array([round(x / sx), round(y / sy), round(w / sx), round(h / sy)], dtype=np.int32)


@register_detector("haar")
class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade, the detector of the rPPG-Toolbox and LQ-rPPG.

    ``min_neighbors=5`` (OpenCV's default is 3) trades a few missed small faces
    for fewer false boxes, which matter more because the largest box wins.
    ``min_size`` is in full-frame pixels; on a downscaled copy (``max_side``) it
    shrinks with the copy, but the cascade cannot see faces smaller than its
    24-pixel window there, so a face must span at least 24 / scale frame pixels.
    ``model`` replaces OpenCV's frontal-face cascade with another cascade XML file.
    """

    #: :meth:`detect_near` looks for faces at least this fraction of the known face's size.
    near_min_fraction = 0.5

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 30,
        max_side: int | None = None,
        model: Path | None = None,
    ) -> None:
        path = Path(model) if model is not None else Path(cv2.data.haarcascades) / cascade
        if model is not None and not path.is_file():
            raise ConfigError(f"preprocess.detector_model: Haar cascade file {path} does not exist")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ConfigError(f"cannot load the Haar cascade {path} (OpenCV 5 wheels ship none: use opencv<5)")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side

    def _gray(self, rgb: np.ndarray) -> tuple[np.ndarray, float, float]:
        # Grey first, then shrink: one channel to resample instead of three.
        return downscale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), self.max_side)

    def _largest(self, gray: np.ndarray, min_size: int) -> np.ndarray | None:
        """The largest face in ``gray`` (its pixels), or None."""
        faces = self._cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_size, min_size)
        )
        if len(faces) == 0:
            return None
        faces = np.asarray(faces, dtype=np.int32)
        return faces[np.argmax(faces[:, 2] * faces[:, 3])]

    def _detect_gray(self, gray: np.ndarray, sx: float, sy: float) -> np.ndarray | None:
        largest = self._largest(gray, max(1, round(self.min_size * min(sx, sy))))
        if largest is None:
            return None
        return largest if sx == sy == 1.0 else upscale_box(largest, sx, sy)

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        return self._detect_gray(*self._gray(rgb))

    def detect_near(self, rgb: np.ndarray, near: np.ndarray | Box, margin: float) -> np.ndarray | None:
        """The largest face in the region around ``near``, else in the whole frame.

        ``near`` is a face box (x, y, w, h, full-frame pixels) found before; the region is
        that box enlarged by ``margin`` x its size on every side (1: three times its width
        and height) and only faces at least ``near_min_fraction`` of its size count there.
        Both cut the cascade's work, most of which goes on windows far smaller than the
        face: on 640x480 frames with the face a third of the frame's height and ``max_side``
        320, a search near the face costs about half a full one. It runs on the same
        downscaled grey copy as :meth:`detect`, and its box differs from a full search's by
        the cascade's sampling (a pixel or two; the region's edges sit on an 8-pixel grid so
        that a still face gets the same box every time).

        A face found closer to an edge of the region than half the margin (x its size), where
        that edge is not the frame's, is searched for again in the region around itself: the
        region's edge would cut off the cascade's larger windows on that side and pull the box
        off the face. Where the region holds no face (the face moved out of it, or shrank by
        half), the whole frame is searched as :meth:`detect` does, and a face found there is
        searched for again in its own region, so that every box comes from the same kind of
        search. Unlike a full search, a larger face elsewhere does not take over while the
        known face is still found: the search follows the face it has.
        """
        gray, sx, sy = self._gray(rgb)
        found, off_centre = self._search_near(gray, sx, sy, near, margin)
        if found is None:
            found, off_centre = self._detect_gray(gray, sx, sy), True
            if found is None:
                return None
        if off_centre:
            again, _ = self._search_near(gray, sx, sy, found, margin)
            if again is not None:
                found = again
        return found

    def _search_near(
        self, gray: np.ndarray, sx: float, sy: float, near: np.ndarray | Box, margin: float
    ) -> tuple[np.ndarray | None, bool]:
        """The largest face in the region around ``near`` (full-frame pixels), and whether it is off centre."""
        x, y, w, h = (float(v) for v in near[:4])
        near_small = (x * sx, y * sy, w * sx, h * sy)
        height, width = gray.shape
        rx, ry, rw, rh = search_region(near_small, margin, width, height, align=8)
        min_size = max(1, round(self.min_size * min(sx, sy)), int(self.near_min_fraction * min(near_small[2:])))
        if rw < min_size or rh < min_size:
            return None, False
        found = self._largest(gray[ry : ry + rh, rx : rx + rw], min_size)
        if found is None:
            return None, False
        fx, fy, fw, fh = (int(v) for v in found)
        gap = margin / 2 * fw
        off_centre = (
            (rx > 0 and fx < gap)
            or (ry > 0 and fy < gap)
            or (rx + rw < width and rw - fx - fw < gap)
            or (ry + rh < height and rh - fy - fh < gap)
        )
        found = found + np.array([rx, ry, 0, 0], dtype=np.int32)
        return (found if sx == sy == 1.0 else upscale_box(found, sx, sy)), off_centre


def expand_box(box: np.ndarray | Box, scale: float, frame_w: int, frame_h: int) -> Box:
    """Enlarge ``box`` ×``scale`` about its centre into a square that lies inside the frame.

    The side is ``scale`` × the longer side, capped at the frame's shorter side;
    a square that would cross an edge is shifted inwards rather than cut, so the
    crop keeps the face's aspect ratio (the toolbox cuts it, and the resize then
    stretches the face near the edges).
    """
    x, y, w, h = (float(v) for v in box)
    side = int(round(min(max(w, h) * scale, frame_w, frame_h)))
    side = max(side, 1)
    x0 = int(round(x + w / 2 - side / 2))
    y0 = int(round(y + h / 2 - side / 2))
    x0 = min(max(x0, 0), frame_w - side)
    y0 = min(max(y0, 0), frame_h - side)
    return x0, y0, side, side


def crop_resize(rgb: np.ndarray, box: np.ndarray | Box, size: int) -> np.ndarray:
    """Crop ``box`` (x, y, w, h) from the frame and resize it to (size, size, 3) uint8.

    INTER_AREA averages the source pixels, which keeps the colour means that rPPG
    depends on (a nearest or linear downscale aliases the skin texture).
    """
    x, y, w, h = (int(v) for v in box)
    crop = rgb[max(y, 0) : y + h, max(x, 0) : x + w]
    if crop.size == 0:
        raise ValueError(f"box {tuple(box)} lies outside the {rgb.shape[1]}x{rgb.shape[0]} frame")
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.uint8, copy=False)
