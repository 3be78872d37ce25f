"""Episode manager: reset (start pose, DIGIT backgrounds, twin task), instruction, record, outcome."""

from __future__ import annotations

import sys
import time
from typing import Callable, List, Optional, Tuple

import rclpy
from fuse_interfaces.msg import ArmStatus, EpisodeState, TaskState
from fuse_interfaces.srv import (CaptureBackground, EndEpisode, RecordEpisode, ResetTask,
                                 SetInstruction)
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from fuse_core.arm.safety import NOT_COMMANDABLE
from fuse_core.episodes.config import EpisodesConfig
from fuse_core.episodes.machine import IDLE, RECORDING, RESETTING, EpisodeContext, EpisodeMachine
from fuse_core.episodes.modalities import from_lists, load_modality_table
from fuse_core.errors import ConfigError, EpisodeError
from fuse_nodes.common import ERROR, OK, STATE_QOS, WARN, Diagnostics, declare_config, log_at, run_node

Step = Tuple[str, Callable[[], object], Callable[[object], str]]


class EpisodesNode(Node):
    """Services ~/reset (ResetTask), ~/set_instruction, ~/start, ~/abort (Trigger), ~/end
    (EndEpisode); ~/state (EpisodeState). Reset steps run one after another on a timer (no
    service waits inside a callback); each has a timeout and a failure names the step."""

    def __init__(self) -> None:
        super().__init__('episodes')
        cfg = self.cfg = declare_config(self, EpisodesConfig)
        ctx = EpisodeContext(operator=cfg.operator, action_source=cfg.action_source, world=cfg.world,
                             robot=self._robot_description())
        self.m = EpisodeMachine(ctx, id_prefix=cfg.id_prefix)
        if cfg.modalities_file:
            try:
                self.m.modality_table = load_modality_table(cfg.modalities_file)
            except EpisodeError as exc:
                raise ConfigError(f'episodes: parameter \'modalities_file\': {exc}') from exc
        self.m.task = cfg.task
        if cfg.instruction:
            self.m.set_instruction(cfg.instruction)
        self._next_seed: Optional[int] = cfg.seed if cfg.seed >= 0 else None
        self.message = 'idle: call ~/reset'
        self.bag_path = ''
        self._steps: List[Step] = []
        self._pending = None            # (name, future, check, deadline)
        self._wait_arm_until = 0.0
        self.arm: Optional[ArmStatus] = None
        self.task_state: Optional[TaskState] = None
        self._followed: Optional[tuple] = None
        # auto_reset: the first episode's reset needs no key either (once the recorder is ready).
        self._first_reset = cfg.auto_reset and not cfg.follow_world
        self.recorded = 0
        self.pub = self.create_publisher(EpisodeState, '~/state', STATE_QOS)
        self.create_service(ResetTask, '~/reset', self._srv_reset)
        self.create_service(SetInstruction, '~/set_instruction', self._srv_instruction)
        self.create_service(Trigger, '~/start', self._srv_start)
        self.create_service(Trigger, '~/abort', self._srv_abort)
        self.create_service(EndEpisode, '~/end', self._srv_end)
        self.create_subscription(ArmStatus, f'{cfg.arm_name}/status', self._on_arm, STATE_QOS)
        self.create_subscription(TaskState, '/world/task_state', self._on_task, STATE_QOS)
        self.create_subscription(String, cfg.key_topic, self._on_key, STATE_QOS)
        self.world_client = self.create_client(ResetTask, cfg.reset_service)
        self.start_client = self.create_client(Trigger, f'{cfg.arm_name}/move_to_start')
        self.bg_clients = [self.create_client(CaptureBackground, f'{d}/capture_background')
                           for d in cfg.digits]
        self.rec_start = self.rec_stop = self.rec_ready = None
        self._stop_pending = None       # the recorder's ~/stop in flight (the next start waits for it)
        # Nothing starts before the recorder answers ~/ready: an episode begun earlier would be lost
        # (not recorded) or lack topics the export needs.
        self.recorder_ready = not cfg.recorder
        self.recorder_why = ''
        self._ready_pending = None
        if cfg.recorder:
            self.rec_start = self.create_client(RecordEpisode, f'{cfg.recorder}/start')
            self.rec_stop = self.create_client(RecordEpisode, f'{cfg.recorder}/stop')
            self.rec_ready = self.create_client(Trigger, f'{cfg.recorder}/ready')
            self.recorder_why = f'its {cfg.recorder}/ready service is not up yet'
            self.message = f'waiting for the recorder {cfg.recorder} ({self.recorder_why})'
            self._ready_timer = self.create_timer(0.5, self._poll_recorder)
        self._diag = Diagnostics(self)
        self._diag.add('episodes', self._status)
        self.create_timer(0.05, self._advance)
        self.create_timer(1.0 / cfg.state_rate_hz, self.publish_state)
        self.get_logger().info(f'episodes: world {cfg.world}, source {cfg.action_source}, recorder '
                               f'{cfg.recorder or "none"}' + (', following the world' if cfg.follow_world else ''))

    # --- waiting for the recorder ----------------------------------------------------------------
    def _poll_recorder(self) -> None:
        """Ask the recorder's ~/ready until it says yes (2 Hz); log why while waiting."""
        if self.recorder_ready:
            return
        if self._ready_pending is not None:
            if not self._ready_pending.done():
                return
            res, self._ready_pending = self._ready_pending.result(), None
            if res is not None and res.success:
                self.recorder_ready = True
                self._ready_timer.cancel()
                self._say(f'recorder {self.cfg.recorder} ready ({res.message}): '
                          + ('following the world' if self.cfg.follow_world else 'call ~/reset'))
                return
            self.recorder_why = getattr(res, 'message', '') or 'no answer'
        elif not self.rec_ready.service_is_ready():
            self.recorder_why = f'its {self.cfg.recorder}/ready service is not up yet'
        else:
            self._ready_pending = self.rec_ready.call_async(Trigger.Request())
        self.message = f'waiting for the recorder {self.cfg.recorder} ({self.recorder_why})'
        self.get_logger().info(f'{self.message}; no episode starts before it is ready',
                               throttle_duration_sec=5.0)

    def _require_recorder(self, step: str) -> None:
        if not self.recorder_ready:
            raise EpisodeError(f'{step}: the recorder {self.cfg.recorder} is not ready yet '
                               f'({self.recorder_why}); wait for it')

    def _robot_description(self) -> dict:
        return {'robot_model': 'wx250s', 'world': self.cfg.world, 'arm': self.cfg.arm_name,
                'digits': list(self.cfg.digits), 'control_rate_hz': 5.0}

    # --- state topic -----------------------------------------------------------------------
    def publish_state(self) -> None:
        m = self.m
        msg = EpisodeState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state = m.state
        ep = m.episode
        msg.episode_id = ep.episode_id if ep else ''
        msg.task, msg.instruction = m.task, m.instruction
        msg.seed = int(m.seed) if m.seed is not None else -1
        msg.action_source = self.cfg.action_source
        msg.episodes_recorded = self.recorded
        msg.last_episode_id = m.last.episode_id if m.last else ''
        msg.last_outcome = m.last.outcome if m.last else ''
        msg.message = self.message
        msg.allowed = list(m.allowed)
        msg.elapsed_s = (time.time_ns() - ep.start_time_ns) / 1e9 if ep else 0.0
        msg.recorder_ready = self.recorder_ready
        self.pub.publish(msg)

    def _say(self, text: str, error: bool = False) -> None:
        self.message = text
        log_at(self.get_logger(), 'error' if error else 'info', text)
        self.publish_state()

    # --- reset procedure ---------------------------------------------------------------------
    def begin_reset(self, task: str = '', seed: Optional[int] = None) -> str:
        self._require_recorder('reset')
        self._first_reset = False
        if seed is None or seed < 0:
            seed, self._next_seed = self._next_seed, None
        self.m.reset(task, seed)
        cfg = self.cfg
        steps: List[Step] = []
        if cfg.world_reset:
            steps.append(('world reset', lambda: self._call(self.world_client, ResetTask.Request(
                task=self.m.task, seed=int(self.m.seed) if self.m.seed is not None else -1)),
                self._after_world))
        if cfg.move_to_start:
            steps.append(('move to start', lambda: self._call(self.start_client, Trigger.Request()),
                          self._after_move))
        if cfg.capture_backgrounds:
            for d, c in zip(cfg.digits, self.bg_clients):
                steps.append((f'{d} background', lambda c=c: self._call(c, CaptureBackground.Request(num_frames=0)),
                              lambda r: '' if r.success else r.message))
        self._steps = steps
        self._say(f'resetting: {", ".join(s[0] for s in steps) or "nothing to do"}')
        return self.message

    def _call(self, client, request):
        if not client.service_is_ready():
            return None
        return client.call_async(request)

    def _after_world(self, res) -> str:
        if not res.success:
            return res.message
        self.m.task, self.m.seed = res.task, int(res.seed)
        if res.instruction and not self.cfg.instruction:
            self.m.instruction = res.instruction
        self.m.set_modalities(self._modalities_of(res, 'world reset'))
        return ''

    def _modalities_of(self, msg, what: str) -> dict:
        """The twin's modality-specific instructions (TaskState / ResetTask); bad ones are logged, not used."""
        try:
            return from_lists(msg.modality_combinations, msg.modality_instructions, f'{what}: modalities')
        except EpisodeError as exc:
            self.get_logger().error(f'{exc}; the episode is recorded without them')
            return {}

    def _modalities_note(self) -> str:
        """'; modalities audio | visual,tactile (from FILE)' for the state message ('' when none)."""
        texts, source = self.m.episode_modalities()
        if texts:
            return f'; modalities {" | ".join(texts)} (from {source})'
        if self.m.modality_table is not None:
            return f'; no modality instructions for it in {self.m.modality_table.source}'
        return ''

    def _after_move(self, res) -> str:
        if not res.success:
            return res.message
        self._wait_arm_until = time.monotonic() + self.cfg.step_timeout_s
        return ''

    def _advance(self) -> None:
        """Drive the reset steps (20 Hz)."""
        if self._first_reset and self.recorder_ready and self.m.state == IDLE:
            try:
                self.begin_reset()
            except EpisodeError as exc:
                self._first_reset = False
                self._say(f'first reset: {exc}', error=True)
        if self.m.state != RESETTING:
            self._steps, self._pending = [], None
            return
        now = time.monotonic()
        if self._wait_arm_until:
            arm = self.arm
            if arm is not None and arm.state not in NOT_COMMANDABLE:
                self._wait_arm_until = 0.0
            elif now > self._wait_arm_until:
                return self._reset_failed('move to start: the arm did not arrive in time')
            else:
                return
        if self._pending is not None:
            name, fut, check, deadline = self._pending
            if not fut.done():
                if now > deadline:
                    return self._reset_failed(f'{name}: no answer in {self.cfg.step_timeout_s} s')
                return
            self._pending = None
            problem = check(fut.result())
            if problem:
                return self._reset_failed(f'{name}: {problem}')
            return
        if not self._steps:
            self.m.reset_done(True, 'reset done')
            self._say(f'ready: {self.m.task or "task"} seed {self.m.seed}, "{self.m.instruction}"'
                      + self._modalities_note())
            if self.cfg.auto_start and self.m.instruction:
                self.start_recording()
            return
        name, start, check = self._steps.pop(0)
        fut = start()
        if fut is None:
            # A service that is not there yet may belong to a node still starting (on a loaded
            # machine that took more than 5 s): wait for it as long as for any reset step.
            waited = getattr(self, '_service_wait', None)
            if waited is None:
                self._service_wait = now + self.cfg.step_timeout_s
            if now < self._service_wait:
                self._steps.insert(0, (name, start, check))
                return
            self._service_wait = None
            return self._reset_failed(f'{name}: service not available')
        self._service_wait = None
        self._pending = [name, fut, check, now + self.cfg.step_timeout_s]

    def _reset_failed(self, why: str) -> None:
        self._steps, self._pending, self._wait_arm_until = [], None, 0.0
        self.m.reset_done(False, why)
        self._say(f'reset failed: {why}', error=True)

    # --- recording -----------------------------------------------------------------------------
    def start_recording(self) -> str:
        if self._stop_pending is not None and not self._stop_pending.done():
            raise EpisodeError('start: the previous episode\'s bag is still closing; try again')
        self._require_recorder('start')
        ep = self.m.start()
        if self.rec_start is not None:
            if not self.rec_start.service_is_ready():
                self.m.abort('recorder not available')
                self._say(f'{ep.episode_id}: recorder {self.cfg.recorder}/start not available', error=True)
                raise EpisodeError(self.message)
            fut = self.rec_start.call_async(RecordEpisode.Request(episode_id=ep.episode_id,
                                                                  metadata_json=ep.to_json()))
            fut.add_done_callback(lambda f, eid=ep.episode_id: self._after_rec_start(f, eid))
        self._say(f'recording {ep.episode_id}: "{ep.instruction}"' + self._modalities_note())
        return ep.episode_id

    def _after_rec_start(self, fut, episode_id: str) -> None:
        res = fut.result()
        if res is not None and res.success:
            self.bag_path = res.bag_path
            return
        if self.m.state == RECORDING and self.m.episode.episode_id == episode_id:
            self.m.abort(f'recorder refused: {getattr(res, "message", "no answer")}')
        self._say(f'{episode_id}: the recorder refused: {getattr(res, "message", "no answer")}', error=True)

    def _stop_recorder(self, md) -> None:
        if self.rec_stop is None:
            return
        if not self.rec_stop.service_is_ready():
            self._say(f'{md.episode_id}: recorder stop not available; the bag stays marked recording',
                      error=True)
            return
        fut = self.rec_stop.call_async(RecordEpisode.Request(episode_id=md.episode_id,
                                                             metadata_json=md.to_json()))
        self._stop_pending = fut
        fut.add_done_callback(lambda f: self._after_rec_stop(f, md.episode_id))

    def _after_rec_stop(self, fut, episode_id: str) -> None:
        res = fut.result()
        if res is None or not res.success:
            self._say(f'{episode_id}: recorder stop failed: {getattr(res, "message", "no answer")}', error=True)
        else:
            self.bag_path = res.bag_path
            self.get_logger().info(f'{episode_id}: bag {res.bag_path} ({res.message_count} messages)')

    def end_episode(self, outcome: str, note: str = ''):
        md = self.m.end(outcome, note)
        self._stop_recorder(md)
        self.recorded += 1
        self._say(f'{md.episode_id}: {outcome}' + (f' ({note})' if note else '') +
                  f'; {self.recorded} episode(s)')
        self._after_episode()
        return md

    def abort_episode(self, reason: str):
        md = self.m.abort(reason)
        if md is not None:
            self._stop_recorder(md)
        self._say(f'aborted: {reason}', error=True)
        return md

    def _after_episode(self) -> None:
        if self.cfg.episodes and self.recorded >= self.cfg.episodes:
            self.get_logger().info(f'{self.recorded} episode(s) done; stopping')
            self.create_timer(1.0, lambda: rclpy.try_shutdown(context=self.context))
            return
        if self.cfg.auto_reset and not self.cfg.follow_world and self.m.state == IDLE:
            self.begin_reset()

    # --- inputs -------------------------------------------------------------------------------
    def _on_arm(self, msg: ArmStatus) -> None:
        self.arm = msg

    def _on_task(self, msg: TaskState) -> None:
        self.task_state = msg
        cfg, m = self.cfg, self.m
        key = (int(msg.episode), int(msg.seed))
        try:
            if cfg.follow_world:
                if m.state == IDLE and msg.state == 'running' and key != self._followed:
                    if self._stop_pending is not None and not self._stop_pending.done():
                        return  # the previous bag is still closing: the next task state retries
                    self._followed = key
                    if msg.episode_time_s > 1.0 or not self.recorder_ready:
                        # Joined mid-episode, or nothing to record it: wait for the next one.
                        self._say(f'world episode {msg.episode} already running or recorder not ready; '
                                  'recording from the next one')
                        return
                    if msg.instruction and not cfg.instruction:
                        m.instruction = msg.instruction
                    m.reset(msg.task, int(msg.seed))
                    m.reset_done(True, 'the world was reset by the expert',
                                 modalities=self._modalities_of(msg, 'task state'))
                    self.start_recording()
                elif m.state == RECORDING and key != self._followed:
                    # The world moved on to another episode before this one had an outcome.
                    self.abort_episode(f'the world started episode {msg.episode} before an outcome')
                elif m.state == RECORDING and msg.state in ('success', 'failure'):
                    self.end_episode(msg.state, msg.detail)
            elif cfg.auto_outcome and m.state == RECORDING and msg.state in ('success', 'failure'):
                self.end_episode(msg.state, msg.detail)
        except EpisodeError as exc:
            self._say(str(exc), error=True)

    def _on_key(self, msg: String) -> None:
        key = msg.data.strip()
        try:
            if key.startswith('device_lost'):
                detail = key.partition(':')[2].strip()
                if self.m.state == RECORDING:
                    self.m.mark('teleop_lost', detail)
                self._say(f'teleop device lost: {detail} (the arm holds; episode marked)', error=True)
            elif key in ('success', 'failure', 'discard'):
                self.end_episode(key)
            elif key == 'reset':
                self.begin_reset()
            elif key == 'abort':
                self.abort_episode('operator abort')
            else:
                self.get_logger().warning(f'unknown episode key {key!r}')
        except EpisodeError as exc:
            self._say(str(exc), error=True)

    # --- services -----------------------------------------------------------------------------
    def _srv_reset(self, req, res):
        res.tasks = []
        try:
            res.message = self.begin_reset(req.task, int(req.seed) if req.seed >= 0 else None)
            res.success, res.task = True, self.m.task
            res.seed = max(0, int(self.m.seed)) if self.m.seed is not None else 0
            res.instruction = self.m.instruction
        except EpisodeError as exc:
            res.success, res.message = False, str(exc)
        return res

    def _srv_instruction(self, req, res):
        try:
            self.m.set_instruction(req.instruction)
            res.success, res.message = True, f'instruction: "{self.m.instruction}"' + self._modalities_note()
            self._say(res.message)
        except EpisodeError as exc:
            res.success, res.message = False, str(exc)
        return res

    def _srv_start(self, req, res):
        try:
            res.message = f'recording {self.start_recording()}'
            res.success = True
        except EpisodeError as exc:
            res.success, res.message = False, str(exc)
        return res

    def _srv_abort(self, req, res):
        try:
            self.abort_episode('operator abort (~/abort)')
            res.success, res.message = True, 'aborted'
        except EpisodeError as exc:
            res.success, res.message = False, str(exc)
        return res

    def _srv_end(self, req, res):
        try:
            md = self.end_episode(req.outcome, req.note)
            res.success, res.episode_id, res.bag_path = True, md.episode_id, self.bag_path
            res.message = f'{md.episode_id}: {md.outcome}'
        except EpisodeError as exc:
            res.success, res.message = False, str(exc)
        return res

    def _status(self):
        values = {'state': self.m.state, 'episodes_recorded': self.recorded, 'task': self.m.task,
                  'seed': self.m.seed, 'message': self.message, 'last_error': self.m.last_error}
        if self.m.last_error:
            return WARN, self.message, values
        if not self.recorder_ready:
            return WARN, self.message, values
        if self.cfg.recorder and self.rec_start is not None and not self.rec_start.service_is_ready():
            return ERROR, f'recorder {self.cfg.recorder} not available', values
        return OK, self.message, values

    def close(self) -> None:
        if self.m.state == RECORDING:
            md = self.m.abort('episode manager stopped')
            self.get_logger().warning(f'{md.episode_id}: stopped mid-episode, marked interrupted')
            # The recorder marks the bag interrupted on its own shutdown; tell it now if it listens.
            self._stop_recorder(md)


def main(args=None):
    return run_node(EpisodesNode, args=args, multithreaded=False)


if __name__ == '__main__':
    sys.exit(main())
