"""AudioConfig: FuSe defaults, the robot YAML, and wrong parameters named in ConfigError."""

from pathlib import Path

import pytest
import yaml

from fuse_core.audio.config import AudioConfig
from fuse_core.config import from_mapping
from fuse_core.errors import ConfigError

YAML = Path(__file__).resolve().parents[2] / 'ros2_ws/src/fuse_bringup/config/audio.yaml'


def test_defaults_are_fuse_robot_side():
    cfg = AudioConfig()
    assert (cfg.source, cfg.sample_rate, cfg.window_s, cfg.n_fft, cfg.hop_length, cfg.n_mels,
            cfg.top_db, cfg.frame_id) == ('real', 44100, 0.3, 2048, 104, 128, 80.0, 'microphone_frame')
    assert cfg.window_samples == 13230
    assert cfg.spectrogram().shape == (128, 128)


def test_robot_yaml_is_complete_and_valid():
    section = yaml.safe_load(YAML.read_text())['audio']['ros__parameters']
    cfg = from_mapping(AudioConfig, section)
    assert cfg == AudioConfig()  # the robot runs the defaults: the file changes none of them


@pytest.mark.parametrize('kwargs, name', [
    (dict(sample_rate=-44100), 'sample_rate'),
    (dict(source='microphone'), 'source'),
    (dict(block_size=0), 'block_size'),
    (dict(spectrogram_rate_hz=0.0), 'spectrogram_rate_hz'),
    (dict(hop_length=-1), 'hop_length'),
    (dict(fmax=30000.0), 'fmax'),
    (dict(fmin=22050.0), 'fmin'),
    (dict(source='file'), 'file_path'),
    (dict(reconnect_backoff_s=5.0, reconnect_backoff_max_s=1.0), 'reconnect_backoff_max_s'),
])
def test_wrong_parameter_is_named(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        AudioConfig(**kwargs)


def test_unknown_yaml_key_is_refused():
    with pytest.raises(ConfigError, match='hop'):
        from_mapping(AudioConfig, {'hop': 104})
