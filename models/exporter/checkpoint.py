"""Reading an Octo/FuSe checkpoint directory without JAX, Flax or Orbax."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError

# Flax's msgpack extension codes (flax.serialization._MsgpackExtType).
_EXT_NDARRAY = 1
_EXT_COMPLEX = 2
_EXT_NPSCALAR = 3
_CHUNKED_KEY = '__msgpack_chunked_array__'


def _dtype_from_name(name: bytes | str) -> np.dtype | str:
    name = name.decode() if isinstance(name, bytes) else name
    if name == 'bfloat16':
        return 'bfloat16'
    return np.dtype(name)


def _ndarray_from_bytes(data: bytes) -> np.ndarray:
    import msgpack

    shape, dtype_name, buffer = msgpack.unpackb(data, raw=True)
    dtype = _dtype_from_name(dtype_name)
    if dtype == 'bfloat16':
        # bfloat16 is the upper half of a float32: widen exactly without ml_dtypes.
        bits = np.frombuffer(buffer, dtype=np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape).copy()


def _ext_hook(code: int, data: bytes) -> Any:
    import msgpack

    if code == _EXT_NDARRAY:
        return _ndarray_from_bytes(data)
    if code == _EXT_NPSCALAR:
        return _ndarray_from_bytes(data)[()]
    if code == _EXT_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def _unchunk(tree: Any) -> Any:
    if isinstance(tree, dict):
        if _CHUNKED_KEY in tree:
            shape = tuple(tree['shape'][str(i)] for i in range(len(tree['shape'])))
            chunks = [tree['chunks'][str(i)] for i in range(len(tree['chunks']))]
            return np.concatenate(chunks).reshape(shape)
        return {k: _unchunk(v) for k, v in tree.items()}
    return tree


def msgpack_restore(data: bytes) -> Any:
    """Decode bytes written by flax.serialization.msgpack_serialize into nested dicts of numpy arrays."""
    import msgpack

    tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    return _unchunk(tree)


def flatten(tree: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        path = prefix + (str(key),)
        if isinstance(value, dict):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


@dataclass
class Checkpoint:
    """The parts of an Octo checkpoint that the exporter needs."""

    path: Path
    step: int
    config: dict
    example_batch: dict
    dataset_statistics: dict
    params: dict[tuple[str, ...], np.ndarray] = field(repr=False)


_REQUIRED_FILES = ('config.json', 'example_batch.msgpack', 'dataset_statistics.json')


def available_steps(path: Path) -> list[int]:
    return sorted(int(p.name) for p in path.iterdir() if p.is_dir() and re.fullmatch(r'\d+', p.name))


def _params_file(step_dir: Path) -> Path:
    # Orbax's PyTreeCheckpointer keeps an aggregated msgpack file named "checkpoint",
    # under "default/" when saved through a CheckpointManager.
    for candidate in (step_dir / 'default' / 'checkpoint', step_dir / 'checkpoint'):
        if candidate.is_file():
            return candidate
    raise ExportError(
        f'{step_dir}: no parameter file (expected default/checkpoint or checkpoint, an Orbax '
        f'aggregated msgpack file); per-array (tensorstore) checkpoints are not supported'
    )


def _param_tree(restored: Any, where: Path) -> dict:
    if not isinstance(restored, dict):
        raise ExportError(f'{where}: the parameter file does not hold a tree of arrays')
    # Orbax writes the tree as saved; some savers nest it under "params".
    if set(restored) == {'params'} and isinstance(restored['params'], dict):
        restored = restored['params']
    return restored


def load_checkpoint(path: str | Path, step: int | None = None) -> Checkpoint:
    """Read config, example batch, statistics and parameters of one step of an Octo checkpoint."""
    path = Path(path)
    if not path.is_dir():
        raise ExportError(f'{path}: not a directory')
    missing = [name for name in _REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ExportError(f'{path} is not an Octo checkpoint directory: missing {", ".join(missing)}')
    steps = available_steps(path)
    if not steps:
        raise ExportError(f'{path} is not an Octo checkpoint directory: no numbered step directory')
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise ExportError(f'{path}: no step {step}; available steps: {steps}')
    try:
        config = json.loads((path / 'config.json').read_text())
        statistics = json.loads((path / 'dataset_statistics.json').read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f'{path}: unreadable JSON: {exc}') from exc
    if 'model' not in config:
        raise ExportError(f'{path}/config.json has no "model" section: not an Octo checkpoint')
    try:
        example_batch = msgpack_restore((path / 'example_batch.msgpack').read_bytes())
        if 'tasks' in example_batch and 'task' not in example_batch:
            example_batch['task'] = example_batch.pop('tasks')
        params_path = _params_file(path / str(step))
        params = flatten(_param_tree(msgpack_restore(params_path.read_bytes()), params_path))
    except (ValueError, TypeError, KeyError) as exc:
        raise ExportError(f'{path}: unreadable msgpack data: {exc}') from exc
    if 'observation' not in example_batch:
        raise ExportError(f'{path}/example_batch.msgpack has no "observation": not an Octo example batch')
    params = {k: np.asarray(v) for k, v in params.items()}
    return Checkpoint(
        path=path,
        step=step,
        config=config,
        example_batch=example_batch,
        dataset_statistics=statistics,
        params=params,
    )
