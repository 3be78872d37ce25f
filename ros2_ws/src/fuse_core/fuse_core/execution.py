"""Action-chunk execution: receding horizon or temporal ensembling, gripper binarisation, safety check."""

from __future__ import annotations

from collections import deque
from typing import Deque, Optional, Tuple

import numpy as np

from fuse_core.errors import ConfigError, FuseError

EXECUTION_CHOICES = ('receding_horizon', 'temporal_ensemble')


class ActionRejectedError(FuseError, ValueError):
    """A predicted action is not finite or implausibly large; it must never reach the arm."""


def check_actions(chunk: np.ndarray, max_abs: float, gripper_index: Optional[int] = None) -> None:
    """Refuse a chunk holding NaN/Inf, or a motion value with |value| above max_abs.

    The gripper column is only checked for finiteness: it is binarised at 0.5 afterwards, and
    an unbounded gripper output (a logit-like value) is still a clear open/closed decision.
    """
    a = np.asarray(chunk, dtype=np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ActionRejectedError(
            f'action chunk holds {int(bad.sum())} non-finite value(s), first at {list(idx)}: {a[idx]}'
        )
    big = np.abs(a) > max_abs
    if gripper_index is not None:
        big[..., gripper_index] = False
    if big.any():
        idx = tuple(int(i) for i in np.argwhere(big)[0])
        raise ActionRejectedError(
            f'action chunk value {a[idx]:.4g} at {list(idx)} exceeds the limit |a| <= {max_abs}'
        )


class RecedingHorizon:
    """Execute the first action of every chunk and discard the rest (FuSe's evaluation)."""

    def step(self, chunk: np.ndarray, tick_index: int) -> np.ndarray:
        return np.asarray(chunk, dtype=np.float64)[0].copy()

    def reset(self) -> None:
        pass


class TemporalEnsemble:
    """Average the predictions every recent chunk made for the current tick (Octo's ensembling).

    The chunk predicted at tick s holds actions for ticks s .. s+horizon-1, so at tick t every
    chunk with 0 <= t - s < horizon has a prediction chunk_s[t - s]. They are averaged with
    weights exp(-k * i), i = 0 for the OLDEST prediction, i.e. older predictions weigh more
    when k > 0 (Octo's choice; k = 0 is a plain mean). Ticks are matched by index, so a skipped
    tick leaves a gap instead of shifting the predictions.
    """

    def __init__(self, horizon: int, k: float = 0.0) -> None:
        if horizon < 1:
            raise ConfigError(f'temporal ensemble horizon must be >= 1, got {horizon}')
        if not np.isfinite(k) or k < 0:
            raise ConfigError(f'ensemble_k must be a finite number >= 0, got {k}')
        self.horizon, self.k = horizon, float(k)
        self._history: Deque[Tuple[int, np.ndarray]] = deque()

    def reset(self) -> None:
        self._history.clear()

    def step(self, chunk: np.ndarray, tick_index: int) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.shape[0] != self.horizon:
            raise ValueError(f'chunk has {chunk.shape[0]} actions, the ensemble expects {self.horizon}')
        if self._history and tick_index <= self._history[-1][0]:
            # Time went backwards (new episode, replayed bag): old predictions do not apply.
            self._history.clear()
        self._history.append((int(tick_index), chunk.copy()))
        while self._history and tick_index - self._history[0][0] >= self.horizon:
            self._history.popleft()
        preds = np.stack([c[tick_index - s] for s, c in self._history])  # oldest first
        weights = np.exp(-self.k * np.arange(len(preds)))
        weights /= weights.sum()
        return (weights[:, None] * preds).sum(axis=0)


def make_strategy(name: str, horizon: int, k: float = 0.0):
    if name == 'receding_horizon':
        return RecedingHorizon()
    if name == 'temporal_ensemble':
        return TemporalEnsemble(horizon, k)
    raise ConfigError(f'execution {name!r} is not one of {list(EXECUTION_CHOICES)}')


class GripperBinarizer:
    """Continuous gripper output -> 1 (open) or 0 (closed), threshold 0.5.

    "Sticky": once the binarised value changes, the new value is held for `sticky_steps`
    ticks whatever the model says, so a prediction hovering near the threshold cannot make the
    gripper chatter. FuSe evaluates with sticky_steps = 1, which holds a change only for the
    tick it happens on, i.e. plain thresholding; larger values damp chatter further.
    """

    def __init__(self, threshold: float = 0.5, sticky_steps: int = 1) -> None:
        if sticky_steps < 1:
            raise ConfigError(f'gripper sticky_steps must be >= 1, got {sticky_steps}')
        self.threshold, self.sticky_steps = float(threshold), int(sticky_steps)
        self._state: Optional[float] = None
        self._hold = 0

    def reset(self) -> None:
        self._state, self._hold = None, 0

    def __call__(self, value: float) -> float:
        wanted = 1.0 if value > self.threshold else 0.0
        if self._hold > 0:
            self._hold -= 1
            return self._state
        if self._state is not None and wanted != self._state:
            # The change is this tick; hold it for the sticky_steps - 1 ticks after it.
            self._hold = self.sticky_steps - 1
        self._state = wanted
        return wanted
