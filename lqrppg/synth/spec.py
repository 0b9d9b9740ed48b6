"""Typed description of one synthetic dataset.

These pydantic models are the single source of truth for the synthetic benchmark's
settings: the project's config JSON schema is generated from them, so every field
carries a ``description`` and unknown keys are rejected (``extra="forbid"``). Models
are frozen so a spec can be hashed into cache keys and shared safely.

Ranges are ``(low, high)`` pairs from which a value is drawn per subject or per
session; a pair with ``low == high`` fixes the value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Range = tuple[float, float]

#: Label rate a layout uses when the spec does not set one (None = one sample per frame).
LAYOUT_LABEL_RATE_HZ: dict[str, float | None] = {"ubfc-rppg": None, "pure": 60.0}


def _check_range(name: str, value: Range) -> None:
    if value[0] > value[1]:
        raise ValueError(f"{name}: low {value[0]} is above high {value[1]}")


class LabelDistortion(BaseModel):
    """How the contact-PPG label departs from the clean pulse.

    Amplitudes are in units of the clean pulse's peak-to-peak amplitude. ``level``
    multiplies the delay, the wander and noise amplitudes, the burst and contact-loss
    rates, the clipped fraction and the morphology strength (bursts get more frequent,
    not bigger), so one knob sweeps the label from clean (0) to very poor (3-5).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: float = Field(
        1.0,
        ge=0.0,
        le=5.0,
        description="Global multiplier on every distortion below; 0 gives a label equal to the clean pulse.",
    )
    delay_s: Range = Field(
        (0.1, 0.3),
        description="Pulse-transit delay of the label behind the facial pulse, drawn per session (s).",
    )
    baseline_wander: float = Field(
        0.25,
        ge=0.0,
        description="Standard deviation of the slow (0.03-0.3 Hz) baseline drift, in pulse peak-to-peak units.",
    )
    motion_bursts_per_min: float = Field(
        0.8, ge=0.0, description="Mean rate of high-amplitude motion-artifact bursts (Poisson, per minute)."
    )
    motion_burst_amplitude: float = Field(
        1.5, ge=0.0, description="Typical standard deviation of a motion burst, in pulse peak-to-peak units."
    )
    contact_loss_per_min: float = Field(
        0.3, ge=0.0, description="Mean rate of contact-loss episodes, where the sensor holds a flat value (per minute)."
    )
    clipping: float = Field(
        0.02,
        ge=0.0,
        le=0.3,
        description="Fraction of label samples driven into the sensor's rails (saturation) before level scaling.",
    )
    morphology: float = Field(
        0.5,
        ge=0.0,
        description="Strength of waveform-shape distortion (sensor low-pass smoothing the dicrotic notch, "
        "nonlinear skew, gain drift); 0 keeps the clean shape.",
    )
    noise_std: float = Field(
        0.04, ge=0.0, description="Standard deviation of additive white sensor noise, in pulse peak-to-peak units."
    )

    @model_validator(mode="after")
    def _ranges(self) -> LabelDistortion:
        _check_range("delay_s", self.delay_s)
        if self.delay_s[0] < 0:
            raise ValueError("delay_s must be non-negative")
        return self


class SynthDatasetSpec(BaseModel):
    """Everything that shapes one synthetic dataset (sizes, physiology, appearance, camera, label)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Literal["ubfc-rppg", "pure"] = Field(
        description="On-disk layout of a real dataset to imitate, so that dataset's reader loads it unchanged."
    )
    n_subjects: int = Field(6, ge=1, le=99, description="Number of subjects.")
    tasks_per_subject: int = Field(
        1, ge=1, le=99, description="Recordings per subject (must be 1 for ubfc-rppg, which has one video per subject)."
    )
    duration_s: float = Field(30.0, gt=0.0, le=3600.0, description="Length of every recording (s).")
    fps: float = Field(30.0, gt=0.0, le=240.0, description="Video frame rate (frames per second).")
    frame_width: int = Field(320, ge=64, le=4096, description="Frame width in pixels.")
    frame_height: int = Field(240, ge=48, le=4096, description="Frame height in pixels.")
    label_rate_hz: float | None = Field(
        None,
        gt=0.0,
        description="Contact-PPG sampling rate; null means one sample per video frame. "
        "Omitted, it takes the layout's real rate (per frame for ubfc-rppg, 60 Hz for pure).",
    )
    hr_range_bpm: Range = Field(
        (55.0, 110.0), description="Range of each subject's resting heart rate (bpm), within 40-180."
    )
    hr_task_spread_bpm: float = Field(
        6.0, ge=0.0, description="Standard deviation of a recording's mean heart rate around its subject's rate (bpm)."
    )
    hrv: float = Field(
        2.5, ge=0.0, description="Standard deviation of slow random heart-rate fluctuation (0.02-0.15 Hz band, bpm)."
    )
    hr_trend_bpm: float = Field(
        6.0, ge=0.0, description="Largest heart-rate drift over one recording (bpm), random sign and size."
    )
    resp_rate_hz: Range = Field((0.15, 0.4), description="Range of the breathing rate, drawn per recording (Hz).")
    resp_fm_bpm: float = Field(
        3.0, ge=0.0, description="Respiratory sinus arrhythmia: heart-rate swing in phase with breathing (bpm)."
    )
    resp_am: float = Field(
        0.12, ge=0.0, le=0.9, description="Depth of respiratory amplitude modulation of the pulse (fraction)."
    )
    skin_tone: Range = Field(
        (-0.5, 0.5),
        description="Range of skin tone drawn per subject: -1 darkest, 0 the source photo, +1 lightest.",
    )
    face_size: Range = Field(
        (0.33, 0.42),
        description="Range of the face-box height as a fraction of the frame height, per subject. Below about "
        "0.33 the face of a 160x120 frame nears the Haar detector's 30-pixel limit and is sometimes missed.",
    )
    motion: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Voluntary head-motion amount: 0 none; 1 is translation ~5% of the frame, rotation ~3 deg "
        "and scale ~4% (standard deviations), harsher than PURE's motion tasks; 0.5 gives unsupervised-method "
        "errors like PURE's, 0.25 like UBFC-rPPG's seated subjects.",
    )
    physiological_motion: float = Field(
        1.0,
        ge=0.0,
        le=5.0,
        description="Scale of involuntary motion present even when still: the head rises with each breath "
        "(0.2% of the frame height) and jerks with each heartbeat (ballistocardiography); 0 freezes the head.",
    )
    lighting_change: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Amplitude of slow illumination change (global level and a side-light gradient), as a fraction.",
    )
    flicker: float = Field(0.0, ge=0.0, le=0.2, description="Amplitude of fast periodic illumination flicker.")
    flicker_hz: float = Field(
        7.0, gt=0.0, description="Apparent flicker frequency after aliasing by the camera (Hz)."
    )
    camera_noise_std: float = Field(
        1.0,
        ge=0.0,
        le=30.0,
        description="Camera noise standard deviation at mid-grey (8-bit levels); grows with brightness (shot noise).",
    )
    pulse_amplitude: float = Field(
        0.01,
        gt=0.0,
        le=0.1,
        description="Peak-to-peak pulsatile change of skin intensity in the green channel, as a fraction.",
    )
    pulse_channel_weights: tuple[float, float, float] = Field(
        (0.33, 0.77, 0.53),
        description="Relative pulsatile strength in R, G, B (skin-reflection model, Wang et al. 2017).",
    )
    specular: float = Field(
        0.06, ge=0.0, le=1.0, description="Strength of specular highlights on the skin, varying with head pose."
    )
    codec: str = Field(
        "FFV1",
        min_length=4,
        max_length=4,
        description="FourCC of the video codec for video layouts. FFV1 is lossless and smallest; HFYU "
        "(HuffYUV) is lossless, about 25% larger and 4-10x faster to encode and decode; MJPG is lossy. "
        "If the codec cannot be opened the writer falls back to MJPG and logs a warning.",
    )
    label: LabelDistortion = Field(
        default_factory=LabelDistortion, description="Distortions of the contact-PPG label."
    )

    @model_validator(mode="before")
    @classmethod
    def _layout_label_rate(cls, data: Any) -> Any:
        """Give a layout its real label rate when the caller does not set one."""
        if isinstance(data, dict) and "label_rate_hz" not in data and data.get("layout") in LAYOUT_LABEL_RATE_HZ:
            data = {**data, "label_rate_hz": LAYOUT_LABEL_RATE_HZ[data["layout"]]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SynthDatasetSpec:
        for name in ("hr_range_bpm", "resp_rate_hz", "skin_tone", "face_size"):
            _check_range(name, getattr(self, name))
        if self.hr_range_bpm[0] < 40 or self.hr_range_bpm[1] > 180:
            raise ValueError("hr_range_bpm must lie within 40-180 bpm")
        if self.skin_tone[0] < -1 or self.skin_tone[1] > 1:
            raise ValueError("skin_tone must lie within -1..1")
        if self.face_size[0] < 0.15 or self.face_size[1] > 0.6:
            raise ValueError("face_size must lie within 0.15-0.6 of the frame height")
        if self.layout == "ubfc-rppg" and self.tasks_per_subject != 1:
            raise ValueError("ubfc-rppg has one video per subject: tasks_per_subject must be 1")
        if self.layout == "ubfc-rppg" and self.label_rate_hz is not None:
            raise ValueError("ubfc-rppg stores one label sample per frame: label_rate_hz must be null")
        if self.layout == "pure" and self.label_rate_hz is None:
            raise ValueError("pure stores its label on its own clock: label_rate_hz must be set (60 Hz is real)")
        if self.duration_s * self.fps < 2:
            raise ValueError("duration_s * fps must give at least two frames")
        return self

    @property
    def n_frames(self) -> int:
        """Frames per recording."""
        return int(round(self.duration_s * self.fps))


def default_datasets() -> dict[str, SynthDatasetSpec]:
    """The embedded benchmark: two datasets that differ the way real ones do.

    ``synth-calm`` imitates UBFC-rPPG: seated subjects who move a little, mild light
    changes, little noise, lossless AVI. ``synth-motion`` imitates PURE: head motion,
    changing light and flicker, darker skin tones on average, more camera noise, PNG
    frames with a 60 Hz label, and a label that suffers more motion bursts. Motion
    and light levels were chosen so that GREEN, POS and CHROM, run through the
    project's preprocessing, err by a few bpm with outliers, more on synth-motion
    than on synth-calm, as on the real datasets.
    """
    return {
        "synth-calm": SynthDatasetSpec(
            layout="ubfc-rppg",
            n_subjects=6,
            duration_s=20.0,
            hr_range_bpm=(55.0, 105.0),
            skin_tone=(-0.3, 0.7),
            motion=0.25,
            lighting_change=0.05,
            camera_noise_std=0.5,
        ),
        "synth-motion": SynthDatasetSpec(
            layout="pure",
            n_subjects=3,
            tasks_per_subject=2,
            duration_s=20.0,
            hr_range_bpm=(60.0, 130.0),
            skin_tone=(-1.0, 0.0),
            motion=0.5,
            lighting_change=0.12,
            flicker=0.01,
            camera_noise_std=3.0,
            pulse_amplitude=0.008,
            label=LabelDistortion(motion_bursts_per_min=1.5, baseline_wander=0.6),
        ),
    }
