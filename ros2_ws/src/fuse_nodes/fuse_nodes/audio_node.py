"""Audio node: publishes microphone chunks (~/chunk) and FuSe's log-mel spectrogram (~/mel_spectrogram)."""

from __future__ import annotations

import array
import sys
import threading
import time
from collections import deque
from typing import Callable, Deque, Optional, Tuple

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.node import Node
from sensor_msgs.msg import Image

from fuse_core.audio.config import AudioConfig
from fuse_core.audio.ring_buffer import SampleRingBuffer
from fuse_core.audio.sources import AudioBlock, AudioSource, make_source
from fuse_core.supervisor import BACKOFF, CONNECTED, FAILED, FINISHED, Supervisor
from fuse_core.timing import RateMonitor, percentiles
from fuse_interfaces.msg import AudioChunk
from fuse_nodes.common import (ERROR, OK, SENSOR_QOS, WARN, Diagnostics, SensorStamp, declare_config,
                               ns_to_time, run_node)
from fuse_nodes.conversions import array_to_image

#: FuSe's spectrogram encoder takes exactly this (n_mels, frames).
FUSE_SPECTROGRAM_SHAPE = (128, 128)

SourceFactory = Callable[[AudioConfig], AudioSource]


class AudioNode(Node):
    """Thin shell around fuse_core.audio: source supervision, two publishers, diagnostics.

    Chunks are published from the source thread as they arrive; the spectrogram of the newest
    window_s of audio is computed on a timer at spectrogram_rate_hz and stamped with the
    capture time of the window's newest sample (under use_sim_time, the shared SensorStamp
    policy, with the stamp of the chunk that carried it). A tick with no new audio since the last
    spectrogram publishes nothing, so no two spectrograms share a stamp (a finished replay,
    or spectrogram_rate_hz above the block rate).
    """

    def __init__(self, source_factory: Optional[SourceFactory] = None, node_name: str = 'audio',
                 **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        self.cfg = cfg = declare_config(self, AudioConfig)
        self._stamp = SensorStamp(self)
        self._factory = source_factory or make_source
        self._spectrogram = cfg.spectrogram()
        window = cfg.window_samples
        self._ring = SampleRingBuffer(capacity=2 * window + cfg.sample_rate, sample_rate=cfg.sample_rate)
        self._chunk_pub = self.create_publisher(AudioChunk, '~/chunk', SENSOR_QOS)
        self._spec_pub = self.create_publisher(Image, '~/mel_spectrogram', SENSOR_QOS)
        self._chunks = RateMonitor()
        self._spectrograms = RateMonitor()
        self._compute_ms: list = []
        self._lock = threading.Lock()
        self._source: Optional[AudioSource] = None
        self._index_base = 0
        self._new_source = False
        # (running index of a chunk's last sample, the stamp it was published with), newest last.
        self._chunk_stamps: Deque[Tuple[int, TimeMsg]] = deque(maxlen=64)
        self._last_spectrogram_index: Optional[int] = None
        self._stale_s = max(0.5, 5.0 * cfg.block_size / cfg.sample_rate)
        self._supervisor: Supervisor = Supervisor(
            self._open_source, lambda src: src.read(0.2), lambda src: src.close(), name='audio source',
            backoff_s=cfg.reconnect_backoff_s, backoff_max_s=cfg.reconnect_backoff_max_s,
            on_error=self._log_error, on_state=self._log_state)
        self.diagnostics = Diagnostics(self, hardware_id=f'{cfg.source}:{cfg.device or cfg.file_path}')
        self.diagnostics.add('microphone', self._status)
        logger = self.get_logger()
        if cfg.source == 'synthetic':
            logger.warning(f'SYNTHETIC audio source (seed {cfg.seed}): test signal, not microphone data')
        if self._spectrogram.shape != FUSE_SPECTROGRAM_SHAPE:
            logger.warning(f'spectrogram shape {self._spectrogram.shape} differs from FuSe\'s '
                           f'{FUSE_SPECTROGRAM_SHAPE}: window_s={cfg.window_s}, hop_length={cfg.hop_length}')
        logger.info(f'source {cfg.source}, {cfg.sample_rate} Hz x {cfg.channels} ch, blocks of '
                    f'{cfg.block_size}; spectrogram {self._spectrogram.shape} from {cfg.window_s} s '
                    f'every {1.0 / cfg.spectrogram_rate_hz:.3f} s; frame_id {cfg.frame_id}')
        self._timer = self.create_timer(1.0 / cfg.spectrogram_rate_hz, self._publish_spectrogram)
        self._supervisor.start(self._publish_chunk)

    # --- source -----------------------------------------------------------------------------
    def _open_source(self) -> AudioSource:
        source = self._factory(self.cfg)
        source.open()
        with self._lock:
            self._source = source
            self._new_source = True
        self.get_logger().info(f'opened {source.describe()}')
        return source

    def _log_error(self, message: str) -> None:
        if self.context.ok():  # after Ctrl-C the logger's /rosout publisher is gone
            self.get_logger().error(message)

    def _log_state(self, state: str) -> None:
        if self.context.ok():
            detail = f': {self._supervisor.finished_reason}' if state == FINISHED else ''
            self.get_logger().info(f'audio source state: {state}{detail}')

    def _continue_index(self, block: AudioBlock) -> int:
        """Running sample index across reopened sources: the time spent disconnected is a gap."""
        if self._new_source:
            self._new_source = False
            end, newest = self._ring.total_written, self._ring.newest_time_ns
            gap = 0
            if newest is not None:
                gap = max(0, round((block.capture_time_ns - newest) * self.cfg.sample_rate / 1e9) - 1)
            self._index_base = end + gap - block.first_sample_index
        return self._index_base + block.first_sample_index

    def _publish_chunk(self, block: AudioBlock) -> None:
        index = self._continue_index(block)
        stamp = self._stamp(block.capture_time_ns)
        with self._lock:  # recorded before the samples enter the ring, for the spectrogram's stamp
            self._chunk_stamps.append((index + block.frames - 1, stamp))
        self._ring.write(block.mono(), block.capture_time_ns, index)
        msg = AudioChunk()
        msg.header.stamp = stamp
        msg.header.frame_id = self.cfg.frame_id
        msg.sample_rate = block.sample_rate
        msg.channels = block.channels
        msg.first_sample_index = index
        msg.overflow = block.overflow
        samples = array.array('f')
        samples.frombytes(np.ascontiguousarray(block.samples, dtype=np.float32).tobytes())
        msg.samples = samples
        try:
            self._chunk_pub.publish(msg)
        except Exception:
            # Ctrl-C shuts the context down before close() stops the source thread; a chunk
            # caught in between is simply not published.
            if self.context.ok():
                raise
            return
        self._chunks.tick()
        if block.overflow:
            self._chunks.drop()

    # --- spectrogram ------------------------------------------------------------------------
    def _publish_spectrogram(self) -> None:
        latest = self._ring.read_latest(self._spectrogram.window_samples)
        if latest is None:
            return  # less than one window captured yet
        if latest.newest_index == self._last_spectrogram_index:
            return  # no new audio since the last spectrogram: the same stamp would be republished
        age_s = (time.time_ns() - latest.newest_time_ns) / 1e9
        if age_s > self._stale_s:
            return  # the source stalled: republishing old audio would hide it
        t0 = time.perf_counter()
        db = self._spectrogram(latest.samples)
        self._compute_ms.append((time.perf_counter() - t0) * 1e3)
        del self._compute_ms[:-200]
        msg = array_to_image(db, '32FC1', stamp=self._window_stamp(latest.newest_index, latest.newest_time_ns),
                             frame_id=self.cfg.frame_id)
        self._spec_pub.publish(msg)
        self._last_spectrogram_index = latest.newest_index
        self._spectrograms.tick()

    def _window_stamp(self, newest_index: int, newest_time_ns: int) -> TimeMsg:
        """The stamp of the chunk that carried the window's newest sample."""
        if not self._stamp.sim_time:
            return ns_to_time(newest_time_ns)
        with self._lock:
            for last_index, stamp in reversed(self._chunk_stamps):
                if last_index == newest_index:
                    return stamp
        return self._stamp(newest_time_ns)

    # --- diagnostics ------------------------------------------------------------------------
    def _status(self):
        cfg = self.cfg
        sup = self._supervisor.status()
        source = self._source
        chunk_hz, spec_hz = self._chunks.rate_hz(), self._spectrograms.rate_hz()
        expected_chunk_hz = cfg.sample_rate / cfg.block_size
        values = {
            'source': cfg.source, 'device': source.describe() if source else '',
            'synthetic': cfg.source == 'synthetic', 'state': sup.state,
            'chunk_rate_hz': chunk_hz, 'expected_chunk_rate_hz': expected_chunk_hz,
            'spectrogram_rate_hz': spec_hz, 'expected_spectrogram_rate_hz': cfg.spectrogram_rate_hz,
            'chunks': self._chunks.count, 'spectrograms': self._spectrograms.count,
            'spectrogram_ms_p50': percentiles(self._compute_ms)['p50'],
            'overflows': source.overflows if source else 0,
            'callback_errors': source.callback_errors if source else 0,
            'dropped_blocks': source.dropped_blocks if source else 0,
            'connects': sup.connects, 'failures': sup.failures,
            'last_error': (source.last_error if source and source.last_error else sup.last_error),
        }
        if sup.retry_in_s is not None:
            values['retry_in_s'] = sup.retry_in_s
        prefix = 'SYNTHETIC source; ' if cfg.source == 'synthetic' else ''
        if sup.state in (BACKOFF, FAILED):
            return ERROR, f'{prefix}no audio: {sup.last_error}', values
        if sup.state == FINISHED:  # a non-looping replay ended: done, not failed
            return OK, f'{prefix}finished: {sup.finished_reason}', values
        if sup.state != CONNECTED:
            return WARN, f'{prefix}source {sup.state}', values
        if chunk_hz < 0.9 * expected_chunk_hz or spec_hz < 0.9 * cfg.spectrogram_rate_hz:
            return WARN, (f'{prefix}slow: chunks {chunk_hz:.1f}/{expected_chunk_hz:.1f} Hz, '
                          f'spectrograms {spec_hz:.1f}/{cfg.spectrogram_rate_hz:.1f} Hz'), values
        return OK, f'{prefix}streaming', values

    def close(self) -> None:
        """Stop the source thread and release the device (called by run_node on shutdown)."""
        self._timer.cancel()
        self._supervisor.stop()


def main(args=None):
    return run_node(AudioNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
