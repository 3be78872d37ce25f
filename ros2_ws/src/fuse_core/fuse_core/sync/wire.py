"""Each sample once on the wire: the steps a window carries (WindowSender) and the window rebuilt (WindowReceiver)."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from fuse_core.errors import FuseError
from fuse_core.sync.window import TensorWindow, Window, zero_step

#: Largest magnitude a float input may have (FuSe's floats are log-mel dB, |x| <= ~200).
MAX_ABS_FLOAT_INPUT = 1e4


class WireError(FuseError, ValueError):
    """A received window is inconsistent or carries data that cannot be trusted; names the tensor."""


class WindowSender:
    """Decides which steps of each window travel: a sample's data goes out once per history.

    The newest step always carries its data, so a receiver that missed the previous window
    (lost, or overwritten in a keep-last-1 queue) loses history at worst, never the step the
    command is made from. An older step whose sample id the previous window named, or that
    another step of this window carries, is sent as a reference only (None in the returned
    window); any other valid older step carries its data (a sample stamped before the last
    tick that arrived after it was built). Invalid and padded steps never carry data. Steps
    with id 0 (no identity) always carry theirs.
    """

    def __init__(self) -> None:
        self._named: Dict[str, Set[int]] = {}  # input -> ids of the previous window
        self.steps_carried = 0
        self.steps_referenced = 0

    def carried(self, window: Window) -> Window:
        """The window as it travels: older steps the receiver already has are None."""
        named: Dict[str, Set[int]] = {}
        tensors = []
        for t in window.tensors:
            W = len(t.steps)
            before = self._named.get(t.name, set())
            newest = t.sample_ids[-1] if t.valid[-1] else 0
            steps: List[Optional[np.ndarray]] = [None] * W
            if t.valid[-1]:
                steps[-1] = t.steps[-1]
                self.steps_carried += 1
            here = {newest}  # ids this window carries or names so far
            for j in range(W - 1):
                sid = t.sample_ids[j]
                if not t.valid[j]:
                    continue
                if sid and (sid in before or sid in here):
                    self.steps_referenced += 1
                else:
                    steps[j] = t.steps[j]
                    self.steps_carried += 1
                here.add(sid)
            named[t.name] = here - {0}
            tensors.append(dataclasses.replace(t, steps=steps))
        self._named = named
        return dataclasses.replace(window, tensors=tensors)


class WindowReceiver:
    """Rebuilds full windows from windows that carry each sample once (WindowSender's receiving end).

    It keeps the samples of the newest window it received, keyed by (sample stamp, sample id),
    and fills every step a window names but does not carry from them. A named sample it does
    not hold (the window that carried it was lost, or this receiver started after it) makes
    that step invalid: zeros, valid false, stamp and id 0 - never a guess; the policy's rules
    then pad the history step or hold on the newest one. Padded steps repeat the oldest real
    step, as WindowBuilder makes them.

    A window no newer than the newest one (a duplicate, or one overtaken in delivery: its tick
    within W of the newest tick, its stamp not later) is rebuilt the same way but leaves the
    kept samples alone, so the next window still finds them. Any other window, e.g. the first
    of a restarted sync node, replaces them.

    The data of every carried step is checked once, on arrival, before it is kept: floats
    finite and within +-max_abs_float, and within value_ranges[name] where given. A window
    that fails is refused whole (WireError) and changes nothing, so a step that refers to its
    samples later is invalid rather than unchecked.
    """

    def __init__(self, value_ranges: Optional[Mapping[str, Sequence[float]]] = None,
                 max_abs_float: float = MAX_ABS_FLOAT_INPUT) -> None:
        self._ranges = {k: (float(v[0]), float(v[1])) for k, v in (value_ranges or {}).items()}
        self._max_abs_float = float(max_abs_float)
        self._kept: Dict[str, Dict[Tuple[int, int], np.ndarray]] = {}
        self._newest: Optional[Tuple[int, int]] = None  # (tick_index, stamp_ns)
        self.windows = 0
        self.not_newer = 0        # duplicates and overtaken windows (rebuilt, samples not kept)
        self.lost_steps = 0       # named steps whose data never arrived (made invalid)
        self.last_lost = ''

    @property
    def kept_samples(self) -> int:
        """How many samples are kept (at most one window's)."""
        return sum(len(kept) for kept in self._kept.values())

    def receive(self, wire: Window) -> Window:
        """The full window: every step's data, or the step marked invalid. Raises WireError."""
        W = wire.window_size
        if len(wire.timestep_pad_mask) != W:
            raise WireError(f'{len(wire.timestep_pad_mask)} timestep_pad_mask entries for {W} step stamps')
        names = set()
        for t in wire.tensors:
            if t.name in names:
                raise WireError(f'tensor {t.name[:64]!r} appears twice')
            names.add(t.name)
            self._check(t, W)
        tick, stamp = int(wire.tick_index), int(wire.stamp_ns)
        newer = (self._newest is None or not (0 <= self._newest[0] - tick < W and stamp <= self._newest[1]))
        first_real = next((j for j, real in enumerate(wire.timestep_pad_mask) if real), None)
        tensors, kept = [], {}
        for t in wire.tensors:
            tensor, lost = self._rebuild(t, W, first_real)
            tensors.append(tensor)
            kept[t.name] = {(tensor.sample_stamps_ns[j], tensor.sample_ids[j]): tensor.steps[j]
                            for j in range(W) if tensor.valid[j] and tensor.sample_ids[j]}
            if lost:
                self.lost_steps += len(lost)
                self.last_lost = (f'window {tick}: {t.name[:64]} step(s) {lost}: the window that carried '
                                  'the sample was not received (lost, or before this receiver started); '
                                  'step masked')
        self.windows += 1
        if newer:
            self._kept, self._newest = kept, (tick, stamp)
        else:
            self.not_newer += 1
        return dataclasses.replace(wire, tensors=tensors)

    def _rebuild(self, t: TensorWindow, W: int, first_real: Optional[int]):
        have = self._kept.get(t.name, {})
        own = {(t.sample_stamps_ns[j], t.sample_ids[j]): data for j, data in enumerate(t.steps)
               if data is not None and t.sample_ids[j]}
        zero = zero_step(np.dtype(t.dtype).str, tuple(t.shape))
        steps: List[Optional[np.ndarray]] = [zero] * W
        valid, stamps, ids, lost = [False] * W, [0] * W, [0] * W, []
        for j in range(first_real or 0, W):
            if not t.valid[j]:
                continue
            key = (int(t.sample_stamps_ns[j]), int(t.sample_ids[j]))
            data = t.steps[j]
            if data is None:
                data = own.get(key) if key in own else have.get(key)
            if data is None:
                lost.append(j)
                continue
            steps[j], valid[j], stamps[j], ids[j] = data, True, key[0], key[1]
        if first_real:
            steps[:first_real] = [steps[first_real]] * first_real
        return TensorWindow(t.name, np.dtype(t.dtype), tuple(t.shape), steps, valid, stamps, ids), lost

    def _check(self, t: TensorWindow, W: int) -> None:
        counts = {'steps': len(t.steps), 'validity flags': len(t.valid),
                  'sample stamps': len(t.sample_stamps_ns), 'sample ids': len(t.sample_ids)}
        for what, n in counts.items():
            if n != W:
                raise WireError(f'tensor {t.name[:64]!r}: {n} {what} for a window of {W} steps')
        dtype, shape = np.dtype(t.dtype), tuple(t.shape)
        for j, data in enumerate(t.steps):
            if data is None:
                continue
            if not t.valid[j]:
                raise WireError(f'tensor {t.name[:64]!r}: step {j} carries data but is marked invalid')
            if data.dtype != dtype or data.shape != shape:
                raise WireError(f'tensor {t.name[:64]!r}: step {j} is {data.dtype.name} {list(data.shape)}, '
                                f'the tensor {dtype.name} {list(shape)}')
            self._check_values(t.name, data)

    def _check_values(self, name: str, data: np.ndarray) -> None:
        if not data.size:
            return
        if data.dtype.kind == 'f':
            peak = float(np.max(np.abs(data)))
            if not np.isfinite(peak) or peak > self._max_abs_float:
                raise WireError(f'tensor {name[:64]!r}: values up to {peak:.3g} '
                                f'(non-finite or beyond +-{self._max_abs_float:g})')
        declared = self._ranges.get(name)
        if declared is not None:
            low, high = float(np.min(data)), float(np.max(data))
            if low < declared[0] or high > declared[1]:
                raise WireError(f'tensor {name[:64]!r}: values {low:.4g}..{high:.4g} outside the '
                                f"manifest's value_range {list(declared)}")
