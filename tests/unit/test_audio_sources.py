"""Audio sources: synthetic determinism, WAV replay and the sounddevice source against a fake module."""

import struct
import sys
import types
import wave

import numpy as np
import pytest

from fuse_core.audio.config import AudioConfig
from fuse_core.audio.sources import (SoundDeviceSource, SyntheticAudioSource, WavFileSource,
                                     make_source, read_wav)
from fuse_core.errors import ConfigError, DeviceError, DeviceNotFoundError, SourceExhaustedError


class FakeClock:
    """Monotonic time that only moves when the source sleeps: real-time pacing without waiting."""

    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def paced(cls, *args, **kwargs):
    clock = FakeClock()
    return cls(*args, clock=clock, sleep=clock.sleep, **kwargs), clock


# --- synthetic ------------------------------------------------------------------------------
def read_n(src, n):
    return [src.read(timeout_s=1.0) for _ in range(n)]


def test_synthetic_is_deterministic_per_seed():
    a, _ = paced(SyntheticAudioSource, seed=3)
    b, _ = paced(SyntheticAudioSource, seed=3)
    c, _ = paced(SyntheticAudioSource, seed=4)
    with a, b, c:
        sa = np.concatenate([blk.samples for blk in read_n(a, 300)])
        sb = np.concatenate([blk.samples for blk in read_n(b, 300)])
        sc = np.concatenate([blk.samples for blk in read_n(c, 300)])
    np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(sa, sc)
    assert sa.dtype == np.float32 and sa.shape == (300 * 441, 1)
    assert np.abs(sa).max() <= 1.0 and sa.std() > 0.01
    # Taps (0.5-2 s apart) stand out well above the tones and noise within 3 s.
    assert np.abs(sa).max() > 0.3


def test_synthetic_runs_at_the_real_rate_with_consecutive_indices_and_stamps():
    src, clock = paced(SyntheticAudioSource, sample_rate=44100, block_size=441, seed=0)
    with src:
        t0 = clock.now
        blocks = read_n(src, 100)
    assert clock.now - t0 == pytest.approx(1.0, abs=1e-9)  # 100 blocks of 10 ms
    assert [b.first_sample_index for b in blocks] == [441 * i for i in range(100)]
    stamps = np.array([b.capture_time_ns for b in blocks])
    np.testing.assert_allclose(np.diff(stamps), 10_000_000, atol=1)
    assert all(b.frames == 441 and b.channels == 1 and not b.overflow for b in blocks)


def test_paced_read_returns_none_when_the_block_is_not_due_within_timeout():
    src, clock = paced(SyntheticAudioSource, block_size=44100)  # 1 s blocks
    with src:
        assert src.read(timeout_s=0.2) is None
        assert clock.now == pytest.approx(100.2)
        assert src.read(timeout_s=2.0).frames == 44100


def test_on_block_listener_sees_every_block_before_read_returns_it():
    seen = []
    src, _ = paced(SyntheticAudioSource, on_block=seen.append)
    with src:
        blocks = read_n(src, 5)
    assert seen == blocks


def test_synthetic_channels_repeat_the_signal():
    src, _ = paced(SyntheticAudioSource, channels=2)
    with src:
        blk = src.read()
    assert blk.samples.shape == (441, 2)
    np.testing.assert_array_equal(blk.samples[:, 0], blk.samples[:, 1])
    np.testing.assert_array_equal(blk.mono(), blk.samples[:, 0])


# --- WAV ------------------------------------------------------------------------------------
def write_pcm16(path, samples, rate=44100):
    ints = np.clip(np.round(samples * 32767), -32768, 32767).astype('<i2')
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(samples.shape[1] if samples.ndim == 2 else 1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(ints.tobytes())


def write_float32(path, samples, rate=44100):
    channels = samples.shape[1]
    payload = samples.astype('<f4').tobytes()
    fmt = struct.pack('<HHIIHH', 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
    body = b'WAVE' + b'fmt ' + struct.pack('<I', len(fmt)) + fmt
    body += b'LIST' + struct.pack('<I', 3) + b'abc\x00'  # odd-sized chunk: tests the word padding
    body += b'data' + struct.pack('<I', len(payload)) + payload
    path.write_bytes(b'RIFF' + struct.pack('<I', len(body)) + body)


def test_read_wav_pcm16_and_float(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.9, 0.9, size=(1000, 2)).astype(np.float32)
    write_pcm16(tmp_path / 'a.wav', x)
    write_float32(tmp_path / 'b.wav', x)
    pcm, rate = read_wav(str(tmp_path / 'a.wav'))
    flt, _ = read_wav(str(tmp_path / 'b.wav'))
    assert rate == 44100 and pcm.shape == (1000, 2)
    np.testing.assert_allclose(pcm, x, atol=2 / 32768)  # rounding + the 32767/32768 scale
    np.testing.assert_array_equal(flt, x)


def test_wav_replay_in_blocks_then_loops(tmp_path):
    x = (np.arange(1000) / 1000.0).astype(np.float32)[:, None]
    write_float32(tmp_path / 'r.wav', x)
    src, clock = paced(WavFileSource, str(tmp_path / 'r.wav'), block_size=400, loop=True)
    with src:
        got = np.concatenate([b.samples for b in read_n(src, 5)])
    np.testing.assert_array_equal(got[:1000], x)
    np.testing.assert_array_equal(got[1000:2000], x)  # wrapped to the start
    assert clock.now - 100.0 == pytest.approx(2000 / 44100)


def test_wav_without_loop_ends_with_source_exhausted(tmp_path):
    write_pcm16(tmp_path / 'r.wav', np.zeros((500, 1)))
    src, _ = paced(WavFileSource, str(tmp_path / 'r.wav'), block_size=400, loop=False)
    with src:
        assert src.read().frames == 400
        assert src.read().frames == 100  # the short tail is still delivered
        with pytest.raises(SourceExhaustedError):
            src.read()


def test_wav_errors_name_the_problem(tmp_path):
    with pytest.raises(DeviceNotFoundError, match='does not exist'):
        WavFileSource(str(tmp_path / 'missing.wav')).connect()
    write_pcm16(tmp_path / 'r.wav', np.zeros((10, 1)), rate=16000)
    with pytest.raises(ConfigError, match='sample_rate'):
        WavFileSource(str(tmp_path / 'r.wav')).connect()
    write_pcm16(tmp_path / 's.wav', np.zeros((10, 2)))
    with pytest.raises(ConfigError, match='channels'):
        WavFileSource(str(tmp_path / 's.wav'), channels=1).connect()
    (tmp_path / 'x.wav').write_bytes(b'not a wav file at all')
    with pytest.raises(DeviceError, match='RIFF'):
        WavFileSource(str(tmp_path / 'x.wav')).connect()


# --- sounddevice (faked) --------------------------------------------------------------------
class FakeStatus:
    def __init__(self, input_overflow=False):
        self.input_overflow = input_overflow


class FakeInputStream:
    def __init__(self, module, **kwargs):
        self.kwargs = kwargs
        self.samplerate = module.actual_rate or kwargs['samplerate']
        self.callback = kwargs['callback']
        self.finished_callback = kwargs['finished_callback']
        self.started = self.closed = False
        module.streams.append(self)

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def feed(self, samples, adc=0.0, current=0.0, overflow=False):
        """Call the callback the way PortAudio does (it lets exceptions stop the stream)."""
        info = types.SimpleNamespace(inputBufferAdcTime=adc, currentTime=current)
        self.callback(samples, len(samples), info, FakeStatus(overflow))


def fake_sounddevice(devices=({'name': 'USB Mic', 'max_input_channels': 1},), actual_rate=None):
    mod = types.ModuleType('sounddevice')
    mod.devices = list(devices)
    mod.streams = []
    mod.actual_rate = actual_rate
    mod.rescans = 0

    def query_devices(device=None, kind=None):
        inputs = [d for d in mod.devices if d['max_input_channels'] > 0]
        if kind is None:
            return mod.devices
        if device is None:
            if not inputs:
                raise RuntimeError('Error querying device -1')
            return inputs[0]
        if isinstance(device, int):
            if device < len(mod.devices):
                return mod.devices[device]
            raise ValueError(f'device {device} out of range')
        matches = [d for d in inputs if device.lower() in d['name'].lower()]
        if not matches:
            raise ValueError(f'No input device matching {device!r}')
        return matches[0]

    def _terminate():
        mod.rescans += 1

    mod.query_devices = query_devices
    mod.InputStream = lambda **kw: FakeInputStream(mod, **kw)
    mod._terminate, mod._initialize = _terminate, lambda: None
    return mod


@pytest.fixture
def sd(monkeypatch):
    mod = fake_sounddevice()
    monkeypatch.setitem(sys.modules, 'sounddevice', mod)
    return mod


def block(n=441, value=0.25, channels=1):
    return np.full((n, channels), value, dtype=np.float32)


def test_opens_an_input_stream_with_the_configured_settings(sd):
    src = SoundDeviceSource(device='usb', sample_rate=44100, block_size=441)
    with src:
        (stream,) = sd.streams
        assert stream.started
        kw = stream.kwargs
        assert (kw['samplerate'], kw['channels'], kw['blocksize'], kw['dtype'], kw['device']) == \
            (44100, 1, 441, 'float32', 'usb')
        assert src.device_name == 'USB Mic'
    assert stream.closed


def test_device_index_is_passed_as_int(sd):
    with SoundDeviceSource(device='0'):
        assert sd.streams[0].kwargs['device'] == 0


def test_blocks_carry_indices_stamps_and_overflow_flags(sd):
    src = SoundDeviceSource(block_size=441)
    with src:
        stream = sd.streams[0]
        stream.feed(block(value=0.1), adc=10.0, current=10.02)
        stream.feed(block(value=0.2), adc=10.01, current=10.03)
        stream.feed(block(value=0.3), adc=10.05, current=10.06, overflow=True)  # 30 ms lost
        stream.feed(block(value=0.4))  # no ADC time from this host API
        blocks = [src.read(0.1) for _ in range(4)]
    assert [b.samples[0, 0] for b in blocks] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert [b.overflow for b in blocks] == [False, False, True, False]
    assert src.overflows == 1
    # The lost 30 ms (1323 samples) show as a jump in the running index.
    assert [b.first_sample_index for b in blocks[:3]] == [0, 441, 441 * 2 + 1323]
    stamps = [b.capture_time_ns for b in blocks]
    assert stamps[1] - stamps[0] == pytest.approx(10_000_000, abs=2_000_000)
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_callback_exception_is_counted_and_the_stream_keeps_going(sd):
    def listener(blk):
        if blk.samples[0, 0] < 0:
            raise RuntimeError('listener broke')

    src = SoundDeviceSource(on_block=listener)
    with src:
        stream = sd.streams[0]
        stream.feed(block(value=-1.0))             # the listener raises
        stream.feed(block(value=0.5))
        assert src.callback_errors == 1
        assert 'listener broke' in src.last_error
        assert src.read(0.1).samples[0, 0] == pytest.approx(0.5)


def test_repeated_callback_errors_make_read_raise(sd):
    src = SoundDeviceSource(max_consecutive_callback_errors=3, on_block=lambda b: 1 / 0)
    with src:
        for _ in range(3):
            sd.streams[0].feed(block())
        with pytest.raises(DeviceError, match='consecutive callback errors'):
            src.read(0.01)
    assert src.callback_errors == 3


def test_a_stopped_stream_makes_read_raise(sd):
    src = SoundDeviceSource()
    with src:
        sd.streams[0].finished_callback()
        with pytest.raises(DeviceError, match='stopped'):
            src.read(0.01)


def test_a_silent_device_is_a_stall(sd):
    src = SoundDeviceSource(stall_timeout_s=0.05)
    with src:
        assert src.read(0.01) is None
        with pytest.raises(DeviceError, match='no samples'):
            src.read(0.1)


def test_queue_is_bounded_and_drops_the_oldest(sd):
    src = SoundDeviceSource(sample_rate=1000, block_size=100, max_queued_s=0.5)  # 5 blocks
    with src:
        for i in range(8):
            sd.streams[0].feed(block(n=100, value=i / 10))
        first = src.read(0.01)
    assert src.dropped_blocks == 3
    assert first.samples[0, 0] == pytest.approx(0.3)


def test_missing_device_is_device_not_found_listing_inputs(sd):
    with pytest.raises(DeviceNotFoundError, match="'Blue Yeti' not found.*USB Mic"):
        SoundDeviceSource(device='Blue Yeti').connect()
    assert sd.rescans == 1  # PortAudio was re-initialised to look for a new device


def test_device_that_appears_after_a_rescan_is_opened(sd):
    sd.devices = []

    def plug_in():
        sd.devices.append({'name': 'Late Mic', 'max_input_channels': 2})

    sd._initialize = plug_in
    with SoundDeviceSource(device='late') as src:
        assert src.device_name == 'Late Mic'


def test_no_default_input_device(monkeypatch):
    monkeypatch.setitem(sys.modules, 'sounddevice', fake_sounddevice(devices=()))
    with pytest.raises(DeviceNotFoundError, match='system default'):
        SoundDeviceSource().connect()


def test_missing_portaudio_is_device_not_found(monkeypatch):
    class Loader:
        def find_spec(self, name, path=None, target=None):
            if name == 'sounddevice':
                raise OSError('PortAudio library not found')
            return None

    monkeypatch.delitem(sys.modules, 'sounddevice', raising=False)
    monkeypatch.setattr(sys, 'meta_path', [Loader()] + sys.meta_path)
    with pytest.raises(DeviceNotFoundError, match='libportaudio2'):
        SoundDeviceSource().connect()


def test_device_with_too_few_channels_or_wrong_rate(sd):
    with pytest.raises(DeviceError, match='input channel'):
        SoundDeviceSource(channels=2).connect()
    sd.actual_rate = 48000
    with pytest.raises(DeviceError, match='48000'):
        SoundDeviceSource().connect()
    assert sd.streams[-1].closed


# --- factory --------------------------------------------------------------------------------
def test_make_source_picks_the_configured_kind(tmp_path, sd):
    assert isinstance(make_source(AudioConfig(source='synthetic')), SyntheticAudioSource)
    assert isinstance(make_source(AudioConfig(source='real', device='usb')), SoundDeviceSource)
    src = make_source(AudioConfig(source='file', file_path=str(tmp_path / 'a.wav'), loop=False))
    assert isinstance(src, WavFileSource) and src.loop is False
