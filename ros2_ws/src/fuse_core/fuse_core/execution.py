"""Action-chunk execution: receding horizon, temporal ensembling or asynchronous chunks; gripper, safety check."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional, Tuple

import numpy as np

from fuse_core.errors import ConfigError, FuseError
from fuse_core.gripper import GRIPPER_THRESHOLD, binarised_gripper

EXECUTION_CHOICES = ('receding_horizon', 'temporal_ensemble', 'async')
#: How the asynchronous executor merges the chunks that cover one tick.
AGGREGATE_CHOICES = ('latest', 'blend', 'ensemble')
#: What starts an asynchronous tick: its window's arrival, or the policy node's own clock.
TICK_SOURCE_CHOICES = ('window', 'clock')


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


class ChunkRefusedError(FuseError, ValueError):
    """A chunk the asynchronous executor cannot use: from a future tick, or entirely overtaken."""


@dataclass
class _Chunk:
    tick: int  # tick of the observation the chunk was computed from: chunk[i] is for tick + i
    actions: np.ndarray  # (horizon, dim) float64


class ChunkExecutor:
    """Executes action chunks that arrive while earlier ones are executed (asynchronous inference).

    A chunk computed from the observation of tick s holds the actions for ticks s .. s+H-1.
    It arrives d ticks later (d = its own inference delay, known exactly from the tick index,
    never a running estimate), so its first d actions have been overtaken: at tick t the
    executor uses chunk[t - s], which skips them by construction. The chunks that cover a tick
    are merged by `aggregate`:

    - ``latest``: the newest chunk's action only;
    - ``blend``: folded oldest to newest, value = (1 - blend_new) * value + blend_new * newer
      (LeRobot's default weights 0.3 old / 0.7 new with blend_new = 0.7);
    - ``ensemble``: Octo's temporal ensemble, weights exp(-k i), i = 0 the oldest chunk.

    When no chunk covers a tick, :meth:`action_at` returns no action and the reason: the arm
    holds. The executor never extrapolates beyond the end of a chunk.
    """

    def __init__(self, horizon: int, aggregate: str = 'latest', blend_new: float = 0.7,
                 k: float = 0.0) -> None:
        if horizon < 1:
            raise ConfigError(f'chunk executor horizon must be >= 1, got {horizon}')
        if aggregate not in AGGREGATE_CHOICES:
            raise ConfigError(f'aggregate {aggregate!r} is not one of {list(AGGREGATE_CHOICES)}')
        if not (0.0 < blend_new <= 1.0):
            raise ConfigError(f'blend_new must be in (0, 1], got {blend_new}')
        if not np.isfinite(k) or k < 0:
            raise ConfigError(f'ensemble_k must be a finite number >= 0, got {k}')
        self.horizon, self.aggregate = int(horizon), aggregate
        self.blend_new, self.k = float(blend_new), float(k)
        self._chunks: List[_Chunk] = []  # oldest first, distinct ticks
        self._newest_seen: Optional[int] = None
        self.refused = 0

    def reset(self) -> None:
        self._chunks.clear()
        self._newest_seen = None

    @property
    def newest_tick(self) -> Optional[int]:
        return self._chunks[-1].tick if self._chunks else None

    def add(self, chunk: np.ndarray, obs_tick: int, now_tick: int) -> int:
        """Take a chunk computed from the observation of obs_tick, arriving at now_tick.

        Returns the delay in ticks (the actions it skips). Raises ChunkRefusedError (and
        counts it) for a chunk from a future tick or one with no action left for now_tick on.
        """
        a = np.asarray(chunk, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != self.horizon:
            raise ValueError(f'chunk shape {list(a.shape)}: expected [{self.horizon}, dim]')
        delay = int(now_tick) - int(obs_tick)
        if delay < 0:
            self.refused += 1
            raise ChunkRefusedError(
                f'chunk from tick {obs_tick} is from the future (now tick {now_tick}); refused')
        if delay >= self.horizon:
            self.refused += 1
            raise ChunkRefusedError(
                f'chunk from tick {obs_tick} arrived at tick {now_tick}, {delay} ticks later: all '
                f'{self.horizon} of its actions are overtaken; refused')
        if self._chunks and obs_tick <= self._chunks[-1].tick:
            if obs_tick == self._chunks[-1].tick:
                self._chunks[-1] = _Chunk(int(obs_tick), a.copy())  # a re-run of the same tick
                return delay
            self.refused += 1
            raise ChunkRefusedError(
                f'chunk from tick {obs_tick} is older than the newest one (tick '
                f'{self._chunks[-1].tick}); refused')
        self._chunks.append(_Chunk(int(obs_tick), a.copy()))
        self._newest_seen = int(obs_tick)
        self._forget(now_tick)
        return delay

    def _forget(self, tick: int) -> None:
        self._chunks = [c for c in self._chunks if tick - c.tick < self.horizon]

    def remaining(self, tick: int) -> int:
        """Actions the newest chunk still holds for the ticks after `tick` (0 if none)."""
        if not self._chunks:
            return 0
        return max(0, self._chunks[-1].tick + self.horizon - 1 - int(tick))

    def action_at(self, tick: int) -> Tuple[Optional[np.ndarray], str]:
        """(action, '') for this tick, or (None, why no chunk covers it)."""
        tick = int(tick)
        if self._chunks and tick < self._chunks[-1].tick:
            # Time went backwards (new episode, replayed bag): the chunks do not apply.
            self.reset()
            return None, f'tick {tick} is before the newest chunk; chunks dropped'
        self._forget(tick)
        if not self._chunks:
            newest = self._newest_seen
            if newest is None:
                return None, f'no action chunk covers tick {tick} yet'
            return None, (f'no action chunk covers tick {tick}: the newest (tick {newest}) ended at '
                          f'tick {newest + self.horizon - 1}; the executor does not extrapolate')
        preds = [c.actions[tick - c.tick] for c in self._chunks]  # oldest first
        if self.aggregate == 'latest' or len(preds) == 1:
            return preds[-1].copy(), ''
        if self.aggregate == 'blend':
            value = preds[0].copy()
            for p in preds[1:]:
                value = (1.0 - self.blend_new) * value + self.blend_new * p
            return value, ''
        weights = np.exp(-self.k * np.arange(len(preds)))
        weights /= weights.sum()
        return (weights[:, None] * np.stack(preds)).sum(axis=0), ''


class GripperBinarizer:
    """Continuous gripper output -> 1 (open) or 0 (closed) by fuse_core.gripper's rule.

    "Sticky": once the binarised value changes, the new value is held for `sticky_steps`
    ticks whatever the model says, so a prediction hovering near the threshold cannot make the
    gripper chatter. FuSe evaluates with sticky_steps = 1, which holds a change only for the
    tick it happens on, i.e. plain thresholding; larger values damp chatter further.
    """

    def __init__(self, threshold: float = GRIPPER_THRESHOLD, sticky_steps: int = 1) -> None:
        if sticky_steps < 1:
            raise ConfigError(f'gripper sticky_steps must be >= 1, got {sticky_steps}')
        self.threshold, self.sticky_steps = float(threshold), int(sticky_steps)
        self._state: Optional[float] = None
        self._hold = 0

    def reset(self) -> None:
        self._state, self._hold = None, 0

    def __call__(self, value: float) -> float:
        wanted = binarised_gripper(value, self.threshold)
        if self._hold > 0:
            self._hold -= 1
            return self._state
        if self._state is not None and wanted != self._state:
            # The change is this tick; hold it for the sticky_steps - 1 ticks after it.
            self._hold = self.sticky_steps - 1
        self._state = wanted
        return wanted
