"""Face detection, box geometry and cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from lqrppg.errors import ConfigError
from lqrppg.preprocess.face import (
    HaarFaceDetector,
    available_detectors,
    crop_resize,
    expand_box,
    get_detector,
    search_region,
)


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


def two_faces() -> np.ndarray:
    """The astronaut, face at (177, 106, 95, 95), and a half-size copy, face near (688, 133, 47, 47)."""
    portrait = skdata.astronaut()
    canvas = np.full((600, 900, 3), (60, 90, 120), np.uint8)
    canvas[40:552, 0:512] = portrait
    canvas[100:356, 600:856] = cv2.resize(portrait, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    return canvas


def test_search_region_enlarges_the_box_inside_the_frame_on_a_grid():
    assert search_region((100, 100, 40, 20), 1.0, 640, 480) == (60, 80, 120, 60)
    assert search_region((100, 100, 40, 20), 0.5, 640, 480) == (80, 90, 80, 40)
    assert search_region((10, 400, 40, 60), 1.0, 640, 480) == (0, 340, 90, 140)  # cut at the frame's edges
    # Edges move outwards to multiples of `align`, so a box moved by a pixel keeps its region.
    assert search_region((101.5, 99, 40, 20), 1.0, 640, 480, align=8) == (56, 72, 128, 72)
    assert search_region((103, 101, 40, 20), 1.0, 640, 480, align=8) == (56, 80, 128, 64)


class CountingHaar(HaarFaceDetector):
    """Counts the searches of the whole (downscaled) frame and records the searches near a box."""

    full_searches = 0

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.near_searches: list[tuple] = []

    def _detect_gray(self, gray, sx, sy):
        self.full_searches += 1
        return super()._detect_gray(gray, sx, sy)

    def _search_near(self, gray, sx, sy, near, margin):
        found, off_centre = super()._search_near(gray, sx, sy, near, margin)
        self.near_searches.append((tuple(int(v) for v in near[:4]), off_centre))
        return found, off_centre


def test_detect_near_finds_the_known_face_without_searching_the_whole_frame():
    detector = CountingHaar()
    rgb = skdata.astronaut()
    full = detector.detect(rgb)
    near = detector.detect_near(rgb, full, 1.0)
    assert detector.full_searches == 1  # detect()'s only
    assert near.dtype == np.int32 and iou(near, full) > 0.9
    # Downscaled detection: the region is cut from the same downscaled copy, the box is in frame pixels.
    half = CountingHaar(max_side=256)
    box = half.detect_near(rgb, full, 1.0)
    assert half.full_searches == 0 and iou(box, (177, 66, 95, 95)) > 0.8


def test_a_face_found_at_the_edge_of_the_region_is_searched_for_again_around_itself():
    """The face moved 40 pixels left of the box searched near: the region's edge is 9 pixels from it."""
    rgb = skdata.astronaut()
    detector = CountingHaar()
    box = detector.detect_near(rgb, (217, 66, 95, 95), 0.5)  # region x from 168, face from 177
    (first, off_centre), (second, centred) = detector.near_searches
    assert first == (217, 66, 95, 95) and off_centre and not centred and detector.full_searches == 0
    assert iou(second, (177, 66, 95, 95)) > 0.8
    centred_search = CountingHaar()
    assert (centred_search.detect_near(rgb, second, 0.5) == box).all()
    assert centred_search.near_searches == [(second, False)]


def test_detect_near_follows_the_known_face_even_when_a_larger_one_is_elsewhere():
    canvas = two_faces()
    detector = CountingHaar()
    assert iou(detector.detect(canvas), (177, 106, 95, 95)) > 0.8  # a full search: the largest face
    small = detector.detect_near(canvas, (688, 133, 47, 47), 1.0)
    assert iou(small, (688, 133, 47, 47)) > 0.7 and detector.full_searches == 1


@pytest.mark.parametrize("near", [(400, 450, 95, 95), (10, 10, 40, 40)])
def test_detect_near_falls_back_to_the_whole_frame_when_the_region_has_no_face(near):
    """The face moved out of the region: the whole frame is searched, as detect() does."""
    canvas = two_faces()
    detector = CountingHaar()
    box = detector.detect_near(canvas, near, 1.0)
    assert detector.full_searches == 1 and iou(box, (177, 106, 95, 95)) > 0.8
    assert detector.detect_near(np.full((240, 320, 3), 128, np.uint8), (100, 80, 60, 60), 1.0) is None


def test_detect_near_falls_back_when_the_face_shrank_below_half_the_known_size():
    rgb = skdata.astronaut()
    small = cv2.resize(rgb, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)  # face ~38 px
    detector = CountingHaar()
    box = detector.detect_near(small, (70, 26, 95, 95), 1.0)  # only faces >= 47 px count near it
    assert detector.full_searches == 1 and iou(box, (71, 26, 38, 38)) > 0.7


def test_detector_registry():
    assert "haar" in available_detectors()
    assert isinstance(get_detector("haar"), HaarFaceDetector)
    with pytest.raises(ConfigError, match="'dnn'.*haar"):
        get_detector("dnn")
