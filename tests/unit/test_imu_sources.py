"""IMU sources without hardware: pyserial loop://, pty pairs (in-process and across processes),
raw captures, the synthetic device, the reconnecting reader and the configuration."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import threading
import time
import tty
from pathlib import Path

import pytest
import yaml

from fuse_core.acquisition import BACKOFF_GROWTH_CAP, ReaderSettings, SensorReader
from fuse_core.config import from_mapping
from fuse_core.errors import ConfigError, DeviceError, DeviceNotFoundError, SourceExhaustedError
from fuse_core.imu import bno055
from fuse_core.imu.capture import CaptureWriter
from fuse_core.imu.config import ImuConfig
from fuse_core.imu.protocols import make_encoder
from fuse_core.imu.sample import CaptureStamper, ImuSample
from fuse_core.imu.sources import RawFileImuSource, SerialImuSource, SyntheticImuSource, make_source
from fuse_core.imu.synthetic import SyntheticImuModel

REPO = Path(__file__).resolve().parents[2]
IMU_YAML = REPO / 'ros2_ws/src/fuse_bringup/config/imu.yaml'


def wait_until(pred, timeout=10.0, period=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(period)
    return pred()


def close_to(a: ImuSample, b: ImuSample) -> bool:
    return all(abs(x - y) < 0.011 for x, y in zip(a.accel, b.accel)) and \
        all(abs(x - y) < 0.002 for x, y in zip(a.gyro, b.gyro))


def truth_and_bytes(protocol: str, n: int, seed: int = 0):
    truth = list(SyntheticImuModel(seed=seed).samples(n))
    enc = make_encoder(protocol)
    return truth, b''.join(enc(s) for s in truth)


def read_until(source, n, timeout=10.0):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += source.read()
    return out


def open_pty():
    """(master fd, slave path) with the slave in raw mode (no line editing of binary data)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    return master, slave, path


# --- serial: loop:// -------------------------------------------------------------------------
@pytest.mark.parametrize('protocol', ['witmotion', 'vectornav', 'csv'])
def test_loop_url_decodes_streamed_frames(protocol):
    truth, data = truth_and_bytes(protocol, 20)
    data += make_encoder(protocol)(truth[-1])  # completes WitMotion's learning cycle
    src = SerialImuSource('loop://', 2_000_000, protocol, read_timeout_s=0.05)
    with src:
        src.serial_port.write(data)
        t0 = time.time_ns()
        got = read_until(src, 20)
    assert src.serial_port is None  # closed by the context manager
    assert len(got) >= 20
    assert all(close_to(g, t) for g, t in zip(got, truth))
    stamps = [g.stamp_ns for g in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert abs(stamps[-1] - t0) < 5e9


def test_capture_path_records_what_was_read_and_replays_identically(tmp_path):
    truth, data = truth_and_bytes('csv', 30)
    cap = tmp_path / 'imu.imucap'
    with SerialImuSource('loop://', 2_000_000, 'csv', read_timeout_s=0.05, capture_path=str(cap)) as src:
        src.serial_port.write(data)
        live = read_until(src, 30)
    replay = RawFileImuSource(str(cap), 'csv', loop=False)
    replayed = []
    with replay:
        with pytest.raises(SourceExhaustedError, match='ended'):
            while True:
                replayed += replay.read()
    assert [s.accel for s in replayed] == [s.accel for s in live]
    assert len(replayed) == 30


def test_missing_port_raises_device_not_found_naming_it(tmp_path):
    port = str(tmp_path / 'ttyIMU_absent')
    with pytest.raises(DeviceNotFoundError, match='ttyIMU_absent'):
        SerialImuSource(port, 115200, 'csv').connect()


# --- serial: BNO055 host polling over a pty, answered by a device model ------------------------
class PtyDevice:
    """Serves a BNO055 device model on a pty master in a thread (the device's side of the wire)."""

    def __init__(self, model: bno055.Bno055DeviceModel, answer: bool = True) -> None:
        self.master, self.slave, self.path = open_pty()
        self.model, self.answer = model, answer
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self.master, 256)
            except OSError:
                return
            self.requests += 1
            if self.answer:
                os.write(self.master, self.model.handle(data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)


def test_bno055_init_and_polling_over_pty():
    model = SyntheticImuModel(seed=5)
    dev = PtyDevice(bno055.Bno055DeviceModel(model.next_sample))
    try:
        src = SerialImuSource(dev.path, 115200, 'bno055', rate_hz=100.0, read_timeout_s=0.2)
        with src:
            assert dev.model.registers[bno055.REG_UNIT_SEL] == bno055.UNIT_SEL_SI
            assert dev.model.registers[bno055.REG_OPR_MODE] == bno055.OPR_MODE_NDOF
            assert src.parser.acks == len(bno055.init_sequence())
            got = read_until(src, 10)
        truth = list(SyntheticImuModel(seed=5).samples(10))
        assert len(got) == 10
        assert all(close_to(g, t) for g, t in zip(got, truth))
        assert src.parser.device_errors == 0
    finally:
        dev.close()


def test_bno055_silent_device_fails_init_with_clear_error():
    dev = PtyDevice(bno055.Bno055DeviceModel(lambda: None), answer=False)
    try:
        src = SerialImuSource(dev.path, 115200, 'bno055', read_timeout_s=0.05)
        with pytest.raises(DeviceError, match='did not acknowledge'):
            src.connect()
        assert src.serial_port is None  # cleaned up after the failed connect
    finally:
        dev.close()


# --- serial: pty pair across processes -------------------------------------------------------
WRITER = textwrap.dedent('''
    import os, sys, time
    from fuse_core.imu.protocols import make_encoder
    from fuse_core.imu.synthetic import SyntheticImuModel
    fd, n = int(sys.argv[1]), int(sys.argv[2])
    enc = make_encoder('witmotion')
    model = SyntheticImuModel(seed=9)
    for s in model.samples(n):
        os.write(fd, enc(s))
        time.sleep(0.005)
    time.sleep(0.3)
''')


def test_pty_pair_across_processes_then_hangup_is_a_device_error():
    master, slave, path = open_pty()
    child = subprocess.Popen([sys.executable, '-c', WRITER, str(master), '60'], pass_fds=[master])
    os.close(master)  # only the writer process holds the master now
    src = SerialImuSource(path, 115200, 'witmotion', read_timeout_s=0.05)
    got = []
    try:
        src.connect()
        with pytest.raises(DeviceError, match='failed'):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got += src.read()
    finally:
        src.close()
        child.wait(10)
        os.close(slave)
    truth = list(SyntheticImuModel(seed=9).samples(60))
    # The writer's last cycle is emitted too (the packet set was learnt from the first).
    assert len(got) == 60
    assert all(close_to(g, t) for g, t in zip(got, truth))
    assert src.parser.checksum_failures == 0


# --- the reconnecting reader ------------------------------------------------------------------
class LineWriter:
    """Writes CSV IMU lines to a pty master at ~200 Hz from a thread until stopped."""

    def __init__(self, master: int) -> None:
        self.master = master
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        enc = make_encoder('csv')
        for s in SyntheticImuModel(seed=2).samples():
            if self._stop.is_set():
                return
            try:
                os.write(self.master, enc(s))
            except OSError:
                return
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def test_reader_waits_for_missing_port_and_recovers_after_unplug(tmp_path):
    link = tmp_path / 'ttyIMU'
    src = SerialImuSource(str(link), 115200, 'csv', read_timeout_s=0.05)
    got = []
    lock = threading.Lock()

    def on_samples(samples):
        with lock:
            got.extend(samples)

    reader = SensorReader(src, on_samples, ReaderSettings(0.05, 0.05 * BACKOFF_GROWTH_CAP))
    reader.start()
    ptys = []
    try:
        assert wait_until(lambda: reader.status()['failures'] >= 2)
        assert str(link) in reader.status()['last_error']
        assert not reader.connected

        # The device appears.
        master, slave, path = open_pty()
        ptys.append((master, slave))
        link.symlink_to(path)
        writer = LineWriter(master)
        assert wait_until(lambda: len(got) >= 20)
        assert reader.connected and reader.reconnects == 0

        # Unplugged: the reader notices and keeps retrying.
        writer.stop()
        os.close(master)
        assert wait_until(lambda: reader.state == 'backoff')
        failures = reader.status()['failures']

        # Plugged in again (a new pty behind the same link).
        master, slave2, path = open_pty()
        ptys.append((master, slave2))
        link.unlink()
        link.symlink_to(path)
        before = len(got)
        writer = LineWriter(master)
        assert wait_until(lambda: len(got) >= before + 20)
        assert reader.reconnects >= 1 and reader.status()['failures'] >= failures
        writer.stop()
    finally:
        reader.stop()
        for m, s in ptys:
            for fd in (m, s):
                try:
                    os.close(fd)
                except OSError:
                    pass
    stamps = [s.stamp_ns for s in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_reader_stops_at_the_end_of_a_non_looping_file(tmp_path):
    _, data = truth_and_bytes('vectornav', 10)
    f = tmp_path / 'imu.bin'
    f.write_bytes(data)
    got = []
    logs = []
    reader = SensorReader(RawFileImuSource(str(f), 'vectornav', byte_rate=1e6, loop=False), got.extend,
                          ReaderSettings(0.05, 0.05 * BACKOFF_GROWTH_CAP),
                          log=lambda level, msg: logs.append((level, msg)))
    reader.start()
    try:
        assert wait_until(lambda: reader.finished)
    finally:
        reader.stop()
    assert len(got) == 10
    # The end of the file is a state, not a failure: reported as finished, logged at info.
    status = reader.status()
    assert 'ended' in status['finished'] and 'ended' in reader.finished_reason
    assert status['failures'] == 0 and status['last_error'] == ''
    assert all(level == 'info' for level, _ in logs) and 'finished' in logs[-1][1]


# --- raw files ---------------------------------------------------------------------------------
def test_plain_byte_file_replays_at_byte_rate_and_loops(tmp_path):
    truth, data = truth_and_bytes('csv', 25)
    f = tmp_path / 'imu.bin'
    f.write_bytes(data)
    src = RawFileImuSource(str(f), 'csv', byte_rate=200_000, loop=True)
    with src:
        got = read_until(src, 60)
    assert len(got) >= 60
    assert all(close_to(g, t) for g, t in zip(got, truth + truth + truth))
    assert src.parser.checksum_failures == 0 and src.parser.resyncs == 0


def test_timed_capture_replays_in_original_timing(tmp_path):
    truth, _ = truth_and_bytes('witmotion', 21)
    enc = make_encoder('witmotion')
    cap = tmp_path / 'imu.imucap'
    with CaptureWriter(cap) as w:
        for i, s in enumerate(truth):
            w.write(1_000_000_000 + i * 10_000_000, enc(s))   # one cycle per 10 ms
    src = RawFileImuSource(str(cap), 'witmotion', loop=False)
    got = []
    t0 = time.monotonic()
    with src:
        with pytest.raises(SourceExhaustedError):
            while True:
                got += src.read()
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.2 * 0.95       # 20 gaps of 10 ms are waited out, never skipped
    assert len(got) == 21
    assert all(close_to(g, t) for g, t in zip(got, truth))


def test_missing_file_is_device_not_found(tmp_path):
    with pytest.raises(DeviceNotFoundError, match='nothing.bin'):
        RawFileImuSource(str(tmp_path / 'nothing.bin'), 'csv').connect()


# --- synthetic ---------------------------------------------------------------------------------
@pytest.mark.parametrize('protocol', ['bno055', 'witmotion', 'vectornav', 'csv'])
def test_synthetic_source_goes_through_the_parser(protocol):
    src = SyntheticImuSource(protocol, rate_hz=200.0, seed=4)
    assert src.synthetic and 'SYNTHETIC' in src.describe()
    with src:
        got = read_until(src, 40)
    assert len(got) >= 40 and src.parser.frames_ok >= 40
    for s in got:
        norm = sum(a * a for a in s.accel) ** 0.5
        assert 9.0 < norm < 10.6
        assert s.mag is not None and 20e-6 < sum(m * m for m in s.mag) ** 0.5 < 70e-6
        assert s.orientation is not None
    stamps = [s.stamp_ns for s in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_synthetic_is_deterministic_per_seed():
    a = [s.accel for s in SyntheticImuModel(seed=1).samples(50)]
    b = [s.accel for s in SyntheticImuModel(seed=1).samples(50)]
    c = [s.accel for s in SyntheticImuModel(seed=2).samples(50)]
    assert a == b and a != c


def test_synthetic_gyro_matches_the_orientation_change():
    model = SyntheticImuModel(rate_hz=200.0, seed=0, gyro_noise=0.0)
    samples = list(model.samples(3))
    # The yaw rate dominates: ~0.3 rad/s about the body's (nearly vertical) z axis.
    assert samples[1].gyro[2] == pytest.approx(0.3, abs=0.02)


# --- stamps --------------------------------------------------------------------------------------
def test_capture_stamper_spreads_a_burst_back_and_stays_monotonic():
    st = CaptureStamper(period_s=0.005, latency_s=0.001, clock_ns=lambda: 0)
    s = ImuSample(0, (0, 0, 0), (0, 0, 0))
    first = st.stamp([s, s, s], read_ns=1_000_000_000)
    assert [x.stamp_ns for x in first] == [989_000_000, 994_000_000, 999_000_000]
    # A read that returns "earlier" (clock step) never makes stamps go backwards.
    again = st.stamp([s, s], read_ns=990_000_000)
    assert [x.stamp_ns for x in again] == [999_000_001, 999_000_002]


# --- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs, name', [
    ({'protocol': 'nmea'}, 'protocol'),
    ({'source': 'camera'}, 'source'),
    ({'rate_hz': -200.0}, 'rate_hz'),
    ({'rate_hz': 0.0}, 'rate_hz'),
    ({'baud': 0}, 'baud'),
    ({'accel_variance': -1.0}, 'accel_variance'),
    ({'source': 'file'}, 'file_path'),
    ({'frame_id': ''}, 'frame_id'),
    ({'reconnect_backoff_s': 0.0}, 'reconnect_backoff_s'),
])
def test_bad_parameter_is_a_config_error_naming_it(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        ImuConfig(**kwargs)


def test_yaml_keys_are_exactly_the_config_fields():
    section = yaml.safe_load(IMU_YAML.read_text())['imu']['ros__parameters']
    cfg = from_mapping(ImuConfig, section)
    assert cfg.frame_id == 'imu_link' and cfg.rate_hz == 200.0
    import dataclasses
    # The file holds only what the robot changes (tests/unit/test_parameter_files.py); every key is a field.
    assert set(section) <= {f.name for f in dataclasses.fields(ImuConfig)}


def test_make_source_picks_the_configured_kind(tmp_path):
    assert isinstance(make_source(ImuConfig(source='synthetic', protocol='csv')), SyntheticImuSource)
    assert isinstance(make_source(ImuConfig(source='real', port='loop://')), SerialImuSource)
    f = tmp_path / 'x.bin'
    f.write_bytes(b'')
    assert isinstance(make_source(ImuConfig(source='file', file_path=str(f))), RawFileImuSource)


def test_core_imports_need_neither_pyserial_nor_rclpy():
    code = ('import sys\n'
            'import fuse_core.imu, fuse_core.imu.sources, fuse_core.acquisition, fuse_core.imu.config\n'
            'bad = [m for m in ("serial", "rclpy") if m in sys.modules]\n'
            'assert not bad, bad\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)
