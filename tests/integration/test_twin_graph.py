"""The twin over DDS, in lockstep mode: the world's topics match the drivers', and the closed loop
world -> sync -> expert -> arm (sim backend) -> world completes pick_cube, each node its own process."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip('mujoco')

from fuse_bringup import graph  # noqa: E402
from support.ros_harness import make_test_node, running_graph, wait_for  # noqa: E402

pytestmark = pytest.mark.integration


def _stamp(msg) -> float:
    h = msg.header.stamp
    return h.sec + h.nanosec * 1e-9


def test_world_publishes_the_drivers_topics_at_their_rates(launch_node, rclpy_context):
    from sensor_msgs.msg import CameraInfo, Image, Imu, JointState, MagneticField
    from fuse_interfaces.msg import AudioChunk, TaskState
    from fuse_interfaces.srv import ResetTask
    from fuse_nodes.common import LATCHED_QOS, SENSOR_QOS, STATE_QOS
    from fuse_nodes.conversions import image_to_array

    world = launch_node('fuse_nodes.world_node', 'world',
                        params={'mode': 'lockstep', 'task': 'pick_cube', 'seed': 4,
                                'lockstep_real_time_factor': 1.0, 'camera_width': 320, 'camera_height': 240})
    node, ex = make_test_node(rclpy_context, 'twin_topics_test')
    got = {}
    topics = {
        '/camera_primary/image_raw': Image, '/camera_wrist/image_raw': Image, '/camera_primary/camera_info': CameraInfo,
        '/digit_left/image_raw': Image, '/digit_right/image_raw': Image, '/audio/chunk': AudioChunk,
        '/audio/mel_spectrogram': Image, '/imu/data': Imu, '/imu/mag': MagneticField,
        '/world/joint_states': JointState, '/world/task_state': TaskState,
    }
    for topic, kind in topics.items():
        qos = STATE_QOS if topic.startswith('/world/') else SENSOR_QOS
        node.create_subscription(kind, topic, lambda m, t=topic: got.setdefault(t, []).append(m), qos)
    backgrounds = {}
    for side in ('left', 'right'):
        node.create_subscription(Image, f'/digit_{side}/background',
                                 lambda m, s=side: backgrounds.__setitem__(s, m), LATCHED_QOS)
    reset = node.create_client(ResetTask, '/world/reset')

    def spin():
        # Many callbacks per check: the test must keep up with ~1500 messages per sim second.
        for _ in range(100):
            ex.spin_once(timeout_sec=0.002)

    def sim_span(topic):
        msgs = got.get(topic, [])
        return _stamp(msgs[-1]) - _stamp(msgs[0]) if len(msgs) > 1 else 0.0

    assert wait_for(lambda: all(sim_span(t) > 2.5 for t in topics) and len(backgrounds) == 2, 150, spin), \
        (sorted((t, len(got.get(t, []))) for t in topics), world.log()[-3000:])
    # Types, encodings, shapes and frame_ids of the drivers.
    expect = {'/camera_primary/image_raw': ('bgr8', (240, 320, 3), 'camera_primary_optical_frame'),
              '/camera_wrist/image_raw': ('bgr8', (240, 320, 3), 'camera_wrist_optical_frame'),
              '/digit_left/image_raw': ('bgr8', (240, 320, 3), 'digit_left_frame'),
              '/digit_right/image_raw': ('bgr8', (240, 320, 3), 'digit_right_frame'),
              '/audio/mel_spectrogram': ('32FC1', (128, 128, 1), 'microphone_frame')}
    for topic, (enc, shape, frame) in expect.items():
        m = got[topic][-1]
        assert (m.encoding, image_to_array(m).shape, m.header.frame_id) == (enc, shape, frame), topic
    assert got['/imu/data'][-1].header.frame_id == 'imu_link'
    assert got['/audio/chunk'][-1].sample_rate == 44100 and len(got['/audio/chunk'][-1].samples) == 441
    # Rates in sim time (lockstep): the drivers' defaults.
    for topic, hz in {'/camera_primary/image_raw': 30, '/digit_left/image_raw': 60, '/imu/data': 200,
                      '/audio/mel_spectrogram': 10, '/audio/chunk': 100, '/world/joint_states': 100}.items():
        msgs = got[topic]
        # The sample period from the stamps; gaps left by frames this test lost are left out.
        gaps = np.diff(np.unique([_stamp(m) for m in msgs]))
        period = float(gaps[gaps < 1.5 * np.median(gaps)].mean())
        assert abs(1.0 / period - hz) < 0.1 * hz, (topic, 1.0 / period)
    # At rest nothing touches the gels: DIGIT frames equal their latched backgrounds.
    for side in ('left', 'right'):
        frame = image_to_array(got[f'/digit_{side}/image_raw'][-1])
        assert np.array_equal(frame, image_to_array(backgrounds[side])), side
    acc = got['/imu/data'][-1].linear_acceleration
    assert abs(np.linalg.norm([acc.x, acc.y, acc.z]) - 9.81) < 0.2
    js = got['/world/joint_states'][-1]
    assert list(js.name)[:6] == ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate']
    # Reset: unknown task -> a clear error listing the tasks; same seed -> same first image.
    assert wait_for(reset.service_is_ready, 10, spin)

    def call(task, seed):
        fut = reset.call_async(ResetTask.Request(task=task, seed=seed))
        assert wait_for(fut.done, 20, spin)
        return fut.result()

    bad = call('fly', 1)
    assert not bad.success and 'pick_cube' in bad.message and 'press_beep' in list(bad.tasks)
    firsts = []
    for _ in range(2):
        ep0 = max(s.episode for s in got['/world/task_state'])
        res = call('pick_cube', 9)
        assert res.success, res.message
        new_episode = lambda: [s for s in got['/world/task_state'] if s.episode > ep0]  # noqa: E731
        assert wait_for(lambda: bool(new_episode()), 10, spin)
        t0 = min(_stamp(s) for s in new_episode())
        images = got['/camera_primary/image_raw']
        # Several frames after the reset, keyed by their offset from it: a best-effort frame lost on
        # a busy machine must not make the two episodes be compared at different times.
        assert wait_for(lambda: sum(_stamp(m) >= t0 for m in images) >= 8, 20, spin)
        firsts.append({round(_stamp(m) - t0, 3): image_to_array(m).copy() for m in images if _stamp(m) >= t0})
    common = sorted(set(firsts[0]) & set(firsts[1]))
    assert common, (sorted(firsts[0]), sorted(firsts[1]))
    assert np.array_equal(firsts[0][common[0]], firsts[1][common[0]]), common[0]
    ex.shutdown()
    node.destroy_node()
    assert world.stop() == 0, world.log()[-2000:]


@pytest.mark.parametrize('task', ['pick_cube', 'pick_soft', 'press_beep'])
def test_expert_completes_the_task_through_world_sync_and_arm(tmp_path, task):
    """pick_cube by sight; pick_soft from the gripper opening in /arm/status; press_beep from /audio/chunk."""
    from fuse_interfaces.msg import ArmStatus, ObservationWindow, TaskState
    from fuse_nodes.common import CONTROL_QOS, STATE_QOS

    specs = graph.sim_graph(world='twin', task=task, seed=3, expert=True, mode='lockstep')
    assert [s.name for s in specs] == ['world', 'sync', 'arm', 'expert', 'robot_state']
    # One episode; the world runs as fast as it can, never more than lockstep_max_lead_s ahead of the arm.
    extra = {'expert': {'episodes': 1}}
    specs = [dataclasses.replace(s, parameters={**s.parameters, **extra.get(s.name, {})}) for s in specs]
    assert all(s.parameters.get('use_sim_time') for s in specs if s.name != 'world')
    with running_graph(specs, tmp_path, 'twin_loop_test') as run:
        states, arm, windows = [], [], []
        run.node.create_subscription(TaskState, '/world/task_state', states.append, STATE_QOS)
        run.node.create_subscription(ArmStatus, '/arm/status', arm.append, STATE_QOS)
        run.node.create_subscription(ObservationWindow, '/sync/window', windows.append, CONTROL_QOS, raw=True)
        done = lambda: any(s.seed == 3 and s.state != 'running' for s in states)  # noqa: E731
        assert wait_for(done, 240, spin=run.spin), run.logs()
        final = next(s for s in states if s.seed == 3 and s.state != 'running')
        assert final.task == task and final.state == 'success', (final.detail, run.logs())
        assert final.episode_time_s < final.time_limit_s
        # The arm's status, like the windows below, may reach a subscription that matched late.
        wait_for(lambda: arm and arm[-1].commands_applied > 5, 30, spin=run.spin)
        assert arm and arm[-1].backend == 'sim' and arm[-1].commands_applied > 5, run.logs()
        # The world and sync keep running after the episode: a test subscription matched late
        # (discovery on a busy machine) still sees windows.
        wait_for(lambda: len(windows) >= 3, 30, spin=run.spin)
        assert len(windows) >= 3, 'sync formed no observation windows from the world\'s sensors'
        assert not run.procs.exited(), run.logs()
