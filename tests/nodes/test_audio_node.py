"""The audio node: reconnect in-process with a fake source factory; a synthetic stream over DDS."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fuse_core.audio.sources import SyntheticAudioSource
from fuse_core.errors import DeviceError, DeviceNotFoundError
from support.ros_harness import make_probe, make_test_node, wait_for

NS = 1_000_000_000


class AudioLog:
    """Records chunks, spectrograms and the node's diagnostics with their receive times."""

    def __init__(self, node, ns='/audio', diag_prefix='audio'):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        from fuse_interfaces.msg import AudioChunk
        from fuse_nodes.common import SENSOR_QOS, time_to_ns
        from fuse_nodes.conversions import image_to_array
        self.chunks, self.spectrograms, self.statuses = [], [], []
        self._to_ns, self._to_array, self._prefix = time_to_ns, image_to_array, diag_prefix
        node.create_subscription(AudioChunk, f'{ns}/chunk', self._on_chunk, SENSOR_QOS)
        node.create_subscription(Image, f'{ns}/mel_spectrogram', self._on_spec, SENSOR_QOS)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)

    def _on_chunk(self, msg):
        self.chunks.append({'recv_ns': time.time_ns(), 'stamp_ns': self._to_ns(msg.header.stamp),
                            'index': msg.first_sample_index, 'n': len(msg.samples),
                            'rate': msg.sample_rate, 'channels': msg.channels,
                            'overflow': msg.overflow, 'frame_id': msg.header.frame_id})

    def _on_spec(self, msg):
        arr = self._to_array(msg)
        self.spectrograms.append({'recv_ns': time.time_ns(), 'stamp_ns': self._to_ns(msg.header.stamp),
                                  'encoding': msg.encoding, 'shape': (msg.height, msg.width),
                                  'frame_id': msg.header.frame_id, 'min': float(arr.min()),
                                  'max': float(arr.max())})

    def _on_diag(self, msg):
        for st in msg.status:
            if st.name.startswith(self._prefix):
                self.statuses.append((st.level[0] if isinstance(st.level, bytes) else st.level,
                                      st.message, {kv.key: kv.value for kv in st.values}))


# --- in-process: reconnect logic through the real node with a fake source factory ---------------
class FlakyMicrophone:
    """A source factory: missing for the first opens, then a synthetic source that can 'unplug'."""

    def __init__(self, missing_opens=2, unplug_after_blocks=None):
        self.missing_opens, self.unplug_after_blocks = missing_opens, unplug_after_blocks
        self.opens = 0

    def __call__(self, cfg):
        self.opens += 1
        if self.opens <= self.missing_opens:
            raise DeviceNotFoundError('fake microphone is not plugged in')
        src = SyntheticAudioSource(sample_rate=cfg.sample_rate, block_size=cfg.block_size, seed=cfg.seed)
        if self.unplug_after_blocks is not None and self.opens == self.missing_opens + 1:
            reads = [0]
            read = src.read

            def read_then_unplug(timeout_s=1.0):
                reads[0] += 1
                if reads[0] > self.unplug_after_blocks:
                    raise DeviceError('fake microphone unplugged')
                return read(timeout_s)
            src.read = read_then_unplug
        return src


def start_in_process_node(rclpy_context, factory, **params):
    from rclpy.parameter import Parameter

    from fuse_nodes.audio_node import AudioNode
    values = dict(source='real', reconnect_backoff_s=0.1, reconnect_backoff_max_s=0.2)
    values.update(params)
    overrides = [Parameter(k, value=v) for k, v in values.items()]
    return AudioNode(source_factory=factory, context=rclpy_context, parameter_overrides=overrides)


def test_missing_microphone_is_reported_then_recovered(rclpy_context):
    # 10 failed opens at 0.1-0.2 s backoff keep it missing for ~2 s: two diagnostics periods.
    factory = FlakyMicrophone(missing_opens=10)
    node = start_in_process_node(rclpy_context, factory)
    probe, executor = make_test_node(rclpy_context, 'probe')
    executor.add_node(node)
    log = AudioLog(probe)
    try:
        assert wait_for(lambda: any(lvl == 2 and 'not plugged in' in msg for lvl, msg, _ in log.statuses),
                        10.0, lambda: executor.spin_once(timeout_sec=0.05)), log.statuses
        assert not log.chunks
        assert wait_for(lambda: len(log.chunks) > 20 and len(log.spectrograms) > 2, 15.0,
                        lambda: executor.spin_once(timeout_sec=0.05))
        assert wait_for(lambda: any(v.get('state') == 'connected' for _, _, v in log.statuses), 5.0,
                        lambda: executor.spin_once(timeout_sec=0.05))
    finally:
        node.close()
        executor.shutdown()
    assert factory.opens == 11  # ten failed opens with backoff, then the device appeared
    last = [v for _, _, v in log.statuses if v.get('state') == 'connected'][-1]
    assert int(last['failures']) == 10 and int(last['connects']) == 1
    assert 'not plugged in' in last['last_error']
    assert log.chunks[0]['index'] == 0


def test_unplug_mid_stream_reconnects_and_the_index_shows_the_gap(rclpy_context):
    factory = FlakyMicrophone(missing_opens=0, unplug_after_blocks=30)
    node = start_in_process_node(rclpy_context, factory)
    probe, executor = make_test_node(rclpy_context, 'probe')
    executor.add_node(node)
    log = AudioLog(probe)
    try:
        assert wait_for(lambda: any(c['index'] > 30 * 441 for c in log.chunks) and len(log.chunks) > 40,
                        15.0, lambda: executor.spin_once(timeout_sec=0.05))
    finally:
        node.close()
        executor.shutdown()
    assert factory.opens == 2
    indices = [c['index'] for c in log.chunks]
    steps = np.diff(indices)
    assert (steps >= 441).all()  # never backwards, never overlapping, even across the reopen
    # The ~0.1 s spent reconnecting is a gap in the running index, not a silent splice.
    assert steps.max() > 441 + 0.05 * 44100


def test_bad_parameter_fails_at_start_naming_it(rclpy_context):
    from fuse_core.errors import ConfigError
    with pytest.raises(ConfigError, match='source'):
        start_in_process_node(rclpy_context, FlakyMicrophone(), source='usb')


def write_wav(path, seconds, sample_rate):
    import wave
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pcm = (0.3 * np.sin(2 * np.pi * 440.0 * t) * 32767).astype('<i2')
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def test_spectrograms_above_the_block_rate_and_after_a_replay_never_repeat_a_stamp(rclpy_context, tmp_path):
    # 10 blocks a second, spectrograms asked for at 40 Hz, from a 1.5 s file that does not loop.
    wav = tmp_path / 'tone.wav'
    write_wav(wav, 1.5, 8000)
    node = start_in_process_node(rclpy_context, None, source='file', file_path=str(wav), loop=False,
                                 sample_rate=8000, block_size=800, spectrogram_rate_hz=40.0,
                                 window_s=0.5, n_fft=256, hop_length=64, n_mels=32)
    probe, executor, spin = make_probe(rclpy_context, 'probe')
    executor.add_node(node)
    log = AudioLog(probe)
    try:
        assert wait_for(lambda: any(v.get('state') == 'finished' for _, _, v in log.statuses), 15.0, spin)
        done = len(log.spectrograms)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:  # 40 timer ticks after the end of the file
            spin()
    finally:
        node.close()
        executor.shutdown()
    assert len(log.chunks) == 15
    stamps = [s['stamp_ns'] for s in log.spectrograms]
    assert stamps and len(set(stamps)) == len(stamps), stamps
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    # One spectrogram per block at most, the first once the 0.5 s window is full: never a repeat.
    assert len(stamps) <= 15 - 4 and len(log.spectrograms) == done
    # A finished replay is reported as finished, at level OK, with no failure counted.
    level, message, values = [st for st in log.statuses if st[2].get('state') == 'finished'][-1]
    assert level == 0 and message.startswith('finished: ') and 'end of file' in message
    assert int(values['failures']) == 0


# --- its own process, over DDS --------------------------------------------------------------------
@pytest.mark.integration
def test_synthetic_audio_node_streams_chunks_and_spectrograms(launch_node, rclpy_context):
    node_proc = launch_node('fuse_nodes.audio_node', 'audio', params={'source': 'synthetic', 'seed': 5})
    probe, executor, spin = make_probe(rclpy_context, 'audio_probe', 0.02)
    log = AudioLog(probe)
    assert wait_for(lambda: log.chunks and log.spectrograms, 20.0, spin), node_proc.log()
    c0, s0 = len(log.chunks), len(log.spectrograms)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.0:
        spin()
    duration = time.monotonic() - t0
    chunks, specs = log.chunks[c0:], log.spectrograms[s0:]
    assert node_proc.alive(), node_proc.log()

    assert len(chunks) / duration == pytest.approx(100.0, rel=0.1)
    assert len(specs) / duration == pytest.approx(10.0, rel=0.1)
    for c in chunks:
        assert (c['n'], c['rate'], c['channels'], c['frame_id']) == (441, 44100, 1, 'microphone_frame')
    for s in specs:
        assert (s['encoding'], s['shape'], s['frame_id']) == ('32FC1', (128, 128), 'microphone_frame')
        assert -100.0 <= s['min'] and s['max'] - s['min'] <= 80.0 + 1e-3  # dB, top_db clipped
    for items in (chunks, specs):
        stamps = [i['stamp_ns'] for i in items]
        assert all(b > a for a, b in zip(stamps, stamps[1:])), 'stamps not strictly increasing'
        lags = [(i['recv_ns'] - i['stamp_ns']) / NS for i in items]
        assert min(lags) > -0.01 and max(lags) < 0.5, (min(lags), max(lags))
    # Chunk stamps follow the samples: 441 samples = 10 ms between consecutive chunks.
    stamps = np.array([c['stamp_ns'] for c in chunks])
    indices = np.array([c['index'] for c in chunks])
    np.testing.assert_allclose(np.diff(stamps) / np.diff(indices), NS / 44100, rtol=1e-3)

    assert wait_for(lambda: log.statuses, 5.0, spin)
    level, message, values = log.statuses[-1]
    assert 'SYNTHETIC' in message and values['source'] == 'synthetic' and values['state'] == 'connected'


@pytest.mark.integration
def test_missing_sound_card_keeps_the_node_alive_and_reports_it(launch_node, rclpy_context):
    node_proc = launch_node('fuse_nodes.audio_node', 'audio',
                            params={'source': 'real', 'device': 'no_such_microphone_xyz',
                                    'reconnect_backoff_s': 0.2, 'reconnect_backoff_max_s': 0.5})
    probe, executor, spin = make_probe(rclpy_context, 'audio_probe')
    log = AudioLog(probe)
    assert wait_for(lambda: len(log.statuses) >= 2, 20.0, spin), node_proc.log()
    level, message, values = log.statuses[-1]
    assert level == 2 and 'no_such_microphone_xyz' in message, message
    assert int(values['failures']) >= 2 and values['state'] in ('backoff', 'connecting')
    assert node_proc.alive() and not log.chunks
