"""IMU protocol parsers against byte vectors built by hand from each protocol's definition."""

from __future__ import annotations

import functools
import math
import operator

import pytest

from fuse_core.imu import bno055, csvline, lines, vectornav, witmotion
from fuse_core.imu.protocols import PROTOCOLS, make_encoder, make_parser
from fuse_core.imu.sample import quat_from_euler_zyx
from fuse_core.imu.synthetic import SyntheticImuModel

G = 9.80665


def xor(body: bytes) -> int:
    return functools.reduce(operator.xor, body, 0)


def approx3(values, expected, abs_tol=1e-9):
    assert values is not None
    assert len(values) == len(expected)
    for v, e in zip(values, expected):
        assert v == pytest.approx(e, abs=abs_tol)


def rotate(q, v):
    """R(q) v for a quaternion (x, y, z, w) (written out independently of the package)."""
    x, y, z, w = q
    r = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    return tuple(sum(r[i][j] * v[j] for j in range(3)) for i in range(3))


def check_invariant(parser):
    assert parser.bytes_in == parser.frame_bytes + parser.resyncs + parser.buffered


# --- BNO055 --------------------------------------------------------------------------------------
BNO_BLOCK = bytes.fromhex(
    'D5 03 9C FF 00 00'            # acc 981, -100, 0 -> 9.81, -1.00, 0 m/s^2
    '40 01 F0 FF 00 00'            # mag 320, -16, 0 -> 20 uT, -1 uT, 0
    '84 03 3E FE 00 00'            # gyro 900, -450, 0 -> 1.0, -0.5, 0 rad/s
    'A0 05 00 00 00 00'            # euler heading 1440 = 90 deg, roll 0, pitch 0
    '00 40 00 00 00 00 00 00'      # quaternion w = 16384 = 1.0, x = y = z = 0
    '00 00 00 00 00 00'            # linear acceleration
    '00 00 00 00 00 00'            # gravity vector
    '19')                          # temperature 25 C
BNO_FRAME = bytes([0xBB, 45]) + BNO_BLOCK


def test_bno055_block_is_45_bytes_from_acc_to_temp():
    assert len(BNO_BLOCK) == 45 == bno055.DATA_BLOCK_LEN
    assert bno055.poll_request() == bytes([0xAA, 0x01, 0x08, 45])


def test_bno055_known_response_in_si_units():
    p = bno055.Bno055Parser()
    (s,) = p.feed(BNO_FRAME, stamp_ns=7)
    approx3(s.accel, (9.81, -1.0, 0.0))
    approx3(s.gyro, (1.0, -0.5, 0.0))
    approx3(s.mag, (20e-6, -1e-6, 0.0), abs_tol=1e-12)
    approx3(s.orientation, (0.0, 0.0, 0.0, 1.0))
    assert s.temperature == 25.0 and s.stamp_ns == 7
    assert p.frames_ok == 1 and p.checksum_failures == 0 and p.resyncs == 0
    check_invariant(p)


def test_bno055_init_selects_rad_per_s_and_ndof():
    writes = [req for req, _ in bno055.init_sequence()]
    assert bytes([0xAA, 0x00, 0x3B, 0x01, 0x02]) in writes         # UNIT_SEL: gyro rad/s
    assert writes[0] == bytes([0xAA, 0x00, 0x3D, 0x01, 0x00])      # CONFIG mode first
    assert writes[-1] == bytes([0xAA, 0x00, 0x3D, 0x01, 0x0C])     # NDOF last


def test_bno055_status_responses_are_counted_not_raised():
    p = bno055.Bno055Parser()
    assert p.feed(bytes([0xEE, 0x01, 0xEE, 0x07, 0xEE, 0x02]) + BNO_FRAME)
    assert p.acks == 1 and p.device_errors == 2
    assert p.counters()['last_status'] == 'READ_FAIL'
    assert p.frames_ok == 4


def test_bno055_implausible_block_is_rejected_and_next_frame_recovered():
    bad = bytearray(BNO_FRAME)
    bad[2 + 24:2 + 26] = (100).to_bytes(2, 'little', signed=True)   # quaternion w = 100/16384
    p = bno055.Bno055Parser()
    out = p.feed(bytes(bad) + BNO_FRAME)
    assert len(out) == 1 and p.checksum_failures >= 1
    approx3(out[0].accel, (9.81, -1.0, 0.0))
    check_invariant(p)


def test_bno055_zero_quaternion_means_no_orientation():
    block = bytearray(BNO_BLOCK)
    block[24:32] = bytes(8)
    (s,) = bno055.Bno055Parser().feed(bytes([0xBB, 45]) + bytes(block))
    assert s.orientation is None


def test_bno055_truncated_frame_waits_then_completes():
    p = bno055.Bno055Parser()
    assert p.feed(BNO_FRAME[:20]) == []
    assert p.buffered == 20
    assert len(p.feed(BNO_FRAME[20:])) == 1


def test_bno055_truncated_frame_followed_by_full_frame():
    p = bno055.Bno055Parser()
    out = p.feed(BNO_FRAME[:30] + BNO_FRAME)
    assert len(out) == 1
    approx3(out[0].gyro, (1.0, -0.5, 0.0))


def test_bno055_device_model_answers_requests():
    model = SyntheticImuModel(seed=3)
    device = bno055.Bno055DeviceModel(model.next_sample)
    p = bno055.Bno055Parser()
    for req, _ in bno055.init_sequence():
        p.feed(device.handle(req))
    assert p.acks == len(bno055.init_sequence())
    assert device.registers[bno055.REG_UNIT_SEL] == bno055.UNIT_SEL_SI
    assert len(p.feed(device.handle(bno055.poll_request()))) == 1
    p.feed(device.handle(b'\x00'))
    assert p.counters()['last_status'] == 'WRONG_START_BYTE'


# --- WitMotion -----------------------------------------------------------------------------------
WIT_ACC = bytes.fromhex('55 51 00 08 00 F8 00 00 C4 09 73')    # 1 g, -1 g, 0; 25.00 C
WIT_GYRO = bytes.fromhex('55 52 00 40 00 C0 00 00 00 00 A7')   # 1000, -1000, 0 deg/s
WIT_MAG = bytes.fromhex('55 54 64 00 38 FF 2C 01 00 00 71')    # 100, -200, 300 counts
WIT_QUAT = bytes.fromhex('55 59 FF 7F 00 00 00 00 00 00 2C')   # w = 32767/32768
WIT_CYCLE = WIT_ACC + WIT_GYRO + WIT_MAG + WIT_QUAT


@pytest.mark.parametrize('packet', [WIT_ACC, WIT_GYRO, WIT_MAG, WIT_QUAT])
def test_witmotion_hand_checksums_match(packet):
    assert witmotion.checksum(packet[:10]) == packet[10]
    assert sum(packet[:10]) % 256 == packet[10]


def test_witmotion_known_cycle_in_si_units():
    p = witmotion.WitMotionParser(mag_tesla_per_count=0.15e-6)
    # The first cycle is emitted when the next one starts (the set of packet types is learnt).
    assert p.feed(WIT_CYCLE) == []
    (s,) = p.feed(WIT_ACC)
    approx3(s.accel, (G, -G, 0.0))
    approx3(s.gyro, (math.radians(1000), -math.radians(1000), 0.0))
    approx3(s.mag, (15e-6, -30e-6, 45e-6), abs_tol=1e-12)
    approx3(s.orientation, (0.0, 0.0, 0.0, 1.0))
    assert s.temperature == pytest.approx(25.0)
    # Once learnt, a cycle is emitted at its last packet: no extra latency.
    (s2,) = p.feed(WIT_GYRO + WIT_MAG + WIT_QUAT)
    approx3(s2.accel, (G, -G, 0.0))
    assert p.frames_ok == 8 and p.checksum_failures == 0
    check_invariant(p)


def test_witmotion_lost_packet_emits_incomplete_cycle_at_next_acc():
    p = witmotion.WitMotionParser()
    p.feed(WIT_CYCLE + WIT_CYCLE)                     # learnt: acc, gyro, mag, quat
    corrupt = bytearray(WIT_MAG)
    corrupt[4] ^= 0xFF
    assert p.feed(WIT_ACC + WIT_GYRO + bytes(corrupt) + WIT_QUAT) == []
    assert p.checksum_failures == 1
    (s,) = p.feed(WIT_ACC)
    assert s.mag is None and s.orientation is not None


def test_witmotion_cycle_without_gyro_is_dropped():
    p = witmotion.WitMotionParser()
    p.feed(WIT_CYCLE + WIT_CYCLE)
    assert p.feed(WIT_ACC + WIT_MAG + WIT_QUAT + WIT_ACC) == []
    assert p.incomplete_cycles == 1


def test_witmotion_angle_packet_gives_orientation_without_quaternion():
    # roll 0, pitch 0, yaw 16384 = 90 deg
    angle = witmotion.encode_packet(witmotion.TYPE_ANGLE, (0, 0, 16384, 0))
    p = witmotion.WitMotionParser()
    p.feed(WIT_ACC + WIT_GYRO + angle)
    (s,) = p.feed(WIT_ACC)
    approx3(s.orientation, quat_from_euler_zyx(math.pi / 2, 0, 0), abs_tol=1e-6)
    assert s.mag is None


def test_witmotion_checksum_failure_then_resync_on_garbage():
    p = witmotion.WitMotionParser()
    bad = bytearray(WIT_ACC)
    bad[10] ^= 0x01
    garbage = bytes([0x00, 0x13, 0x37]) * 7
    p.feed(bytes(bad) + garbage + WIT_CYCLE + WIT_ACC)
    assert p.checksum_failures == 1
    assert p.resyncs == len(WIT_ACC) + len(garbage)
    assert p.frames_ok == 5
    check_invariant(p)


def test_witmotion_split_anywhere_gives_the_same_samples():
    stream = WIT_CYCLE * 4
    whole = witmotion.WitMotionParser().feed(stream)
    for cut in range(1, len(stream)):
        p = witmotion.WitMotionParser()
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == whole


def test_witmotion_rejects_bad_mag_scale():
    with pytest.raises(ValueError, match='mag_tesla_per_count'):
        witmotion.WitMotionParser(mag_tesla_per_count=0.0)


# --- VectorNav -----------------------------------------------------------------------------------
VN_BODY = (b'VNYMR,+090.000,+000.000,+000.000,+1.0000,-0.5000,+2.0000,'
           b'+00.100,-00.200,-09.810,+0.010000,-0.020000,+0.030000')
VN_LINE = b'$' + VN_BODY + b'*' + f'{xor(VN_BODY):02X}'.encode() + b'\r\n'


def vn_line(yaw, pitch, roll):
    body = (f'VNYMR,{yaw:+08.3f},{pitch:+08.3f},{roll:+08.3f},+0.0000,+0.0000,+0.0000,'
            f'+00.000,+00.000,-09.807,+0.000000,+0.000000,+0.000000').encode()
    return b'$' + body + b'*' + f'{xor(body):02X}'.encode() + b'\r\n'


def test_vectornav_known_line_converted_to_flu_and_tesla():
    p = vectornav.VectorNavParser()
    (s,) = p.feed(VN_LINE)
    approx3(s.accel, (0.1, 0.2, 9.81))                  # FRD -> FLU: y and z negated
    approx3(s.gyro, (0.01, 0.02, -0.03))
    approx3(s.mag, (1e-4, 0.5e-4, -2e-4), abs_tol=1e-12)
    approx3(s.orientation, (0.0, 0.0, 0.0, 1.0), abs_tol=1e-9)   # nose east = ENU identity
    assert p.frames_ok == 1
    check_invariant(p)


C10, S10 = math.cos(math.radians(10)), math.sin(math.radians(10))
C20, S20 = math.cos(math.radians(20)), math.sin(math.radians(20))


@pytest.mark.parametrize('yaw, pitch, roll, axis, expected', [
    (0.0, 0.0, 0.0, (1, 0, 0), (0.0, 1.0, 0.0)),          # nose north
    (90.0, 10.0, 0.0, (1, 0, 0), (C10, 0.0, S10)),        # nose east and 10 deg up
    (90.0, 0.0, 20.0, (0, 1, 0), (0.0, C20, S20)),        # right wing down: left wing (north) up
    (180.0, 0.0, 0.0, (1, 0, 0), (0.0, -1.0, 0.0)),       # nose south
])
def test_vectornav_orientation_means_the_same_physical_attitude(yaw, pitch, roll, axis, expected):
    (s,) = vectornav.VectorNavParser().feed(vn_line(yaw, pitch, roll))
    approx3(rotate(s.orientation, axis), expected, abs_tol=1e-9)
    # At rest the accelerometer reads +g on the body's up axis (FRD z = -9.807).
    approx3(s.accel, (0.0, 0.0, 9.807))


def test_vectornav_crc16_variant():
    assert lines.crc16_ccitt(b'123456789') == 0x31C3            # CRC-16/XMODEM check value
    line = b'$' + VN_BODY + b'*' + f'{lines.crc16_ccitt(VN_BODY):04X}'.encode() + b'\r\n'
    p = vectornav.VectorNavParser()
    assert len(p.feed(line)) == 1
    wrong = b'$' + VN_BODY + b'*' + f'{lines.crc16_ccitt(VN_BODY) ^ 1:04X}'.encode() + b'\r\n'
    assert p.feed(wrong) == [] and p.checksum_failures == 1


def test_vectornav_bad_checksum_counted_and_next_line_recovered():
    bad = VN_LINE.replace(b'+1.0000', b'+1.0001')
    p = vectornav.VectorNavParser()
    out = p.feed(bad + b'\x00garbage\xff' + VN_LINE)
    assert len(out) == 1 and p.checksum_failures == 1
    check_invariant(p)


def test_vectornav_other_register_lines_are_valid_but_yield_nothing():
    body = b'VNRRG,01,VN-100T'
    p = vectornav.VectorNavParser()
    assert p.feed(b'$' + body + b'*' + f'{xor(body):02X}'.encode() + b'\r\n') == []
    assert p.frames_ok == 1 and p.malformed == 0


def test_vectornav_truncated_line_then_full_line():
    p = vectornav.VectorNavParser()
    out = p.feed(VN_LINE[:40] + VN_LINE)
    assert len(out) == 1
    assert p.resyncs == 40


@pytest.mark.parametrize('body', [
    b'VNYMR,+090.000,+000.000',                                   # too few fields
    VN_BODY.replace(b'+1.0000', b'nan'),                          # not finite
    VN_BODY.replace(b'+1.0000', b'inf'),
    VN_BODY.replace(b'+1.0000', b'1_0'),                          # Python-only number syntax
    VN_BODY + b',+1.0',                                           # too many fields
])
def test_vectornav_malformed_lines_rejected(body):
    p = vectornav.VectorNavParser()
    assert p.feed(b'$' + body + b'*' + f'{xor(body):02X}'.encode() + b'\r\n') == []
    assert p.malformed == 1 and p.frames_ok == 0


# --- CSV -----------------------------------------------------------------------------------------
CSV_BODY = b'IMU,123456,0.1,-0.2,9.81,0.01,0.02,-0.03,2e-5,-1e-5,4.5e-5'
CSV_LINE = b'$' + CSV_BODY + b'*' + f'{xor(CSV_BODY):02X}'.encode() + b'\n'


def csv_line(body: bytes, crlf: bool = False) -> bytes:
    return b'$' + body + b'*' + f'{xor(body):02X}'.encode() + (b'\r\n' if crlf else b'\n')


def test_csv_known_line():
    p = csvline.CsvLineParser()
    (s,) = p.feed(CSV_LINE)
    approx3(s.accel, (0.1, -0.2, 9.81))
    approx3(s.gyro, (0.01, 0.02, -0.03))
    approx3(s.mag, (2e-5, -1e-5, 4.5e-5), abs_tol=1e-15)
    assert s.orientation is None and s.device_time_us == 123456


def test_csv_line_with_quaternion_is_normalised():
    (s,) = csvline.CsvLineParser().feed(csv_line(CSV_BODY + b',0,0,2,0', crlf=True))
    approx3(s.orientation, (0.0, 0.0, 1.0, 0.0))


@pytest.mark.parametrize('body', [
    CSV_BODY.rsplit(b',', 1)[0],                       # 10 fields
    CSV_BODY + b',1',                                  # 12 fields
    CSV_BODY.replace(b'9.81', b'nan'),
    CSV_BODY.replace(b'9.81', b'-inf'),
    CSV_BODY.replace(b'9.81', b'1e999'),               # overflows to inf
    CSV_BODY.replace(b'9.81', b''),
    CSV_BODY.replace(b'123456', b'-5'),                # negative device time
    CSV_BODY.replace(b'123456', b'12.5'),
    CSV_BODY.replace(b'IMU', b'GPS'),
    CSV_BODY + b',0,0,0,0',                            # zero quaternion
])
def test_csv_rejects_bad_lines(body):
    p = csvline.CsvLineParser()
    assert p.feed(csv_line(body) + CSV_LINE) != []     # the good line behind it still parses
    assert p.malformed == 1 and p.frames_ok == 1
    check_invariant(p)


def test_csv_checksum_failure_and_missing_star():
    p = csvline.CsvLineParser()
    wrong = b'$' + CSV_BODY + b'*' + f'{xor(CSV_BODY) ^ 0x10:02X}'.encode() + b'\n'
    assert p.feed(wrong + b'$' + CSV_BODY + b'\n' + CSV_LINE) != []
    assert p.checksum_failures == 1 and p.malformed == 1 and p.frames_ok == 1


def test_csv_buffer_is_bounded_without_newlines():
    p = csvline.CsvLineParser(max_buffer=1024)
    for _ in range(100):
        p.feed(b'$' + b'1' * 999)
        assert p.buffered <= 1024
    assert p.feed(CSV_LINE) != []
    check_invariant(p)


# --- every protocol ------------------------------------------------------------------------------
@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_encoder_round_trip_is_within_quantisation(protocol):
    model = SyntheticImuModel(seed=11)
    truth = list(model.samples(30))
    enc, parser = make_encoder(protocol), make_parser(protocol)
    out = parser.feed(b''.join(enc(s) for s in truth) + enc(truth[-1]))
    assert len(out) >= 30
    for got, want in zip(out, truth):
        approx3(got.accel, want.accel, abs_tol=0.01)     # BNO055: 0.01 m/s^2 per LSB
        approx3(got.gyro, want.gyro, abs_tol=0.002)
        approx3(got.mag, want.mag, abs_tol=0.2e-6)
        dot = abs(sum(a * b for a, b in zip(got.orientation, want.orientation)))
        assert dot == pytest.approx(1.0, abs=1e-6)
    assert parser.checksum_failures == 0 and parser.resyncs == 0


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_reset_drops_partial_frame(protocol):
    enc, parser = make_encoder(protocol), make_parser(protocol)
    frame = enc(SyntheticImuModel(seed=1).next_sample())
    parser.feed(frame[:5])
    parser.reset()
    assert parser.buffered == 0 and parser.resyncs == 5
    check_invariant(parser)
