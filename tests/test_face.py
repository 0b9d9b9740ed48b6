"""Face detection, box geometry and cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from lqrppg.errors import ConfigError
from lqrppg.preprocess.face import HaarFaceDetector, available_detectors, crop_resize, expand_box, get_detector


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def test_expand_box_scales_about_the_centre_into_a_square():
    assert expand_box((100, 100, 40, 40), 1.5, 640, 480) == (90, 90, 60, 60)
    x, y, w, h = expand_box((100, 100, 40, 20), 1.5, 640, 480)  # wide box: side from the longer side
    assert (w, h) == (60, 60) and (x + w / 2, y + h / 2) == (120, 110)


def test_expand_box_shifts_inside_the_frame_instead_of_cutting():
    assert expand_box((0, 0, 40, 40), 1.5, 640, 480) == (0, 0, 60, 60)
    assert expand_box((620, 450, 40, 40), 1.5, 640, 480) == (580, 420, 60, 60)
    # Larger than the frame: capped at the shorter side and still inside.
    assert expand_box((200, 100, 400, 400), 1.5, 640, 480) == (160, 0, 480, 480)


def test_crop_resize_takes_the_box_and_keeps_the_mean():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (100, 1))  # pixel value = x coordinate
    rgb = np.stack([ramp, ramp, np.full_like(ramp, 7)], axis=-1)
    crop = crop_resize(rgb, (100, 10, 50, 50), 16)
    assert crop.shape == (16, 16, 3) and crop.dtype == np.uint8
    assert crop[..., 0].mean() == pytest.approx(124.5, abs=0.5)
    assert crop[..., 0].min() >= 100 and crop[..., 0].max() <= 149
    assert (crop[..., 2] == 7).all()
    with pytest.raises(ValueError, match="outside"):
        crop_resize(rgb, (300, 10, 50, 50), 16)


def test_haar_finds_the_astronaut():
    box = HaarFaceDetector().detect(skdata.astronaut())
    assert box is not None and iou(box, (177, 66, 95, 95)) > 0.8


def test_haar_returns_the_largest_face_and_none_without_a_face():
    portrait = skdata.astronaut()
    canvas = np.full((600, 900, 3), (60, 90, 120), np.uint8)
    canvas[40:552, 0:512] = portrait
    canvas[100:356, 600:856] = cv2.resize(portrait, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    detector = HaarFaceDetector()
    assert iou(detector.detect(canvas), (177, 106, 95, 95)) > 0.8
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) is None


def test_detector_registry():
    assert "haar" in available_detectors()
    assert isinstance(get_detector("haar"), HaarFaceDetector)
    with pytest.raises(ConfigError, match="'dnn'.*haar"):
        get_detector("dnn")
