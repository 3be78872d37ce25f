"""fuse_core.acquisition: the Source base, SourceConfig and the SensorReader shared by every sensor."""

from __future__ import annotations

import time

import pytest

from fuse_core.acquisition import (BACKOFF_GROWTH_CAP, ReaderSettings, Rebuilt, SensorReader, Source,
                                   SourceConfig)
from fuse_core.audio.config import AudioConfig
from fuse_core.audio.sources import SyntheticAudioSource, WavFileSource
from fuse_core.camera import CameraConfig
from fuse_core.digit import DigitConfig
from fuse_core.errors import ConfigError, DeviceNotFoundError, SourceExhaustedError
from fuse_core.imu.config import ImuConfig
from support.ros_harness import wait_for


class BatchSource(Source):
    """Yields batches of stamps (an IMU-like source); missing for the first `missing` connects."""

    kind = 'file'

    def __init__(self, batches, missing=0):
        self.batches, self.missing, self.connects, self.closes = list(batches), missing, 0, 0

    def connect(self):
        self.connects += 1
        if self.connects <= self.missing:
            raise DeviceNotFoundError('batch source: not there yet')

    def read(self, timeout_s=None):
        if not self.batches:
            raise SourceExhaustedError('batch source: no more batches')
        time.sleep(0.001)
        return self.batches.pop(0)

    def close(self):
        self.closes += 1

    def describe(self):
        return 'batch source'

    def capture_stamps(self, item):
        return item

    def health(self):
        return {'parser_errors': 0}


def test_every_stamp_of_a_batch_counts_and_empty_batches_are_no_items():
    now = time.time_ns()
    got, logs = [], []
    reader = SensorReader(BatchSource([[now, now + 1], [], [now + 2, now + 3, now + 4]], missing=1), got.append,
                          ReaderSettings(0.01, 0.02), log=lambda level, msg: logs.append((level, msg)))
    reader.start()
    assert wait_for(lambda: reader.finished, 5.0)
    reader.stop()
    assert got == [[now, now + 1], [now + 2, now + 3, now + 4]]
    status = reader.status()
    assert status['samples'] == 5 and status['failures'] == 1 and status['connects'] == 1
    assert status['state'] == 'finished' and 'no more batches' in status['finished']
    assert status['parser_errors'] == 0 and status['sample_age_s'] >= 0 and not status['synthetic']
    assert [level for level, _ in logs] == ['error', 'info', 'info']
    assert 'retrying in' in logs[0][1] and logs[1][1] == 'batch source: connected'


def test_items_older_than_the_age_limit_are_dropped_per_sample():
    old = time.time_ns() - 5_000_000_000
    got = []
    reader = SensorReader(BatchSource([[old, old], [time.time_ns() + 10**9]]), got.append,
                          ReaderSettings(max_age_s=1.0))
    reader.start()
    assert wait_for(lambda: reader.finished, 5.0)
    reader.stop()
    assert len(got) == 1 and reader.status()['drops'] == 2


def test_rebuilt_builds_a_fresh_source_at_every_connect():
    built = []

    def factory():
        built.append(BatchSource([[time.time_ns()]], missing=0 if built else 1))
        return built[-1]

    source = Rebuilt(factory, 'real', 'fake device', item='chunk')
    assert source.describe() == 'fake device' and source.health() == {} and source.actual is None
    reader = SensorReader(source, lambda item: None, ReaderSettings(0.01, 0.01))
    reader.start()
    assert wait_for(lambda: reader.finished, 5.0)
    reader.stop()
    # The first build failed to connect (and was closed); the second read its one batch and ended.
    assert len(built) == 2 and built[0].closes == 1 and reader.status()['chunks'] == 1
    assert source.describe() == 'batch source'


def test_audio_sources_say_whether_they_are_synthetic():
    assert SyntheticAudioSource().synthetic and not WavFileSource('x.wav').synthetic
    with SyntheticAudioSource(sample_rate=8000, block_size=80) as src:
        block = src.read(1.0)
    assert src.capture_stamps(block) == (block.capture_time_ns,)
    assert src.health() == {'overflows': 0, 'callback_errors': 0, 'dropped_blocks': 0}


@pytest.mark.parametrize('cls', [CameraConfig, DigitConfig, AudioConfig])
def test_the_backoff_cap_below_the_first_wait_is_refused_by_every_config(cls):
    with pytest.raises(ConfigError, match=f"{cls.__name__}: parameter 'reconnect_backoff_max_s'"):
        cls(source='synthetic', reconnect_backoff_s=5.0, reconnect_backoff_max_s=1.0)


@pytest.mark.parametrize('cls', [CameraConfig, DigitConfig, AudioConfig, ImuConfig])
def test_every_config_is_a_source_config_and_needs_a_file_to_replay(cls):
    assert issubclass(cls, SourceConfig)
    with pytest.raises(ConfigError, match=f"{cls.__name__}: parameter 'file_path'"):
        cls(source='file')


def test_reader_settings_come_from_the_configs():
    assert CameraConfig().reader_settings() == ReaderSettings(1.0, 30.0, 2.0, 0.5)
    assert AudioConfig().reader_settings().backoff_max_s == 10.0
    # The IMU has no parameter for the cap: it grows to 16x the first wait, as it always did.
    assert ImuConfig(reconnect_backoff_s=0.5).reader_settings() == ReaderSettings(0.5, 0.5 * BACKOFF_GROWTH_CAP)
    assert BACKOFF_GROWTH_CAP == 16.0
