"""Time synchronisation of sensor streams into fixed-rate observation windows for the policy."""

from fuse_core.sync.config import (DEFAULT_STREAMS, StreamConfig, SyncConfig, builder_from, check_streams,
                                   stream_config, stream_defaults)
from fuse_core.sync.preprocess import Preprocessor, PreprocessError, make_preprocessor
from fuse_core.sync.ring_buffer import StampedRingBuffer
from fuse_core.sync.window import StreamSettings, TensorWindow, Window, WindowBuilder, stream_settings
from fuse_core.sync.wire import WindowReceiver, WindowSender, WireError

__all__ = [
    'DEFAULT_STREAMS', 'PreprocessError', 'Preprocessor', 'StampedRingBuffer',
    'StreamConfig', 'StreamSettings', 'SyncConfig', 'TensorWindow', 'Window', 'WindowBuilder',
    'WindowReceiver', 'WindowSender', 'WireError', 'builder_from', 'check_streams', 'make_preprocessor',
    'stream_config', 'stream_defaults', 'stream_settings',
]
