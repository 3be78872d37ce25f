"""WindowBuilder: tick spacing, padding, staleness masks, once-per-sample preprocessing, config checks."""

from pathlib import Path

import numpy as np
import pytest

from fuse_core.bundle.manifest import parse_manifest
from fuse_core.errors import ConfigError
from fuse_core.sync import (StreamConfig, SyncConfig, WindowBuilder, builder_from, check_streams,
                            stream_config, stream_settings)

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * NS    # a wall-clock-like start, to catch int overflows/rounding


def manifest_dict(window_size=2, rate=5.0):
    """A small manifest in the documented JSON form (small sizes keep the tests fast)."""
    return {
        'format_version': 1, 'name': 'sync-test', 'control_rate_hz': rate, 'window_size': window_size,
        'graphs': {'policy': 'policy.onnx'},
        'inputs': [
            {'name': 'image_primary', 'shape': [16, 16, 3], 'dtype': 'uint8', 'stream': 'camera_primary',
             'preprocess': {'op': 'rgb_image', 'size': [16, 16], 'interpolation': 'lanczos'}},
            {'name': 'image_digit_left', 'shape': [8, 8, 3], 'dtype': 'int16', 'stream': 'digit_left',
             'preprocess': {'op': 'tactile_minus_background', 'size': [8, 8], 'interpolation': 'lanczos'}},
            {'name': 'mel_spectro', 'shape': [4, 4], 'dtype': 'float32', 'stream': 'audio',
             'preprocess': {'op': 'passthrough'}},
        ],
        'action': {'horizon': 4, 'dim': 7, 'layout': ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper'],
                   'normalization': {'mean': [0.0] * 7, 'std': [1.0] * 7, 'mask': [True] * 6 + [False]},
                   'gripper_index': 6},
    }


MAX_AGE = {'camera_primary': 0.1, 'digit_left': 0.1, 'audio': 0.3}


def make_builder(window_size=2, eager=True, max_age=MAX_AGE):
    m = parse_manifest(manifest_dict(window_size))
    return WindowBuilder(m.inputs, stream_settings(max_age), m.window_size, m.control_rate_hz, eager=eager)


def camera(value):
    return np.full((32, 32, 3), value, np.uint8)


def digit(value):
    return np.full((12, 16, 3), value, np.uint8)


def spectro(value):
    return np.full((4, 4, 1), value, np.float32)


def feed_all(b, t_ns, value=50):
    b.add_sample('camera_primary', t_ns, camera(value), 'bgr8')
    b.add_sample('digit_left', t_ns, digit(value), 'bgr8')
    b.add_sample('audio', t_ns, spectro(float(value)), '32FC1')


def test_steps_at_tick_spacing_and_padding_at_start():
    b = make_builder(window_size=3)
    b.set_background('digit_left', digit(0), 'bgr8')
    feed_all(b, T0 - 10 * MS)
    w = b.build(T0)
    assert w.step_stamps_ns == [T0 - 400 * MS, T0 - 200 * MS, T0]
    assert w.timestep_pad_mask == [False, False, True]
    assert w.tick_index == 0
    img = w.tensor('image_primary')
    assert img.array.shape == (3, 16, 16, 3) and img.array.dtype == np.uint8
    assert img.valid == [False, False, True]
    assert img.sample_stamps_ns == [0, 0, T0 - 10 * MS]
    # Padded steps repeat the oldest real step (Octo's history padding).
    assert np.array_equal(img.array[0], img.array[2])
    feed_all(b, T0 + 190 * MS)
    w2 = b.build(T0 + 200 * MS)
    assert w2.timestep_pad_mask == [False, True, True]
    w3 = b.build(T0 + 400 * MS)
    assert w3.timestep_pad_mask == [True, True, True]
    assert w3.tick_index == 2


def test_each_step_takes_latest_sample_at_or_before_its_time():
    b = make_builder(max_age={'camera_primary': 1.0, 'digit_left': 1.0, 'audio': 1.0})
    b.set_background('digit_left', digit(0), 'bgr8')
    feed_all(b, T0 - 50 * MS, value=10)
    feed_all(b, T0 + 150 * MS, value=20)
    feed_all(b, T0 + 250 * MS, value=30)    # after the tick: must not be used
    b.build(T0)
    w = b.build(T0 + 200 * MS)
    img = w.tensor('image_primary')
    assert img.sample_stamps_ns == [T0 - 50 * MS, T0 + 150 * MS]
    assert img.array[0, 0, 0, 0] == 10 and img.array[1, 0, 0, 0] == 20
    assert w.newest_sample_ns == T0 + 150 * MS
    spec = w.tensor('mel_spectro')
    assert spec.array.dtype == np.float32 and spec.array[1, 0, 0] == 20.0


def test_staleness_is_per_modality_and_masks_without_dropping_the_tick():
    b = make_builder()
    b.set_background('digit_left', digit(0), 'bgr8')
    feed_all(b, T0)
    # At T0 + 0.2 s: camera (max_age 0.1) and DIGIT are stale, audio (max_age 0.3) is not.
    b.build(T0)
    w = b.build(T0 + 200 * MS)
    assert w.tensor('image_primary').valid == [True, False]
    assert w.tensor('image_digit_left').valid == [True, False]
    assert w.tensor('mel_spectro').valid == [True, True]
    assert w.stale_streams == ['camera_primary', 'digit_left']
    assert 'stale' in w.reasons['camera_primary']
    # Masked steps carry zeros, not the stale data.
    assert not w.tensor('image_primary').array[1].any()


def test_silent_stream_is_named_within_one_tick():
    b = make_builder()
    b.set_background('digit_left', digit(0), 'bgr8')
    t = T0
    for _ in range(3):
        feed_all(b, t - 5 * MS)
        assert b.build(t).stale_streams == []
        t += 200 * MS
    # The camera goes silent; the others keep publishing.
    b.add_sample('digit_left', t - 5 * MS, digit(1), 'bgr8')
    b.add_sample('audio', t - 5 * MS, spectro(1.0), '32FC1')
    w = b.build(t)
    assert w.stale_streams == ['camera_primary']
    assert w.tensor('image_primary').valid == [True, False]
    assert b.stats['camera_primary'].stale_ticks == 1


def test_never_seen_stream_is_stale_from_the_first_tick():
    b = make_builder()
    b.set_background('digit_left', digit(0), 'bgr8')
    b.add_sample('camera_primary', T0, camera(1), 'bgr8')
    b.add_sample('digit_left', T0, digit(1), 'bgr8')
    w = b.build(T0)
    assert w.stale_streams == ['audio']
    assert w.tensor('mel_spectro').valid == [False, False]


def test_missing_background_masks_tactile_and_says_why():
    b = make_builder()
    feed_all(b, T0)
    w = b.build(T0)
    assert w.tensor('image_digit_left').valid == [False, False]
    assert w.stale_streams == ['digit_left']
    assert w.reasons['digit_left'] == 'no DIGIT background for digit_left'
    # The background arrives: the same stored sample becomes usable (no re-preprocessing).
    calls = b.channels[1].pre.prepare_calls
    b.set_background('digit_left', digit(0), 'bgr8')
    w = b.build(T0 + 50 * MS)
    assert w.tensor('image_digit_left').valid[-1] is True
    assert b.channels[1].pre.prepare_calls == calls


@pytest.mark.parametrize('eager', [True, False])
def test_preprocessing_happens_once_per_sample(eager):
    b = make_builder(eager=eager, max_age={'camera_primary': 1.0, 'digit_left': 1.0, 'audio': 1.0})
    b.set_background('digit_left', digit(0), 'bgr8')
    feed_all(b, T0 - 10 * MS, value=1)
    feed_all(b, T0 + 100 * MS, value=2)
    for k in range(6):
        b.build(T0 + k * 200 * MS)
    for ch in b.channels:
        assert ch.pre.prepare_calls == 2, ch.name


def test_lazy_mode_prepares_only_samples_that_are_used():
    b = make_builder(eager=False)
    b.set_background('digit_left', digit(0), 'bgr8')
    for k in range(10):
        feed_all(b, T0 - 100 * MS + k * 10 * MS)
    b.build(T0)
    assert b.channels[0].pre.prepare_calls == 1


def test_reset_restarts_padding_but_keeps_samples():
    b = make_builder()
    b.set_background('digit_left', digit(0), 'bgr8')
    feed_all(b, T0)
    b.build(T0)
    assert b.build(T0 + 50 * MS).timestep_pad_mask == [True, True]
    b.reset()
    w = b.build(T0 + 60 * MS)
    assert w.timestep_pad_mask == [False, True]
    assert w.tensor('image_primary').valid == [False, True]
    assert w.tick_index == 2     # tick indices keep counting across episodes


def test_out_of_order_samples_are_used_by_stamp():
    b = make_builder(max_age={'camera_primary': 1.0, 'digit_left': 1.0, 'audio': 1.0})
    b.add_sample('camera_primary', T0 - 10 * MS, camera(2), 'bgr8')
    b.add_sample('camera_primary', T0 - 30 * MS, camera(1), 'bgr8')   # arrives late
    w = b.build(T0)
    assert w.tensor('image_primary').sample_stamps_ns[-1] == T0 - 10 * MS


def test_manifest_stream_without_config_is_a_config_error_naming_it():
    m = parse_manifest(manifest_dict())
    streams = {'camera_primary': stream_config('camera_primary', {'topic': '/c'}),
               'digit_left': stream_config('digit_left', {'topic': '/d', 'background_topic': '/b'})}
    with pytest.raises(ConfigError, match="stream 'audio'"):
        check_streams(m, streams)
    with pytest.raises(ConfigError, match="stream 'audio'"):
        WindowBuilder(m.inputs, stream_settings({'camera_primary': 1, 'digit_left': 1}), 2, 5.0)


def test_tactile_stream_without_background_topic_is_a_config_error():
    m = parse_manifest(manifest_dict())
    streams = {'camera_primary': StreamConfig(topic='/c'), 'digit_left': StreamConfig(topic='/d'),
               'audio': StreamConfig(topic='/a')}
    with pytest.raises(ConfigError, match='streams.digit_left.background_topic'):
        check_streams(m, streams)


def test_stream_config_validation():
    with pytest.raises(ConfigError, match='streams.foo.topic'):
        stream_config('foo', {'topic': ''})
    with pytest.raises(ConfigError, match='max_age_s'):
        stream_config('camera_primary', {'topic': '/c', 'max_age_s': -1.0})


def test_builder_from_takes_rate_and_window_from_manifest_unless_overridden():
    m = parse_manifest(manifest_dict(window_size=3, rate=10.0))
    streams = {'camera_primary': StreamConfig(topic='/c'),
               'digit_left': StreamConfig(topic='/d', background_topic='/b'),
               'audio': StreamConfig(topic='/a')}
    b = builder_from(m, SyncConfig(), streams)
    assert (b.window_size, b.dt_ns) == (3, 100 * MS)
    b = builder_from(m, SyncConfig(window_size=2, control_rate_hz=5.0, preprocess_mode='lazy'), streams)
    assert (b.window_size, b.dt_ns, b.channels[0].eager) == (2, 200 * MS, False)
    with pytest.raises(ConfigError, match='preprocess_mode'):
        SyncConfig(preprocess_mode='sometimes')
    with pytest.raises(ConfigError, match='buffer_s'):
        builder_from(m, SyncConfig(buffer_s=0.2), streams)


def test_sync_yaml_is_valid_and_covers_the_reference_manifest():
    import yaml

    from fuse_core.bundle import read_manifest, resolve_bundle_path
    from fuse_core.config import from_mapping
    from fuse_core.sync import stream_defaults

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / 'ros2_ws/src/fuse_bringup/config/sync.yaml').read_text())
    params = dict(doc['sync']['ros__parameters'])
    stream_params = params.pop('streams')
    cfg = from_mapping(SyncConfig, params)
    # The file holds only what differs from each stream's defaults (as the node layers them).
    assert set(stream_params) <= set(cfg.stream_names)
    streams = {name: stream_config(name, {**stream_defaults(name), **stream_params.get(name, {})})
               for name in cfg.stream_names}
    manifest = read_manifest(resolve_bundle_path(cfg.bundle_path, [root]))   # the shipped reference bundle
    b = builder_from(manifest, cfg, streams)
    assert b.window_size == manifest.window_size == 2
    assert b.dt_ns == 200 * MS
