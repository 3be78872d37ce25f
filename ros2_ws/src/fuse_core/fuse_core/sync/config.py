"""Configuration of the synchroniser: node parameters, per-stream settings, manifest checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple

from fuse_core.config import ValidatedConfig, from_mapping, param
from fuse_core.errors import ConfigError
from fuse_core.sync.window import StreamSettings, WindowBuilder

#: Default topics per known stream: (sample topic, latched background topic or '').
DEFAULT_STREAMS: Dict[str, Tuple[str, str]] = {
    'camera_primary': ('/camera_primary/image_raw', ''),
    'camera_wrist': ('/camera_wrist/image_raw', ''),
    'digit_left': ('/digit_left/image_raw', '/digit_left/background'),
    'digit_right': ('/digit_right/image_raw', '/digit_right/background'),
    'audio': ('/audio/mel_spectrogram', ''),
}
DEFAULT_MAX_AGE_S = 0.5


@dataclass
class SyncConfig(ValidatedConfig):
    """Parameters of the `sync` node (streams.<name>.* are in StreamConfig)."""

    bundle_path: str = param('', 'model bundle directory; only manifest.json is read. Empty: the '
                                 'shipped reference bundle')
    control_rate_hz: float = param(0.0, 'tick rate in Hz; 0 = the manifest control_rate_hz', min=0.0,
                                   max=100.0)
    window_size: int = param(0, 'history length W in ticks; 0 = the manifest window_size', min=0, max=64)
    frame_id: str = param('wx250s/base_link', 'header.frame_id of the published windows')
    stream_names: list = param(list(DEFAULT_STREAMS), 'streams configured under streams.<name>.*; '
                                                      'every manifest input stream must be one')
    buffer_s: float = param(1.0, 'seconds of samples kept per stream; must cover the window '
                                 '((W-1)/rate) plus the largest max_age_s', min=0.05, max=60.0)
    buffer_capacity: int = param(128, 'most samples kept per stream (memory bound)', min=2, max=100000)
    preprocess_mode: str = param('lazy', 'lazy: preprocess a sample at the first tick that uses it '
                                         '(cached per sample); eager: in the subscription callback '
                                         'as each sample arrives', choices=('eager', 'lazy'))
    diagnostics_period_s: float = param(1.0, 'period of /diagnostics', min=0.1, max=60.0)


@dataclass
class StreamConfig(ValidatedConfig):
    """Parameters streams.<name>.topic / .background_topic / .max_age_s of one stream."""

    topic: str = param('', 'topic of the stream samples (sensor_msgs/Image)')
    background_topic: str = param('', 'latched background topic (tactile streams only)')
    max_age_s: float = param(DEFAULT_MAX_AGE_S, 'a sample older than this at a window step is masked '
                                                '(valid false) instead of used', min=0.001, max=60.0)


def stream_defaults(name: str) -> Dict[str, Any]:
    topic, background = DEFAULT_STREAMS.get(name, ('', ''))
    return {'topic': topic, 'background_topic': background, 'max_age_s': DEFAULT_MAX_AGE_S}


def stream_config(name: str, values: Mapping[str, Any]) -> StreamConfig:
    """Validated StreamConfig of stream `name`; a missing topic is an error naming the parameter."""
    try:
        cfg = from_mapping(StreamConfig, dict(values))
    except ConfigError as exc:
        raise ConfigError(f'stream {name!r}: {exc}') from exc
    if not cfg.topic:
        raise ConfigError(f'parameter streams.{name}.topic is not set (stream {name!r} has no default topic)')
    return cfg


def check_streams(manifest: Any, streams: Mapping[str, StreamConfig]) -> None:
    """Every manifest input's stream must be configured, and tactile streams need a background topic."""
    for spec in manifest.inputs:
        if spec.stream not in streams:
            raise ConfigError(f'manifest input {spec.name!r} reads stream {spec.stream!r}, which is not '
                              f'configured (stream_names: {sorted(streams)})')
        if spec.preprocess.op == 'tactile_minus_background' and not streams[spec.stream].background_topic:
            raise ConfigError(f'manifest input {spec.name!r} subtracts a background, but '
                              f'streams.{spec.stream}.background_topic is not set')


def builder_from(manifest: Any, cfg: SyncConfig, streams: Mapping[str, StreamConfig]) -> WindowBuilder:
    """The WindowBuilder for a manifest and the node's settings (0 = take the manifest's value)."""
    check_streams(manifest, streams)
    window_size = cfg.window_size or manifest.window_size
    rate = cfg.control_rate_hz or manifest.control_rate_hz
    used = {spec.stream for spec in manifest.inputs}
    needed = (window_size - 1) / rate + max(streams[s].max_age_s for s in used)
    if cfg.buffer_s < needed:
        raise ConfigError(f'parameter buffer_s = {cfg.buffer_s} s is shorter than the window span plus '
                          f'the largest max_age_s ({needed:.3f} s): old steps would be masked')
    settings = {name: StreamSettings(name, s.max_age_s, cfg.buffer_s, cfg.buffer_capacity)
                for name, s in streams.items()}
    return WindowBuilder(manifest.inputs, settings, window_size=window_size, control_rate_hz=rate,
                         eager=cfg.preprocess_mode == 'eager')
