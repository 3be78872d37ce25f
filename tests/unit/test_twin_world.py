"""Twin world (no rendering): model vs fuse_core kinematics, tracking, limits, resets, IMU, touch, sound."""

from __future__ import annotations

import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from fuse_core.arm.kinematics import FINGER_MAX, FINGER_MIN, JOINT_NAMES, WX250S  # noqa: E402
from fuse_core.errors import ConfigError  # noqa: E402
from fuse_sim.audio import BEEP_HZ, AudioSynth, band_power, hears_beep  # noqa: E402
from fuse_sim.config import WorldConfig  # noqa: E402
from fuse_sim.model import SceneObject, SceneSpec, build_model  # noqa: E402
from fuse_sim.tasks import TASKS  # noqa: E402
from fuse_sim.world import World  # noqa: E402


@pytest.fixture(scope='module')
def world():
    return World(WorldConfig(task='pick_cube', seed=3))


def test_model_end_effector_agrees_with_fuse_core_fk():
    m = build_model(SceneSpec([SceneObject('c', 'cube')]))
    d = mujoco.MjData(m)
    site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, 'ee_site')
    adr = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)] for n in JOINT_NAMES]
    rng = np.random.default_rng(0)
    for _ in range(300):
        q = rng.uniform(WX250S.lower, WX250S.upper)
        d.qpos[adr] = q
        mujoco.mj_kinematics(m, d)
        t = WX250S.fk(q)
        assert np.max(np.abs(d.site_xpos[site] - t[:3, 3])) < 1e-6
        assert np.max(np.abs(d.site_xmat[site].reshape(3, 3) - t[:3, :3])) < 1e-6


def test_model_joint_limits_are_the_arm_facts():
    m = build_model(SceneSpec())
    for i, name in enumerate(JOINT_NAMES):
        jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
        np.testing.assert_allclose(m.jnt_range[jid], [WX250S.lower[i], WX250S.upper[i]], atol=1e-6)
    for name in ('left_finger', 'right_finger'):
        jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
        np.testing.assert_allclose(m.jnt_range[jid], [FINGER_MIN, FINGER_MAX])


def test_reset_puts_the_arm_at_the_start_pose_and_it_stays(world):
    world.reset(seed=3)
    np.testing.assert_allclose(world.ee_pose()[:3, 3], world.cfg.start_pose_xyz, atol=1e-4)
    world.advance(1.0)
    np.testing.assert_allclose(world.ee_pose()[:3, 3], world.cfg.start_pose_xyz, atol=2e-3)


def test_tracking_follows_the_driver_time_profile(world):
    world.reset(seed=3)
    q0 = world.joint_positions()
    goal = q0 + np.array([0.3, 0.1, -0.1, 0.0, 0.1, 0.2])
    assert world.set_joint_targets(goal)
    world.advance(0.1)
    mid = np.abs(world.joint_positions() - q0)
    assert np.all(mid[[0, 5]] < 0.9 * np.abs(goal - q0)[[0, 5]]), 'a streamed move takes moving_time, not a jump'
    world.advance(0.3)
    np.testing.assert_allclose(world.joint_positions(), goal, atol=0.02)


def test_targets_outside_the_limits_are_refused_and_counted(world):
    world.reset(seed=3)
    before = world.counters.targets_refused
    q0 = world.joint_positions()
    bad = q0.copy()
    bad[2] = WX250S.upper[2] + 0.2
    assert not world.set_joint_targets(bad)
    assert not world.set_joint_targets([np.nan] * 6)
    assert not world.set_finger_target(0.1)
    assert world.counters.targets_refused == before + 3
    assert 'elbow' in world.counters.last_refusal or 'finger' in world.counters.last_refusal
    world.advance(0.3)
    np.testing.assert_allclose(world.joint_positions(), q0, atol=2e-3)


def test_seeded_resets_are_reproducible():
    for task in TASKS:
        w = World(WorldConfig(task=task, seed=0))
        scenes = []
        for seed in (5, 6, 5):
            instruction = w.reset(seed=seed)
            objs = {k: (v.position.round(6).tolist(), v.colour) for k, v in w.task.visible_objects(w).items()}
            scenes.append((instruction, objs, w.model.light_diffuse.round(6).tolist()))
        assert scenes[0] == scenes[2], task
        assert scenes[0] != scenes[1], task


def test_bad_task_and_seed_are_clear_errors(world):
    with pytest.raises(ConfigError, match='known tasks.*pick_cube'):
        world.reset('fly_to_mars', 1)
    with pytest.raises(ConfigError, match='bad seed'):
        world.reset(None, -4)
    with pytest.raises(ConfigError, match='known tasks'):
        WorldConfig(task='nope')


def test_imu_at_rest_reads_gravity_and_no_rotation(world):
    world.reset(seed=3)
    world.advance(0.5)
    imu = world.imu()
    assert abs(np.linalg.norm(imu['acc']) - 9.81) < 0.05
    assert np.max(np.abs(imu['gyro'])) < 1e-3
    assert 1e-5 < np.linalg.norm(imu['mag']) < 1e-4       # tesla


def test_soft_cube_lets_the_fingers_close_further():
    w = World(WorldConfig(task='pick_soft', seed=1))
    openings = {}
    for name in ('cube_0', 'cube_1'):
        w.reset(seed=1)
        p = w.body_position(name)
        from fuse_core.arm.kinematics import bridge_state_to_pose
        for z in (0.10, 0.015):
            r = WX250S.ik(bridge_state_to_pose([p[0], p[1], z], [0, 0, 0]), w.joint_positions(), max_iterations=200)
            assert w.set_joint_targets(r.joints)
            w.advance(0.6)
        w.set_gripper(False)
        w.advance(1.0)
        assert w.holding(w.geom_id(f'{name}_geom'))
        openings[name] = w.gripper_opening()
    soft, hard = w.task.soft, ('cube_1' if w.task.soft == 'cube_0' else 'cube_0')
    assert openings[soft] < openings[hard] - 0.002


def test_audio_rises_at_an_impact_and_beeps_are_heard():
    synth = AudioSynth(seed=1)
    synth.reset(1, 0.0)
    quiet = synth.render_until(0.1)
    synth.add_event(0.1, 'hard', 0.5)
    impact = synth.render_until(0.15)
    assert np.mean(impact ** 2) > 20 * np.mean(quiet ** 2)
    assert not hears_beep(impact, synth.sample_rate)
    synth.add_event(0.2, 'beep', 1.0)
    synth.render_until(0.2)
    beep = synth.render_until(0.5)
    assert hears_beep(beep, synth.sample_rate)
    assert band_power(beep, synth.sample_rate, BEEP_HZ) > 10 * band_power(quiet, synth.sample_rate, BEEP_HZ)


def test_a_dropped_cube_makes_an_impact_sound(world):
    world.reset(seed=3)
    world.advance(0.3)
    world.take_events()
    synth = AudioSynth(seed=2)
    synth.reset(2, world.time_s)
    before = synth.render_until(world.time_s + 0.05)
    name = world.task.present[0]
    adr = world.model.jnt_qposadr[world.model.body_jntadr[mujoco.mj_name2id(world.model, mujoco.mjtObj.mjOBJ_BODY,
                                                                           name)]]
    world.data.qpos[adr + 2] = 0.12                       # lift it 10 cm and let it fall
    t0 = world.time_s
    world.advance(0.3)
    events = world.take_events()
    assert events and max(e.speed for e in events) > 0.5
    for e in events:
        synth.add_event(e.time_s, e.material, e.speed)
    synth.next_index = int(round(t0 * synth.sample_rate))
    after = synth.render_until(world.time_s)
    assert np.mean(after ** 2) > 20 * np.mean(before ** 2)


def test_switching_task_keeps_the_clock_and_the_episode_count():
    w = World(WorldConfig(task='pick_cube', seed=1))
    w.advance(0.5)
    t, resets = w.time_s, w.counters.resets
    instruction = w.reset('press_beep', 2)
    assert instruction == 'press the button that beeps' and w.task.name == 'press_beep'
    assert w.time_s >= t and w.counters.resets == resets + 1
    assert set(w.task.visible_objects(w)) == {'button_0', 'button_1'}
