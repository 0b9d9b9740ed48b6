"""TS-CAN (Liu, Fromm, Patel & McDuff, NeurIPS 2020), DeepPhys with temporal shift modules.

DeepPhys sees one frame at a time. TS-CAN gives its motion branch a view of the neighbouring
frames at no cost in parameters: before each motion conv a temporal shift module (TSM) moves a
third of the channels one frame back in time and another third one frame forward. The clip is
cut into segments of ``frame_depth`` (10) consecutive frames and features move only inside a
segment: the first/last frame of a segment receives zeros, never the next segment's features.
So the frame count must be divisible by ``frame_depth``.

    TSM on (B*T, C, H, W), viewed as (segments, frame_depth, C, H, W), fold = C // 3:
        out[:, t, :fold]        = x[:, t+1, :fold]         (zero at the segment's last frame)
        out[:, t, fold:2*fold]  = x[:, t-1, fold:2*fold]   (zero at the segment's first frame)
        out[:, t, 2*fold:]      = x[:, t, 2*fold:]

    (B, 6, T, H, W) -> (B*T, 6, H, W): channels 0-2 DiffNormalized, 3-5 Standardized
        motion:  TSM_1, motion_conv1, tanh, TSM_2, motion_conv2, tanh   (x mask 1, pool, dropout)
                 TSM_3, motion_conv3, tanh, TSM_4, motion_conv4, tanh   (x mask 2, pool, dropout)
        appearance branch, attention masks, dense head: exactly DeepPhys (lqrppg.models.deepphys)
    (B*T, 1) -> (B, T)

Source: rPPG-Toolbox ``neural_methods/model/TS_CAN.py`` (class ``TSCAN``; ubicomplab/rPPG-Toolbox),
layer for layer and with the same submodule names, so the toolbox's released TS-CAN weights load
(after stripping DataParallel's ``module.`` prefix; the TSMs hold no weights). The toolbox's
trainer flattens the batch to frames and cuts it to a multiple of ``frame_depth``; with T
divisible by ``frame_depth`` every segment lies inside one clip, as here. Its standard configs:
FRAME_DEPTH 10, 180-frame chunks of 72x72 faces, MSELoss on the DiffNormalized label.

Size: the same parameters as DeepPhys, 2.23 M at 72x72; method.md §10's 1.98 M is 128x128 with
the last pooling widened to 4x4 (``final_pool=4``, RhythmFormer's ``cost_cal.py``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from lqrppg.models import register_model
from lqrppg.models.deepphys import (
    DENSE,
    DROPOUT_CONV,
    DROPOUT_DENSE,
    FILTERS1,
    FILTERS2,
    AttentionMask,
    check_image_size,
    dense_features,
    to_frames,
)

__all__ = ["FRAME_DEPTH", "TSCAN", "TemporalShift", "check_frames"]

FRAME_DEPTH = 10  # frames per temporal-shift segment (the toolbox configs' FRAME_DEPTH)


def check_frames(model: str, frames: int, frame_depth: int = FRAME_DEPTH) -> None:
    """ValueError unless ``frames`` is a positive multiple of ``frame_depth``."""
    if frames < frame_depth or frames % frame_depth:
        raise ValueError(
            f"{model} needs a frame count divisible by frame_depth={frame_depth} (the temporal shift "
            f"works on segments of {frame_depth} frames), got {frames}"
        )


class TemporalShift(nn.Module):
    """Shift a third of the channels one frame back and a third one frame forward, per segment.

    Input (N, C, H, W) with N a multiple of ``n_segment``: consecutive groups of ``n_segment``
    frames are the segments. Channels [0, fold) take the next frame's values, [fold, 2*fold) the
    previous frame's, the rest stay; segment ends receive zeros.
    """

    def __init__(self, n_segment: int = FRAME_DEPTH, fold_div: int = 3) -> None:
        super().__init__()
        self.n_segment, self.fold_div = n_segment, fold_div

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        x = x.view(n // self.n_segment, self.n_segment, c, h, w)
        fold = c // self.fold_div
        out = torch.zeros_like(x)
        out[:, :-1, :fold] = x[:, 1:, :fold]  # from the next frame
        out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]  # from the previous frame
        out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
        return out.view(n, c, h, w)


@register_model("tscan")
class TSCAN(nn.Module):
    """TS-CAN; input (B, 6, T, H, W) DiffNormalized + Standardized frames, T divisible by 10; output (B, T)."""

    input_norm = "diff_and_standardized"  # the toolbox's DATA_TYPE ['DiffNormalized', 'Standardized']
    label_norm = "diff_normalized"
    label_type = "continuous"
    loss = "mse"  # the toolbox's TscanTrainer uses torch.nn.MSELoss
    published_input = (180, 72, 72)  # the toolbox's standard configs: CHUNK_LENGTH 180, RESIZE 72x72
    frame_depth = FRAME_DEPTH

    @classmethod
    def check_input(cls, frames: int, height: int, width: int, final_pool: int = 2) -> None:
        """Raise ValueError unless (frames, height, width) is a valid input size."""
        check_frames("TS-CAN", frames, cls.frame_depth)
        check_image_size("TS-CAN", height, width, final_pool)

    def __init__(self, frames: int = 180, height: int = 72, width: int = 72, *, final_pool: int = 2) -> None:
        """``final_pool``: size of the last average pooling; 2 in the toolbox (keep it), 4 in
        RhythmFormer's cost script at 128x128 (method.md §10's 1.98 M)."""
        super().__init__()
        self.check_input(frames, height, width, final_pool)
        self.frames, self.height, self.width, self.final_pool = frames, height, width, final_pool

        self.TSM_1 = TemporalShift(self.frame_depth)
        self.TSM_2 = TemporalShift(self.frame_depth)
        self.TSM_3 = TemporalShift(self.frame_depth)
        self.TSM_4 = TemporalShift(self.frame_depth)
        # Motion branch (normalised frame differences)
        self.motion_conv1 = nn.Conv2d(3, FILTERS1, kernel_size=3, padding=1)
        self.motion_conv2 = nn.Conv2d(FILTERS1, FILTERS1, kernel_size=3)
        self.motion_conv3 = nn.Conv2d(FILTERS1, FILTERS2, kernel_size=3, padding=1)
        self.motion_conv4 = nn.Conv2d(FILTERS2, FILTERS2, kernel_size=3)
        # Appearance branch (standardized frames)
        self.apperance_conv1 = nn.Conv2d(3, FILTERS1, kernel_size=3, padding=1)
        self.apperance_conv2 = nn.Conv2d(FILTERS1, FILTERS1, kernel_size=3)
        self.apperance_conv3 = nn.Conv2d(FILTERS1, FILTERS2, kernel_size=3, padding=1)
        self.apperance_conv4 = nn.Conv2d(FILTERS2, FILTERS2, kernel_size=3)
        # Attention masks from the appearance branch
        self.apperance_att_conv1 = nn.Conv2d(FILTERS1, 1, kernel_size=1)
        self.attn_mask_1 = AttentionMask()
        self.apperance_att_conv2 = nn.Conv2d(FILTERS2, 1, kernel_size=1)
        self.attn_mask_2 = AttentionMask()

        self.avg_pooling_1 = nn.AvgPool2d(2)
        self.avg_pooling_2 = nn.AvgPool2d(2)
        self.avg_pooling_3 = nn.AvgPool2d(final_pool)
        self.dropout_1 = nn.Dropout(DROPOUT_CONV)
        self.dropout_2 = nn.Dropout(DROPOUT_CONV)
        self.dropout_3 = nn.Dropout(DROPOUT_CONV)
        self.dropout_4 = nn.Dropout(DROPOUT_DENSE)

        self.final_dense_1 = nn.Linear(dense_features(height, width, final_pool), DENSE)
        self.final_dense_2 = nn.Linear(DENSE, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or x.shape[1] != 6:
            raise ValueError(f"TS-CAN expects (B, 6, T, H, W) input (diff + standardized), got {tuple(x.shape)}")
        batch, _, frames, height, width = x.shape
        self.check_input(frames, height, width, self.final_pool)
        if (height, width) != (self.height, self.width):  # final_dense_1 is sized for them
            raise ValueError(f"TS-CAN was built for {self.height}x{self.width} frames, got {height}x{width}")
        x = to_frames(x)  # each clip's T frames consecutive: segments never straddle two clips
        diff, raw = x[:, :3], x[:, 3:]

        d = torch.tanh(self.motion_conv1(self.TSM_1(diff)))
        d = torch.tanh(self.motion_conv2(self.TSM_2(d)))
        r = torch.tanh(self.apperance_conv2(torch.tanh(self.apperance_conv1(raw))))
        d = d * self.attn_mask_1(torch.sigmoid(self.apperance_att_conv1(r)))
        d = self.dropout_1(self.avg_pooling_1(d))
        r = self.dropout_2(self.avg_pooling_2(r))

        d = torch.tanh(self.motion_conv3(self.TSM_3(d)))
        d = torch.tanh(self.motion_conv4(self.TSM_4(d)))
        r = torch.tanh(self.apperance_conv4(torch.tanh(self.apperance_conv3(r))))
        d = d * self.attn_mask_2(torch.sigmoid(self.apperance_att_conv2(r)))
        d = self.dropout_3(self.avg_pooling_3(d))

        d = self.dropout_4(torch.tanh(self.final_dense_1(d.flatten(1))))
        return self.final_dense_2(d).reshape(batch, frames)
