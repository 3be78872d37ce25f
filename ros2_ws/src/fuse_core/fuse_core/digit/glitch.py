"""Detection of glitched DIGIT frames (torn or corrupted rows) by their vertical gradient."""

from __future__ import annotations

import numpy as np


def row_gradient(frame: np.ndarray) -> np.ndarray:
    """Mean absolute difference between each row and the next, over columns and channels.

    A clean DIGIT image is smooth (gel lit by LEDs), so this stays at a few intensity levels;
    a USB transfer glitch tears the image into bands or fills rows with garbage, and the
    rows at the seams jump by tens of levels.
    """
    rows = frame.astype(np.int16, copy=False)
    diff = np.abs(rows[1:] - rows[:-1])
    axes = tuple(range(1, diff.ndim))
    return diff.mean(axis=axes) if axes else diff.astype(np.float64)


class GlitchDetector:
    """A frame is glitched when at least `min_rows` rows exceed `threshold` (0 = disabled)."""

    def __init__(self, threshold: float, min_rows: int = 2) -> None:
        if threshold < 0 or min_rows < 1:
            raise ValueError(f'glitch threshold must be >= 0 and min_rows >= 1, '
                             f'got {threshold} and {min_rows}')
        self.threshold = float(threshold)
        self.min_rows = int(min_rows)

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def count_rows(self, frame: np.ndarray) -> int:
        """Rows whose mean absolute vertical gradient exceeds the threshold."""
        return int(np.count_nonzero(row_gradient(frame) > self.threshold))

    def is_glitched(self, frame: np.ndarray) -> bool:
        return self.enabled and self.count_rows(frame) >= self.min_rows
