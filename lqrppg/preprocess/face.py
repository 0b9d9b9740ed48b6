"""Face detection and cropping.

Detectors implement the small :class:`FaceDetector` protocol and register under a
name with :func:`register_detector`; :func:`get_detector` finds them. Modules of
this package named ``face_*`` are imported on first use, so another detector (a
DNN one, say) is one new file, ``lqrppg/preprocess/face_<name>.py``.
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


#: Factories (usually the classes) of the detectors; modules named ``face_*`` register here.
DETECTORS: Registry[Callable[[], FaceDetector]] = Registry("face detector", __package__, prefix="face_")
register_detector = DETECTORS.register
available_detectors = DETECTORS.names


@functools.cache
def get_detector(name: str) -> FaceDetector:
    """A detector instance by name, built once per process (cascades take time to load)."""
    return DETECTORS.get(name)()


@register_detector("haar")
class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade, the detector of the rPPG-Toolbox and LQ-rPPG.

    ``min_neighbors=5`` (OpenCV's default is 3) trades a few missed small faces
    for fewer false boxes, which matter more because the largest box wins.
    """

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 30,
    ) -> None:
        path = Path(cv2.data.haarcascades) / cascade
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ConfigError(f"cannot load the Haar cascade {path} (OpenCV 5 wheels ship none: use opencv<5)")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        faces = self._cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size,) * 2
        )
        if len(faces) == 0:
            return None
        faces = np.asarray(faces, dtype=np.int32)
        return faces[np.argmax(faces[:, 2] * faces[:, 3])]


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
