"""Arm backend `interbotix`: a real WidowX through the Interbotix Python API, which runs ROS itself.

It lives with the nodes because the API creates an rclpy node and shuts rclpy down at close.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from fuse_core.arm.backends import ArmBackend
from fuse_core.arm.kinematics import JOINT_NAMES, WX250S, ArmKinematics
from fuse_core.errors import DeviceError

#: (topic name, [type names]) pairs, as rclpy's Node.get_topic_names_and_types returns them.
TopicLister = Callable[[], Iterable[Tuple[str, Sequence[str]]]]

JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'


def driver_namespaces(topics: Iterable[Tuple[str, Sequence[str]]], exclude: Iterable[str] = ()) -> List[str]:
    """Namespaces that publish sensor_msgs/JointState on `<ns>/joint_states` (xs_sdk's topic)."""
    skip = set(exclude)
    found = set()
    for name, types in topics:
        if name in skip or not name.endswith('/joint_states') or JOINT_STATE_TYPE not in types:
            continue
        found.add(name[:-len('/joint_states')] or '/')
    return sorted(found)


class InterbotixArm(ArmBackend):
    """A real WidowX through `interbotix_xs_modules` (ROS 2 Humble+ API), imported only here.

    Streams the joint targets the safety filter solved and path-checked with
    arm.set_joint_positions(..., blocking=False) and no moving_time, which publishes one
    JointGroupCommand and makes no service call (the API's own IK in set_ee_pose_matrix could
    pick another solution, whose path nobody checked). Before building the
    Interbotix objects (which wait for the driver's services forever) it checks that an
    xs_sdk driver publishes joint states in the namespace `/<robot_model>` and refuses
    otherwise, naming the namespaces it did find.
    """

    name = 'interbotix'
    synthetic = False

    def __init__(self, robot_model: str, list_topics: TopicLister, *, moving_time: float = 0.25,
                 accel_time: float = 0.1, pose_moving_time: float = 2.0, connect_timeout_s: float = 5.0,
                 own_topics: Iterable[str] = (), node_name: str = 'arm_interbotix',
                 kinematics: ArmKinematics = WX250S) -> None:
        self.robot_model = robot_model
        self.namespace = f'/{robot_model}'
        self._list_topics = list_topics
        self.moving_time, self.accel_time = float(moving_time), float(accel_time)
        self.pose_moving_time = float(pose_moving_time)
        self.connect_timeout_s = float(connect_timeout_s)
        self._own_topics = tuple(own_topics)
        self._node_name = node_name
        self.kinematics = kinematics
        self._bot = None
        self._node = None
        self._shutdown = None
        self._gripper_open: Optional[bool] = None
        self._slow = False

    # --- connection -------------------------------------------------------------------------
    def check_namespace(self) -> None:
        """Wait up to connect_timeout_s for `/<robot_model>/joint_states`; DeviceError if absent."""
        deadline = time.monotonic() + self.connect_timeout_s
        found: List[str] = []
        while True:
            found = driver_namespaces(self._list_topics(), exclude=self._own_topics)
            if self.namespace in found:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        where = (f'found joint_states in namespace(s) {found}' if found
                 else 'found no joint_states publisher at all (is xs_sdk running?)')
        raise DeviceError(f'interbotix: no {self.robot_model} driver: expected sensor_msgs/JointState on '
                          f'{self.namespace}/joint_states, {where}; refusing to command')

    def connect(self) -> None:
        if self._bot is not None:
            return
        try:
            from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS
        except ImportError as exc:
            raise DeviceError('interbotix: cannot import interbotix_xs_modules (a ROS package from '
                              f'Interbotix/interbotix_ros_toolboxes, not on PyPI): {exc}') from exc
        try:
            from interbotix_common_modules.common_robot import robot as ixrobot
        except ImportError as exc:
            # Older releases call rclpy.init themselves, which fails inside a running node.
            raise DeviceError('interbotix: interbotix_common_modules.common_robot is missing; this '
                              'interbotix_xs_modules release predates the node= API and cannot run '
                              f'inside the arm node: {exc}') from exc
        self.check_namespace()
        try:
            if self._node is None:
                # One Interbotix node per process: the API keeps it global, so a retry reuses it.
                try:
                    self._node = ixrobot.get_interbotix_global_node()
                except NameError:
                    self._node = None
                if self._node is None:
                    self._node = ixrobot.create_interbotix_global_node(node_name=self._node_name)
            bot = InterbotixManipulatorXS(robot_model=self.robot_model, group_name='arm',
                                          gripper_name='gripper', moving_time=self.moving_time,
                                          accel_time=self.accel_time, node=self._node)
            self._check_group(bot)
            ixrobot.robot_startup(self._node)
        except DeviceError:
            raise
        except Exception as exc:  # the API raises bare exceptions; keep the cause in the message
            raise DeviceError(f'interbotix: start-up failed: {type(exc).__name__}: {exc}') from exc
        self._bot, self._shutdown = bot, ixrobot.robot_shutdown
        self._gripper_open = None
        self._slow = False

    def _check_group(self, bot) -> None:
        info = bot.arm.group_info
        names = tuple(info.joint_names)
        if names != JOINT_NAMES:
            raise DeviceError(f'interbotix: arm group joints are {list(names)}, expected {list(JOINT_NAMES)} '
                              f'for {self.robot_model}')
        missing = [n for n in JOINT_NAMES + ('left_finger',) if n not in bot.core.js_index_map]
        if missing:
            raise DeviceError(f'interbotix: joint_states lacks {missing}')

    @property
    def connected(self) -> bool:
        return self._bot is not None

    def _require(self):
        if self._bot is None:
            raise DeviceError('interbotix: not connected; refusing to command')
        return self._bot

    # --- state ------------------------------------------------------------------------------
    def _positions(self, names: Sequence[str]) -> List[float]:
        core = self._require().core
        with core.js_mutex:
            js = core.joint_states
            return [float(js.position[core.js_index_map[n]]) for n in names]

    def joint_positions(self) -> np.ndarray:
        return np.array(self._positions(JOINT_NAMES))

    def gripper_opening(self) -> float:
        return self._positions(('left_finger',))[0]

    def joint_state_age_s(self) -> Optional[float]:
        core = self._require().core
        with core.js_mutex:
            stamp = core.joint_states.header.stamp
            stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
        return (time.time_ns() - stamp_ns) / 1e9

    # --- commands ---------------------------------------------------------------------------
    def _profile(self, slow: bool) -> None:
        # Changing the profile is a service call, so it happens only when switching modes.
        if slow != self._slow:
            bot = self._require()
            if slow:
                bot.arm.set_trajectory_time(moving_time=self.pose_moving_time, accel_time=self.accel_time)
            else:
                bot.arm.set_trajectory_time(moving_time=self.moving_time, accel_time=self.accel_time)
            self._slow = slow

    def set_joint_targets(self, joints: Sequence[float], slow: bool = False) -> bool:
        bot = self._require()
        q = [float(x) for x in joints]
        if len(q) != len(JOINT_NAMES) or not all(np.isfinite(q)):
            raise ValueError(f'interbotix: joint targets must be 6 finite values, got {q}')
        self._profile(slow)
        return bool(bot.arm.set_joint_positions(q, blocking=False))

    def set_gripper(self, open_: bool) -> None:
        bot = self._require()
        if self._gripper_open is open_:
            return
        # delay=0: publish the effort command and return; the API's timer stops it at the limit.
        if open_:
            bot.gripper.release(delay=0.0)
        else:
            bot.gripper.grasp(delay=0.0)
        self._gripper_open = open_

    def hold(self) -> None:
        bot = self._require()
        q = [float(x) for x in self.joint_positions()]
        bot.arm.set_joint_positions(q, blocking=False)

    def close(self) -> None:
        """Stop the Interbotix executor; its robot_shutdown also shuts rclpy down, so call last."""
        if self._bot is None:
            return
        shutdown, node = self._shutdown, self._node
        self._bot = self._shutdown = None
        if shutdown is not None:
            shutdown(node)
