"""`./run.sh eval`: run N episodes of a bundle or the scripted expert in the twin and write a report.

The twin graph (fuse_bringup.graph.twin_graph, lockstep: every node on the world's /clock) is
started as processes, as `./run.sh sim` starts it. This process then plays each episode: reset
the world (/world/reset, task and the episode's seed), move the arm to the start pose
(/arm/move_to_start), and wait for the task's outcome on /world/task_state. Holds and motion
commands on /policy/command are counted per episode. Each finished episode is written to the
report directory at once (fuse_core.evaluation), so an interrupted run (Ctrl-C, a node that
exits, an episode without an outcome) keeps them, says how many are missing and why, and
`--resume` plays only the missing ones.

A bundle is checked before anything starts: the bundle loader's own checks (files, graphs
against the manifest), then every manifest input's stream against the streams the twin
publishes; a mismatch is refused naming the input.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from fuse_bringup import graph
from fuse_bringup.dds import dds_environment
from fuse_bringup.runner import GraphObserver, GraphProcesses, use_graph_environment
from fuse_core.errors import BundleError, ConfigError, EvaluationError
from fuse_core.evaluation import EpisodeResult, EvaluationReport, wilson_interval

#: Streams the twin world publishes, on the drivers' topics (fuse_nodes.world_node).
TWIN_STREAMS = ('camera_primary', 'camera_wrist', 'digit_left', 'digit_right', 'audio')


def check_bundle_for_twin(bundle_path: str) -> str:
    """Refuse a bundle the twin cannot feed; return its resolved path. Runs the bundle loader."""
    from fuse_core.bundle import load_bundle, resolve_bundle_path
    from fuse_core.sync.config import check_streams, stream_config, stream_defaults
    try:
        path = resolve_bundle_path(bundle_path)
        bundle = load_bundle(path)
    except (BundleError, ConfigError) as exc:
        raise EvaluationError(f'bundle {bundle_path!r}: {exc}') from exc
    streams = {name: stream_config(name, stream_defaults(name)) for name in TWIN_STREAMS}
    for spec in bundle.manifest.inputs:
        if spec.stream not in streams:
            raise EvaluationError(f'bundle {bundle_path!r}: input {spec.name!r} reads stream {spec.stream!r}, '
                                  f'which the twin world does not publish (it publishes {list(TWIN_STREAMS)})')
    try:
        check_streams(bundle.manifest, streams)
    except ConfigError as exc:
        raise EvaluationError(f'bundle {bundle_path!r}: {exc}') from exc
    return str(path)


class EpisodeDriver(GraphObserver):
    """The runner's ROS side: reset, move to start, outcome, command counts."""

    def __init__(self, domain_id: int) -> None:
        from std_srvs.srv import Trigger
        from fuse_interfaces.msg import ArmStatus, DeltaEECommand, TaskState
        from fuse_interfaces.srv import ResetTask
        from fuse_nodes.common import CONTROL_QOS, STATE_QOS

        self._Trigger, self._ResetTask = Trigger, ResetTask
        super().__init__(domain_id, 'fuse_eval')
        self.lock = threading.Lock()
        self.task: Optional[TaskState] = None
        self.task_updates = 0
        self.arm: Optional[ArmStatus] = None
        self.arm_updates = 0
        self.commands = 0
        self.holds: Dict[str, int] = {}
        self._arm_hold = ''
        self.node.create_subscription(TaskState, '/world/task_state', self._on_task, STATE_QOS)
        self.node.create_subscription(ArmStatus, '/arm/status', self._on_arm, STATE_QOS)
        self.node.create_subscription(DeltaEECommand, '/policy/command', self._on_command, CONTROL_QOS)
        self.reset_client = self.node.create_client(ResetTask, '/world/reset')
        self.start_client = self.node.create_client(Trigger, '/arm/move_to_start')
        self.spin()

    def _on_task(self, msg) -> None:
        with self.lock:
            self.task = msg
            self.task_updates += 1

    def _on_arm(self, msg) -> None:
        with self.lock:
            self.arm = msg
            self.arm_updates += 1
            # Arm-side holds (safety filter, watchdog) counted once per onset, by reason.
            if msg.hold_reason and msg.hold_reason != self._arm_hold and msg.state == 'holding':
                key = f'arm: {msg.hold_reason}'
                self.holds[key] = self.holds.get(key, 0) + 1
            self._arm_hold = msg.hold_reason

    def _on_command(self, msg) -> None:
        with self.lock:
            if msg.hold:
                self.holds[msg.reason or 'hold'] = self.holds.get(msg.reason or 'hold', 0) + 1
            else:
                self.commands += 1

    def wait_ready(self, timeout: float, alive: Callable[[], None]) -> None:
        """Until the arm sees the world (its status not 'not connected') and the task state arrives."""
        deadline = time.monotonic() + timeout
        while True:
            alive()
            with self.lock:
                arm, task = self.arm, self.task
            if arm is not None and task is not None and 'not connected' not in arm.hold_reason:
                return
            if time.monotonic() > deadline:
                why = 'no /arm/status' if arm is None else ('no /world/task_state' if task is None
                                                            else f'arm: {arm.hold_reason}')
                raise EvaluationError(f'the graph was not ready in {timeout:.0f} s ({why})')
            time.sleep(0.05)

    def take_counts(self):
        with self.lock:
            counts = (self.commands, dict(self.holds))
            self.commands, self.holds = 0, {}
            return counts

    def call(self, client, request, timeout: float, alive: Callable[[], None]):
        deadline = time.monotonic() + timeout
        while not client.service_is_ready():
            alive()
            if time.monotonic() > deadline:
                raise EvaluationError(f'{client.srv_name} not available after {timeout:.0f} s')
            time.sleep(0.05)
        fut = client.call_async(request)
        while not fut.done():
            alive()
            if time.monotonic() > deadline:
                raise EvaluationError(f'{client.srv_name}: no answer in {timeout:.0f} s')
            time.sleep(0.02)
        return fut.result()


class Interrupted(Exception):
    """The run stops early; the message says why (written into the report)."""


def play_episode(driver: EpisodeDriver, report: EvaluationReport, index: int, task: str,
                 alive: Callable[[], None], service_timeout: float, episode_timeout: float) -> EpisodeResult:
    seed = report.seed_of(index)
    t0 = time.monotonic()
    with driver.lock:
        before = driver.task.episode if driver.task is not None else -1
    res = driver.call(driver.reset_client, driver._ResetTask.Request(task=task, seed=seed), service_timeout, alive)
    if res is None or not res.success:
        raise EvaluationError(f'episode {index}: world reset refused: {getattr(res, "message", "no answer")}')
    res = driver.call(driver.start_client, driver._Trigger.Request(), service_timeout, alive)
    if res is None or not res.success:
        raise EvaluationError(f'episode {index}: move to start refused: {getattr(res, "message", "no answer")}')
    with driver.lock:
        arm_mark = driver.arm_updates
    # The arm has arrived once its status (published after the call) leaves moving_to_pose.
    while True:
        alive()
        with driver.lock:
            arm, n = driver.arm, driver.arm_updates
        if n >= arm_mark + 2 and arm is not None and arm.state not in ('moving_to_pose', 'estop'):
            break
        if time.monotonic() - t0 > service_timeout:
            raise EvaluationError(f'episode {index}: the arm did not reach the start pose in {service_timeout:.0f} s')
        time.sleep(0.02)
    driver.take_counts()                   # what came before the start belongs to no episode
    episode = None
    while True:
        alive()
        with driver.lock:
            st = driver.task
        if st is not None and st.episode > before and st.seed == seed:
            episode = st.episode if episode is None else episode
            if st.episode == episode and st.state != 'running':
                break
        if time.monotonic() - t0 > episode_timeout:
            raise EvaluationError(f'episode {index} (seed {seed}): no outcome on /world/task_state in '
                                  f'{episode_timeout:.0f} s')
        time.sleep(0.02)
    commands, holds = driver.take_counts()
    return EpisodeResult(index=index, seed=seed, task=st.task, outcome=st.state if st.state == 'success' else 'failure',
                         detail=st.detail, duration_s=round(float(st.episode_time_s), 3),
                         wall_s=round(time.monotonic() - t0, 3), commands=commands, holds=holds,
                         instruction=st.instruction)


def progress_line(report: EvaluationReport, r: EpisodeResult) -> str:
    done = list(report.results.values())
    k = sum(1 for e in done if e.outcome == 'success')
    lo, hi = wilson_interval(k, len(done))
    return (f'[eval] episode {r.index + 1}/{report.planned} seed {r.seed}: {r.outcome} ({r.detail}) '
            f'{r.duration_s:.1f} s sim, {r.wall_s:.1f} s wall | {k}/{len(done)} success, '
            f'{100 * k / len(done):.0f} % [{100 * lo:.0f} %, {100 * hi:.0f} %]')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='fuse eval', description=__doc__.splitlines()[0])
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument('--bundle', help='model bundle directory to evaluate')
    who.add_argument('--expert', action='store_true', help='evaluate the task\'s scripted expert')
    p.add_argument('--task', required=True, help='twin task (pick_cube, place_in_bowl, pick_soft, press_beep)')
    p.add_argument('--episodes', type=int, required=True, help='number of episodes')
    p.add_argument('--world', choices=('twin',), default='twin', help='twin: the MuJoCo world, lockstep')
    p.add_argument('--seed', type=int, default=0, help='seed of episode 0; episode i uses seed + i')
    p.add_argument('--instruction', help='language instruction for the policy (default: the task\'s)')
    p.add_argument('--out', required=True, help='report directory (refused if it exists, unless --resume/--overwrite)')
    p.add_argument('--resume', action='store_true', help='continue the report in --out: play only missing episodes')
    p.add_argument('--overwrite', action='store_true', help='replace the report in --out')
    p.add_argument('--episode-timeout', type=float, default=600.0,
                   help='wall seconds an episode may take before the run stops (default 600)')
    p.add_argument('--service-timeout', type=float, default=60.0,
                   help='wall seconds to wait for the graph\'s services and the move to start (default 60)')
    p.add_argument('--log-dir', help='per-node logs (default: OUT/logs)')
    p.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID for every process')
    return p


def main(argv: Optional[List[str]] = None) -> int:
    from fuse_sim.tasks import TASKS

    args = build_parser().parse_args(argv)
    try:
        if args.task not in TASKS:
            raise EvaluationError(f'unknown task {args.task!r}; known tasks: {sorted(TASKS)}')
        if args.episodes < 1:
            raise EvaluationError(f'--episodes must be at least 1, got {args.episodes}')
        if args.seed < 0 or args.seed + args.episodes > 2 ** 31:
            raise EvaluationError(f'--seed {args.seed}: seeds seed .. seed + episodes - 1 must lie in 0 .. 2^31-1')
        bundle = '' if args.expert else check_bundle_for_twin(args.bundle)
        config = {'world': args.world, 'task': args.task, 'seed': args.seed, 'episodes': args.episodes,
                  'action_source': 'expert' if args.expert else f'bundle:{bundle}', 'bundle': bundle,
                  'instruction': args.instruction or '', 'mode': 'lockstep'}
        report = EvaluationReport.open(args.out, config, resume=args.resume, overwrite=args.overwrite)
    except EvaluationError as exc:
        print(f'[eval] refused: {exc}', file=sys.stderr)
        return 2
    pending = report.pending()
    print(f'[eval] {config["action_source"]} on {args.task}, {report.planned} episodes from seed {args.seed} '
          f'-> {report.directory}' + (f' (resuming: {len(pending)} to play)' if args.resume else ''), flush=True)
    if not pending:
        report.finish()
        _write_html(report)
        print('[eval] nothing to play: every episode is in the report', flush=True)
        return 0

    specs = graph.twin_graph(bundle or graph.default_bundle_path(), args.instruction, args.task, args.seed,
                             expert=args.expert, mode='lockstep')
    if args.expert:
        # The runner resets the world for every episode; the expert only acts.
        specs = [dataclasses.replace(s, parameters={**s.parameters, 'reset_on_start': False})
                 if s.name == 'expert' else s for s in specs]
    env = dds_environment(domain_id=args.domain_id)
    env.setdefault('PYTHONUNBUFFERED', '1')
    use_graph_environment(env)
    log_dir = Path(args.log_dir) if args.log_dir else report.directory / 'logs'
    procs = GraphProcesses(specs, env, log_dir)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def alive() -> None:
        if stop.is_set():
            raise Interrupted('interrupted (Ctrl-C or SIGTERM)')
        dead = procs.exited()
        if dead:
            name, rc = next(iter(dead.items()))
            raise Interrupted(f'node {name} exited with code {rc} (see {log_dir}/{name}.log)')

    reason = ''
    driver = None
    procs.start()
    try:
        driver = EpisodeDriver(int(env['ROS_DOMAIN_ID']))
        driver.wait_ready(args.service_timeout, alive)
        for index in pending:
            result = play_episode(driver, report, index, args.task, alive, args.service_timeout,
                                  args.episode_timeout)
            report.record(result)
            print(progress_line(report, result), flush=True)
    except (Interrupted, EvaluationError) as exc:
        reason = str(exc)
        print(f'\n[eval] stopped: {reason}', flush=True)
    finally:
        codes = procs.stop()              # the nodes first: whatever happens next, none is left running
        if driver is not None:
            driver.close()
    summary = report.finish(reason)
    _write_html(report)
    lo, hi = summary['wilson_95']
    rate = summary['success_rate']
    print(f'[eval] {summary["successes"]}/{summary["episodes_finished"]} success'
          + (f' ({100 * rate:.0f} %, 95 % interval {100 * lo:.0f} - {100 * hi:.0f} %)' if rate is not None else '')
          + (f'; {summary["episodes_missing"]} missing: {summary["missing_reason"]}' if summary['episodes_missing']
             else '') + f'; report {report.directory}', flush=True)
    bad = {n: c for n, c in codes.items() if c not in (0, -signal.SIGINT)}
    if bad and not reason:
        print(f'[eval] nodes exited with {bad}', flush=True)
    return 0 if summary['status'] == 'complete' else 1


def compare_main(argv: Optional[List[str]] = None) -> int:
    """`./run.sh compare DIR DIR ... [--html FILE]`: the reports side by side."""
    from fuse_core.evaluation import compare
    p = argparse.ArgumentParser(prog='fuse compare', description='evaluation reports side by side')
    p.add_argument('reports', nargs='+', help='two or more report directories (./run.sh eval --out)')
    p.add_argument('--html', help='also write the table as a self-contained page to this file')
    args = p.parse_args(argv)
    try:
        summaries = compare.read_summaries(args.reports)
    except EvaluationError as exc:
        print(f'[compare] refused: {exc}', file=sys.stderr)
        return 2
    print(compare.text_table(summaries))
    if args.html:
        Path(args.html).write_text(compare.html_page(summaries))
    return 0


def _write_html(report: EvaluationReport) -> None:
    from fuse_core.evaluation.html import write_html
    write_html(report.directory)


if __name__ == '__main__':
    sys.exit(main())
