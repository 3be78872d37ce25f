"""`./run.sh eval`: run N episodes of a bundle or the scripted expert in the twin and write a report.

The twin graph (fuse_bringup.graph.twin_graph, lockstep: every node on the world's /clock) is
started as processes, as `./run.sh sim` starts it. This process then plays each episode: reset
the world (/world/reset, task and the episode's seed), move the arm to the start pose
(/arm/move_to_start), have the recorder open the episode's bag (OUT/episodes/<id>, unless
--no-bags), and wait for the task's outcome on /world/task_state. Per episode it counts holds
and motion commands on /policy/command, keeps the end-effector path (/arm/ee_pose) and the
commands for the report's plots, and, for a bundle, the window -> command latency (the DDS
source stamps of /sync/window and /policy/command) and the inference time (/policy/action_chunk).
Each finished episode is written to the report directory at once (fuse_core.evaluation), so an
interrupted run (Ctrl-C, a node that exits, an episode without an outcome) keeps them, says how
many are missing and why, and `--resume` plays only the missing ones. Each episode's video is
made from its bag in a child process at low priority while the next episode runs.

A bundle is checked before anything starts: the bundle loader's own checks (files, graphs
against the manifest), then every manifest input's stream against the streams the twin
publishes; a mismatch is refused naming the input.

`--world robot` hands over to fuse_bringup.evaluate_robot: trials on the robot that the operator
marks with keys, into the same report.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional, Tuple

from fuse_bringup import graph
from fuse_bringup.dds import dds_environment
from fuse_bringup.runner import GraphObserver, GraphProcesses, use_graph_environment
from fuse_core.arm.safety import HOLDING, NOT_COMMANDABLE
from fuse_core.errors import BundleError, ConfigError, EvaluationError
from fuse_core.evaluation import EpisodeResult, EvaluationReport, wilson_interval
from fuse_core.evaluation.report import EPISODES_DIR, episode_name, reason_kind, sample_stats
from fuse_core.evaluation.trace import EpisodeTrace

#: Streams the twin world publishes, on the drivers' topics (fuse_nodes.world_node).
TWIN_STREAMS = ('camera_primary', 'camera_wrist', 'digit_left', 'digit_right', 'audio')


def check_bundle_for_twin(bundle_path: str, published: tuple = TWIN_STREAMS,
                          world: str = 'the twin world') -> str:
    """Refuse a bundle that `world` (default the twin, which publishes `published`) cannot feed;
    return its resolved path. Runs the bundle loader."""
    from fuse_core.bundle import load_bundle, resolve_bundle_path
    from fuse_core.sync.config import check_streams, stream_config, stream_defaults
    from fuse_nodes.layout import shipped_roots
    try:
        path = resolve_bundle_path(bundle_path, shipped_roots())
        bundle = load_bundle(path)
    except (BundleError, ConfigError) as exc:
        raise EvaluationError(f'bundle {bundle_path!r}: {exc}') from exc
    streams = {name: stream_config(name, stream_defaults(name)) for name in published}
    for spec in bundle.manifest.inputs:
        if spec.stream not in streams:
            raise EvaluationError(f'bundle {bundle_path!r}: input {spec.name!r} reads stream {spec.stream!r}, '
                                  f'which {world} does not publish (it publishes {list(published)})')
    try:
        check_streams(bundle.manifest, streams)
    except ConfigError as exc:
        raise EvaluationError(f'bundle {bundle_path!r}: {exc}') from exc
    return str(path)


#: Windows remembered for matching commands to them (tick stamp -> publish time).
_WINDOW_MEMORY = 64
#: A window -> command time outside 0 .. this is not a measurement (clocks of different hosts).
_MAX_LATENCY_MS = 10_000.0


@dataclasses.dataclass
class EpisodeData:
    """What the driver saw between two take_episode() calls."""

    commands: int = 0
    holds: Dict[str, int] = dataclasses.field(default_factory=dict)
    ee: List[list] = dataclasses.field(default_factory=list)          # [stamp_ns, x, y, z]
    actions: List[list] = dataclasses.field(default_factory=list)     # [stamp_ns, dx .. gripper] (None x 7: hold)
    latency_ms: List[float] = dataclasses.field(default_factory=list)
    inference_ms: List[float] = dataclasses.field(default_factory=list)


class EpisodeDriver(GraphObserver):
    """The runner's ROS side: reset, move to start, the recorder, outcome, counts, path and timing.

    policy: also match each command to its window (latency) and read the chunks' inference time.
    """

    def __init__(self, domain_id: int, policy: bool = False, recorder: bool = False) -> None:
        from geometry_msgs.msg import PoseStamped
        from std_srvs.srv import Trigger
        from fuse_interfaces.msg import ActionChunk, ArmStatus, DeltaEECommand, ObservationWindow, TaskState
        from fuse_interfaces.srv import RecordEpisode, ResetTask
        from fuse_nodes.common import CONTROL_QOS, STATE_QOS, time_to_ns

        self._Trigger, self._ResetTask, self._RecordEpisode = Trigger, ResetTask, RecordEpisode
        self._time_to_ns = time_to_ns
        super().__init__(domain_id, 'fuse_eval')
        self.lock = threading.Lock()
        self.task: Optional[TaskState] = None
        self.task_updates = 0
        self.arm: Optional[ArmStatus] = None
        self.arm_updates = 0
        self.data = EpisodeData()
        self._arm_hold = ''
        self._windows: 'collections.OrderedDict[int, int]' = collections.OrderedDict()
        self.node.create_subscription(TaskState, '/world/task_state', self._on_task, STATE_QOS)
        self.node.create_subscription(ArmStatus, '/arm/status', self._on_arm, STATE_QOS)
        self.command_sub = self.node.create_subscription(DeltaEECommand, '/policy/command', self._on_command,
                                                         CONTROL_QOS)
        self.node.create_subscription(PoseStamped, '/arm/ee_pose', self._on_pose, STATE_QOS)
        if policy:
            # raw: only the header stamp is read, so the ~1 MB window is never deserialised here.
            self.node.create_subscription(ObservationWindow, '/sync/window', self._on_window, CONTROL_QOS,
                                          raw=True)
            self.node.create_subscription(ActionChunk, '/policy/action_chunk', self._on_chunk, CONTROL_QOS)
        self.reset_client = self.node.create_client(ResetTask, '/world/reset')
        self.start_client = self.node.create_client(Trigger, '/arm/move_to_start')
        if recorder:
            self.rec_start = self.node.create_client(RecordEpisode, '/recorder/start')
            self.rec_stop = self.node.create_client(RecordEpisode, '/recorder/stop')
            self.rec_ready = self.node.create_client(Trigger, '/recorder/ready')
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
            if msg.hold_reason and msg.hold_reason != self._arm_hold and msg.state == HOLDING:
                key = f'arm: {reason_kind(msg.hold_reason)}'
                self.data.holds[key] = self.data.holds.get(key, 0) + 1
            self._arm_hold = msg.hold_reason

    def _on_window(self, raw: bytes, info) -> None:
        from fuse_core.bag.cdr import header_stamp_ns
        sent = int(info.get('source_timestamp') or 0) if info else 0
        if not sent:
            return
        with self.lock:
            self._windows[header_stamp_ns(raw)] = sent
            while len(self._windows) > _WINDOW_MEMORY:
                self._windows.popitem(last=False)

    def _on_chunk(self, msg) -> None:
        with self.lock:
            self.data.inference_ms.append(round(float(msg.inference_ms), 3))

    def _on_pose(self, msg) -> None:
        p = msg.pose.position
        with self.lock:
            self.data.ee.append([self._time_to_ns(msg.header.stamp), p.x, p.y, p.z])

    def _on_command(self, msg, info) -> None:
        stamp = self._time_to_ns(msg.header.stamp)
        sent = int(info.get('source_timestamp') or 0) if info else 0
        with self.lock:
            d = self.data
            if msg.hold:
                key = reason_kind(msg.reason) or 'hold'
                d.holds[key] = d.holds.get(key, 0) + 1
                d.actions.append([stamp] + [None] * 7)
            else:
                d.commands += 1
                d.actions.append([stamp] + list(msg.translation) + list(msg.rotation) + [msg.gripper])
            window_sent = self._windows.get(stamp)
            if window_sent and sent:
                ms = (sent - window_sent) / 1e6
                if 0.0 <= ms <= _MAX_LATENCY_MS:
                    d.latency_ms.append(round(ms, 3))

    def wait_ready(self, timeout: float, alive: Callable[[], None]) -> None:
        """Until the arm sees the world (its status not 'not connected'), the task state arrives and
        the command topic's publisher is matched (discovery matches each topic on its own: an
        episode started before would lose its first commands from the record)."""
        deadline = time.monotonic() + timeout
        while True:
            alive()
            with self.lock:
                arm, task = self.arm, self.task
            heard = self.command_sub.get_publisher_count() > 0
            if arm is not None and task is not None and 'not connected' not in arm.hold_reason and heard:
                return
            if time.monotonic() > deadline:
                why = 'no /arm/status' if arm is None else ('no /world/task_state' if task is None
                                                            else f'arm: {arm.hold_reason}' if heard
                                                            else 'no publisher on /policy/command')
                raise EvaluationError(f'the graph was not ready in {timeout:.0f} s ({why})')
            time.sleep(0.05)

    def take_episode(self) -> EpisodeData:
        """What came since the last call; starts afresh."""
        with self.lock:
            data, self.data = self.data, EpisodeData()
            return data

    def wait_recorder(self, timeout: float, alive: Callable[[], None]) -> None:
        """Until the recorder answers ~/ready (every topic an episode bag needs subscribed)."""
        deadline = time.monotonic() + timeout
        why = 'its /recorder/ready service is not up'
        while True:
            alive()
            if self.rec_ready.service_is_ready():
                res = self.call(self.rec_ready, self._Trigger.Request(), max(1.0, deadline - time.monotonic()), alive)
                if res is not None and res.success:
                    return
                why = getattr(res, 'message', '') or 'no answer'
            if time.monotonic() > deadline:
                raise EvaluationError(f'the recorder was not ready in {timeout:.0f} s ({why})')
            time.sleep(0.5)

    def record(self, client, md, what: str, timeout: float, alive: Callable[[], None]) -> None:
        """/recorder/start or /recorder/stop with the episode's metadata; EvaluationError if refused."""
        res = self.call(client, self._RecordEpisode.Request(episode_id=md.episode_id, metadata_json=md.to_json()),
                        timeout, alive)
        if res is None or not res.success:
            raise EvaluationError(f'{md.episode_id}: the recorder did not {what}: '
                                  f'{getattr(res, "message", "no answer")}')

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


def _episode_metadata(report: EvaluationReport, index: int, reset):
    """The bag's episode.json (fuse_core.episodes), from the world's answer to the reset."""
    from fuse_core.episodes.metadata import EpisodeMetadata
    from fuse_core.episodes.modalities import from_lists
    from fuse_core.errors import EpisodeError
    try:
        modalities = from_lists(reset.modality_combinations, reset.modality_instructions, 'world reset')
    except EpisodeError:
        modalities = {}
    return EpisodeMetadata(episode_id=episode_name(index), task=reset.task, seed=int(reset.seed), world='twin',
                           instruction=report.config.get('instruction') or reset.instruction,
                           action_source=report.config['action_source'], modalities=modalities,
                           start_time_ns=time.time_ns())


def play_episode(driver: EpisodeDriver, report: EvaluationReport, index: int, task: str,
                 alive: Callable[[], None], service_timeout: float, episode_timeout: float,
                 record: bool = False) -> EpisodeResult:
    seed = report.seed_of(index)
    t0 = time.monotonic()
    with driver.lock:
        before = driver.task.episode if driver.task is not None else -1
    reset = driver.call(driver.reset_client, driver._ResetTask.Request(task=task, seed=seed), service_timeout, alive)
    if reset is None or not reset.success:
        raise EvaluationError(f'episode {index}: world reset refused: {getattr(reset, "message", "no answer")}')
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
        if n >= arm_mark + 2 and arm is not None and arm.state not in NOT_COMMANDABLE:
            break
        if time.monotonic() - t0 > service_timeout:
            raise EvaluationError(f'episode {index}: the arm did not reach the start pose in {service_timeout:.0f} s')
        time.sleep(0.02)
    md = None
    if record:
        stale = report.episode_dir(index)
        if stale.exists():
            shutil.rmtree(stale)           # an earlier run's unfinished episode: it is not in the report
        md = _episode_metadata(report, index, reset)
        driver.record(driver.rec_start, md, 'start the bag', service_timeout, alive)
    driver.take_episode()                  # what came before the start belongs to no episode
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
    data = driver.take_episode()
    outcome = st.state if st.state == 'success' else 'failure'
    if md is not None:
        md.outcome, md.note, md.end_time_ns = outcome, st.detail, time.time_ns()
        driver.record(driver.rec_stop, md, 'close the bag', service_timeout, alive)
    EpisodeTrace.from_stamps(data.ee, data.actions).write(report.episode_dir(index))
    policy = report.config.get('action_source') != 'expert'
    return EpisodeResult(index=index, seed=seed, task=st.task, outcome=outcome,
                         detail=st.detail, duration_s=round(float(st.episode_time_s), 3),
                         wall_s=round(time.monotonic() - t0, 3), commands=data.commands, holds=data.holds,
                         instruction=st.instruction, episode_id=episode_name(index), bag=record,
                         latency_samples_ms=data.latency_ms if policy else None,
                         inference_samples_ms=data.inference_ms if policy else None)


class VideoQueue:
    """Makes each episode's video from its bag (fuse_core.evaluation.video) in a child process at
    nice 10, one at a time, while the next episodes play; a failure is written beside the bag."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.jobs: Deque[Path] = collections.deque()
        self.proc: Optional[subprocess.Popen] = None
        self.current: Optional[Path] = None
        self.seconds: List[float] = []      # wall time of each video made
        self.cpu_s: List[float] = []        # and its CPU time
        self.failed = 0

    def submit(self, bag_dir: Path) -> None:
        self.jobs.append(Path(bag_dir))
        self.poll()

    def poll(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                return
            self._finish()
        if self.jobs:
            self._start(self.jobs.popleft())

    def _log(self, bag_dir: Path) -> Path:
        return self.log_dir / f'video_{bag_dir.name}.log'

    def _start(self, bag_dir: Path) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self._log(bag_dir), 'w') as log:
            self.proc = subprocess.Popen([sys.executable, '-m', 'fuse_core.evaluation.video', str(bag_dir)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.current = bag_dir
        try:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, 10)
        except OSError:
            pass                           # it runs at normal priority

    def _finish(self) -> None:
        from fuse_core.evaluation.video import VIDEO_ERROR_FILE
        rc, bag_dir = self.proc.returncode, self.current
        self.proc, self.current = None, None
        lines = self._log(bag_dir).read_text(errors='replace').splitlines()
        if rc == 0:
            try:
                info = json.loads(lines[-1])
                self.seconds.append(float(info['seconds']))
                self.cpu_s.append(float(info['cpu_s']))
            except (IndexError, ValueError, KeyError):
                pass
            return
        self.failed += 1
        why = next((ln[len('[video] '):] for ln in reversed(lines) if ln.startswith('[video] ')),
                   f'the video maker exited with code {rc} (see {self._log(bag_dir)})')
        (bag_dir / VIDEO_ERROR_FILE).write_text(why + '\n')

    def pending(self) -> int:
        return len(self.jobs) + (self.proc is not None)

    def drain(self, skip: threading.Event) -> None:
        """Until every video is made, or `skip` is set: then the rest are marked as not made."""
        from fuse_core.evaluation.video import VIDEO_ERROR_FILE
        while self.pending() and not skip.is_set():
            self.poll()
            time.sleep(0.1)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.jobs.appendleft(self.current)
            self.proc, self.current = None, None
        for bag_dir in self.jobs:
            (bag_dir / VIDEO_ERROR_FILE).write_text('not made: the run was stopped before its video\n')
        self.jobs.clear()


def progress_line(report: EvaluationReport, r: EpisodeResult) -> str:
    done = list(report.results.values())
    k = sum(1 for e in done if e.outcome == 'success')
    lo, hi = wilson_interval(k, len(done))
    timing = ''
    lat, inf = sample_stats(r.latency_samples_ms), sample_stats(r.inference_samples_ms)
    if lat and lat['count']:
        timing += f' | window -> command p50 {lat["p50"]:.0f} ms, p99 {lat["p99"]:.0f} ms'
    if inf and inf['count']:
        timing += f', inference p50 {inf["p50"]:.1f} ms'
    return (f'[eval] episode {r.index + 1}/{report.planned} seed {r.seed}: {r.outcome} ({r.detail}) '
            f'{r.duration_s:.1f} s sim, {r.wall_s:.1f} s wall | {k}/{len(done)} success, '
            f'{100 * k / len(done):.0f} % [{100 * lo:.0f} %, {100 * hi:.0f} %]' + timing)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='fuse eval', description=__doc__.splitlines()[0])
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument('--bundle', help='model bundle directory to evaluate')
    who.add_argument('--expert', action='store_true', help='evaluate the task\'s scripted expert')
    p.add_argument('--task', required=True, help='twin task (pick_cube, place_in_bowl, pick_soft, press_beep); '
                                                 'robot: what the trials do (free text)')
    p.add_argument('--episodes', type=int, required=True, help='number of episodes (robot: counted trials)')
    p.add_argument('--world', choices=('twin', 'robot'), default='twin',
                   help='twin: the MuJoCo world, lockstep; robot: trials the operator marks with keys '
                        '(fuse_bringup.evaluate_robot)')
    p.add_argument('--operator', default='', help='robot: who marks the trials (in the report and every bag)')
    p.add_argument('--synthetic', action='store_true',
                   help='robot: synthetic sensors and the mock arm instead of the hardware (a rehearsal, or tests)')
    p.add_argument('--attach', action='store_true',
                   help='robot: start no nodes; use the graph of robot.launch.py eval:=true')
    p.add_argument('--seed', type=int, default=0, help='seed of episode 0; episode i uses seed + i')
    p.add_argument('--instruction', help='language instruction for the policy (default: the task\'s)')
    p.add_argument('--policy-param', action='append', default=[], metavar='NAME=VALUE',
                   help='twin: a policy node parameter for this evaluation, e.g. execution=temporal_ensemble '
                        '(repeatable; kept in the report)')
    p.add_argument('--out', required=True, help='report directory (refused if it exists, unless --resume/--overwrite)')
    p.add_argument('--resume', action='store_true', help='continue the report in --out: play only missing episodes')
    p.add_argument('--overwrite', action='store_true', help='replace the report in --out')
    p.add_argument('--episode-timeout', type=float, default=600.0,
                   help='wall seconds an episode may take before the run stops (default 600)')
    p.add_argument('--service-timeout', type=float, default=60.0,
                   help='wall seconds to wait for the graph\'s services and the move to start (default 60)')
    p.add_argument('--no-bags', action='store_true',
                   help='record no episode bags (so no videos either): for long runs; the plots and timing stay')
    p.add_argument('--no-videos', action='store_true', help='keep the bags but make no videos from them')
    p.add_argument('--log-dir', help='per-node logs (default: OUT/logs)')
    p.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID for every process')
    return p


def main(argv: Optional[List[str]] = None) -> int:
    from fuse_sim.tasks import TASKS

    args = build_parser().parse_args(argv)
    if args.world == 'robot':
        from fuse_bringup.evaluate_robot import main_robot
        return main_robot(args)
    try:
        if args.task not in TASKS:
            raise EvaluationError(f'unknown task {args.task!r}; known tasks: {sorted(TASKS)}')
        if args.episodes < 1:
            raise EvaluationError(f'--episodes must be at least 1, got {args.episodes}')
        if args.seed < 0 or args.seed + args.episodes > 2 ** 31:
            raise EvaluationError(f'--seed {args.seed}: seeds seed .. seed + episodes - 1 must lie in 0 .. 2^31-1')
        bundle = '' if args.expert else check_bundle_for_twin(args.bundle)
        try:
            policy_params = graph.parameter_overrides(args.policy_param)
        except ValueError as exc:
            raise EvaluationError(f'--policy-param {exc}') from exc
        if policy_params and args.expert:
            raise EvaluationError('--policy-param: the expert runs no policy node')
        config = {'world': args.world, 'task': args.task, 'seed': args.seed, 'episodes': args.episodes,
                  'action_source': 'expert' if args.expert else f'bundle:{bundle}', 'bundle': bundle,
                  'instruction': args.instruction or '', 'mode': 'lockstep'}
        if policy_params:
            config['policy_parameters'] = policy_params
        report = EvaluationReport.open(args.out, config, resume=args.resume, overwrite=args.overwrite)
    except EvaluationError as exc:
        print(f'[eval] refused: {exc}', file=sys.stderr)
        return 2
    pending = report.pending()
    print(f'[eval] {config["action_source"]} on {args.task}, {report.planned} episodes from seed {args.seed} '
          f'-> {report.directory}' + (f' (resuming: {len(pending)} to play)' if args.resume else ''), flush=True)
    record = not args.no_bags
    log_dir, videos, stop, skip = _run_setup(report, args)
    if not pending:
        return _nothing_to_play(report, videos, skip, 'episode')

    specs = graph.twin_graph(bundle or graph.default_bundle_path(), args.instruction, args.task, args.seed,
                             expert=args.expert, mode='lockstep')
    specs = graph.with_parameters(specs, 'policy', config.get('policy_parameters', {}))
    if args.expert:
        # The runner resets the world for every episode; the expert only acts.
        specs = [dataclasses.replace(s, parameters={**s.parameters, 'reset_on_start': False})
                 if s.name == 'expert' else s for s in specs]
    if record:
        specs.append(graph.episode_recorder(str(report.directory / EPISODES_DIR), ('sim.yaml', 'twin.yaml'),
                                            {'use_sim_time': True}))
    env = dds_environment(domain_id=args.domain_id)
    env.setdefault('PYTHONUNBUFFERED', '1')
    use_graph_environment(env)
    procs = GraphProcesses(specs, env, log_dir)

    def alive() -> None:
        if videos is not None:
            videos.poll()
        if stop.is_set():
            raise Interrupted('interrupted (Ctrl-C or SIGTERM)')
        dead = procs.exited()
        if dead:
            name, rc = next(iter(dead.items()))
            raise Interrupted(f'node {name} exited with code {rc} (see {log_dir}/{name}.log)')

    reason = ''
    driver = None
    report_ms: List[float] = []         # episodes.jsonl and summary.json (each fsynced) after an episode
    page_ms: List[float] = []           # report.html after an episode
    procs.start()
    try:
        driver = EpisodeDriver(int(env['ROS_DOMAIN_ID']), policy=not args.expert, recorder=record)
        driver.wait_ready(args.service_timeout, alive)
        if record:
            driver.wait_recorder(args.service_timeout, alive)
        for index in pending:
            result = play_episode(driver, report, index, args.task, alive, args.service_timeout,
                                  args.episode_timeout, record)
            t_report = time.monotonic()
            report.record(result)
            t_page = time.monotonic()
            if videos is not None:
                videos.submit(report.episode_dir(index))
            _write_html(report)
            report_ms.append((t_page - t_report) * 1e3)
            page_ms.append((time.monotonic() - t_page) * 1e3)
            print(progress_line(report, result), flush=True)
    except (Interrupted, EvaluationError) as exc:
        reason = str(exc)
        print(f'\n[eval] stopped: {reason}', flush=True)
    finally:
        codes = procs.stop()              # the nodes first: whatever happens next, none is left running
        if driver is not None:
            driver.close()
    summary = report.finish(reason)
    _finish_videos(videos, skip, report.directory)
    _write_html(report)
    if report_ms:
        r, pg = sample_stats(report_ms), sample_stats(page_ms)
        line = (f'[eval] after each episode: episodes.jsonl + summary.json p50 {r["p50"]:.0f} ms, max {r["max"]:.0f} '
                f'ms; report.html p50 {pg["p50"]:.0f} ms, max {pg["max"]:.0f} ms')
        if videos is not None:
            line += (f'; videos: {len(videos.seconds)} made, wall {_seconds(videos.seconds)}, '
                     f'CPU {_seconds(videos.cpu_s)} each (child process, nice 10)')
        print(line, flush=True)
    return _last_lines(report, summary, reason, codes)


def _last_lines(report: EvaluationReport, summary: dict, reason: str, codes: Dict[str, int]) -> int:
    """A run's last lines (successes, the interval, what is missing and why, where the report is,
    nodes that exited badly) and its exit code."""
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


def _run_setup(report: EvaluationReport, args) -> Tuple[Path, Optional[VideoQueue], threading.Event,
                                                        threading.Event]:
    """What a run (twin or robot) sets up once its report is open: the log folder; the video maker
    (None with --no-bags or --no-videos), with the finished episodes of an earlier run whose video
    was never made (the run was killed) queued; and (stop, skip): Ctrl-C or SIGTERM sets stop, a
    second one also skips the videos left to make."""
    from fuse_core.evaluation.video import VIDEO_ERROR_FILE, VIDEO_FILE
    log_dir = Path(args.log_dir) if args.log_dir else report.directory / 'logs'
    videos = None if args.no_bags or args.no_videos else VideoQueue(log_dir)
    for r in report.results.values() if videos is not None else ():
        d = report.directory / EPISODES_DIR / r.episode_id
        if r.bag and r.episode_id and (d / 'metadata.yaml').is_file() and not (d / VIDEO_FILE).exists() \
                and not (d / VIDEO_ERROR_FILE).exists():
            videos.submit(d)
    stop, skip = threading.Event(), threading.Event()

    def on_signal(*_) -> None:
        (skip if stop.is_set() else stop).set()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return log_dir, videos, stop, skip


def _nothing_to_play(report: EvaluationReport, videos: Optional[VideoQueue], skip: threading.Event,
                     what: str) -> int:
    """Every `what` is in the report already: close it (and make the videos still missing)."""
    report.finish()
    _finish_videos(videos, skip, report.directory)
    _write_html(report)
    print(f'[eval] nothing to play: every {what} is in the report', flush=True)
    return 0


def _finish_videos(videos: Optional[VideoQueue], skip: threading.Event, directory: Path) -> None:
    from fuse_core.evaluation.video import VIDEO_ERROR_FILE
    if videos is None or not videos.pending():
        return
    print(f'[eval] making {videos.pending()} episode video(s) from the bags (Ctrl-C skips them)', flush=True)
    videos.drain(skip)
    if videos.failed:
        print(f'[eval] {videos.failed} video(s) could not be made: see {directory / EPISODES_DIR}/<id>/'
              f'{VIDEO_ERROR_FILE}', flush=True)


def _seconds(values: List[float]) -> str:
    s = sample_stats(values)
    return f'p50 {s["p50"]:.1f} s, max {s["max"]:.1f} s' if s and s['count'] else 'none timed'


if __name__ == '__main__':
    sys.exit(main())
