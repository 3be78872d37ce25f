"""Fake InterbotixManipulatorXS: the arm, gripper and core surface the backend uses (records calls)."""

import threading
import time
from types import SimpleNamespace

from interbotix_xs_modules import STATE, check_plain_floats, record


class FakeHeader:
    """A driver streaming joint states: the stamp is always STATE['js_age_s'] old."""

    @property
    def stamp(self):
        now = time.time_ns() - int(STATE['js_age_s'] * 1e9)
        return SimpleNamespace(sec=now // 1_000_000_000, nanosec=now % 1_000_000_000)


class FakeCore:
    def __init__(self):
        self.js_mutex = threading.Lock()
        self.joint_states = SimpleNamespace(header=FakeHeader(), name=list(STATE['js_names']),
                                            position=list(STATE['js_position']))
        self.js_index_map = {n: i for i, n in enumerate(self.joint_states.name)}


class FakeArm:
    def __init__(self, core, moving_time, accel_time):
        self.core = core
        self.moving_time, self.accel_time = moving_time, accel_time
        names = list(STATE['arm_joint_names'])
        self.group_info = SimpleNamespace(joint_names=names, num_joints=len(names),
                                          profile_type='time', mode='position')
        self.joint_commands = [core.joint_states.position[core.js_index_map[n]]
                               for n in names if n in core.js_index_map]

    def set_trajectory_time(self, moving_time=None, accel_time=None):
        record('arm.set_trajectory_time', moving_time=moving_time, accel_time=accel_time)
        if moving_time is not None:
            self.moving_time = moving_time
        if accel_time is not None:
            self.accel_time = accel_time

    def set_joint_positions(self, joint_positions, moving_time=None, accel_time=None, blocking=True):
        check_plain_floats('set_joint_positions', joint_positions)
        record('arm.set_joint_positions', list(joint_positions), moving_time=moving_time,
               accel_time=accel_time, blocking=blocking)
        if not STATE['joint_limits_ok']:
            return False
        self.joint_commands = list(joint_positions)
        return True

    def set_ee_pose_matrix(self, T_sd, custom_guess=None, execute=True, moving_time=None,
                           accel_time=None, blocking=True):
        if custom_guess is not None:
            check_plain_floats('set_ee_pose_matrix custom_guess', custom_guess)
        record('arm.set_ee_pose_matrix', T_sd.copy(), custom_guess=custom_guess, execute=execute,
               moving_time=moving_time, accel_time=accel_time, blocking=blocking)
        solution = list(custom_guess) if custom_guess is not None else [0.0] * 6
        if STATE['ik_success'] and execute:
            self.joint_commands = solution
        return solution, bool(STATE['ik_success'])


class FakeGripper:
    def release(self, delay=1.0):
        record('gripper.release', delay=delay)

    def grasp(self, delay=1.0):
        record('gripper.grasp', delay=delay)


class InterbotixManipulatorXS:
    def __init__(self, robot_model, group_name='arm', gripper_name='gripper', robot_name=None,
                 moving_time=2.0, accel_time=0.3, node=None, **kwargs):
        record('InterbotixManipulatorXS', robot_model=robot_model, group_name=group_name,
               gripper_name=gripper_name, robot_name=robot_name, moving_time=moving_time,
               accel_time=accel_time, node=node, **kwargs)
        if STATE.get('fail_constructor'):
            raise RuntimeError(STATE['fail_constructor'])
        self.core = FakeCore()
        self.arm = FakeArm(self.core, moving_time, accel_time)
        self.gripper = FakeGripper() if gripper_name is not None else None
