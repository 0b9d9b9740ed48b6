"""Synthetic rPPG benchmark: face videos with a known pulse, in real datasets' on-disk layouts.

It is the project's embedded default dataset. Each recording has a clean
blood-volume pulse (kept as ground truth) that modulates the skin pixels, and a
contact-PPG label derived from it with the defects real labels have, so a model can
be scored both against the noisy label and against the truth.
"""

from lqrppg.synth.dataset import synthesize_dataset
from lqrppg.synth.layouts import LAYOUT_WRITERS
from lqrppg.synth.spec import LabelDistortion, SynthDatasetSpec, default_datasets

__all__ = ["LAYOUT_WRITERS", "LabelDistortion", "SynthDatasetSpec", "default_datasets", "synthesize_dataset"]
