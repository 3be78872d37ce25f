"""Export Octo/FuSe checkpoints to the project's ONNX model bundle (numpy + onnx, no JAX)."""

from .checkpoint import Checkpoint, load_checkpoint, msgpack_restore
from .errors import ExportError
from .export import FUSE_INPUTS, export_checkpoint

__all__ = [
    'Checkpoint',
    'ExportError',
    'FUSE_INPUTS',
    'export_checkpoint',
    'load_checkpoint',
    'msgpack_restore',
]
