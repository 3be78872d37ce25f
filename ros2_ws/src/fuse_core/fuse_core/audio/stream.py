"""The audio pipeline between a source and the node's two topics: running indices, the ring, spectrograms."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Deque, List, NamedTuple, Optional, Tuple

import numpy as np

from fuse_core.audio.config import AudioConfig
from fuse_core.audio.ring_buffer import SampleRingBuffer
from fuse_core.audio.sources import AudioBlock
from fuse_core.timing import RateMonitor, percentiles, wall_ns


class Window(NamedTuple):
    """One spectrogram ready to publish, and the stamp of the block that carried its newest sample."""

    db: np.ndarray       # (n_mels, frames) float32 log-mel
    newest_index: int    # running index of the window's newest sample
    newest_time_ns: int  # its capture time
    block_stamp: Any     # the stamp that block was published with (None if no longer known)


class AudioStream:
    """Blocks in, spectrograms of the newest window out, with one running sample index.

    ``add(block, stamp)`` runs on the reader thread: a reopened source counts its samples
    from 0 again, so indices go on from where the ring stopped plus the samples the
    disconnection lasted (a gap, not a silent splice). ``next_window()`` runs on a timer:
    None with less than a window, with no new audio since the last spectrogram (its stamp
    would repeat), or when the newest sample is older than ``stale_s`` (a stalled source).
    """

    def __init__(self, cfg: AudioConfig, stamps_kept: int = 64) -> None:
        self.spectrogram = cfg.spectrogram()
        self.ring = SampleRingBuffer(capacity=2 * cfg.window_samples + cfg.sample_rate, sample_rate=cfg.sample_rate)
        self.stale_s = max(0.5, 5.0 * cfg.block_size / cfg.sample_rate)
        self.published = RateMonitor()
        self._base = 0
        self._reopened = False
        self._lock = threading.Lock()
        # (running index of a block's last sample, the stamp it was published with), newest last.
        self._stamps: Deque[Tuple[int, Any]] = deque(maxlen=stamps_kept)
        self._last_index: Optional[int] = None
        self._compute_ms: List[float] = []

    def reopened(self) -> None:
        """The next block comes from a freshly opened source."""
        self._reopened = True

    def add(self, block: AudioBlock, stamp: Any) -> int:
        """Store a block published with ``stamp``; returns the running index of its first sample."""
        if self._reopened:
            self._reopened = False
            end, newest = self.ring.total_written, self.ring.newest_time_ns
            gap = 0
            if newest is not None:
                gap = max(0, round((block.capture_time_ns - newest) * self.ring.sample_rate / 1e9) - 1)
            self._base = end + gap - block.first_sample_index
        index = self._base + block.first_sample_index
        with self._lock:  # recorded before the samples enter the ring, for the spectrogram's stamp
            self._stamps.append((index + block.frames - 1, stamp))
        self.ring.write(block.mono(), block.capture_time_ns, index)
        return index

    def next_window(self) -> Optional[Window]:
        latest = self.ring.read_latest(self.spectrogram.window_samples)
        if latest is None or latest.newest_index == self._last_index:
            return None
        if (wall_ns() - latest.newest_time_ns) / 1e9 > self.stale_s:
            return None
        t0 = time.perf_counter()
        db = self.spectrogram(latest.samples)
        self._compute_ms = self._compute_ms[-199:] + [(time.perf_counter() - t0) * 1e3]
        with self._lock:
            stamp = next((s for i, s in reversed(self._stamps) if i == latest.newest_index), None)
        return Window(db, latest.newest_index, latest.newest_time_ns, stamp)

    def sent(self, window: Window) -> None:
        """The window was published: the next one needs newer audio."""
        self._last_index = window.newest_index
        self.published.tick()

    def status(self) -> dict:
        return {'spectrogram_rate_hz': self.published.rate_hz(), 'spectrograms': self.published.count,
                'spectrogram_ms_p50': percentiles(self._compute_ms)['p50']}
