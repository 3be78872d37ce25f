"""The recorder node in its own process: records what the test publishes into a readable bag."""

from __future__ import annotations

import time

import pytest

from support.ros_harness import make_test_node, spin_for, wait_for

pytestmark = pytest.mark.integration


def test_records_published_topics_and_closes_a_readable_bag_on_ctrl_c(
        rclpy_context, launch_node, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image, Imu

    from fuse_core.bag import BagReader
    from fuse_nodes.common import LATCHED_QOS, SENSOR_QOS, STATE_QOS
    node, ex = make_test_node(rclpy_context, 'recorder_test')
    imu_pub = node.create_publisher(Imu, '/imu/data', STATE_QOS)
    img_pub = node.create_publisher(Image, '/camera_primary/image_raw', SENSOR_QOS)
    bg_pub = node.create_publisher(Image, '/digit_left/background', LATCHED_QOS)
    # Published before the recorder exists: only a transient-local subscription gets it.
    bg = Image(height=4, width=4, encoding='bgr8', step=12, data=bytes(range(48)))
    bg.header.frame_id = 'digit_left_frame'
    bg_pub.publish(bg)
    diags = []
    node.create_subscription(DiagnosticArray, '/diagnostics',
                             lambda m: diags.extend(s for s in m.status
                                                    if s.name.startswith('recorder')), 10)

    bag = tmp_path / 'rec'
    topics = ['/imu/data', '/camera_primary/image_raw', '/digit_left/background', '/never/published']
    rec = launch_node('fuse_nodes.recorder_node', 'recorder',
                      params={'output_dir': str(bag), 'topics': topics, 'compression': 'lz4'})
    assert wait_for(lambda: (imu_pub.get_subscription_count() > 0
                             and img_pub.get_subscription_count() > 0
                             and bg_pub.get_subscription_count() > 0),
                    timeout=20, spin=lambda: ex.spin_once(timeout_sec=0.05)), rec.log()
    spin_for(ex, 0.5)
    for i in range(60):
        m = Imu()
        m.header.stamp.sec, m.header.stamp.nanosec = 1_700_000_000, i
        m.header.frame_id = 'imu_link'
        imu_pub.publish(m)
        if i % 6 == 0:
            img_pub.publish(Image(height=240, width=320, encoding='bgr8', step=960,
                                  data=bytes(240 * 960)))
        spin_for(ex, 0.01)
    assert wait_for(lambda: any('/never/published' in s.message for s in diags), timeout=5,
                    spin=lambda: ex.spin_once(timeout_sec=0.05)), rec.log()
    spin_for(ex, 0.5)
    assert rec.stop() == 0, rec.log()

    r = BagReader(bag, verify=True)  # strict: the bag was closed properly
    assert r.topics['/imu/data'].type == 'sensor_msgs/msg/Imu'
    assert r.topics['/camera_primary/image_raw'].type == 'sensor_msgs/msg/Image'
    assert r.topics['/imu/data'].message_count == 60  # reliable publisher -> reliable recording
    assert r.topics['/camera_primary/image_raw'].message_count >= 9  # best effort: 10 sent
    assert r.topics['/digit_left/background'].message_count == 1
    assert '/never/published' not in r.topics
    offered = r.topics['/camera_primary/image_raw'].offered_qos_profiles
    assert offered and offered[0].reliability == 'best_effort'
    assert r.topics['/digit_left/background'].offered_qos_profiles[0].durability == 'transient_local'
    imu = [deserialize_message(m.data, Imu) for m in r.messages(['/imu/data'])]
    assert [m.header.stamp.nanosec for m in imu] == list(range(60))
    assert deserialize_message(next(r.messages(['/digit_left/background'])).data, Image).data.tobytes() \
        == bytes(range(48))
    assert 'bag closed' in rec.log()


def test_stops_by_itself_after_max_duration(rclpy_context, launch_node, tmp_path):
    from sensor_msgs.msg import Imu

    from fuse_core.bag import BagReader
    from fuse_nodes.common import SENSOR_QOS
    node, ex = make_test_node(rclpy_context, 'recorder_test')
    pub = node.create_publisher(Imu, '/imu/data', SENSOR_QOS)
    bag = tmp_path / 'rec'
    rec = launch_node('fuse_nodes.recorder_node', 'recorder',
                      params={'output_dir': str(bag), 'topics': ['/imu/data'],
                              'max_duration_s': 1.0})
    deadline = time.monotonic() + 25
    while rec.alive() and time.monotonic() < deadline:
        pub.publish(Imu())
        spin_for(ex, 0.02)
    assert not rec.alive(), rec.log()
    assert rec.proc.returncode == 0, rec.log()
    r = BagReader(bag)
    assert 0.8 <= r.duration_ns / 1e9 <= 1.5
    assert r.topics['/imu/data'].message_count > 10


def test_refuses_to_overwrite_an_existing_recording(launch_node, tmp_path):
    (tmp_path / 'rec').mkdir()
    (tmp_path / 'rec' / 'metadata.yaml').write_text('x')
    rec = launch_node('fuse_nodes.recorder_node', 'recorder',
                      params={'output_dir': str(tmp_path / 'rec'), 'topics': ['/imu/data']})
    assert rec.proc.wait(20) == 2, rec.log()
    assert 'already exists' in rec.log()
