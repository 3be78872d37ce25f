"""Audio node: publishes microphone chunks (~/chunk) and FuSe's log-mel spectrogram (~/mel_spectrogram)."""

from __future__ import annotations

import array
import sys
from typing import Callable, Optional

import numpy as np
from sensor_msgs.msg import Image

from fuse_core.acquisition import Rebuilt
from fuse_core.audio.config import AudioConfig
from fuse_core.audio.sources import AudioBlock, AudioSource, make_source
from fuse_core.audio.stream import AudioStream
from fuse_interfaces.msg import AudioChunk
from fuse_nodes.common import OK, SENSOR_QOS, WARN, run_node
from fuse_nodes.conversions import array_to_image
from fuse_nodes.sensor_node import SensorNode

#: FuSe's spectrogram encoder takes exactly this (n_mels, frames).
FUSE_SPECTROGRAM_SHAPE = (128, 128)

SourceFactory = Callable[[AudioConfig], AudioSource]


class AudioNode(SensorNode):
    """Chunks as they arrive; the spectrogram of the newest window_s on a timer at spectrogram_rate_hz.

    A spectrogram is stamped with the capture time of its window's newest sample (under
    use_sim_time, with the stamp of the chunk that carried it); a tick with no new audio
    publishes nothing (see AudioStream). The source is built afresh by
    ``source_factory(cfg)`` at every reconnect.
    """

    config_class = AudioConfig
    status_name = 'microphone'
    synthetic_note = 'test signal, not microphone data'

    def __init__(self, source_factory: Optional[SourceFactory] = None, node_name: str = 'audio',
                 **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        cfg = self.cfg
        self._factory = source_factory or make_source
        self.stream = AudioStream(cfg)
        shape = self.stream.spectrogram.shape
        self._chunk_pub = self.create_publisher(AudioChunk, '~/chunk', SENSOR_QOS)
        self._spec_pub = self.create_publisher(Image, '~/mel_spectrogram', SENSOR_QOS)
        if shape != FUSE_SPECTROGRAM_SHAPE:
            self.get_logger().warning(f'spectrogram shape {shape} differs from FuSe\'s {FUSE_SPECTROGRAM_SHAPE}: '
                                      f'window_s={cfg.window_s}, hop_length={cfg.hop_length}')
        self._timer = self.create_timer(1.0 / cfg.spectrogram_rate_hz, self._publish_spectrogram)
        self.start(f'source {cfg.source}, {cfg.sample_rate} Hz x {cfg.channels} ch, blocks of {cfg.block_size}; '
                   f'spectrogram {shape} from {cfg.window_s} s every {1.0 / cfg.spectrogram_rate_hz:.3f} s; '
                   f'frame_id {cfg.frame_id}')

    def make_source(self):
        cfg = self.cfg
        name = f'{cfg.source} audio source {cfg.device or cfg.file_path}'.strip()
        return Rebuilt(self._build_source, cfg.source, name, item=AudioSource.item)

    def _build_source(self) -> AudioSource:
        self.stream.reopened()
        return self._factory(self.cfg)

    def on_item(self, block: AudioBlock) -> None:
        stamp = self.stamp(block.capture_time_ns)
        msg = AudioChunk(sample_rate=block.sample_rate, channels=block.channels, overflow=block.overflow,
                         first_sample_index=self.stream.add(block, stamp))
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        msg.samples = array.array('f', np.ascontiguousarray(block.samples, dtype=np.float32).tobytes())
        if self.guarded_publish(self._chunk_pub, msg) and block.overflow:
            self.reader.monitor.drop()

    def _publish_spectrogram(self) -> None:
        window = self.stream.next_window()
        if window is None:
            return
        stamp = self.stamp.derived(window.newest_time_ns, window.block_stamp)
        if self.guarded_publish(self._spec_pub, array_to_image(window.db, '32FC1', stamp=stamp,
                                                               frame_id=self.frame_id)):
            self.stream.sent(window)

    def status_values(self):
        cfg = self.cfg
        return {'chunk_rate_hz': self.reader.monitor.rate_hz(), 'expected_spectrogram_rate_hz': cfg.spectrogram_rate_hz,
                'expected_chunk_rate_hz': cfg.sample_rate / cfg.block_size, **self.stream.status()}

    def streaming_status(self, v):
        if v['chunk_rate_hz'] < 0.9 * v['expected_chunk_rate_hz'] or \
                v['spectrogram_rate_hz'] < 0.9 * v['expected_spectrogram_rate_hz']:
            return WARN, ('slow: chunks {chunk_rate_hz:.1f}/{expected_chunk_rate_hz:.1f} Hz, spectrograms '
                          '{spectrogram_rate_hz:.1f}/{expected_spectrogram_rate_hz:.1f} Hz').format(**v)
        return OK, 'streaming'

    def close(self) -> None:
        self._timer.cancel()
        super().close()


def main(args=None):
    return run_node(AudioNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
