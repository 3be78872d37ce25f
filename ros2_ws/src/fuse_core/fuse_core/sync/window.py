"""Fixed-rate observation windows from per-stream sample buffers (causal, staleness-masked)."""

from __future__ import annotations

import functools
import itertools
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from fuse_core.errors import ConfigError
from fuse_core.sync.preprocess import Preprocessor, PreprocessError, TactileMinusBackground, make_preprocessor
from fuse_core.sync.ring_buffer import StampedRingBuffer

NS = 1_000_000_000


@dataclass(frozen=True)
class StreamSettings:
    """What the window builder needs to know about one configured stream."""

    name: str
    max_age_s: float
    buffer_s: float = 1.0      # time horizon of the stream's sample buffer
    capacity: int = 128        # and its size limit (memory bound)


@functools.lru_cache(maxsize=32)
def zero_step(dtype: str, shape: Tuple[int, ...]) -> np.ndarray:
    """The data of every invalid step of one (dtype, shape): zeros, read-only, allocated once."""
    zeros = np.zeros(shape, dtype=dtype)
    zeros.flags.writeable = False
    return zeros


class _Sample:
    """One received sample of one input: raw (lazy mode) or prepared, plus its cached final value.

    value_id names the value's bytes (see TensorWindow.sample_ids): a new value, after a
    background change or a re-sent sample, gets a new id.
    """

    __slots__ = ('raw', 'encoding', 'prepared', 'error', 'value', 'value_version', 'value_id')

    def __init__(self, raw: Optional[np.ndarray], encoding: str, prepared: Optional[np.ndarray]) -> None:
        self.raw, self.encoding, self.prepared = raw, encoding, prepared
        self.error = ''
        self.value: Optional[np.ndarray] = None
        self.value_version = -1
        self.value_id = 0


class InputChannel:
    """The samples of one model input, and how to turn them into its model-ready array."""

    def __init__(self, preprocessor: Preprocessor, settings: StreamSettings, eager: bool,
                 ids: Iterator[int]) -> None:
        self.pre = preprocessor
        self._ids = ids  # the builder's sample ids, shared by its channels
        self.settings = settings
        self.eager = eager
        self.max_age_ns = int(round(settings.max_age_s * NS))
        self.buffer: StampedRingBuffer[_Sample] = StampedRingBuffer(
            settings.capacity, int(round(settings.buffer_s * NS)))
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.pre.name

    def add(self, stamp_ns: int, image: np.ndarray, encoding: str) -> None:
        """Store one sample; eager mode preprocesses it now (raises PreprocessError if it can't).

        In lazy mode `image` is kept as given until first use, so the caller must not reuse
        its buffer (a received ROS message's data is never reused).
        """
        if self.eager:
            self.buffer.insert(stamp_ns, _Sample(None, encoding, self.pre.prepare(image, encoding)))
        else:
            self.buffer.insert(stamp_ns, _Sample(image, encoding, None))

    def value_of(self, sample: _Sample) -> Tuple[Optional[np.ndarray], int]:
        """(model-ready array, its id) of a sample, prepared at most once and cached; (None, 0) if unusable.

        The array is read-only: windows share it with the cache and with each other.
        """
        with self._lock:
            if sample.prepared is None and not sample.error:
                try:
                    sample.prepared = self.pre.prepare(sample.raw, sample.encoding)
                except PreprocessError as exc:
                    sample.error = str(exc)
                sample.raw = None
            if sample.prepared is None:
                return None, 0
            version = self.pre.version()
            if sample.value_version != version:
                value = self.pre.finish(sample.prepared)
                if value is not None:
                    value.flags.writeable = False
                sample.value, sample.value_version, sample.value_id = value, version, next(self._ids)
            return sample.value, (sample.value_id if sample.value is not None else 0)


@dataclass
class TensorWindow:
    """One model input over the window: W steps of one (dtype, shape) with validity, stamps and ids.

    steps[j] is the model-ready array of step j, shared (read-only) with the builder's cache
    and with later windows instead of copied every tick: zeros where the step is invalid, the
    oldest real step's array on padded steps. In a window as it travels (WindowSender.carried)
    a step whose data an earlier window carried is None; WindowReceiver fills it in again.
    sample_ids[j] names the bytes of step j (0 when invalid): one id is one sample's value in
    one builder, so an id seen before needs no second look at the data.
    """

    name: str
    dtype: np.dtype
    shape: Tuple[int, ...]
    steps: List[Optional[np.ndarray]]
    valid: List[bool]
    sample_stamps_ns: List[int]
    sample_ids: List[int]

    @functools.cached_property
    def array(self) -> np.ndarray:
        """The steps as one (W, *shape) array: a copy, made at first use."""
        missing = [j for j, step in enumerate(self.steps) if step is None]
        if missing:
            raise ValueError(f'tensor {self.name!r}: steps {missing} are not in this window '
                             '(a window as sent; rebuild it with WindowReceiver)')
        out = np.empty((len(self.steps), *self.shape), dtype=self.dtype)
        for j, step in enumerate(self.steps):
            out[j] = step
        return out


@dataclass
class Window:
    """Everything an ObservationWindow message carries, in plain numpy/int form."""

    tick_index: int
    stamp_ns: int
    step_stamps_ns: List[int]
    timestep_pad_mask: List[bool]
    tensors: List[TensorWindow]
    newest_sample_ns: int
    stale_streams: List[str]
    #: stream -> why it is masked at the newest step (e.g. 'no DIGIT background for digit_left').
    reasons: Dict[str, str] = field(default_factory=dict)

    @property
    def window_size(self) -> int:
        return len(self.step_stamps_ns)

    def tensor(self, name: str) -> TensorWindow:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass
class StreamStats:
    """Counters per stream for diagnostics."""

    samples: int = 0
    errors: int = 0
    last_error: str = ''
    stale_ticks: int = 0
    newest_stamp_ns: int = 0


class WindowBuilder:
    """Builds one Window per control tick from per-input sample buffers.

    On a tick at time t the window has W steps at tick spacing dt, oldest first:
    t-(W-1)*dt, ..., t. For each step and input it takes the latest sample stamped at or
    before the step time (never a later one: the window is causal). A sample older than its
    stream's max_age_s, a missing sample or a missing DIGIT background makes that step
    invalid for that input (data zero, valid false) instead of dropping the tick; streams
    invalid at the newest step are listed in stale_streams. Steps before the first tick
    since start or reset are padding (timestep_pad_mask false); they repeat the oldest real
    step's data, as Octo's training pipeline pads history, and are marked invalid.
    """

    def __init__(self, inputs: Iterable[Any], streams: Mapping[str, StreamSettings],
                 window_size: int, control_rate_hz: float, eager: bool = True) -> None:
        if int(window_size) < 1:
            raise ConfigError(f'window_size must be >= 1, got {window_size}')
        if not control_rate_hz > 0:
            raise ConfigError(f'control_rate_hz must be > 0, got {control_rate_hz}')
        self.window_size = int(window_size)
        self.control_rate_hz = float(control_rate_hz)
        self.dt_ns = int(round(NS / self.control_rate_hz))
        self.channels: List[InputChannel] = []
        self.by_stream: Dict[str, List[InputChannel]] = {}
        ids = itertools.count((secrets.randbits(30) << 32) + 1)
        for spec in inputs:
            pre = make_preprocessor(spec)
            if pre.stream not in streams:
                raise ConfigError(f'manifest input {pre.name!r} reads stream {pre.stream!r}, which is not '
                                  f'configured (configured streams: {sorted(streams)})')
            ch = InputChannel(pre, streams[pre.stream], eager, ids)
            self.channels.append(ch)
            self.by_stream.setdefault(pre.stream, []).append(ch)
        if not self.channels:
            raise ConfigError('the manifest lists no inputs')
        self.stream_names = sorted(self.by_stream)
        self.stats: Dict[str, StreamStats] = {s: StreamStats() for s in self.stream_names}
        self.tick_index = 0
        self.ticks_since_reset = 0
        self.masked_steps = 0
        self._tick_lock = threading.Lock()
        self._stats_lock = threading.Lock()

    # --- input -----------------------------------------------------------------------------
    def add_sample(self, stream: str, stamp_ns: int, image: np.ndarray, encoding: str) -> None:
        """Feed one sample of `stream` to every input reading it; raises PreprocessError.

        Safe to call from several threads at once (also for the same stream).
        """
        st = self.stats[stream]
        try:
            for ch in self.by_stream[stream]:
                ch.add(stamp_ns, image, encoding)
        except PreprocessError as exc:
            with self._stats_lock:
                st.errors += 1
                st.last_error = str(exc)
            raise
        with self._stats_lock:
            st.samples += 1
            st.newest_stamp_ns = max(st.newest_stamp_ns, int(stamp_ns))

    def set_background(self, stream: str, image: np.ndarray, encoding: str) -> bool:
        """Latch a DIGIT background for every tactile input of `stream`; False if it has none."""
        found = False
        for ch in self.by_stream.get(stream, ()):
            if isinstance(ch.pre, TactileMinusBackground):
                ch.pre.set_background(image, encoding)
                found = True
        return found

    def tactile_streams(self) -> List[str]:
        return sorted({ch.pre.stream for ch in self.channels if isinstance(ch.pre, TactileMinusBackground)})

    def reset(self) -> None:
        """Start a new episode: history before the next tick becomes padding again."""
        with self._tick_lock:
            self.ticks_since_reset = 0

    # --- ticks -----------------------------------------------------------------------------
    def step_stamps(self, t_ns: int) -> List[int]:
        w = self.window_size
        return [int(t_ns) - (w - 1 - j) * self.dt_ns for j in range(w)]

    def build(self, t_ns: int) -> Window:
        """The window for a tick at t_ns (node clock, nanoseconds)."""
        with self._tick_lock:
            self.ticks_since_reset += 1
            real_steps = min(self.ticks_since_reset, self.window_size)
            index = self.tick_index
            self.tick_index += 1
        w = self.window_size
        steps = self.step_stamps(t_ns)
        first_real = w - real_steps
        pad_mask = [j >= first_real for j in range(w)]
        tensors: List[TensorWindow] = []
        reasons: Dict[str, str] = {}
        newest = 0
        for ch in self.channels:
            pre = ch.pre
            dtype, shape = np.dtype(pre.dtype), tuple(int(d) for d in pre.shape)
            data: List[Optional[np.ndarray]] = [zero_step(dtype.str, shape)] * w
            valid = [False] * w
            stamps = [0] * w
            ids = [0] * w
            for j in range(first_real, w):
                value, stamp, reason, value_id = self._lookup(ch, steps[j])
                if value is None:
                    self.masked_steps += 1
                    if j == w - 1:
                        reasons.setdefault(pre.stream, reason)
                    continue
                data[j], valid[j], stamps[j], ids[j] = value, True, stamp, value_id
                newest = max(newest, stamp)
            data[:first_real] = [data[first_real]] * first_real
            tensors.append(TensorWindow(pre.name, dtype, shape, data, valid, stamps, ids))
        for stream, st in self.stats.items():
            if stream in reasons:
                st.stale_ticks += 1
        return Window(tick_index=index, stamp_ns=int(t_ns), step_stamps_ns=steps,
                      timestep_pad_mask=pad_mask, tensors=tensors, newest_sample_ns=newest,
                      stale_streams=sorted(reasons), reasons=reasons)

    def _lookup(self, ch: InputChannel, step_ns: int):
        found = ch.buffer.latest_at_or_before(step_ns)
        if found is None:
            return None, 0, f'no {ch.settings.name} sample at or before the step', 0
        stamp, sample = found
        age_ns = step_ns - stamp
        if age_ns > ch.max_age_ns:
            return None, stamp, (f'{ch.settings.name} is stale: newest sample {age_ns / NS:.3f} s old '
                                 f'(max_age_s {ch.settings.max_age_s})'), 0
        value, value_id = ch.value_of(sample)
        if value is None:
            return None, stamp, ch.pre.unavailable_reason() or sample.error or 'sample unusable', 0
        return value, stamp, '', value_id

    def preprocess_stats(self) -> Dict[str, Dict[str, float]]:
        """Per input: prepare calls and mean/last prepare time in milliseconds."""
        out = {}
        for ch in self.channels:
            p = ch.pre
            out[p.name] = {'calls': p.prepare_calls,
                           'mean_ms': 1e3 * p.prepare_seconds / p.prepare_calls if p.prepare_calls else 0.0,
                           'last_ms': 1e3 * p.last_prepare_s}
        return out


def stream_settings(max_age_s: Mapping[str, float], buffer_s: float = 1.0, capacity: int = 128
                    ) -> Dict[str, StreamSettings]:
    """StreamSettings for each stream named in `max_age_s`."""
    return {n: StreamSettings(n, float(age), buffer_s, capacity) for n, age in max_age_s.items()}
