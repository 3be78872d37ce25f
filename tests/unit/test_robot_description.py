"""The generated wx250s URDF and the sensor mounts: URDF chain == PoE FK, mounts from the calibration file."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.arm.description import EE_LINK, LINKS, chain_poses, parse_urdf, urdf, wx250s_joints
from fuse_core.arm.kinematics import FINGER_MAX, FINGER_MIN, JOINT_NAMES, WX250S, rpy_to_rotation
from fuse_core.arm.robot_state import SENSOR_FRAMES, LinkStates, load_sensor_frames, parse_sensor_frames
from fuse_core.errors import ConfigError
from fuse_bringup.graph import config_path

FRAMES_FILE = config_path('calibration/sensor_frames.yaml')


def random_joints(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(WX250S.lower, WX250S.upper, size=(n, 6))


def test_urdf_chain_gives_the_same_end_effector_pose_as_the_poe_model():
    text = urdf('wx250s')
    joints = parse_urdf(text)
    assert {j.child for j in joints} | {'wx250s/base_link'} == {f'wx250s/{link}' for link in LINKS}
    for q in np.vstack([np.zeros(6), random_joints(200)]):
        pos = dict(zip(JOINT_NAMES, q), left_finger=0.03, right_finger=-0.03)
        ee = chain_poses(joints, pos)[f'wx250s/{EE_LINK}']
        np.testing.assert_allclose(ee, WX250S.fk(q), atol=1e-9)


def test_urdf_limits_match_the_kinematic_limits():
    joints = {j.name: j for j in parse_urdf(urdf())}
    for i, name in enumerate(JOINT_NAMES):
        assert joints[name].kind == 'revolute'
        assert joints[name].lower == pytest.approx(WX250S.lower[i], abs=1e-6)
        assert joints[name].upper == pytest.approx(WX250S.upper[i], abs=1e-6)
    assert (joints['left_finger'].lower, joints['left_finger'].upper) == pytest.approx((FINGER_MIN, FINGER_MAX))
    assert (joints['right_finger'].lower, joints['right_finger'].upper) == pytest.approx((-FINGER_MAX, -FINGER_MIN))


def test_link_states_compose_to_fk_and_move_the_fingers_apart():
    ls = LinkStates('wx250s/')
    for q in random_joints(50, seed=1):
        names = list(JOINT_NAMES) + ['left_finger', 'right_finger']
        pos = ls.positions(names, list(q) + [0.03, -0.03])
        rel = {c: (p, t) for p, c, t in ls.moving(pos) + ls.static()}

        def pose(frame):
            if frame == 'wx250s/base_link':
                return np.eye(4)
            parent, t = rel[frame]
            return pose(parent) @ t

        np.testing.assert_allclose(pose('wx250s/ee_gripper_link'), WX250S.fk(q), atol=1e-9)
        gap = np.linalg.inv(pose('wx250s/gripper_link')) @ pose('wx250s/left_finger_link')
        gap_r = np.linalg.inv(pose('wx250s/gripper_link')) @ pose('wx250s/right_finger_link')
        assert gap[1, 3] == pytest.approx(0.03) and gap_r[1, 3] == pytest.approx(-0.03)


def test_link_states_refuse_incomplete_or_non_finite_joint_states():
    ls = LinkStates()
    with pytest.raises(ValueError, match='lacks'):
        ls.positions(list(JOINT_NAMES[:5]), [0.0] * 5)
    with pytest.raises(ValueError, match='non-finite'):
        ls.positions(list(JOINT_NAMES) + ['left_finger', 'right_finger'], [0.0] * 5 + [float('nan'), 0.02, -0.02])
    with pytest.raises(ValueError, match='names but'):
        ls.positions(list(JOINT_NAMES), [0.0] * 3)


def test_shipped_sensor_frames_mount_every_sensor_frame():
    mounts = {m.child: m for m in load_sensor_frames(str(FRAMES_FILE))}
    assert set(SENSOR_FRAMES) <= set(mounts)
    published = {c: (p, t) for p, c, t in LinkStates('wx250s/').mounts(mounts.values())}
    p, t = published['camera_wrist_optical_frame']
    assert p == 'wx250s/gripper_link'
    np.testing.assert_allclose(t[:3, :3], rpy_to_rotation(mounts['camera_wrist_optical_frame'].rpy))
    np.testing.assert_allclose(t[:3, 3], mounts['camera_wrist_optical_frame'].xyz)


def test_camera_mounts_agree_with_the_twin_cameras():
    """The calibration file's optical frames are the twin's MuJoCo cameras (z forward, y down)."""
    mujoco = pytest.importorskip('mujoco')
    from fuse_sim.model import SceneSpec, scene_xml
    model = mujoco.MjModel.from_xml_string(scene_xml(SceneSpec()))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)          # home pose: all joints zero
    mounts = {m.child: m for m in load_sensor_frames(str(FRAMES_FILE))}
    links = chain_poses(wx250s_joints(), dict(zip(JOINT_NAMES, np.zeros(6)), left_finger=0.0, right_finger=0.0))
    for cam, frame in (('primary', 'camera_primary_optical_frame'), ('wrist', 'camera_wrist_optical_frame'),
                       ('digit_left', 'digit_left_frame'), ('digit_right', 'digit_right_frame')):
        m = mounts[frame]
        pose = links.get(m.parent, np.eye(4)) @ m.transform()
        cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam)
        r_cam = data.cam_xmat[cid].reshape(3, 3)
        optical = r_cam @ np.diag([1.0, -1.0, -1.0])   # MuJoCo cameras look along -z with y up
        np.testing.assert_allclose(pose[:3, 3], data.cam_xpos[cid], atol=1e-4, err_msg=frame)
        np.testing.assert_allclose(pose[:3, :3], optical, atol=1e-4, err_msg=frame)


@pytest.mark.parametrize('data, match', [
    (None, 'frames'),
    ({'frames': {'imu_link': {'parent': 'nowhere', 'xyz': [0, 0, 0], 'rpy': [0, 0, 0]}}}, 'neither an arm link'),
    ({'frames': {'imu_link': {'parent': 'base_link', 'xyz': [0, 0], 'rpy': [0, 0, 0]}}}, 'xyz must be a list of 3'),
    ({'frames': {'imu_link': {'parent': 'base_link', 'xyz': [0, 0, float('inf')], 'rpy': [0, 0, 0]}}}, 'finite'),
    ({'frames': {'imu_link': {'parent': 'base_link', 'xyz': [0, 0, 0], 'rpy': [0, 0, 0], 'q': 1}}}, 'unknown key'),
    ({'frames': {'a': {'parent': 'b', 'xyz': [0, 0, 0], 'rpy': [0, 0, 0]},
                 'b': {'parent': 'a', 'xyz': [0, 0, 0], 'rpy': [0, 0, 0]}}}, 'cycle'),
    ({'frames': {'imu_link': {'parent': 'base_link', 'xyz': [0, 0, 0], 'rpy': [0, 0, 0]}}}, 'no mount for'),
])
def test_bad_sensor_frames_are_refused_naming_the_problem(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_sensor_frames(data, 'x.yaml')


def test_missing_or_malformed_sensor_frames_file(tmp_path):
    with pytest.raises(ConfigError, match='missing.yaml'):
        load_sensor_frames(str(tmp_path / 'missing.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('frames: [\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_sensor_frames(str(bad))
