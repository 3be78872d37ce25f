"""Parameter bookkeeping: every checkpoint parameter is either exported or explicitly skipped."""

from __future__ import annotations

import numpy as np

from .errors import ExportError


def _name(path: tuple[str, ...]) -> str:
    return '/'.join(path)


class ParamStore:
    """Flat view of the Flax parameter tree that records which parameters were used."""

    def __init__(self, flat: dict[tuple[str, ...], np.ndarray]):
        self._flat = flat
        self._used: set[tuple[str, ...]] = set()
        self._skipped: set[tuple[str, ...]] = set()

    def has(self, *path: str) -> bool:
        return tuple(path) in self._flat

    def has_prefix(self, *prefix: str) -> bool:
        n = len(prefix)
        return any(k[:n] == tuple(prefix) for k in self._flat)

    def shape(self, *path: str) -> tuple[int, ...]:
        key = tuple(path)
        if key not in self._flat:
            raise ExportError(f'missing parameter {_name(key)}')
        return tuple(self._flat[key].shape)

    def take(self, *path: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        key = tuple(path)
        if key not in self._flat:
            raise ExportError(f'missing parameter {_name(key)}')
        value = np.asarray(self._flat[key])
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ExportError(
                f'parameter {_name(key)} has shape {tuple(value.shape)}, expected {tuple(shape)}'
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise ExportError(f'parameter {_name(key)} has dtype {value.dtype}, expected a float type')
        self._used.add(key)
        return value.astype(np.float32)

    def skip_prefix(self, *prefix: str) -> int:
        """Mark a subtree as deliberately not exported (training-only heads); returns its size."""
        n = len(prefix)
        keys = [k for k in self._flat if k[:n] == tuple(prefix)]
        self._skipped.update(keys)
        return sum(int(np.asarray(self._flat[k]).size) for k in keys)

    def unused(self) -> list[str]:
        return sorted(_name(k) for k in self._flat if k not in self._used and k not in self._skipped)

    def check_all_mapped(self) -> None:
        left = self.unused()
        if left:
            shown = ', '.join(left[:10]) + (f' and {len(left) - 10} more' if len(left) > 10 else '')
            raise ExportError(f'unexpected parameters not mapped by the exporter: {shown}')

    def count(self, used_only: bool = True) -> int:
        keys = self._used if used_only else self._flat.keys()
        return sum(int(np.asarray(self._flat[k]).size) for k in keys)


class Scope:
    """A path prefix into a ParamStore, so layer builders name parameters relative to their module."""

    def __init__(self, store: ParamStore, *prefix: str):
        self.store = store
        self.prefix = tuple(prefix)

    def __truediv__(self, name: str) -> 'Scope':
        return Scope(self.store, *self.prefix, name)

    def take(self, *path: str, shape=None) -> np.ndarray:
        return self.store.take(*self.prefix, *path, shape=shape)

    def has(self, *path: str) -> bool:
        return self.store.has(*self.prefix, *path)

    def has_prefix(self, *path: str) -> bool:
        return self.store.has_prefix(*self.prefix, *path)

    def shape(self, *path: str) -> tuple[int, ...]:
        return self.store.shape(*self.prefix, *path)
