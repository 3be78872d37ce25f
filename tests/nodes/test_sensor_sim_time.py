"""Every sensor node under use_sim_time: its stamps follow a /clock set far from wall time."""

from __future__ import annotations

import time

import pytest

from support.ros_harness import make_probe, wait_for

NS = 1_000_000_000
#: The simulated clock starts here (about 11.6 days after the epoch): decades from wall time.
SIM_START_NS = 1_000_000 * NS
#: How far a stamp may be from the simulated time at which it was received (a loaded machine).
MARGIN_S = 2.0

# node module, node name, parameters, [(topic, message type)]
SENSORS = {
    'camera': ('fuse_nodes.camera_node', 'camera',
               {'source': 'synthetic', 'image_width': 160, 'image_height': 120, 'framerate': 15.0},
               [('/camera/image_raw', 'sensor_msgs.msg.Image')]),
    'digit': ('fuse_nodes.digit_node', 'digit',
              {'source': 'synthetic', 'resolution': 'QVGA', 'framerate': 30,
               'capture_background_on_start': False},
              [('/digit/image_raw', 'sensor_msgs.msg.Image')]),
    'audio': ('fuse_nodes.audio_node', 'audio', {'source': 'synthetic'},
              [('/audio/chunk', 'fuse_interfaces.msg.AudioChunk'),
               ('/audio/mel_spectrogram', 'sensor_msgs.msg.Image')]),
    'imu': ('fuse_nodes.imu_node', 'imu', {'source': 'synthetic', 'protocol': 'witmotion', 'rate_hz': 50.0},
            [('/imu/data', 'sensor_msgs.msg.Imu'), ('/imu/mag', 'sensor_msgs.msg.MagneticField')]),
}


def _msg_type(dotted):
    import importlib
    module, name = dotted.rsplit('.', 1)
    return getattr(importlib.import_module(module), name)


class SimClock:
    """Publishes /clock from SIM_START_NS, advancing with the test's monotonic clock."""

    def __init__(self, node):
        from rosgraph_msgs.msg import Clock

        from fuse_nodes.common import ns_to_time
        self._msg, self._to_time = Clock, ns_to_time
        self._t0 = time.monotonic_ns()
        self._pub = node.create_publisher(Clock, '/clock', 10)
        node.create_timer(0.02, self.publish)

    def now_ns(self) -> int:
        return SIM_START_NS + time.monotonic_ns() - self._t0

    def publish(self):
        self._pub.publish(self._msg(clock=self._to_time(self.now_ns())))


@pytest.mark.integration
@pytest.mark.parametrize('sensor', sorted(SENSORS))
def test_sensor_stamps_follow_the_simulated_clock(sensor, launch_node, rclpy_context):
    from fuse_nodes.common import SENSOR_QOS, time_to_ns
    module, name, params, topics = SENSORS[sensor]
    proc = launch_node(module, name, params={**params, 'use_sim_time': True})
    node, executor, spin = make_probe(rclpy_context, f'{sensor}_sim_clock', 0.02)
    clock = SimClock(node)
    # topic -> [(stamp, simulated time at receipt, wall time at receipt)]
    got = {topic: [] for topic, _ in topics}
    for topic, dotted in topics:
        node.create_subscription(
            _msg_type(dotted), topic,
            lambda msg, t=topic: got[t].append((time_to_ns(msg.header.stamp), clock.now_ns(), time.time_ns())),
            SENSOR_QOS)
    try:
        # Before the node's first /clock message its clock reads zero; from then on it follows.
        following = lambda t: [g for g in got[t] if abs(g[0] - g[1]) < MARGIN_S * NS]  # noqa: E731
        assert wait_for(lambda: all(len(following(t)) >= 5 for t in got), 30.0, spin), \
            ({t: got[t][-3:] for t in got}, proc.log())
        first = {t: len(got[t]) for t in got}
        assert wait_for(lambda: all(len(got[t]) >= first[t] + 5 for t in got), 10.0, spin)
    finally:
        executor.shutdown()
        node.destroy_node()
    assert proc.alive(), proc.log()
    for topic in got:
        later = got[topic][first[topic]:]
        for stamp, sim_ns, wall_ns in later:
            assert abs(stamp - sim_ns) < MARGIN_S * NS, (topic, stamp, sim_ns)
            assert abs(stamp - wall_ns) > 1e6 * NS, (topic, 'stamped with wall time')
        stamps = [s for s, _, _ in later]
        assert all(b >= a for a, b in zip(stamps, stamps[1:])), (topic, 'stamps went backwards')
