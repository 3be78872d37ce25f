"""The T5 configuration the language graph needs beyond the parameters (relative-position distance, eps)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ExportError

#: Published T5 encoders and the two settings the parameters do not carry (all Google releases
#: use the same ones). Anything else needs its config.json (--t5-config).
PUBLISHED = {
    name: {'relative_attention_max_distance': 128, 'layer_norm_epsilon': 1e-6}
    for name in (
        't5-small', 't5-base', 't5-large', 't5-3b', 't5-11b',
        'google/t5-v1_1-small', 'google/t5-v1_1-base', 'google/t5-v1_1-large',
        'google/t5-v1_1-xl', 'google/t5-v1_1-xxl',
        'google-t5/t5-small', 'google-t5/t5-base', 'google-t5/t5-large',
    )
}
FEED_FORWARD = {'relu': 'relu', 'gated-gelu': 'gated-gelu', 'gelu_new': 'gated-gelu'}


@dataclass(frozen=True)
class T5Settings:
    relative_attention_max_distance: int
    layer_norm_epsilon: float
    source: str  # where the values came from, for the export log
    relative_attention_num_buckets: int | None = None  # checked against the parameters
    d_model: int | None = None
    feed_forward_proj: str | None = None  # relu | gated-gelu; checked against the parameters


def _read(path: Path) -> dict:
    if path.is_dir():
        path = path / 'config.json'
    try:
        cfg = json.loads(path.read_text())
    except OSError as exc:
        raise ExportError(f'T5 config {path}: {exc}') from exc
    except json.JSONDecodeError as exc:
        raise ExportError(f'T5 config {path}: not JSON: {exc}') from exc
    if not isinstance(cfg, dict):
        raise ExportError(f'T5 config {path}: expected a JSON object')
    return cfg


def resolve_t5_settings(encoder: str, t5_config: str | Path | None = None) -> T5Settings:
    """From --t5-config, else the config.json beside a local encoder path, else a published name."""
    if t5_config is not None:
        return _from_config(_read(Path(t5_config)), str(t5_config))
    local = Path(encoder) / 'config.json' if encoder else None
    if local is not None and local.is_file():
        return _from_config(_read(local), str(local))
    if encoder in PUBLISHED:
        values = PUBLISHED[encoder]
        return T5Settings(values['relative_attention_max_distance'], values['layer_norm_epsilon'],
                          f'the published {encoder} configuration')
    raise ExportError(
        f'the checkpoint\'s T5 encoder {encoder!r} is not a published T5 and its config.json is not '
        f'there: give it with --t5-config (relative_attention_max_distance and layer_norm_epsilon are '
        f'not in the parameters; published T5s use 128 and 1e-6)'
    )


def _from_config(cfg: dict, source: str) -> T5Settings:
    model_type = cfg.get('model_type', 't5')
    if model_type != 't5':
        raise ExportError(f'T5 config {source}: model_type {model_type!r} is not t5')
    if cfg.get('is_decoder'):
        raise ExportError(f'T5 config {source}: is_decoder is true; the language encoder is a T5 encoder')
    dist = cfg.get('relative_attention_max_distance', 128)
    if not isinstance(dist, int) or isinstance(dist, bool) or dist < 1:
        raise ExportError(f'T5 config {source}: relative_attention_max_distance {dist!r} must be a positive integer')
    eps = cfg.get('layer_norm_epsilon', 1e-6)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not (0 < eps < 1):
        raise ExportError(f'T5 config {source}: layer_norm_epsilon {eps!r} must be a number in (0, 1)')
    proj = cfg.get('feed_forward_proj')
    if proj is not None and proj not in FEED_FORWARD:
        raise ExportError(
            f'T5 config {source}: feed_forward_proj {proj!r} is not supported (supported: {sorted(FEED_FORWARD)})'
        )
    buckets = cfg.get('relative_attention_num_buckets')
    d_model = cfg.get('d_model')
    return T5Settings(dist, float(eps), source,
                      int(buckets) if buckets is not None else None,
                      int(d_model) if d_model is not None else None,
                      FEED_FORWARD[proj] if proj is not None else None)


def check_against_parameters(s: T5Settings, num_buckets: int, max_exact: int, d_model: int, gated: bool) -> None:
    """The config must describe the parameters it is exported with; a mismatch is named."""
    if s.relative_attention_num_buckets is not None and s.relative_attention_num_buckets != num_buckets:
        raise ExportError(f'T5 config {s.source}: relative_attention_num_buckets '
                          f'{s.relative_attention_num_buckets}, the parameters have {num_buckets}')
    if s.d_model is not None and s.d_model != d_model:
        raise ExportError(f'T5 config {s.source}: d_model {s.d_model}, the parameters have {d_model}')
    if s.feed_forward_proj is not None and (s.feed_forward_proj == 'gated-gelu') != gated:
        raise ExportError(f'T5 config {s.source}: feed_forward_proj {s.feed_forward_proj!r}, the parameters '
                          f'are {"gated-gelu" if gated else "relu"}')
    if s.relative_attention_max_distance <= max_exact:
        raise ExportError(f'T5 config {s.source}: relative_attention_max_distance '
                          f'{s.relative_attention_max_distance} must exceed {max_exact} (half the buckets of '
                          f'one direction)')
