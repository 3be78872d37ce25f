"""A single-producer ring buffer of float32 audio samples with capture-time bookkeeping."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np


class LatestSamples(NamedTuple):
    """The newest n samples, with the capture time and running index of the last one."""

    samples: np.ndarray  # (n,) float32, oldest first
    newest_time_ns: int  # capture time of samples[-1]
    newest_index: int    # running index of samples[-1] since the stream started


class SampleRingBuffer:
    """Keeps the newest ``capacity`` mono samples; one writer, any number of readers.

    The writer never blocks and takes no lock, so it may run in a sound card callback: it
    copies into preallocated storage and then publishes (index, time) with one reference
    assignment, which is atomic in CPython. Readers copy the range they want and check
    afterwards that the writer has not claimed (begun overwriting) any of it meanwhile,
    retrying if it has.
    """

    def __init__(self, capacity: int, sample_rate: float) -> None:
        if capacity < 1:
            raise ValueError(f'ring buffer capacity must be >= 1, got {capacity}')
        if sample_rate <= 0:
            raise ValueError(f'ring buffer sample_rate must be > 0, got {sample_rate}')
        self.capacity = int(capacity)
        self.sample_rate = float(sample_rate)
        self._data = np.zeros(self.capacity, dtype=np.float32)
        # (samples written so far, capture time of the newest sample in ns or None)
        self._state = (0, None)
        # End of the range the writer is storing now; ahead of _state while a write is under way.
        self._claimed = 0

    @property
    def total_written(self) -> int:
        """Samples written since creation (the running index of the next sample)."""
        return self._state[0]

    @property
    def newest_time_ns(self) -> Optional[int]:
        """Capture time of the newest sample, or None before the first write."""
        return self._state[1]

    def write(self, samples: np.ndarray, first_sample_time_ns: int,
              first_sample_index: Optional[int] = None) -> None:
        """Append a block whose first sample was captured at first_sample_time_ns.

        first_sample_index, when given and ahead of the buffer, marks lost input: the gap is
        filled with zeros so indices and times stay consistent with the source.
        """
        block = np.asarray(samples, dtype=np.float32).reshape(-1)
        written, _ = self._state
        n = block.size
        if first_sample_index is not None and first_sample_index > written:
            self._claimed = first_sample_index + n
            gap = min(first_sample_index - written, self.capacity)
            self._store(np.zeros(gap, dtype=np.float32), first_sample_index - gap)
            written = first_sample_index
        if n == 0:
            return
        self._claimed = written + n
        self._store(block, written)
        newest_ns = int(first_sample_time_ns + round((n - 1) * 1e9 / self.sample_rate))
        self._state = (written + n, newest_ns)

    def _store(self, block: np.ndarray, start: int) -> None:
        if block.size > self.capacity:
            start += block.size - self.capacity
            block = block[-self.capacity:]
        pos = start % self.capacity
        first = min(block.size, self.capacity - pos)
        self._data[pos:pos + first] = block[:first]
        if first < block.size:
            self._data[:block.size - first] = block[first:]

    def read_latest(self, n: int, max_retries: int = 3) -> Optional[LatestSamples]:
        """The newest n samples and the capture time of the last, or None if fewer were written."""
        if not 1 <= n <= self.capacity:
            raise ValueError(f'read_latest: n = {n} must be in [1, capacity = {self.capacity}]')
        for _ in range(max_retries + 1):
            written, newest_ns = self._state
            if written < n or newest_ns is None:
                return None
            start = (written - n) % self.capacity
            end = start + n
            if end <= self.capacity:
                out = self._data[start:end].copy()
            else:
                out = np.concatenate((self._data[start:], self._data[:end - self.capacity]))
            # The copy is valid if the writer has not begun overwriting the oldest sample read.
            if self._claimed - (written - n) <= self.capacity:
                return LatestSamples(out, newest_ns, written - 1)
        raise RuntimeError(f'read_latest: the writer lapped the reader {max_retries + 1} times; '
                           f'capacity {self.capacity} is too small for reads of {n}')
