"""policy node: ObservationWindow -> model bundle -> ActionChunk + DeltaEECommand at the window rate."""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Deque, Optional, Tuple

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import String

from fuse_core.bundle import PolicyRunner, load_bundle, resolve_bundle_path
from fuse_core.bundle.outcome import OutcomeLog, PolicyOutcome
from fuse_core.bundle.policy import PolicyConfig, PolicyController, PolicyStep, WindowInput
from fuse_core.bundle.tokenizers import InstructionError
from fuse_core.errors import BundleError, ConfigError, FuseError
from fuse_core.sync import WindowReceiver, WireError
from fuse_core.timing import percentiles
from fuse_interfaces.msg import ActionChunk, DeltaEECommand, EpisodeState, ObservationWindow
from fuse_interfaces.srv import Describe, SetInstruction
from fuse_nodes.common import (
    CONTROL_QOS,
    LATCHED_QOS,
    STATE_QOS,
    Diagnostics,
    declare_config,
    log_at,
    ns_to_time,
    run_node,
    time_to_ns,
)
from fuse_nodes.conversions import ConversionError, msg_to_window
from fuse_nodes.layout import shipped_roots

#: Window sanity bounds: tensor count and how far ahead of this node's clock a window may be
#: stamped (the largest float magnitude is fuse_core.sync.wire.MAX_ABS_FLOAT_INPUT).
MAX_WINDOW_TENSORS = 32
MAX_WINDOW_FUTURE_NS = 100_000_000


@dataclass(frozen=True)
class TickRef:
    """The tick a published message belongs to: its stamp, index and newest sample stamp."""

    stamp: Any  # builtin_interfaces/Time
    tick_index: int
    newest_sample_stamp: Any

    @classmethod
    def of_window(cls, msg: ObservationWindow) -> 'TickRef':
        return cls(msg.header.stamp, msg.tick_index, msg.newest_sample_stamp)


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__('policy')
        self.cfg = declare_config(self, PolicyConfig)
        try:
            path = resolve_bundle_path(self.cfg.bundle_path, shipped_roots())
            bundle = load_bundle(path, providers=self.cfg.providers, threads=self.cfg.intra_op_threads)
            self.runner = PolicyRunner(bundle)
            self.controller = PolicyController(self.runner, self.cfg, self._now_ns)
        except BundleError as exc:
            raise ConfigError(
                f"{self.get_name()}: parameter 'bundle_path' = {self.cfg.bundle_path!r}: {exc}"
            ) from exc
        if self.cfg.instruction:
            try:
                self.controller.set_instruction(self.cfg.instruction)
            except InstructionError as exc:
                raise ConfigError(f"{self.get_name()}: parameter 'instruction': {exc}") from exc
        m = bundle.manifest
        # Rebuilds each window from the samples it carries and those earlier windows carried;
        # every sample's values are checked once, on arrival (manifest value_range, finite floats).
        self.receiver = WindowReceiver({spec.name: spec.value_range for spec in m.inputs
                                        if spec.value_range is not None})
        self.get_logger().info(
            f'bundle {m.name!r} from {path} on {",".join(bundle.providers)} '
            f'({self.cfg.intra_op_threads} threads); inputs {list(m.input_names)}; '
            f'window {m.window_size} at {m.control_rate_hz} Hz; chunk {m.action.horizon}x{m.action.dim}; '
            f'execution {self.cfg.execution}'
            + (f' ({self.cfg.async_aggregate}; inference off the tick; ticks started by the '
               f'{self.cfg.async_tick_source})' if self.controller.asynchronous else '')
            + f'; instruction {self.runner.instruction!r}'
        )

        # Inference runs in its own group so services and diagnostics answer while it runs.
        infer_group = MutuallyExclusiveCallbackGroup()
        service_group = ReentrantCallbackGroup()
        self._outcomes = OutcomeLog()
        self._outcome_lock = threading.Lock()
        # Where a window's time goes in this node (decode, controller, command publish, all).
        self._decode_ms: Deque[float] = collections.deque(maxlen=500)
        self._process_ms: Deque[float] = collections.deque(maxlen=500)
        self._publish_ms: Deque[float] = collections.deque(maxlen=500)
        self._window_ms: Deque[float] = collections.deque(maxlen=500)
        self.command_pub = self.create_publisher(DeltaEECommand, '~/command', CONTROL_QOS)
        self.chunk_pub = self.create_publisher(ActionChunk, '~/action_chunk', CONTROL_QOS)
        self.create_subscription(
            ObservationWindow, self.cfg.window_topic, self._on_window, CONTROL_QOS, callback_group=infer_group
        )
        self.create_subscription(
            String, '~/instruction', self._on_instruction, LATCHED_QOS, callback_group=service_group
        )
        self.create_service(
            SetInstruction, '~/set_instruction', self._on_set_instruction, callback_group=service_group
        )
        self.create_service(Describe, '~/describe', self._on_describe, callback_group=service_group)
        # Gated by the episode manager (robot evaluation): None = not gated; '' = its state not seen yet.
        self._episode: Optional[str] = None
        self._episode_id = ''
        self._restart = False
        if self.cfg.episodes_topic:
            self._episode = ''
            self.create_subscription(EpisodeState, self.cfg.episodes_topic, self._on_episode, STATE_QOS,
                                     callback_group=service_group)
        self.diagnostics = Diagnostics(self, hardware_id=m.name)
        self.diagnostics.add('policy', self._status)

        # async_tick_source clock: a thread runs each tick at its time on the window ticks' grid
        # (wall clock), so a command no longer waits for its window's build and transport.
        self._anchor: Optional[Tuple[int, int]] = None  # (tick_index, stamp_ns) of the newest window
        self._clock_late_ms: Deque[float] = collections.deque(maxlen=500)
        self._missed_clock_ticks = 0
        self._stop = threading.Event()
        self._clock_thread: Optional[threading.Thread] = None
        if self.controller.asynchronous and self.cfg.async_tick_source == 'clock':
            if self.get_parameter('use_sim_time').value:
                self.get_logger().warning('async_tick_source clock runs on the wall clock; with use_sim_time '
                                          'the windows start the ticks (async_tick_source window)')
            else:
                # The tick thread needs the GIL at its time, while the window callback may hold it
                # decoding a window: hand it over after 1 ms instead of Python's default 5 ms.
                sys.setswitchinterval(0.001)
                self._clock_thread = threading.Thread(target=self._tick_clock, name='tick_clock', daemon=True)
                self._clock_thread.start()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def close(self) -> None:
        self._stop.set()
        if self._clock_thread is not None:
            self._clock_thread.join(2.0)
        self.controller.close()

    # --- episode gate ---------------------------------------------------------------------
    def _on_episode(self, msg: EpisodeState) -> None:
        if msg.state == 'recording' and msg.episode_id != self._episode_id:
            self._restart = True     # applied in the window callback, between two windows
        self._episode_id = msg.episode_id if msg.state == 'recording' else ''
        if msg.state != self._episode:
            self.get_logger().info(f'episode {msg.state}: ' + ('commanding' if msg.state == 'recording'
                                                                  else 'holding until a recording starts'))
        self._episode = msg.state

    def _gate(self) -> str:
        """Why this window commands nothing ('' = it may)."""
        if self._episode is None or self._episode == 'recording':
            return ''
        return f'episode {self._episode or "manager not seen"}: not recording'

    # --- windows --------------------------------------------------------------------------
    def _on_window(self, msg: ObservationWindow) -> None:
        gate = self._gate()
        if gate:
            # No inference: the arm holds, and the hold names why (as the teleop's do).
            self.command_pub.publish(self._hold_msg(TickRef.of_window(msg), gate))
            return
        if self._restart:
            self._restart = False
            self.controller.restart()
        clock = self._clock_thread is not None
        ref = TickRef.of_window(msg)
        t0 = time.perf_counter()
        try:
            win = self._decode(msg)
            t1 = time.perf_counter()
            if isinstance(win, PolicyStep):
                decision = win
            elif clock:
                # The tick clock runs the ticks: a window only gates the next one and starts an
                # inference (None when trusted); a failing one holds now.
                decision = self.controller.observe(win)
                self._anchor = (win.tick_index, win.stamp_ns)
            else:
                decision = self.controller.process(win)
        except Exception as exc:  # noqa: BLE001 - a window must never kill the node: count, report, hold
            t1 = time.perf_counter()
            decision = self.controller.malformed(
                f'window {msg.tick_index}: {type(exc).__name__}: {str(exc)[:200]}')
        t2 = time.perf_counter()
        if decision is not None:
            self._publish(ref, decision)
        t3 = time.perf_counter()
        if decision is not None:
            if decision.chunk is not None:
                self.chunk_pub.publish(self._chunk_msg(ref, decision))
            self._report(decision, msg.tick_index)
        with self._outcome_lock:
            self._decode_ms.append((t1 - t0) * 1e3)
            self._process_ms.append((t2 - t1) * 1e3)
            if not clock:  # with the tick clock, commands are published (and timed) by its thread
                self._publish_ms.append((t3 - t2) * 1e3)
                self._window_ms.append((t3 - t0) * 1e3)

    def _publish(self, ref: TickRef, decision: PolicyStep) -> None:
        # The command first: it is what the arm waits for.
        if decision.outcome is PolicyOutcome.COMMAND:
            self.command_pub.publish(self._command_msg(ref, decision))
        elif decision.outcome.must_hold:
            # Tell the arm now, in this tick, instead of leaving it to the arm's watchdog:
            # the arm holds within one tick and its status names the reason (e.g. the stream).
            self.command_pub.publish(self._hold_msg(ref, f'{decision.outcome}: {decision.message}'))

    # --- ticks on this node's clock (async_tick_source clock) ------------------------------
    def _tick_clock(self) -> None:
        """Run tick k at anchor_stamp + (k - anchor_tick) * period: the sync node's own grid."""
        self._set_tick_priority()
        period_ns = int(round(self.controller.period_s * 1e9))
        next_tick: Optional[int] = None
        while not self._stop.is_set():
            anchor = self._anchor
            if anchor is None or self._gate() or self._restart:
                # Nothing to run on: no window yet, not recording, or a new recording whose
                # first window has not restarted the chunks yet.
                next_tick = None
                self._stop.wait(period_ns / 4e9)
                continue
            a_tick, a_ns = anchor
            # A tick runs even when its own window came first (the thread woke late); the next
            # tick is at most two ahead of the newest window, else the ticks were renumbered
            # (a restarted sync node) and the clock follows the new grid.
            if next_tick is None or next_tick > a_tick + 2:
                next_tick = a_tick + 1
            due_ns = a_ns + (next_tick - a_tick) * period_ns
            wait_ns = due_ns - self._now_ns()
            if wait_ns > 0:
                self._stop.wait(wait_ns / 1e9)
                continue  # the anchor may have moved; recompute (the grid is the same)
            late_ns = -wait_ns
            if late_ns >= period_ns:  # woke a whole period late: run the newest slot, count the rest
                skipped = late_ns // period_ns
                self._missed_clock_ticks += int(skipped)
                next_tick += int(skipped)
                due_ns += int(skipped) * period_ns
                late_ns -= int(skipped) * period_ns
            try:
                decision = self.controller.execute_tick(next_tick)
            except Exception as exc:  # noqa: BLE001 - the clock must keep running: hold, naming it
                decision = PolicyStep(PolicyOutcome.ERROR, message=f'tick {next_tick}: {type(exc).__name__}: {exc}')
            ref = TickRef(ns_to_time(due_ns), next_tick, ns_to_time(decision.action_newest_sample_ns))
            t0 = time.perf_counter()
            self._publish(ref, decision)
            t1 = time.perf_counter()
            if decision.chunk is not None:
                self.chunk_pub.publish(self._chunk_msg(ref, decision))
            self._report(decision, next_tick)
            with self._outcome_lock:
                self._clock_late_ms.append(late_ns / 1e6)
                self._publish_ms.append((t1 - t0) * 1e3)
            next_tick += 1

    def _set_tick_priority(self) -> None:
        """Give this (the tick) thread SCHED_FIFO priority tick_thread_priority, if asked and allowed."""
        priority = self.cfg.tick_thread_priority
        if priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread (Linux)
        except (AttributeError, OSError) as exc:
            self.get_logger().warning(
                f'tick_thread_priority {priority}: SCHED_FIFO refused ({exc}); the tick thread runs at normal '
                'priority (grant CAP_SYS_NICE or an rtprio limit, e.g. docker --cap-add SYS_NICE --ulimit rtprio=99)')
            return
        self.get_logger().info(f'tick thread: SCHED_FIFO priority {priority}')

    def _decode(self, msg: ObservationWindow):
        """Message -> WindowInput; a malformed message becomes a 'mismatch' decision."""
        try:
            if len(msg.tensors) > MAX_WINDOW_TENSORS:
                raise ConversionError(f'{len(msg.tensors)} tensors (at most {MAX_WINDOW_TENSORS})')
            ahead = time_to_ns(msg.header.stamp) - self._now_ns()
            if ahead > MAX_WINDOW_FUTURE_NS:
                raise ConversionError(f'stamped {ahead / 1e9:.3f} s in the future')
            window = self.receiver.receive(msg_to_window(msg))
        except (ConversionError, WireError) as exc:
            return self.controller.malformed(f'window {msg.tick_index}: {exc}')
        return WindowInput.from_window(window)

    def _report(self, decision: PolicyStep, tick: int) -> None:
        # Every outcome is counted; the log gets each change, and a repeated hold once per second.
        line = self._outcomes.line(decision.outcome, decision.message, tick)
        if line is not None:
            log_at(self.get_logger(), *line)

    def _chunk_msg(self, ref: TickRef, d: PolicyStep) -> ActionChunk:
        out = ActionChunk()
        out.header.frame_id = self.cfg.frame_id
        if d.chunk_tick is None:
            out.header.stamp = ref.stamp
            out.tick_index = ref.tick_index
            out.newest_sample_stamp = ref.newest_sample_stamp
        else:  # asynchronous: the chunk belongs to the (earlier) window it was computed from
            out.header.stamp = ns_to_time(d.chunk_stamp_ns)
            out.tick_index = d.chunk_tick
            out.newest_sample_stamp = ns_to_time(d.chunk_newest_sample_ns)
        out.horizon, out.action_dim = (int(x) for x in d.chunk.shape)
        out.actions = [float(x) for x in d.chunk.reshape(-1)]
        out.inference_ms = float(d.inference_ms)
        return out

    def _command_msg(self, ref: TickRef, d: PolicyStep) -> DeltaEECommand:
        a = d.action
        out = DeltaEECommand()
        out.header.stamp = ref.stamp
        out.header.frame_id = self.cfg.frame_id
        out.tick_index = ref.tick_index
        out.translation = [float(a[0]), float(a[1]), float(a[2])]
        out.rotation = [float(a[3]), float(a[4]), float(a[5])]
        out.gripper = float(a[6])
        # The newest sample behind the action: in asynchronous mode that of the chunk's window.
        out.newest_sample_stamp = (
            ns_to_time(d.action_newest_sample_ns) if d.action_newest_sample_ns else ref.newest_sample_stamp
        )
        out.valid_until = ns_to_time(d.valid_until_ns)
        return out

    def _hold_msg(self, ref: TickRef, reason: str) -> DeltaEECommand:
        out = DeltaEECommand()
        out.header.stamp = ref.stamp
        out.header.frame_id = self.cfg.frame_id
        out.tick_index = ref.tick_index
        out.hold = True
        out.reason = reason
        out.newest_sample_stamp = ref.newest_sample_stamp
        out.valid_until = ns_to_time(self._now_ns() + int(self.cfg.command_valid_s * 1e9))
        return out

    # --- instruction and describe ---------------------------------------------------------
    def _apply_instruction(self, text: str) -> Optional[str]:
        """Returns an error message, or None when the instruction is now current."""
        try:
            self.controller.set_instruction(text)
        except (InstructionError, FuseError) as exc:
            self.controller.counters.last_error = f'instruction refused: {exc}'
            self.get_logger().error(f'instruction refused: {exc}')
            return str(exc)
        self.get_logger().info(f'instruction: {self.runner.instruction!r}')
        return None

    def _on_instruction(self, msg: String) -> None:
        self._apply_instruction(msg.data)

    def _on_set_instruction(self, request, response):
        error = self._apply_instruction(request.instruction)
        response.success = error is None
        response.message = error or f'instruction set: {self.runner.instruction!r}'
        return response

    def _on_describe(self, request, response):
        try:
            response.text = self.runner.describe(self.controller.last_observation, list(request.modalities))
            response.success = True
        except FuseError as exc:
            response.success = False
            response.message = str(exc)
        return response

    # --- diagnostics ----------------------------------------------------------------------
    def _status(self):
        s = self.controller.summary()
        outcome = self._outcomes.last
        with self._outcome_lock:
            sections = {'decode': list(self._decode_ms), 'process': list(self._process_ms),
                        'publish_command': list(self._publish_ms), 'window_to_command': list(self._window_ms)}
            if self._clock_thread is not None:
                # How late the tick clock ran each tick after its time (the window is not waited for).
                sections['tick_clock_late'] = list(self._clock_late_ms)
        for name, values in sections.items():
            p = percentiles(values)
            s[f'{name}_p50_ms'], s[f'{name}_p99_ms'] = p['p50'], p['p99']
        if self._clock_thread is not None:
            s['tick_source'] = 'clock'
            s['missed_clock_ticks'] = self._missed_clock_ticks
        # Steps a window named but whose data never arrived (masked), and windows not newer
        # than the newest (duplicates, overtaken in delivery).
        s['window_steps_lost'] = self.receiver.lost_steps
        s['windows_not_newer'] = self.receiver.not_newer
        if self.receiver.last_lost:
            s['last_lost_step'] = self.receiver.last_lost
        level, message = self.controller.health(outcome, self._gate())
        return level, message, s


def main(args=None):
    return run_node(PolicyNode, args=args, multithreaded=True)


if __name__ == '__main__':
    sys.exit(main())
