"""YuNet, OpenCV's small CNN face detector, as the optional ``yunet`` detector.

It finds profile, tilted, dark and partly covered faces that the frontal Haar
cascade misses, at a similar cost on a 320-pixel frame. Its ONNX weights are not
shipped with OpenCV's wheels: download ``face_detection_yunet_2023mar.onnx`` from
the OpenCV Zoo and set ``preprocess.detector_model`` to the file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lqrppg.errors import ConfigError
from lqrppg.preprocess.face import downscale, register_detector, upscale_box

#: Where the model comes from, quoted in every configuration error.
YUNET_SOURCE = (
    "download face_detection_yunet_2023mar.onnx from the OpenCV Zoo "
    "(https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet)"
)


@register_detector("yunet")
class YuNetFaceDetector:
    """``cv2.FaceDetectorYN`` with the YuNet ONNX model at ``model``; the largest face wins.

    ``score_threshold`` 0.6 is the OpenCV Zoo demo's; the box is the face without
    hair or chin margin, a little tighter than Haar's, so ``box_scale`` may need
    to be larger for the same crop.
    """

    def __init__(
        self,
        max_side: int | None = None,
        model: Path | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
    ) -> None:
        if model is None:
            raise ConfigError(
                f"preprocess.detector_model must name the YuNet ONNX file for detector 'yunet'; {YUNET_SOURCE}"
            )
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"preprocess.detector_model: YuNet model file {path} does not exist; {YUNET_SOURCE}")
        try:
            # The input size is a placeholder; detect() sets the real one per frame size.
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold)
        except cv2.error as err:
            raise ConfigError(
                f"preprocess.detector_model: OpenCV cannot load {path} as a YuNet ONNX model "
                f"({str(err).strip().splitlines()[-1]}); {YUNET_SOURCE}"
            ) from None
        self.max_side = max_side
        self._input_size: tuple[int, int] | None = None

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        small, sx, sy = downscale(rgb, self.max_side)
        height, width = small.shape[:2]
        if self._input_size != (width, height):
            self._net.setInputSize((width, height))
            self._input_size = (width, height)
        _, faces = self._net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        if faces is None or len(faces) == 0:
            return None
        largest = faces[np.argmax(faces[:, 2] * faces[:, 3]), :4]
        return upscale_box(largest, sx, sy)
