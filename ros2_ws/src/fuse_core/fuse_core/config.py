"""Validated configuration dataclasses whose fields double as ROS parameters.

A config class is a dataclass whose fields are declared with :func:`param`; the node
declares one ROS parameter per field (same name, same default, description and range)
and the YAML config files use the same keys. Building the dataclass validates it, so a
wrong value fails once, at start-up, with a message naming the parameter.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Type, Union

from fuse_core.errors import ConfigError


def param(default: Any, description: str, *, choices: Optional[Iterable[Any]] = None,
          min: Optional[float] = None, max: Optional[float] = None,  # noqa: A002
          read_only: bool = True) -> Any:
    """Declare a config field with its ROS parameter description and constraints."""
    meta = {
        'description': description,
        'choices': tuple(choices) if choices is not None else None,
        'min': min,
        'max': max,
        'read_only': read_only,
    }
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def validate(cfg: Any) -> None:
    """Check every field of a config dataclass against its declared choices and range.

    Raises ConfigError naming the config class, the field, the value and what was expected.
    """
    owner = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        meta = f.metadata
        choices = meta.get('choices')
        if choices is not None and value not in choices:
            raise ConfigError(
                f'{owner}: parameter {f.name!r} = {value!r} is not one of {list(choices)}')
        lo, hi = meta.get('min'), meta.get('max')
        if lo is not None or hi is not None:
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                if not isinstance(item, (int, float)) or isinstance(item, bool):
                    raise ConfigError(f'{owner}: parameter {f.name!r} = {value!r} must be a number')
                if item != item:  # NaN
                    raise ConfigError(f'{owner}: parameter {f.name!r} is NaN')
                if lo is not None and item < lo:
                    raise ConfigError(f'{owner}: parameter {f.name!r} = {value!r} must be >= {lo}')
                if hi is not None and item > hi:
                    raise ConfigError(f'{owner}: parameter {f.name!r} = {value!r} must be <= {hi}')


def field_defaults(cls: type) -> Dict[str, Any]:
    """Field name -> default of a config dataclass, without building it (some defaults, such as
    an empty DIGIT serial, are valid only together with a configured value)."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            for f in dataclasses.fields(cls)}


def from_mapping(cls: type, values: dict) -> Any:
    """Build a config dataclass from a plain mapping (e.g. a YAML section), rejecting unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f'{cls.__name__}: unknown parameter(s) {unknown}; known: {sorted(names)}')
    cfg = cls(**values)
    validate(cfg)
    return cfg


class ValidatedConfig:
    """Mixin: validate on construction (dataclasses call __post_init__)."""

    def __post_init__(self) -> None:
        validate(self)


def load_yaml(path: Union[str, Path], what: str, error: Type[Exception] = ConfigError) -> Any:
    """Parse a YAML file; an unreadable file or bad YAML raises ``error`` naming ``what`` and the file."""
    import yaml  # only where a file is read: importing fuse_core stays light
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise error(f'{what} {path}: {exc.strerror or exc}') from exc
    except yaml.YAMLError as exc:
        raise error(f'{what} {path} is not valid YAML: {exc}') from exc


def finite_floats(values: Iterable[Any], error: Callable[[Any], Exception]) -> List[float]:
    """The values as floats; ``error(value)`` is raised for the first that is not a finite number
    (booleans included, though Python counts them as ints)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise error(v)
        out.append(float(v))
    return out
