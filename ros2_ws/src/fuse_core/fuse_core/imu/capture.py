"""Timed raw-byte captures of a serial IMU (``.imucap``): what was read, and when.

Layout: the 8-byte magic ``FIMUCAP1``, then records ``<int64 t_ns><uint32 n><n bytes>``
(little-endian), t_ns the wall-clock time the chunk was read. Any other file is treated by
the file source as plain bytes without timing.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Tuple

from fuse_core.errors import SourceExhaustedError

MAGIC = b'FIMUCAP1'
_RECORD = struct.Struct('<qI')
#: A single read never returns more than this; a larger length means a corrupt file.
MAX_CHUNK = 1 << 20


def is_capture(path: Path) -> bool:
    with open(path, 'rb') as f:
        return f.read(len(MAGIC)) == MAGIC


class CaptureWriter:
    """Appends timed chunks to a capture file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._f: Optional[BinaryIO] = open(self.path, 'wb')
        self._f.write(MAGIC)

    def write(self, t_ns: int, data: bytes) -> None:
        if self._f is not None and data:
            self._f.write(_RECORD.pack(int(t_ns), len(data)))
            self._f.write(data)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> 'CaptureWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(f: BinaryIO) -> Iterator[Tuple[int, bytes]]:
    """(t_ns, bytes) records of an open capture positioned after the magic.

    A truncated last record (a capture cut off by a crash) ends the iteration; a record
    claiming an impossible size raises SourceExhaustedError naming the offset.
    """
    while True:
        head = f.read(_RECORD.size)
        if len(head) < _RECORD.size:
            return
        t_ns, n = _RECORD.unpack(head)
        if n > MAX_CHUNK:
            raise SourceExhaustedError(f'capture {getattr(f, "name", "?")}: corrupt record of {n} '
                                       f'bytes at offset {f.tell() - _RECORD.size}')
        data = f.read(n)
        if len(data) < n:
            return
        yield t_ns, data
