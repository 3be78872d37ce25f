"""The imu node in its own process: values, frames, stamps and rate over DDS; missing port; bad config."""

from __future__ import annotations

import math
import os
import threading
import time
import tty

import pytest

from support.ros_harness import ProbeNode, wait_for

RATE_HZ = 200.0
MEASURE_S = 5.0


class Listener(ProbeNode):
    """Test-side node collecting /imu/data, /imu/mag and the imu node's diagnostics."""

    def __init__(self, context):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Imu, MagneticField

        from fuse_nodes.common import SENSOR_QOS
        super().__init__(context, 'imu_test_listener')
        self.imu, self.mag, self.status = [], [], []
        self.node.create_subscription(Imu, '/imu/data', lambda m: self.imu.append((time.time_ns(), m)),
                                      SENSOR_QOS)
        self.node.create_subscription(MagneticField, '/imu/mag', lambda m: self.mag.append(m), SENSOR_QOS)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._diag, 10)

    def _diag(self, msg):
        for st in msg.status:
            if st.name.startswith('imu:'):
                values = {kv.key: kv.value for kv in st.values}
                values['_stamp_ns'] = stamp_ns(msg)
                values['_received'] = len(self.imu)
                self.status.append((st.level[0] if isinstance(st.level, bytes) else st.level, st.message,
                                    values))


def stamp_ns(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.integration
def test_synthetic_imu_publishes_plausible_si_data_at_200_hz(launch_node, rclpy_context):
    proc = launch_node('fuse_nodes.imu_node', 'imu',
                       params={'source': 'synthetic', 'protocol': 'witmotion', 'rate_hz': RATE_HZ,
                               'accel_variance': 0.0004})
    lis = Listener(rclpy_context)
    try:
        assert wait_for(lambda: len(lis.imu) > 20 and lis.mag, 15.0, lis.spin), proc.log()
        # Measure between two diagnostics messages: the node reports how many samples it
        # published (its own count) and when (header stamp), so losses on the way are visible.
        lis.status.clear()
        assert wait_for(lambda: lis.status, 5.0, lis.spin)
        first = lis.status[-1][2]
        lis.spin_for(MEASURE_S)
        n = len(lis.status)
        assert wait_for(lambda: len(lis.status) > n, 5.0, lis.spin)
        last = lis.status[-1][2]
        received = lis.imu[first['_received']:last['_received']]
    finally:
        lis.close()
    assert proc.alive(), proc.log()

    msgs = [m for _, m in received]
    stamps = [stamp_ns(m) for m in msgs]
    assert all(m.header.frame_id == 'imu_link' for m in msgs)
    assert all(b > a for a, b in zip(stamps, stamps[1:])), 'stamps must increase'
    # Stamp = capture time: close to when the test received it (generous: shared 2-core machine).
    lags = sorted((rx - stamp_ns(m)) / 1e9 for rx, m in received)
    assert -0.05 < lags[len(lags) // 2] < 0.2, lags[len(lags) // 2]

    for m in msgs:
        a = m.linear_acceleration
        assert 9.0 < math.sqrt(a.x ** 2 + a.y ** 2 + a.z ** 2) < 10.6
        q = m.orientation
        assert math.sqrt(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2) == pytest.approx(1.0, abs=1e-3)
        assert m.orientation_covariance[0] == 0.0          # provided, variance unknown
        assert m.linear_acceleration_covariance[0] == pytest.approx(0.0004)
        assert abs(m.angular_velocity.z) < 1.0
    field = lis.mag[-1].magnetic_field
    assert 20e-6 < math.sqrt(field.x ** 2 + field.y ** 2 + field.z ** 2) < 70e-6   # tesla, not uT/gauss
    assert lis.mag[-1].header.frame_id == 'imu_link'

    # Publication rate: the node's own sample count between two diagnostics, over their stamps.
    published = int(last['samples']) - int(first['samples'])
    published_hz = published / ((last['_stamp_ns'] - first['_stamp_ns']) / 1e9)
    # Delivery: best effort may drop some; count it honestly against what was published.
    span_s = (stamps[-1] - stamps[0]) / 1e9
    delivered_hz = (len(stamps) - 1) / span_s
    lost = published - len(stamps)
    print(f'imu: published {published} ({published_hz:.1f} Hz by diagnostics stamps), received '
          f'{len(stamps)} over {span_s:.2f} s of capture stamps = {delivered_hz:.1f} Hz, '
          f'lost ~{lost} ({lost / max(1, published):.1%})')
    assert span_s > MEASURE_S * 0.8
    assert RATE_HZ * 0.9 <= published_hz <= RATE_HZ * 1.1
    assert abs(lost) <= 0.05 * published, f'{lost} of {published} messages lost'
    assert RATE_HZ * 0.9 <= delivered_hz <= RATE_HZ * 1.1
    level, message, values = lis.status[-1]
    assert 'SYNTHETIC' in message
    assert RATE_HZ * 0.9 <= float(values['rate_hz']) <= RATE_HZ * 1.1
    assert int(values['checksum_failures']) == 0 and int(values['frames_ok']) > 0


@pytest.mark.integration
def test_missing_port_is_reported_and_the_node_recovers_when_it_appears(launch_node, rclpy_context, tmp_path):
    link = tmp_path / 'ttyIMU'
    proc = launch_node('fuse_nodes.imu_node', 'imu',
                       params={'source': 'real', 'protocol': 'csv', 'port': str(link),
                               'reconnect_backoff_s': 0.2})
    lis = Listener(rclpy_context)
    master = slave = None
    stop = threading.Event()
    writer = None
    try:
        assert wait_for(lambda: lis.status, 15.0, lis.spin), proc.log()
        level, message, values = lis.status[-1]
        assert level == 2 and str(link) in values['last_error'], (message, values)
        assert proc.alive()

        master, slave = os.openpty()
        tty.setraw(slave)
        link.symlink_to(os.ttyname(slave))

        def write_lines():
            from fuse_core.imu.protocols import make_encoder
            from fuse_core.imu.synthetic import SyntheticImuModel
            enc = make_encoder('csv')
            for s in SyntheticImuModel(seed=3).samples():
                if stop.is_set():
                    return
                os.write(master, enc(s))
                time.sleep(0.005)

        writer = threading.Thread(target=write_lines, daemon=True)
        writer.start()
        assert wait_for(lambda: len(lis.imu) > 50, 15.0, lis.spin), proc.log()
        lis.status.clear()
        assert wait_for(lambda: lis.status and lis.status[-1][0] == 0, 5.0, lis.spin), lis.status
        assert 'does not exist' in proc.log()            # the error was logged, not only diagnosed
    finally:
        stop.set()
        if writer is not None:
            writer.join(2)
        lis.close()
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
    _, m = lis.imu[-1]
    assert m.orientation_covariance[0] == 0.0


@pytest.mark.integration
def test_unknown_protocol_fails_at_start_naming_the_parameter(launch_node):
    proc = launch_node('fuse_nodes.imu_node', 'imu', params={'protocol': 'nmea0183'})
    assert proc.proc.wait(20) == 2
    log = proc.log()
    assert 'protocol' in log and 'nmea0183' in log
