"""The robot_state node in its own process: /tf from joint states == FK, /tf_static from the calibration file."""

from __future__ import annotations

import numpy as np

from support.ros_harness import ProbeNode, wait_for

from fuse_bringup.graph import config_path

FRAMES_FILE = str(config_path('calibration/sensor_frames.yaml'))


class TfListener(ProbeNode):
    """Collects /tf and /tf_static (with tf2's QoS) and /robot_description."""

    spin_timeout_s = 0.05

    def __init__(self, context):
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage

        from fuse_nodes.common import LATCHED_QOS
        from fuse_nodes.robot_state_node import TF_QOS, TF_STATIC_QOS
        super().__init__(context, 'tf_listener')
        self.tf, self.static, self.description = [], [], []
        self.node.create_subscription(TFMessage, '/tf', self.tf.append, TF_QOS)
        self.node.create_subscription(TFMessage, '/tf_static', self.static.append, TF_STATIC_QOS)
        self.node.create_subscription(String, '/robot_description', self.description.append, LATCHED_QOS)


def matrix(tf):
    from fuse_core.arm.kinematics import quaternion_to_rotation
    t = np.eye(4)
    r, p = tf.transform.rotation, tf.transform.translation
    t[:3, :3] = quaternion_to_rotation([r.x, r.y, r.z, r.w])
    t[:3, 3] = [p.x, p.y, p.z]
    return t


def compose(edges, frame, root):
    """Pose of `frame` in `root` from child -> (parent, 4x4) edges."""
    t = np.eye(4)
    while frame != root:
        parent, rel = edges[frame]
        t = rel @ t
        frame = parent
    return t


def test_tf_from_joint_states_equals_fk_and_static_frames_come_from_the_file(launch_node, rclpy_context):
    from sensor_msgs.msg import JointState

    from fuse_core.arm.kinematics import FINGER_NAMES, JOINT_NAMES, WX250S
    from fuse_core.arm.robot_state import load_sensor_frames
    from fuse_nodes.common import STATE_QOS
    node = launch_node('fuse_nodes.robot_state_node', 'robot_state',
                       params={'sensor_frames_file': FRAMES_FILE, 'tf_rate_hz': 0.0})
    tl = TfListener(rclpy_context)
    pub = tl.node.create_publisher(JointState, '/arm/joint_states', STATE_QOS)
    q = np.array([0.3, -0.4, 0.5, 0.2, 0.6, -0.7])
    try:
        assert wait_for(lambda: tl.static and tl.description, 20.0, tl.spin), node.log()
        # Incomplete joint states give no /tf (and a warning), complete ones do.
        js = JointState(name=list(JOINT_NAMES[:4]), position=[0.0] * 4)
        js.header.stamp.sec = 7
        pub.publish(js)
        js = JointState(name=list(JOINT_NAMES + FINGER_NAMES), position=[float(v) for v in q] + [0.03, -0.03])
        js.header.stamp.sec = 42
        assert wait_for(lambda: (pub.publish(js) or True) and tl.tf, 10.0, tl.spin), node.log()
        msg = tl.tf[-1]
        assert {t.header.stamp.sec for t in msg.transforms} == {42}
        edges = {t.child_frame_id: (t.header.frame_id, matrix(t)) for t in msg.transforms}
        edges.update({t.child_frame_id: (t.header.frame_id, matrix(t)) for t in tl.static[-1].transforms})
        ee = compose(edges, 'wx250s/ee_gripper_link', 'wx250s/base_link')
        np.testing.assert_allclose(ee, WX250S.fk(q), atol=1e-6)
        # Every sensor mount of the file, attached to the prefixed links.
        for m in load_sensor_frames(FRAMES_FILE):
            parent, t = edges[m.child]
            assert parent in (f'wx250s/{m.parent}', m.parent)
            np.testing.assert_allclose(t, m.transform(), atol=1e-6)
        assert 'joint state lacks' in node.log()
        assert '<robot name="wx250s">' in tl.description[-1].data
    finally:
        tl.close()


def test_robot_mode_publishes_only_the_sensor_mounts(launch_node, rclpy_context):
    node = launch_node('fuse_nodes.robot_state_node', 'robot_state',
                       params={'sensor_frames_file': FRAMES_FILE, 'publish_arm_links': False})
    tl = TfListener(rclpy_context)
    try:
        assert wait_for(lambda: tl.static, 20.0, tl.spin), node.log()
        children = {t.child_frame_id for t in tl.static[-1].transforms}
        assert 'camera_primary_optical_frame' in children
        assert not any(c.startswith('wx250s/') for c in children)   # the driver owns the links
        for _ in range(20):
            tl.spin()
        assert not tl.description and not tl.tf
    finally:
        tl.close()


def test_a_malformed_calibration_file_stops_the_node_naming_it(launch_node, tmp_path):
    bad = tmp_path / 'frames.yaml'
    bad.write_text('frames:\n  imu_link: {parent: base_link, xyz: [0, 0], rpy: [0, 0, 0]}\n')
    node = launch_node('fuse_nodes.robot_state_node', 'robot_state', params={'sensor_frames_file': str(bad)})
    assert node.proc.wait(30) == 2
    assert 'frames.yaml' in node.log() and 'xyz must be a list of 3' in node.log()
