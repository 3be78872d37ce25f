"""Microphone sources behind one interface: a sound card, a WAV replay and a synthetic signal."""

from __future__ import annotations

import abc
import importlib
import math
import os
import queue
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from fuse_core.acquisition import Source
from fuse_core.audio.config import AudioConfig
from fuse_core.errors import ConfigError, DeviceError, DeviceNotFoundError, SourceExhaustedError


@dataclass(frozen=True)
class AudioBlock:
    """Consecutive samples from a source, stamped with the capture time of the first."""

    samples: np.ndarray      # (frames, channels) float32, -1..1
    first_sample_index: int  # running index since the source opened; a jump means lost input
    capture_time_ns: int     # wall-clock capture time of samples[0]
    sample_rate: int
    overflow: bool = False   # input was lost just before this block

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def newest_time_ns(self) -> int:
        """Capture time of the last sample of the block."""
        return self.capture_time_ns + round((self.frames - 1) * 1e9 / self.sample_rate)

    def mono(self) -> np.ndarray:
        """(frames,) float32: the channel mean."""
        if self.channels == 1:
            return self.samples[:, 0]
        return self.samples.mean(axis=1, dtype=np.float32)


BlockListener = Callable[[AudioBlock], None]


class AudioSource(Source[AudioBlock]):
    """A source of AudioBlocks: pull them with read(), or be called back with each.

    ``on_block`` (optional) is called with every block on the thread that produces it (for a
    sound card, its audio callback), before read() returns it, so it must not block.
    """

    kind = ''
    item = 'chunk'

    def __init__(self, sample_rate: int, channels: int, block_size: int,
                 on_block: Optional[BlockListener] = None) -> None:
        self.sample_rate, self.channels, self.block_size = int(sample_rate), int(channels), int(block_size)
        self.on_block = on_block
        self.overflows = 0
        self.callback_errors = 0
        self.dropped_blocks = 0
        self.last_error = ''
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    @abc.abstractmethod
    def connect(self) -> None:
        """Start producing; raises DeviceNotFoundError/DeviceError when it cannot."""

    @abc.abstractmethod
    def read(self, timeout_s: Optional[float] = 1.0) -> Optional[AudioBlock]:
        """The next block, or None if none arrived within timeout_s.

        Raises DeviceError when the source has failed, SourceExhaustedError at the end of a
        non-looping file.
        """

    def describe(self) -> str:
        return f'{self.kind} audio source, {self.sample_rate} Hz x {self.channels} ch'

    def capture_stamps(self, item: AudioBlock) -> Tuple[int]:
        return (item.capture_time_ns,)

    @property
    def frames_skipped(self) -> int:
        return self.dropped_blocks

    def health(self) -> Dict[str, Any]:
        values: Dict[str, Any] = {'overflows': self.overflows, 'callback_errors': self.callback_errors,
                                  'dropped_blocks': self.dropped_blocks}
        if self.last_error:  # a failing audio callback says more than the reader's last error
            values['last_error'] = self.last_error
        return values

    def _deliver(self, block: AudioBlock) -> None:
        if self.on_block is not None:
            self.on_block(block)


class _PacedSource(AudioSource):
    """Produces blocks at the real sample rate: read() returns each when its last sample is due."""

    def __init__(self, *args, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clock, self._sleep = clock, sleep
        self._index = 0
        self._start_mono = 0.0
        self._start_wall_ns = 0

    def connect(self) -> None:
        self._prepare()
        self._index = 0
        self._start_mono = self._clock()
        self._start_wall_ns = time.time_ns()
        self._open = True

    def close(self) -> None:
        self._open = False

    def read(self, timeout_s: Optional[float] = 1.0) -> Optional[AudioBlock]:
        timeout_s = 1.0 if timeout_s is None else timeout_s
        if not self._open:
            raise DeviceError(f'{self.describe()}: read() before connect()')
        due = self._start_mono + (self._index + self.block_size) / self.sample_rate
        wait = due - self._clock()
        if wait > timeout_s:
            self._sleep(max(timeout_s, 0.0))
            return None
        if wait > 0:
            self._sleep(wait)
        samples = self._generate(self._index, self.block_size)
        block = AudioBlock(samples=samples, first_sample_index=self._index,
                           capture_time_ns=self._start_wall_ns + round(self._index * 1e9 / self.sample_rate),
                           sample_rate=self.sample_rate)
        self._index += samples.shape[0]
        self._deliver(block)
        return block

    def _prepare(self) -> None:
        """Load or initialise what _generate needs (called by connect)."""

    @abc.abstractmethod
    def _generate(self, start: int, n: int) -> np.ndarray:
        """n samples from running index start, (n, channels) float32."""


class SyntheticAudioSource(_PacedSource):
    """A deterministic test signal at the real rate: two tones, white noise and occasional taps.

    The same seed and block size give the same samples on every run. For tests and simulation
    only; it reports itself as synthetic.
    """

    kind = 'synthetic'

    def __init__(self, sample_rate: int = 44100, channels: int = 1, block_size: int = 441,
                 seed: int = 0, on_block: Optional[BlockListener] = None, **kwargs) -> None:
        super().__init__(sample_rate, channels, block_size, on_block=on_block, **kwargs)
        self.seed = int(seed)

    def _prepare(self) -> None:
        rng = np.random.default_rng(self.seed)
        nyquist = self.sample_rate / 2.0
        self._tone_hz = rng.uniform(0.01, 0.2, size=2) * nyquist
        self._tone_amp = rng.uniform(0.02, 0.1, size=2)
        self._noise_rng = np.random.default_rng([self.seed, 1])
        self._tap_rng = np.random.default_rng([self.seed, 2])
        self._next_tap = self._draw_tap_gap(0)
        self._taps: List[tuple] = []  # (start index, amplitude, ring frequency Hz)

    def _draw_tap_gap(self, after: int) -> int:
        return after + int(self._tap_rng.uniform(0.5, 2.0) * self.sample_rate)

    def _generate(self, start: int, n: int) -> np.ndarray:
        idx = np.arange(start, start + n, dtype=np.float64)
        t = idx / self.sample_rate
        y = np.zeros(n, dtype=np.float64)
        for hz, amp in zip(self._tone_hz, self._tone_amp):
            y += amp * np.sin(2.0 * np.pi * hz * t)
        y += 0.01 * self._noise_rng.standard_normal(n)
        while self._next_tap < start + n:
            self._taps.append((self._next_tap, self._tap_rng.uniform(0.3, 0.8),
                               self._tap_rng.uniform(1000.0, 5000.0)))
            self._next_tap = self._draw_tap_gap(self._next_tap)
        decay = 0.005 * self.sample_rate  # 5 ms ring-down
        live = []
        for tap_start, amp, hz in self._taps:
            since = idx - tap_start
            since = since[since >= 0]
            ring = np.sin(2.0 * np.pi * hz * since / self.sample_rate)
            y[n - since.size:] += amp * np.exp(-since / decay) * ring
            if start + n - tap_start < 10 * decay:
                live.append((tap_start, amp, hz))
        self._taps = live
        y = np.clip(y, -1.0, 1.0).astype(np.float32)
        return np.repeat(y[:, None], self.channels, axis=1)


def read_wav(path: str) -> tuple:
    """Read a WAV file: (samples (frames, channels) float32 in -1..1, sample_rate).

    Handles PCM 8/16/24/32-bit and IEEE float 32/64-bit, plain or WAVE_FORMAT_EXTENSIBLE.
    """
    if not os.path.isfile(path):
        raise DeviceNotFoundError(f'WAV file {path!r} does not exist')
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 12 or data[:4] != b'RIFF' or data[8:12] != b'WAVE':
        raise DeviceError(f'{path!r} is not a RIFF/WAVE file')
    fmt = None
    payload = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos:pos + 4], struct.unpack('<I', data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk_id == b'fmt ':
            fmt = body
        elif chunk_id == b'data':
            payload = body
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None or payload is None or len(fmt) < 16:
        raise DeviceError(f'{path!r}: WAV file lacks a fmt or data chunk')
    tag, channels, rate, _, block_align, bits = struct.unpack('<HHIIHH', fmt[:16])
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the GUID
        tag = struct.unpack('<H', fmt[24:26])[0]
    if channels < 1 or block_align != channels * bits // 8:
        raise DeviceError(f'{path!r}: inconsistent WAV header ({channels} ch, {bits} bits, '
                          f'block align {block_align})')
    frames = len(payload) // block_align
    raw = payload[:frames * block_align]
    if tag == 3 and bits in (32, 64):
        samples = np.frombuffer(raw, dtype=f'<f{bits // 8}').astype(np.float32)
    elif tag == 1 and bits == 8:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == 1 and bits in (16, 32):
        samples = np.frombuffer(raw, dtype=f'<i{bits // 8}').astype(np.float32) / float(2 ** (bits - 1))
    elif tag == 1 and bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        samples = ints.astype(np.float32) / float(1 << 23)
    else:
        raise DeviceError(f'{path!r}: unsupported WAV encoding (format tag {tag}, {bits} bits); '
                          'use PCM 8/16/24/32-bit or float 32/64-bit')
    return samples.reshape(frames, channels), int(rate)


class WavFileSource(_PacedSource):
    """Replays a WAV file in real time, in blocks, optionally looping."""

    kind = 'file'

    def __init__(self, path: str, sample_rate: int = 44100, channels: int = 1, block_size: int = 441,
                 loop: bool = True, on_block: Optional[BlockListener] = None, **kwargs) -> None:
        super().__init__(sample_rate, channels, block_size, on_block=on_block, **kwargs)
        self.path, self.loop = path, bool(loop)
        self._samples = np.zeros((0, channels), dtype=np.float32)

    def describe(self) -> str:
        return f'WAV replay of {self.path!r}, {self.sample_rate} Hz x {self.channels} ch'

    def _prepare(self) -> None:
        samples, rate = read_wav(self.path)
        if rate != self.sample_rate:
            raise ConfigError(f'WAV file {self.path!r} is {rate} Hz but parameter sample_rate = '
                              f'{self.sample_rate}; resample the file or change the parameter')
        if samples.shape[1] != self.channels:
            raise ConfigError(f'WAV file {self.path!r} has {samples.shape[1]} channel(s) but '
                              f'parameter channels = {self.channels}')
        if samples.shape[0] == 0:
            raise DeviceError(f'WAV file {self.path!r} holds no samples')
        self._samples = samples

    def _generate(self, start: int, n: int) -> np.ndarray:
        total = self._samples.shape[0]
        if not self.loop:
            if start >= total:
                raise SourceExhaustedError(f'{self.describe()}: end of file after {total} samples')
            return self._samples[start:start + n].copy()
        idx = np.arange(start, start + n) % total
        return self._samples[idx]


def _import_sounddevice():
    try:
        return importlib.import_module('sounddevice')
    except OSError as exc:  # the Python package is there but PortAudio is not
        raise DeviceNotFoundError(f'the PortAudio library could not be loaded ({exc}); install it '
                                  '(Debian/Ubuntu: apt install libportaudio2)') from exc
    except ImportError as exc:
        raise DeviceNotFoundError('the Python package sounddevice is not installed') from exc


class SoundDeviceSource(AudioSource):
    """A sound card input through sounddevice/PortAudio.

    The PortAudio callback only copies the block, stamps it and queues it (never blocking);
    overflow flags are counted, and an exception inside the callback is caught, counted and
    reported rather than silently stopping the stream. read() raises DeviceError when the
    stream has stopped or delivered nothing for stall_timeout_s, so a supervisor can reopen it.
    """

    kind = 'real'

    def __init__(self, device: str = '', sample_rate: int = 44100, channels: int = 1,
                 block_size: int = 441, on_block: Optional[BlockListener] = None,
                 stall_timeout_s: float = 2.0, max_queued_s: float = 2.0,
                 max_consecutive_callback_errors: int = 50) -> None:
        super().__init__(sample_rate, channels, block_size, on_block=on_block)
        self.device = device
        self.device_name = ''
        self.stall_timeout_s = float(stall_timeout_s)
        self.max_consecutive_callback_errors = int(max_consecutive_callback_errors)
        self._max_queued = max(2, int(math.ceil(max_queued_s * sample_rate / block_size)))
        self._queue: 'queue.SimpleQueue[AudioBlock]' = queue.SimpleQueue()
        self._stream = None
        self._finished = threading.Event()
        self._index = 0
        self._next_time_ns: Optional[int] = None
        self._next_adc: Optional[float] = None
        self._consecutive_errors = 0
        self._last_block_mono = 0.0

    def describe(self) -> str:
        name = self.device_name or self.device or 'default input'
        return f'sound card {name!r}, {self.sample_rate} Hz x {self.channels} ch'

    def _device_arg(self):
        d = str(self.device).strip()
        if not d:
            return None
        return int(d) if d.lstrip('-').isdigit() else d

    def _query(self, sd):
        try:
            return sd.query_devices(self._device_arg(), 'input')
        except Exception as exc:  # ValueError (no match) or PortAudioError (no default)
            try:
                names = [f'{i}: {d["name"]}' for i, d in enumerate(sd.query_devices())
                         if d.get('max_input_channels', 0) > 0]
            except Exception:
                names = []
            raise DeviceNotFoundError(
                f'audio input device {self.device or "(system default)"!r} not found ({exc}); '
                f'input devices: {names or "none"}') from exc

    def connect(self) -> None:
        sd = _import_sounddevice()
        try:
            info = self._query(sd)
        except DeviceNotFoundError:
            # PortAudio lists devices only when initialised: re-scan so a newly plugged
            # microphone is seen (safe here because this source has no stream open).
            terminate, initialize = getattr(sd, '_terminate', None), getattr(sd, '_initialize', None)
            if terminate is None or initialize is None:
                raise
            terminate()
            initialize()
            info = self._query(sd)
        self.device_name = str(info.get('name', self.device))
        if info.get('max_input_channels', 0) < self.channels:
            raise DeviceError(f'{self.describe()}: device has only {info.get("max_input_channels")} '
                              f'input channel(s), parameter channels = {self.channels}')
        self._queue = queue.SimpleQueue()
        self._finished.clear()
        self._index, self._next_time_ns, self._next_adc, self._consecutive_errors = 0, None, None, 0
        try:
            stream = sd.InputStream(samplerate=self.sample_rate, channels=self.channels,
                                    dtype='float32', blocksize=self.block_size,
                                    device=self._device_arg(), callback=self._callback,
                                    finished_callback=self._finished.set)
        except Exception as exc:  # PortAudioError: busy device, unsupported rate, ...
            raise DeviceError(f'{self.describe()}: cannot open input stream: {exc}') from exc
        if abs(float(stream.samplerate) - self.sample_rate) > 0.5:
            stream.close()
            raise DeviceError(f'{self.describe()}: device runs at {stream.samplerate} Hz, '
                              f'parameter sample_rate = {self.sample_rate}')
        try:
            stream.start()
        except Exception as exc:
            stream.close()
            raise DeviceError(f'{self.describe()}: cannot start input stream: {exc}') from exc
        self._stream = stream
        self._last_block_mono = time.monotonic()
        self._open = True

    def _capture_time_ns(self, frames: int, adc: float, current: float) -> int:
        """Wall-clock time of the block's first sample, never before the previous block's end."""
        now_ns = time.time_ns()
        latency = current - adc
        if adc > 0 and current > 0 and 0.0 <= latency < 1.0:
            estimate = now_ns - round(latency * 1e9)
        else:  # the host API gives no ADC time: the block ended about now
            estimate = now_ns - round(frames * 1e9 / self.sample_rate)
        if self._next_time_ns is not None and estimate < self._next_time_ns:
            estimate = self._next_time_ns
        return estimate

    def _callback(self, indata, frames, time_info, status) -> None:
        try:
            overflow = bool(getattr(status, 'input_overflow', False))
            adc = float(getattr(time_info, 'inputBufferAdcTime', 0.0) or 0.0)
            current = float(getattr(time_info, 'currentTime', 0.0) or 0.0)
            stamp = self._capture_time_ns(frames, adc, current)
            if overflow:
                self.overflows += 1
                if adc > 0 and self._next_adc is not None:
                    # The ADC clock runs on through lost input: its jump past the expected
                    # time of this block is the number of samples lost.
                    lost = int(round((adc - self._next_adc) * self.sample_rate))
                    self._index += max(lost, 0)
            self._next_adc = adc + frames / self.sample_rate if adc > 0 else None
            block = AudioBlock(samples=np.array(indata, dtype=np.float32, copy=True).reshape(frames, -1),
                               first_sample_index=self._index, capture_time_ns=stamp,
                               sample_rate=self.sample_rate, overflow=overflow)
            self._index += frames
            self._next_time_ns = stamp + round(frames * 1e9 / self.sample_rate)
            self._deliver(block)
            if self._queue.qsize() >= self._max_queued:
                try:  # the reader is behind: drop the oldest, keep latency bounded
                    self._queue.get_nowait()
                    self.dropped_blocks += 1
                except queue.Empty:
                    pass
            self._queue.put(block)
            self._consecutive_errors = 0
        except Exception as exc:  # an escaping exception would stop the stream silently
            self.callback_errors += 1
            self._consecutive_errors += 1
            self.last_error = f'audio callback failed: {type(exc).__name__}: {exc}'

    def read(self, timeout_s: Optional[float] = 1.0) -> Optional[AudioBlock]:
        timeout_s = 1.0 if timeout_s is None else timeout_s
        if not self._open:
            raise DeviceError(f'{self.describe()}: read() before connect()')
        try:
            block = self._queue.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            block = None
        if block is not None:
            self._last_block_mono = time.monotonic()
            return block
        if self._finished.is_set():
            raise DeviceError(f'{self.describe()}: input stream stopped (device unplugged?)')
        if self._consecutive_errors >= self.max_consecutive_callback_errors:
            raise DeviceError(f'{self.describe()}: {self._consecutive_errors} consecutive callback '
                              f'errors; last: {self.last_error}')
        silent = time.monotonic() - self._last_block_mono
        if silent > self.stall_timeout_s:
            raise DeviceError(f'{self.describe()}: no samples for {silent:.1f} s')
        return None

    def close(self) -> None:
        stream, self._stream = self._stream, None
        self._open = False
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()


def make_source(cfg: AudioConfig, on_block: Optional[BlockListener] = None) -> AudioSource:
    """The source cfg.source names, configured from cfg (not yet opened)."""
    common = dict(sample_rate=cfg.sample_rate, channels=cfg.channels, block_size=cfg.block_size,
                  on_block=on_block)
    if cfg.source == 'real':
        return SoundDeviceSource(device=cfg.device, stall_timeout_s=cfg.stall_timeout_s, **common)
    if cfg.source == 'file':
        return WavFileSource(cfg.file_path, loop=cfg.loop, **common)
    if cfg.source == 'synthetic':
        return SyntheticAudioSource(seed=cfg.seed, **common)
    raise ConfigError(f'AudioConfig: parameter \'source\' = {cfg.source!r} is not one of '
                      f'{["real", "file", "synthetic"]}')
