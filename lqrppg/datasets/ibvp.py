"""iBVP: ``pNN_x/pNN_x_rgb/*.bmp`` frames and ``pNN_x/pNN_x_bvp.csv`` (BVP plus quality grades).

``NN`` is the participant and ``x`` the condition (a rest and slow breathing, b easy
maths, c hard maths, d guided head movement). The RGB frames (640×480, 30 fps)
are BMPs read in the order of the frame number in their names; a gap in that
numbering is an error, because a linear stretch over a missing frame shifts the
pulse. The thermal frames (``pNN_x_t/*.raw``) are not used and not listed.

The CSV has a header row and the columns BVP (already at 30 Hz), SQPhysMD (the
SQA-PhysMD model's grade), SQ1 and SQ2 (manual grades) and Perfusion_Value. Neither
the CSV nor, as far as the dataset's README and rPPG-Toolbox's iBVPLoader say, the
frame names carry timestamps, so the label is aligned by linear stretch like the
toolbox does. Quality: the toolbox deletes every frame whose SQ2 ≤ 0.3, which
splices distant moments into one chunk; this reader instead exposes the grade as
``LabelSeries.quality`` (1 where the grade is above the threshold) so whole chunks
can be dropped and time stays continuous.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from lqrppg.datasets import register_dataset
from lqrppg.datasets.base import DatasetReader, LabelSeries, ReaderOptions, Session, check_label_values
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

_RECORDING_DIR = re.compile(r"^(p\d+)_([a-z])$")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")
COLUMNS = ("BVP", "SQPhysMD", "SQ1", "SQ2", "Perfusion_Value")
LABEL_COLUMN = "BVP"
#: The dataset ships BVP resampled to the 30 fps of the cameras.
LABEL_RATE_HZ = 30.0


class IbvpOptions(ReaderOptions):
    """Which quality grade masks the label, and from what value a sample counts as good."""

    quality_column: Literal["SQPhysMD", "SQ1", "SQ2"] = Field(
        "SQ2", description="Signal-quality column of the CSV used for the mask (the toolbox uses SQ2)."
    )
    quality_threshold: float = Field(
        0.3, ge=0.0, le=1.0, description="A sample is good when its grade is above this (the toolbox keeps > 0.3)."
    )
    mask_quality: bool = Field(
        True, description="Attach the per-sample quality mask to the label (False: no mask, every chunk is used)."
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@register_dataset("ibvp")
class IbvpReader(DatasetReader):
    """Reader for iBVP (124 three-minute RGB-thermal recordings; RGB only)."""

    default_fps = 30.0
    alignment = "linear_stretch"
    expected_sessions = 124
    Options = IbvpOptions
    access = (
        "iBVP is available for academic research only: the academic supervisor signs the EULA "
        "(https://github.com/PhysiologicAILab/iBVP-Dataset, assets/EULA_iBVP-Dataset.pdf) and e-mails it "
        "to the authors (addresses in that README); cite Joshi & Cho, Electronics 13(7):1334, 2024. "
        "Participants p08, p10, p13, p16, p29, p31 and p33 gave limited consent and ship in a separate "
        "'Confidential_No-media-use' folder: move them into the root and keep them confidential.\n"
        "Expected layout: <root>/pNN_x/pNN_x_rgb/*.bmp and <root>/pNN_x/pNN_x_bvp.csv "
        "(x = a, b, c, d; the thermal pNN_x_t/ folders are not used)."
    )

    options: IbvpOptions

    def _find_sessions(self) -> list[Session]:
        return self._recording_folders(_RECORDING_DIR, lambda folder: (folder / f"{folder.name}_rgb", folder / f"{folder.name}_bvp.csv"))

    def _frame_files(self, s: Session) -> list[Path]:
        """The BMPs in frame-number order; DataError on a gap or a repeated number."""
        folder = Path(s.video_path)
        try:
            entries = [p for p in folder.iterdir() if p.suffix.lower() == ".bmp"]
        except OSError as err:
            raise DataError(f"{folder}: cannot list the frame folder ({err.strerror or err})") from err
        if not entries:
            raise DataError(f"{folder}: no .bmp frame in the folder")
        numbered = []
        for path in entries:
            match = _LAST_NUMBER.search(path.stem)
            if not match:
                raise DataError(f"{folder}: frame {path.name} has no frame number in its name")
            numbered.append((int(match[1]), path))
        # Numeric order, not string order: unpadded numbers (frame10 < frame9) sort wrongly as text.
        numbered.sort()
        numbers = np.array([n for n, _ in numbered])
        steps = np.diff(numbers)
        if (steps == 0).any():
            i = int(np.argmax(steps == 0))
            raise DataError(f"{folder}: frame number {numbers[i]} appears twice "
                            f"({numbered[i][1].name}, {numbered[i + 1][1].name})")  # fmt: skip
        if (steps > 1).any():
            i = int(np.argmax(steps > 1))
            gap = numbers[i + 1] - numbers[i] - 1
            raise DataError(
                f"{folder}: the frame numbering has a gap: frame {numbers[i] + 1} is missing "
                f"({gap} frame(s) between {numbered[i][1].name} and {numbered[i + 1][1].name})"
            )
        return [path for _, path in numbered]

    def session_files(self, s: Session) -> list[Path]:
        return [*self._frame_files(s), Path(s.label_path)]

    def frame_count(self, s: Session) -> int | None:
        return len(self._frame_files(s))

    def iter_frames(self, s: Session) -> Iterator[np.ndarray]:
        for path in self._frame_files(s):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DataError(f"{path}: unreadable BMP frame")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _read_csv(self, path: Path, wanted: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The ``wanted`` columns by header name, and each row's line number; DataError naming the line."""
        try:
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
        except OSError as err:
            raise DataError(f"{path}: cannot read the label file ({err.strerror or err})") from err
        except (UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"{path}: not a readable CSV file ({err})") from err
        if not rows or not any(cell.strip() for cell in rows[0]):
            raise DataError(f"{path}: line 1 is empty; expected the header row ({', '.join(COLUMNS)})")
        header = [cell.strip() for cell in rows[0]]
        if all(_is_number(cell) for cell in header):
            raise DataError(f"{path}: line 1 is data, not the header row; expected a header with {', '.join(COLUMNS)}")
        index = {name.lower(): i for i, name in enumerate(header)}
        if LABEL_COLUMN.lower() not in index:
            later = next((n for n, row in enumerate(rows[1:], start=2)
                          if LABEL_COLUMN.lower() in (c.strip().lower() for c in row)), None)  # fmt: skip
            where = f"; the header is on line {later}" if later else ""
            raise DataError(
                f"{path}: line 1 is not the header row (expected columns {', '.join(COLUMNS)}, "
                f"found {', '.join(header)}){where}"
            )
        missing = [name for name in wanted if name.lower() not in index]
        if missing:
            raise DataError(f"{path}: no column {', '.join(missing)} in the header (found: {', '.join(header)})")
        cols = [index[name.lower()] for name in wanted]
        values: list[list[float]] = [[] for _ in wanted]
        lines = []
        for lineno, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue  # a trailing blank line
            try:
                for out, col in zip(values, cols, strict=True):
                    out.append(float(row[col]))
            except (ValueError, IndexError):
                kind = "a second header row" if not any(_is_number(c) for c in row) else "a non-numeric or short row"
                raise DataError(f"{path}: line {lineno} is {kind}: {','.join(row)[:80]!r}") from None
            lines.append(lineno)
        return {name: np.array(v) for name, v in zip(wanted, values, strict=True)}, np.array(lines)

    def read_label(self, s: Session) -> LabelSeries:
        path = Path(s.label_path)
        opts = self.options
        wanted = [LABEL_COLUMN, opts.quality_column] if opts.mask_quality else [LABEL_COLUMN]
        columns, lines = self._read_csv(path, wanted)
        values = check_label_values(columns[LABEL_COLUMN], str(path))
        quality = None
        if opts.mask_quality:
            grade = columns[opts.quality_column]
            bad = ~np.isfinite(grade)
            if bad.any():
                # An ungraded sample is not known to be good: masked, like align_quality treats NaN,
                # rather than losing the whole recording.
                log.warning("%s: column %s has %d NaN/inf grade(s), first on line %d; those samples count as bad",
                            path, opts.quality_column, int(bad.sum()), lines[int(np.argmax(bad))])  # fmt: skip
            quality = np.where(bad, 0.0, grade > opts.quality_threshold).astype(np.float64)
            log.debug("%s: %.1f%% of samples have %s > %g", path, 100 * quality.mean(), opts.quality_column,
                      opts.quality_threshold)  # fmt: skip
        return LabelSeries(values, None, LABEL_RATE_HZ, quality)
