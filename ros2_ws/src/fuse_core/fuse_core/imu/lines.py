"""Framing of NMEA-style ASCII lines ``$<body>*<checksum>\\r\\n`` shared by the text protocols."""

from __future__ import annotations

import abc
import math
import re
from typing import List, Optional, Sequence

from fuse_core.imu.sample import ImuParser, ImuSample

_HEX = b'0123456789ABCDEFabcdef'
# Strict decimal number: no 'nan', 'inf', underscores, hex or surrounding blanks.
_NUMBER = re.compile(r'[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z')
_INTEGER = re.compile(r'[+-]?\d+\Z')


def xor_checksum(body: bytes) -> int:
    """8-bit XOR of the bytes between '$' and '*' (NMEA)."""
    cs = 0
    for b in body:
        cs ^= b
    return cs


def crc16_ccitt(body: bytes) -> int:
    """CRC-16/CCITT (polynomial 0x1021, initial value 0, no reflection), as VectorNav uses."""
    crc = 0
    for b in body:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def parse_float(text: str) -> Optional[float]:
    """A finite float from a strict decimal field, else None."""
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_floats(fields: Sequence[str]) -> Optional[List[float]]:
    out = []
    for f in fields:
        v = parse_float(f)
        if v is None:
            return None
        out.append(v)
    return out


def parse_int(text: str) -> Optional[int]:
    return int(text) if _INTEGER.match(text) else None


class ChecksummedLineParser(ImuParser):
    """Frames ``$BODY*CS`` lines (CS = 2 hex digits XOR, or 4 hex digits CRC16 if allowed).

    A line is dropped whole (its bytes counted in ``resyncs``) when it is too long, has a bad
    checksum (``checksum_failures``) or bad contents (``malformed``); a '$' inside a line
    means the line was truncated, and parsing restarts there. Subclasses decode the
    comma-separated fields of the body.
    """

    max_line = 256
    allow_crc16 = False

    def __init__(self, max_buffer: int = 4096) -> None:
        super().__init__(max_buffer)
        self.malformed = 0

    def counters(self) -> dict:
        c = super().counters()
        c['malformed'] = self.malformed
        return c

    def _parse(self, out: List[ImuSample], stamp_ns: int) -> None:
        buf = self._buf
        while buf:
            if buf[0] != 0x24:  # '$'
                if not self._skip_to(0x24):
                    return
                continue
            end = buf.find(b'\n', 1, self.max_line + 1)
            restart = buf.find(b'$', 1, end if end >= 0 else self.max_line + 1)
            if restart >= 0:
                self._skip(restart)  # truncated line: a new one starts inside it
                continue
            if end < 0:
                if len(buf) > self.max_line:
                    self._skip(1)
                    continue
                return
            line = bytes(buf[1:end])
            sample, ok = self._check_line(line)
            if not ok:
                self._skip(end + 1)
                continue
            self._consume(end + 1)
            self.frames_ok += 1
            if sample is not None:
                out.append(sample.with_stamp(stamp_ns))

    def _check_line(self, line: bytes):
        """(sample or None, accepted) for the bytes between '$' and '\\n'."""
        if line.endswith(b'\r'):
            line = line[:-1]
        star = line.rfind(b'*')
        if star < 0:
            self.malformed += 1
            return None, False
        body, cs = line[:star], line[star + 1:]
        if not cs or any(c not in _HEX for c in cs):
            self.malformed += 1
            return None, False
        if len(cs) == 2:
            good = int(cs, 16) == xor_checksum(body)
        elif len(cs) == 4 and self.allow_crc16:
            good = int(cs, 16) == crc16_ccitt(body)
        else:
            self.malformed += 1
            return None, False
        if not good:
            self.checksum_failures += 1
            return None, False
        try:
            text = body.decode('ascii')
        except UnicodeDecodeError:
            self.malformed += 1
            return None, False
        fields = text.split(',')
        result = self._decode(fields)
        if result is False:
            self.malformed += 1
            return None, False
        return result, True

    @abc.abstractmethod
    def _decode(self, fields: List[str]):
        """An ImuSample, None (a valid line that carries no sample), or False (malformed)."""
        ...


def frame_line(body: str, crc16: bool = False) -> bytes:
    """``$body*CS\\r\\n`` with an XOR checksum (or a CRC16 one)."""
    raw = body.encode('ascii')
    cs = f'{crc16_ccitt(raw):04X}' if crc16 else f'{xor_checksum(raw):02X}'
    return b'$' + raw + b'*' + cs.encode('ascii') + b'\r\n'
