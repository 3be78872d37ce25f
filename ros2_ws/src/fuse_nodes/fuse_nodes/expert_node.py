"""Expert node: the scripted expert of the twin's task, publishing DeltaEECommand on the policy's topic."""

from __future__ import annotations

import sys
from typing import Optional

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from fuse_core.arm.safety import NOT_COMMANDABLE
from fuse_core.errors import ConfigError
from fuse_interfaces.msg import ArmStatus, AudioChunk, DeltaEECommand, EpisodeState, TaskState
from fuse_interfaces.srv import ResetTask
from fuse_nodes.common import (CONTROL_QOS, OK, SENSOR_QOS, STATE_QOS, WARN, Diagnostics, declare_config,
                               ns_to_time, run_node)
from fuse_sim.config import ExpertConfig
from fuse_sim.expert import ScriptedExpert, observation_from_messages, perturbed
from fuse_sim.tasks import TASKS


class ExpertNode(Node):
    """Stands in for the policy: reads what a policy could observe, commands at 5 Hz.

    Inputs: /world/task_state (instruction, and object positions/colours as the cameras show
    them), /arm/status (measured and commanded end-effector, gripper opening), /audio/chunk.
    """

    def __init__(self) -> None:
        super().__init__('expert')
        cfg = self.cfg = declare_config(self, ExpertConfig)
        if cfg.task and cfg.task not in TASKS:
            raise ConfigError(f'expert: parameter task {cfg.task!r} is not a known task; known: {sorted(TASKS)}')
        self.pub = self.create_publisher(DeltaEECommand, cfg.command_topic, CONTROL_QOS)
        self.create_subscription(TaskState, '/world/task_state', self._on_task, STATE_QOS)
        self.create_subscription(ArmStatus, '/arm/status', self._on_arm, STATE_QOS)
        self.create_subscription(AudioChunk, '/audio/chunk', self._on_audio, SENSOR_QOS)
        # Collection: the episode manager says when its recorder is ready (nothing is lost before).
        self._collection_ready = not cfg.wait_for_episodes
        if cfg.wait_for_episodes:
            self.create_subscription(EpisodeState, cfg.wait_for_episodes, self._on_episodes, STATE_QOS)
        self._client_group = MutuallyExclusiveCallbackGroup()
        self.reset_client = self.create_client(ResetTask, '/world/reset', callback_group=self._client_group)
        self.start_client = self.create_client(Trigger, '/arm/move_to_start', callback_group=self._client_group)
        self.task: Optional[TaskState] = None
        self.arm: Optional[ArmStatus] = None
        self.expert: Optional[ScriptedExpert] = None
        self._noise = np.random.default_rng(0)
        self._episode = None
        self._audio = np.zeros(0, np.float32)
        self._sample_rate = 44100
        self._tick = 0
        self._ready = not cfg.reset_on_start
        self._ended_ns: Optional[int] = None
        self._need_start = False
        self._started = 0
        self._resetting = False
        self._sent = 0
        self._outcomes = {'success': 0, 'failure': 0}
        self._diag = Diagnostics(self, hardware_id='scripted expert (synthetic)')
        self._diag.add('expert', self._status)
        self.create_timer(1.0 / cfg.rate_hz, self._on_tick)
        self.get_logger().warning('SCRIPTED expert in place of the policy (simulation only)' + (
            f'; noise of std {cfg.action_noise_m} m on its open-finger commands' if cfg.action_noise_m else ''))

    # --- inputs -----------------------------------------------------------------------------
    def _on_task(self, msg: TaskState) -> None:
        if self.task is not None and self.task.state == 'running' and msg.state != 'running' \
                and msg.episode == self.task.episode:
            self._outcomes[msg.state] = self._outcomes.get(msg.state, 0) + 1
            self._ended_ns = self.get_clock().now().nanoseconds
            self.get_logger().info(f'episode {msg.episode} {msg.task} seed {msg.seed}: {msg.state} ({msg.detail}) '
                                   f'after {msg.episode_time_s:.1f} s')
        self.task = msg

    def _on_arm(self, msg: ArmStatus) -> None:
        self.arm = msg

    def _on_episodes(self, msg: EpisodeState) -> None:
        if msg.recorder_ready and not self._collection_ready:
            self._collection_ready = True
            self.get_logger().info(f'{self.cfg.wait_for_episodes}: the recorder is ready; starting episodes')

    def _on_audio(self, msg: AudioChunk) -> None:
        self._sample_rate = int(msg.sample_rate)
        keep = int(self.cfg.audio_window_s * self._sample_rate)
        self._audio = np.concatenate([self._audio, np.asarray(msg.samples, np.float32)])[-keep:]

    # --- episode start ----------------------------------------------------------------------
    def _start_episode(self) -> None:
        if not self._collection_ready:
            self.get_logger().info(f'waiting for {self.cfg.wait_for_episodes} to report the recorder ready '
                                   'before the first episode', throttle_duration_sec=5.0)
            return
        if self._resetting or not self.reset_client.service_is_ready() or not self.start_client.service_is_ready():
            return
        arm = self.arm
        if arm is None or 'not connected' in arm.hold_reason:
            return                         # the arm must see the world before it can move to start
        self._resetting = True
        if self._need_start:
            # The world was reset; only the move to the start pose is still to do.
            self.start_client.call_async(Trigger.Request()).add_done_callback(self._after_start)
            return
        seed = int(self.cfg.seed) if self._started == 0 else -1     # then the world's next seed
        req = ResetTask.Request(task=self.cfg.task, seed=seed)
        self.reset_client.call_async(req).add_done_callback(self._after_reset)

    def _after_reset(self, future) -> None:
        res = future.result()
        if res is None or not res.success:
            self.get_logger().error(f'world reset failed: {getattr(res, "message", "no answer")}')
            self._resetting = False
            return
        self.get_logger().info(f'world reset: {res.message}: {res.instruction!r}')
        self._need_start = True
        self.start_client.call_async(Trigger.Request()).add_done_callback(self._after_start)

    def _after_start(self, future) -> None:
        res = future.result()
        self._resetting = False
        if res is None or not res.success:
            self.get_logger().warning(f'move_to_start failed ({getattr(res, "message", "no answer")}); retrying')
            return
        self._need_start = False
        self._ready = True
        self._started += 1
        self._ended_ns = None
        self.task = None            # wait for the new episode's state

    # --- 5 Hz -----------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        if not self._ready:
            self._start_episode()
            return
        task, arm = self.task, self.arm
        if task is None or arm is None or arm.state in NOT_COMMANDABLE:
            return
        if task.state != 'running':
            self._publish(None, f'episode over: {task.state}')
            cfg = self.cfg
            more = cfg.episodes == 0 or self._started < cfg.episodes
            ended = self._ended_ns
            if cfg.reset_on_start and more and ended is not None and \
                    self.get_clock().now().nanoseconds - ended >= cfg.pause_s * 1e9:
                self._ready = False        # the next tick resets the world for the next episode
            return
        if self.expert is None or self._episode != (task.episode, task.seed):
            self.expert = ScriptedExpert(task.task)
            self._episode = (task.episode, task.seed)
            self._noise = np.random.default_rng([int(task.seed), 0xDA27])
        obs = observation_from_messages(task, arm, self._audio.copy(), self._sample_rate)
        self._publish(perturbed(self.expert.act(obs), self._noise, self.cfg.action_noise_m))

    def _publish(self, action: Optional[np.ndarray], hold_reason: str = '') -> None:
        """One 5 Hz command: a motion (action) or, with action None, an explicit hold."""
        now = self.get_clock().now().nanoseconds
        msg = DeltaEECommand()
        msg.header.stamp = ns_to_time(now)
        msg.header.frame_id = self.cfg.frame_id
        self._tick += 1
        msg.tick_index = self._tick
        if action is None:
            msg.hold, msg.reason = True, hold_reason
            msg.gripper = 1.0
        else:
            msg.translation = [float(x) for x in action[:3]]
            msg.rotation = [float(x) for x in action[3:6]]
            msg.gripper = float(action[6])
            self._sent += 1
        msg.newest_sample_stamp = ns_to_time(now)
        msg.valid_until = ns_to_time(now + int(self.cfg.command_valid_s * 1e9))
        self.pub.publish(msg)

    def _status(self):
        values = {'commands': self._sent, 'phase': self.expert.phase if self.expert else '',
                  'successes': self._outcomes.get('success', 0), 'failures': self._outcomes.get('failure', 0)}
        if self.task is None:
            return WARN, 'SCRIPTED expert: no /world/task_state yet', values
        return OK, f'SCRIPTED expert: {self.task.task} {self.task.state}', values


def main(args=None):
    return run_node(ExpertNode, args=args, multithreaded=True)


if __name__ == '__main__':
    sys.exit(main())
