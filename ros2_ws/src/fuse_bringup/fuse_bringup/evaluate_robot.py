"""`./run.sh eval --world robot`: trials of a bundle on the robot, each marked by the operator with keys.

The robot graph in evaluation mode (fuse_bringup.graph.robot_graph(evaluate=True): sensors,
sync, the policy, the arm, robot_state, the episode manager and the per-trial recorder) is
started as processes, or with --attach the one `robot.launch.py eval:=true` started is used.
This process runs the episode manager's keyboard front end (fuse_nodes.episode_keys) in its
terminal: for each trial the operator sets the scene, resets ([r]: the arm to the start pose,
both DIGIT backgrounds captured there), starts ([enter]: the policy commands only while the
trial records) and marks it: [1] success, [2] failure (counted), [3] discard or [x] abort (not
counted: the same trial is played again; the try is kept with the trial). The manager's states
(/episodes/state) become trials through fuse_core.evaluation.trials; each counted trial goes
into the same report directory as a twin evaluation (episodes.jsonl, summary.json, report.html,
episodes/<episode id>/ with the bag, trace and video), with outcome_source 'operator' and the
operator's name. Ctrl-C, [q] or a node that exits stop the run and keep the counted trials;
`--resume` plays only the missing ones.
"""

from __future__ import annotations

import queue
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from fuse_bringup import graph
from fuse_bringup.dds import dds_environment
from fuse_bringup.evaluate import (EpisodeDriver, Interrupted, VideoQueue, _finish_videos, _last_lines,
                                   _nothing_to_play, _run_setup, _write_html, check_bundle_for_twin)
from fuse_bringup.runner import GraphProcesses, use_graph_environment
from fuse_core.errors import EvaluationError
from fuse_core.evaluation import EvaluationReport
from fuse_core.evaluation.report import EPISODES_DIR
from fuse_core.evaluation.trace import EpisodeTrace
from fuse_core.evaluation.trials import ManagerState, OperatorTrials, TrialEvent, running_rate

#: The robot's sensor streams on the drivers' topics (the sync node's defaults).
ROBOT_STREAMS = ('camera_primary', 'camera_wrist', 'digit_left', 'digit_right', 'audio')


class TrialDriver(EpisodeDriver):
    """The twin driver's counts, path and timing, plus the episode manager's states (in a queue)."""

    def __init__(self, domain_id: int) -> None:
        super().__init__(domain_id, policy=True)
        from fuse_interfaces.msg import EpisodeState
        from fuse_nodes.common import STATE_QOS
        self.states: 'queue.SimpleQueue[ManagerState]' = queue.SimpleQueue()
        self.manager = None                  # the last EpisodeState
        self.manager_seen = 0.0              # when it came (monotonic)
        self.node.create_subscription(EpisodeState, '/episodes/state', self._on_manager, STATE_QOS)

    def _on_manager(self, msg) -> None:
        with self.lock:
            self.manager, self.manager_seen = msg, time.monotonic()
        self.states.put(ManagerState(state=msg.state, episode_id=msg.episode_id, last_episode_id=msg.last_episode_id,
                                     last_outcome=msg.last_outcome, task=msg.task, instruction=msg.instruction))

    def wait_manager(self, timeout: Optional[float], alive, say) -> None:
        """Until the episode manager reports its recorder ready and the arm is connected."""
        deadline = None if timeout is None else time.monotonic() + timeout
        told = 0.0
        while True:
            alive()
            with self.lock:
                m, arm = self.manager, self.arm
            why = ('no /episodes/state' if m is None else
                   f'the episode manager: {m.message}' if not m.recorder_ready else
                   'no /arm/status' if arm is None else
                   f'arm: {arm.hold_reason}' if 'not connected' in arm.hold_reason else '')
            if not why:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise EvaluationError(f'the graph was not ready in {timeout:.0f} s ({why})')
            if time.monotonic() - told > 10.0:
                told = time.monotonic()
                say(f'[eval] waiting for the graph ({why})')
            time.sleep(0.1)


def robot_config(args, bundle: str) -> dict:
    """The report's configuration (a resumed run must match it)."""
    return {'world': 'robot', 'task': args.task, 'episodes': args.episodes, 'action_source': f'bundle:{bundle}',
            'bundle': bundle, 'instruction': args.instruction, 'outcome_source': 'operator',
            'mode': 'synthetic' if args.synthetic else 'hardware'}


def _check(args) -> None:
    if args.expert:
        raise EvaluationError('--expert is the twin\'s scripted expert; on the robot evaluate a --bundle')
    if args.episodes < 1:
        raise EvaluationError(f'--episodes must be at least 1, got {args.episodes}')
    if not args.instruction:
        raise EvaluationError('--world robot needs --instruction: the policy\'s language instruction')
    if args.attach and args.synthetic:
        raise EvaluationError('--attach uses the graph robot.launch.py started; --synthetic starts one of its own')
    if not sys.stdin.isatty():
        raise EvaluationError('--world robot needs a terminal: the operator marks every trial with keys')


def main_robot(args) -> int:
    try:
        _check(args)
        bundle = check_bundle_for_twin(args.bundle, ROBOT_STREAMS, 'the robot\'s sensors')
        report = EvaluationReport.open(args.out, robot_config(args, bundle), resume=args.resume,
                                       overwrite=args.overwrite)
    except EvaluationError as exc:
        print(f'[eval] refused: {exc}', file=sys.stderr)
        return 2
    pending = report.pending()
    record = not args.no_bags
    bags = report.directory / EPISODES_DIR
    print(f'[eval] bundle:{bundle} on the robot ({"synthetic sensors, mock arm" if args.synthetic else "hardware"}): '
          f'{args.task!r}, {report.planned} trials marked by {args.operator or "the operator"} -> {report.directory}'
          + (f' (resuming: {len(pending)} to play)' if args.resume else ''), flush=True)
    log_dir, videos, stop, skip = _run_setup(report, args)
    if not pending:
        return _nothing_to_play(report, videos, skip, 'trial')

    env = dds_environment(domain_id=args.domain_id)
    env.setdefault('PYTHONUNBUFFERED', '1')
    use_graph_environment(env)
    procs = None
    if args.attach:
        print('[eval] attaching to the graph of: ros2 launch fuse_bringup robot.launch.py eval:=true '
              f'bundle:={bundle} instruction:=\'{args.instruction}\' task:=\'{args.task}\' operator:={args.operator} '
              + (f'record:={bags} ' if record else '') + '(and the devices)', flush=True)
    else:
        specs = graph.robot_graph(bundle_path=bundle, instruction=args.instruction, evaluate=True, task=args.task,
                                  operator=args.operator, record=record, record_dir=str(bags) if record else None,
                                  synthetic=args.synthetic)
        procs = GraphProcesses(specs, env, log_dir)

    def alive() -> None:
        if stop.is_set():
            raise Interrupted('interrupted (Ctrl-C or SIGTERM)')
        dead = procs.exited() if procs is not None else {}
        if dead:
            name, rc = next(iter(dead.items()))
            raise Interrupted(f'node {name} exited with code {rc} (see {log_dir}/{name}.log)')

    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from fuse_nodes.episode_keys import EpisodeKeys, read_keys
    reason = ''
    driver = keys = None
    # Counted trials whose bag the recorder is closing: their trace (and video) wait for it, since
    # the recorder makes the bag's directory and closes it on its own time.
    closing: List[Tuple[Path, EpisodeTrace]] = []
    if procs is not None:
        procs.start()
    # Ctrl-C stays this runner's (_run_setup): rclpy must not shut the keys' context down under it.
    rclpy.init(args=['fuse_eval_keys'], signal_handler_options=SignalHandlerOptions.NO)
    try:
        keys = EpisodeKeys()
        driver = TrialDriver(int(env['ROS_DOMAIN_ID']))
        driver.wait_manager(None if args.attach else args.service_timeout, alive, keys.say)
        missing = keys.missing_services(args.service_timeout)
        if missing:
            raise Interrupted(f'the episode manager publishes its state but not {", ".join(missing)} '
                              f'after {args.service_timeout:.0f} s')
        if args.attach:
            _check_attached(driver.manager.action_source, bundle)
        trials = OperatorTrials(pending, report.planned, args.task, args.instruction, args.operator,
                                note_of=lambda eid: keys.notes.get(eid, ''), now=time.monotonic())

        def due() -> None:
            keys.say(f'[eval] {trials.label()}: set the scene, then [r] reset (start pose, DIGIT backgrounds) '
                     'and [enter] start')

        def handle(ev: TrialEvent) -> None:
            if ev.kind != 'counted':
                if ev.kind in ('started', 'retry'):
                    driver.take_episode()        # what came before a try, or in a retried one, is no trial's
                keys.say(f'[eval] {ev.text}')
                return
            data, r = driver.take_episode(), ev.result
            r.commands, r.holds = data.commands, data.holds
            r.latency_samples_ms, r.inference_samples_ms = data.latency_ms, data.inference_ms
            r.bag = record
            closing.append((bags / ev.episode_id, EpisodeTrace.from_stamps(data.ee, data.actions)))
            report.record(r)
            _bags_closed(closing, report, videos, wait=record)
            keys.say(f'[eval] {trials.label(r.index)}: {r.outcome} ({r.detail}) {r.duration_s:.1f} s, '
                     f'{r.wall_s:.1f} s with the reset | {running_rate(report)}')
            if not trials.done:
                due()

        def tick() -> bool:
            alive()
            if args.attach and time.monotonic() - driver.manager_seen > args.service_timeout:
                raise Interrupted(f'no /episodes/state for {args.service_timeout:.0f} s (the episode manager '
                                  'is gone)')
            while True:
                try:
                    st = driver.states.get_nowait()
                except queue.Empty:
                    break
                for ev in trials.update(st, time.monotonic()):
                    handle(ev)
            _bags_closed(closing, report, videos, wait=record)
            if not trials.done:
                return True
            # Every trial is counted: the graph stays up until the recorder has closed the last bag.
            now = time.monotonic()
            if not finished:
                finished.append(now)
            return bool(closing) and now - finished[0] < args.service_timeout

        finished: List[float] = []           # when the tick saw every trial counted
        due()
        why = read_keys(keys, sys.stdin.fileno(), tick)
        if why == 'quit':
            reason = 'the operator quit ([q])'
        elif why == 'interrupted' or stop.is_set():
            reason = 'interrupted (Ctrl-C or SIGTERM)'
    except (Interrupted, EvaluationError) as exc:
        reason = str(exc)
    finally:
        codes = procs.stop() if procs is not None else {}   # the nodes first: none is left running
        if driver is not None:
            driver.close()
        if keys is not None:
            keys.destroy_node()
        rclpy.try_shutdown()
    if reason:
        print(f'[eval] stopped: {reason}', flush=True)
    _bags_closed(closing, report, videos, wait=False)      # the graph is down: what is there is all
    summary = report.finish(reason)
    _finish_videos(videos, skip, report.directory)
    _write_html(report)
    return _last_lines(report, summary, reason, codes)


def _check_attached(action_source: str, bundle: str) -> None:
    """The launched graph must run the bundle this report names."""
    from fuse_core.bundle import resolve_bundle_path
    from fuse_core.errors import BundleError
    from fuse_nodes.layout import shipped_roots
    path = action_source[len('bundle:'):] if action_source.startswith('bundle:') else ''
    try:
        same = bool(path) and str(resolve_bundle_path(path, shipped_roots())) == bundle
    except BundleError:
        same = False
    if not same:
        raise EvaluationError(f'the launched graph runs {action_source!r}, not bundle:{bundle}: launch it with '
                              f'bundle:={bundle}')


def _bags_closed(closing: List[Tuple[Path, EpisodeTrace]], report: EvaluationReport,
                 videos: Optional[VideoQueue], wait: bool) -> None:
    """Each counted trial whose bag is closed (all of them unless `wait`): its trace beside the bag,
    its bag to the video maker, and the page again."""
    done = [(d, trace) for d, trace in closing if not wait or (d / 'metadata.yaml').is_file()]
    for d, trace in done:
        closing.remove((d, trace))
        trace.write(d)
        if videos is not None and (d / 'metadata.yaml').is_file():
            videos.submit(d)
    if done:
        _write_html(report)
    if videos is not None:
        videos.poll()
