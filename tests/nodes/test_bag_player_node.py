"""The bag player node in its own process: replays a bag the test wrote (rate, loop, /clock, errors)."""

from __future__ import annotations

import time

import pytest

from support.ros_harness import make_test_node, wait_for

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = 1_700_000_000 * S
IMU_HZ = 100
BAG_S = 2.0


def write_bag(path):
    """2 s: IMU at 100 Hz, 320x240 images at 10 Hz, one latched background; stamps = log times."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image, Imu

    from fuse_core.bag import BagWriter, QosProfile
    sensor = QosProfile(depth=5, reliability='best_effort')
    latched = QosProfile(depth=1, durability='transient_local')
    with BagWriter(path) as w:
        w.add_topic('/imu/data', 'sensor_msgs/msg/Imu', [sensor])
        w.add_topic('/camera_primary/image_raw', 'sensor_msgs/msg/Image', [sensor])
        w.add_topic('/digit_left/background', 'sensor_msgs/msg/Image', [latched])
        bg = Image(height=2, width=2, encoding='bgr8', step=6, data=bytes(12))
        bg.header.stamp.sec = T0 // S
        w.write('/digit_left/background', serialize_message(bg), T0)
        for i in range(int(BAG_S * IMU_HZ)):
            t = T0 + i * S // IMU_HZ
            m = Imu()
            m.header.stamp.sec, m.header.stamp.nanosec = t // S, t % S
            m.header.frame_id = 'imu_link'
            m.angular_velocity.x = float(i)
            w.write('/imu/data', serialize_message(m), t)
            if i % 10 == 0:
                img = Image(height=240, width=320, encoding='bgr8', step=960, data=bytes(240 * 960))
                img.header.stamp = m.header.stamp
                w.write('/camera_primary/image_raw', serialize_message(img), t)
    return path


class Received:
    def __init__(self, node):
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image, Imu

        from fuse_nodes.common import LATCHED_QOS, SENSOR_QOS, time_to_ns
        self.imu, self.images, self.backgrounds, self.clock = [], [], [], []
        node.create_subscription(
            Imu, '/imu/data', lambda m: self.imu.append(
                (time.time_ns(), time_to_ns(m.header.stamp), m.angular_velocity.x, type(m))),
            SENSOR_QOS)
        node.create_subscription(
            Image, '/camera_primary/image_raw',
            lambda m: self.images.append((time.time_ns(), m.width, m.height)), SENSOR_QOS)
        node.create_subscription(Image, '/digit_left/background',
                                 lambda m: self.backgrounds.append(m), LATCHED_QOS)
        node.create_subscription(Clock, '/clock',
                                 lambda m: self.clock.append(time_to_ns(m.clock)), 10)


@pytest.fixture
def player(rclpy_context, launch_node, tmp_path):
    """Plays a write_bag() bag with bag_path and `params`: (process, test node, its executor, Received)."""
    def _start(**params):
        bag = write_bag(tmp_path / 'bag')
        node, ex = make_test_node(rclpy_context, 'player_test')
        got = Received(node)
        p = launch_node('fuse_nodes.bag_player_node', 'bag_player', params={'bag_path': str(bag), **params})
        return p, node, ex, got
    return _start


def spin_until(executor, pred, timeout):
    return wait_for(pred, timeout=timeout, spin=lambda: executor.spin_once(timeout_sec=0.02))


def test_replays_types_at_recorded_rate_restamped_to_wall_time(player):
    from sensor_msgs.msg import Imu
    p, node, ex, got = player(start_paused=True)
    # Start once the test's subscriptions are matched, so the whole bag is seen.
    assert spin_until(ex, lambda: node.count_publishers('/imu/data') > 0, 20), p.log()
    spin_until(ex, lambda: False, 1.0)
    call_set_paused(node, ex, False)
    assert spin_until(ex, lambda: not p.alive(), 15), 'player did not finish: ' + p.log()
    assert p.proc.returncode == 0, p.log()
    assert 'end of bag' in p.log()

    imu = got.imu
    assert len(imu) >= 0.9 * BAG_S * IMU_HZ
    assert all(t is Imu for *_, t in imu)
    span_s = (imu[-1][0] - imu[0][0]) / S
    index_span = imu[-1][2] - imu[0][2]
    rate = index_span / span_s
    assert rate == pytest.approx(IMU_HZ, rel=0.10)
    # restamp (default): header stamps are "now", not the 2023 stamps in the bag.
    lag_ms = sorted((recv - stamp) / 1e6 for recv, stamp, *_ in imu)
    assert -50 < lag_ms[len(lag_ms) // 2] < 200
    assert [s for _, s, *_ in imu] == sorted(s for _, s, *_ in imu)
    assert len(got.images) >= 18 and got.images[0][1:] == (320, 240)
    assert len(got.backgrounds) == 1
    assert got.clock == []  # publish_clock is off by default


def call_set_paused(node, ex, paused):
    from std_srvs.srv import SetBool
    cli = node.create_client(SetBool, '/bag_player/set_paused')
    assert spin_until(ex, cli.service_is_ready, 10)
    fut = cli.call_async(SetBool.Request(data=paused))
    assert spin_until(ex, fut.done, 10)
    return fut.result()


def test_start_paused_waits_and_loop_restarts_with_increasing_stamps(player):
    p, node, ex, got = player(loop=True, rate=2.0, start_paused=True)
    assert spin_until(ex, lambda: node.count_publishers('/imu/data') > 0, 20), p.log()
    spin_until(ex, lambda: False, 1.0)
    assert got.imu == []  # paused
    assert call_set_paused(node, ex, False).success
    # Two passes of a 2 s bag at rate 2 take ~2 s; wait for the third pass to begin.
    assert spin_until(ex, lambda: sum(1 for *_, x, _t in got.imu if x == 0.0) >= 3, 15), p.log()
    assert p.alive()
    values = [x for *_, x, _t in got.imu]
    assert values.count(0.0) >= 3  # the first message came again: it looped
    stamps = [s for _, s, *_ in got.imu]
    assert stamps == sorted(stamps)  # restamped: time never goes back at the loop boundary
    # rate 2.0: one pass of 200 messages in ~1 s.
    starts = [i for i, v in enumerate(values) if v == 0.0]
    one_pass = got.imu[starts[1]:starts[2]]
    pass_s = (one_pass[-1][0] - one_pass[0][0]) / S
    assert pass_s == pytest.approx(BAG_S / 2.0, rel=0.10)
    assert p.stop() == 0, p.log()


def test_publishes_clock_with_bag_time_that_continues_across_loops(player):
    p, node, ex, got = player(loop=True, rate=2.0, restamp=False, publish_clock=True)
    assert spin_until(ex, lambda: got.clock and got.clock[-1] > T0 + int(2.5 * S), 20), p.log()
    assert got.clock == sorted(got.clock)
    assert got.clock[0] >= T0
    # Messages of the second pass carry the bag stamps shifted by one loop span.
    second_pass = [s for _, s, x, _t in got.imu if s > T0 + int(BAG_S * S)]
    assert second_pass and all(s < got.clock[-1] + S for s in second_pass)
    first_pass = [s for _, s, *_ in got.imu if s < T0 + int(BAG_S * S)]
    assert all(T0 <= s for s in first_pass)
    assert p.stop() == 0, p.log()


def test_corrupt_bag_makes_the_node_exit_with_the_reason(launch_node, tmp_path):
    bag = write_bag(tmp_path / 'bag')
    f = bag / 'bag_0.mcap'
    f.write_bytes(f.read_bytes()[:-300])
    p = launch_node('fuse_nodes.bag_player_node', 'bag_player', params={'bag_path': str(bag)})
    assert p.proc.wait(20) != 0
    log = p.log()
    assert 'bag_0.mcap' in log and 'truncated or corrupt' in log


def test_corrupt_bag_found_during_playback_exits_non_zero(launch_node, tmp_path):
    """verify_on_start false: the damage is found while playing; the node exits, not idles."""
    bag = write_bag(tmp_path / 'bag')
    f = bag / 'bag_0.mcap'
    data = bytearray(f.read_bytes())
    start, end = len(data) // 5, len(data) // 2
    data[start:end] = (bytes(range(251, 0, -1)) * (1 + (end - start) // 251))[:end - start]  # summary intact
    f.write_bytes(bytes(data))
    p = launch_node('fuse_nodes.bag_player_node', 'bag_player',
                    params={'bag_path': str(bag), 'verify_on_start': False})
    assert p.proc.wait(30) == 1, p.log()
    log = p.log()
    assert 'playback stopped' in log and 'exiting' in log


def test_missing_required_topic_makes_the_node_exit_naming_it(launch_node, tmp_path):
    bag = write_bag(tmp_path / 'bag')
    p = launch_node('fuse_nodes.bag_player_node', 'bag_player',
                    params={'bag_path': str(bag),
                            'required_topics': ['/imu/data', '/audio/mel_spectrogram']})
    assert p.proc.wait(20) != 0
    assert "['/audio/mel_spectrogram'] not in the bag" in p.log()


def test_missing_bag_makes_the_node_exit_naming_it(launch_node, tmp_path):
    p = launch_node('fuse_nodes.bag_player_node', 'bag_player',
                    params={'bag_path': str(tmp_path / 'nothing_here')})
    assert p.proc.wait(20) != 0
    assert 'nothing_here' in p.log() and 'no such bag' in p.log()


def test_plays_the_shipped_recording_with_the_simulation_config(rclpy_context, launch_node):
    from pathlib import Path

    from diagnostic_msgs.msg import DiagnosticArray
    config = (Path(__file__).resolve().parents[2] / 'ros2_ws' / 'src' / 'fuse_bringup' / 'config'
              / 'bag_player.yaml')
    node, ex = make_test_node(rclpy_context, 'player_test')
    got = Received(node)
    diags = []
    node.create_subscription(DiagnosticArray, '/diagnostics',
                             lambda m: diags.extend(s for s in m.status
                                                    if s.name.startswith('bag_player')), 10)
    # bag_path empty in the YAML: the shipped recording; all sensor topics required.
    p = launch_node('fuse_nodes.bag_player_node', 'bag_player', params_files=[config])
    assert spin_until(ex, lambda: len(got.imu) > 50 and got.backgrounds and got.images, 20), \
        p.log()
    assert 'sim_synthetic' in p.log()
    assert spin_until(ex, lambda: len(diags) > 0, 5)
    values = {kv.key: kv.value for kv in diags[-1].values}
    assert values['time_model'] == 'restamp to wall time' and 'lag_p50_ms' in values
    assert p.stop() == 0, p.log()
