"""`fuse sim`: start a node graph as separate processes, as `ros2 launch` would, with live status.

For machines where only the pip-wheel rclpy exists. It reads the same graph description
(fuse_bringup.graph) and parameter files as the launch files, starts every node as its own
process (`python -m fuse_nodes.<executable> --ros-args ...`) with the project's DDS settings,
prints a one-line status (tick rate, latency, commands, arm pose) and shuts everything down
cleanly on Ctrl-C. If any node exits on its own, the others are stopped and the exit is reported.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Deque, Dict, List, Optional

from fuse_bringup import graph
from fuse_bringup.dds import dds_environment, exposure


class GraphProcesses:
    """The processes of one graph: start all, watch them, stop all (SIGINT, then SIGKILL)."""

    def __init__(self, specs: List[graph.NodeSpec], env: Dict[str, str], log_dir: Optional[Path],
                 python: str = sys.executable, foreground: tuple = ()) -> None:
        self.specs = specs
        # Nodes that read this terminal (the keyboard teleop): same process group, so they may read it.
        self.foreground = set(foreground)
        self.env = env
        self.log_dir = log_dir
        self.python = python
        self.procs: Dict[str, subprocess.Popen] = {}
        self._logs = []

    def command(self, spec: graph.NodeSpec) -> List[str]:
        return [self.python, '-m', f'{spec.package}.{spec.executable}'] + graph.ros_args(spec)

    def start(self) -> None:
        for spec in self.specs:
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f'{spec.name}.log', 'wb')
                self._logs.append(out)
                stdout, stderr = out, subprocess.STDOUT
            else:
                stdout, stderr = None, None
            # Own process group: a terminal Ctrl-C reaches only the runner, which then stops
            # the nodes in order instead of all of them racing.
            fg = spec.name in self.foreground
            self.procs[spec.name] = subprocess.Popen(self.command(spec), env=self.env, stdout=stdout,
                                                     stderr=stderr, start_new_session=not fg,
                                                     stdin=None if fg else subprocess.DEVNULL)

    def exited(self) -> Dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout: float = 10.0) -> Dict[str, int]:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for f in self._logs:
            f.close()
        return {n: p.returncode for n, p in self.procs.items()}


def use_graph_environment(env: Dict[str, str]) -> None:
    """This process (its own rclpy node) uses the same DDS transport and domain as the graph's nodes."""
    os.environ.update({k: v for k, v in env.items() if k.startswith(('FASTDDS_', 'RMW_', 'ROS_'))})
    for key in ('FASTDDS_BUILTIN_TRANSPORTS', 'ROS_AUTOMATIC_DISCOVERY_RANGE'):
        if key not in env:
            os.environ.pop(key, None)


class GraphObserver:
    """An rclpy node of this process in its own context, spun on a daemon thread once `spin()` is called."""

    def __init__(self, domain_id: Optional[int], name: str) -> None:
        import rclpy
        self.ctx = rclpy.Context()
        kwargs = {'domain_id': domain_id} if domain_id is not None else {}
        rclpy.init(context=self.ctx, **kwargs)
        self.node = rclpy.create_node(name, context=self.ctx)

    def spin(self) -> None:
        from rclpy.executors import SingleThreadedExecutor
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # the context is shut down on exit
            pass

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)     # bounded: exiting never waits on a stuck callback
        self.node.destroy_node()
        self.ctx.try_shutdown()


class StatusMonitor(GraphObserver):
    """Subscribes to the control path and summarises it in one line."""

    def __init__(self, domain_id: Optional[int]) -> None:
        from fuse_interfaces.msg import ArmStatus, DeltaEECommand, ObservationWindow
        from fuse_nodes.common import CONTROL_QOS, STATE_QOS, time_to_ns

        self._time_to_ns = time_to_ns
        super().__init__(domain_id, 'fuse_status')
        self.ticks: Deque[float] = collections.deque(maxlen=50)
        self.latencies_ms: Deque[float] = collections.deque(maxlen=50)
        self.commands = 0
        self.holds = 0
        self.arm: Optional[ArmStatus] = None
        # raw: only the arrival is counted, so the ~0.9 MB window is never deserialised here.
        self.node.create_subscription(ObservationWindow, '/sync/window', self._on_window, CONTROL_QOS, raw=True)
        self.node.create_subscription(DeltaEECommand, '/policy/command', self._on_command, CONTROL_QOS)
        self.node.create_subscription(ArmStatus, '/arm/status', self._on_arm, STATE_QOS)
        from fuse_interfaces.msg import TaskState
        self.task: Optional[TaskState] = None
        self.outcomes: Dict[str, int] = {}
        self.node.create_subscription(TaskState, '/world/task_state', self._on_task, STATE_QOS)
        self.spin()

    def _on_window(self, _raw: bytes) -> None:
        self.ticks.append(time.monotonic())

    def _on_command(self, msg) -> None:
        if msg.hold:
            self.holds += 1
            return
        self.commands += 1
        latency_ms = (time.time_ns() - self._time_to_ns(msg.newest_sample_stamp)) / 1e6
        if abs(latency_ms) < 60_000:      # sim-time stamps (lockstep) say nothing about wall latency
            self.latencies_ms.append(latency_ms)

    def _on_arm(self, msg) -> None:
        self.arm = msg

    def _on_task(self, msg) -> None:
        if self.task is not None and self.task.state == 'running' and msg.state != 'running':
            self.outcomes[msg.state] = self.outcomes.get(msg.state, 0) + 1
        self.task = msg

    def line(self) -> str:
        rate = 0.0
        if len(self.ticks) >= 2 and self.ticks[-1] > self.ticks[0]:
            rate = (len(self.ticks) - 1) / (self.ticks[-1] - self.ticks[0])
        lat = sorted(self.latencies_ms)
        lat_s = f'{lat[len(lat) // 2]:6.1f} ms' if lat else '   --   '
        parts = [f'tick {rate:4.2f} Hz', f'latency p50 {lat_s}', f'commands {self.commands:5d}',
                 f'holds {self.holds:4d}']
        if self.task is not None:
            t = self.task
            parts.insert(0, f'{t.task} #{t.episode} {t.state} {t.episode_time_s:5.1f} s '
                            f'(success {self.outcomes.get("success", 0)}, failure {self.outcomes.get("failure", 0)})')
        if self.arm is not None:
            p = self.arm.ee_pose.position
            parts.append(f'arm {self.arm.state:<8s} ee ({p.x:+.3f} {p.y:+.3f} {p.z:+.3f})')
            if self.arm.hold_reason:
                parts.append(f'hold: {self.arm.hold_reason}')
        else:
            parts.append('arm --')
        return ' | '.join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='fuse', description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='graph', required=True)
    sim = sub.add_parser('sim', help='simulation: the MuJoCo twin world (default) or a recorded bag -> sync -> '
                                     'policy (or the scripted expert) -> arm')
    sim.add_argument('--world', choices=graph.WORLDS, default=None,
                     help='twin: closed-loop MuJoCo world (default); bag: replay a recording open loop')
    sim.add_argument('--task', help='twin task (pick_cube, place_in_bowl, pick_soft, press_beep)')
    sim.add_argument('--seed', type=int, help='twin: seed of the first episode')
    sim.add_argument('--no-expert', action='store_true',
                     help='twin: run the policy instead of the task\'s scripted expert')
    sim.add_argument('--mode', choices=('realtime', 'lockstep'),
                     help='twin: realtime (default) or lockstep (every node on the world\'s /clock)')
    sim.add_argument('--bag', help='rosbag2 MCAP directory to replay (world bag; default: the shipped recording)')
    sim.add_argument('--bundle', help='model bundle directory (default: models/reference)')
    sim.add_argument('--instruction', help='language instruction for the policy')
    sim.add_argument('--synthetic-sensors', action='store_true',
                     help='run the six sensor nodes with synthetic sources instead of the bag')
    sim.add_argument('--record', metavar='DIR', help='also record the run to an MCAP bag in DIR')
    sim.add_argument('--view', action='store_true',
                     help='also start the Foxglove viewer (ws://127.0.0.1:8765; layout config/foxglove_layout.json)')
    # `eval` has its own parser (fuse_bringup.evaluate); listed here for --help.
    sub.add_parser('eval', add_help=False, help='evaluate a bundle or the scripted expert over N twin episodes, '
                                                 'or a bundle over N operator-marked robot trials, and write a '
                                                 'report (./run.sh eval --help)')
    sub.add_parser('compare', add_help=False, help='evaluation reports side by side (./run.sh compare DIR DIR ...)')
    col = sub.add_parser('collect', help='demonstration collection in the twin: episodes recorded one bag '
                                         'each, with the scripted expert or a teleop device')
    col.add_argument('--task', help='twin task (pick_cube, place_in_bowl, pick_soft, press_beep)')
    col.add_argument('--teleop', choices=graph.TELEOPS, default='expert',
                     help='expert (the twin\'s scripted expert, default), keyboard, spacemouse, gamepad, '
                          'scripted, fake')
    col.add_argument('--episodes', type=int, default=0, help='stop after N episodes with an outcome (0 = Ctrl-C)')
    col.add_argument('--world', choices=('twin', 'robot'), default='twin',
                     help='twin (here); robot: use robot.launch.py collect:=<teleop> on the robot machine')
    col.add_argument('--out', default='episodes', help='directory of the episode bags (default: ./episodes)')
    col.add_argument('--seed', type=int, help='seed of the first episode')
    col.add_argument('--mode', choices=('realtime', 'lockstep'), help='twin time mode')
    col.add_argument('--operator', default='', help='who collects (in every episode\'s metadata)')
    col.add_argument('--instruction', help='instruction instead of the task\'s own')
    col.add_argument('--expert-noise', type=float, default=0.0, metavar='M',
                     help='teleop expert: std (m) of noise on its open-finger commands, so that the demonstrations '
                          'leave its path and come back (export with --relabel expert; default 0)')
    col.add_argument('--modalities', metavar='FILE',
                     help='modality-specific instructions (YAML/JSON: instruction or task -> '
                          '{combination: text}) recorded with every episode they name')
    for sp in (sim, col):
        sp.add_argument('--duration', type=float, default=0.0, help='stop after N seconds (0 = until Ctrl-C)')
        sp.add_argument('--log-dir', default='log/fuse', help='per-node logs (default: log/fuse)')
        sp.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID for every process')
        sp.add_argument('--no-status', action='store_true', help='do not print the live status line')
        sp.add_argument('--print-commands', action='store_true', help='print each process command and exit')
    return p


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['eval']:
        from fuse_bringup import evaluate
        return evaluate.main(argv[1:])
    if argv[:1] == ['compare']:
        from fuse_bringup import evaluate
        return evaluate.compare_main(argv[1:])
    if argv[:1] == ['export']:
        from fuse_core.export.cli import main as export_main
        from fuse_sim.relabel import RELABELLERS
        return export_main(argv[1:], relabellers=RELABELLERS)
    if argv[:1] == ['replay-check']:
        from fuse_core.evaluation.replay import main as replay_main
        from fuse_nodes.layout import shipped_roots
        return replay_main(argv[1:], shipped_roots())
    args = build_parser().parse_args(argv)
    if args.graph == 'collect':
        try:
            specs = graph.collect_graph(task=args.task, teleop=args.teleop, episodes=args.episodes,
                                        world=args.world, out_dir=str(Path(args.out).resolve()), mode=args.mode,
                                        seed=args.seed, operator=args.operator, instruction=args.instruction,
                                        modalities=args.modalities, expert_noise=args.expert_noise)
        except ValueError as exc:
            print(f'[fuse] {exc}', file=sys.stderr)
            return 2
        return run_graph(args, specs, foreground=('teleop',) if args.teleop == 'keyboard' else (),
                         done_node='episodes')
    try:
        specs = graph.sim_graph(bag_path=args.bag, bundle_path=args.bundle, instruction=args.instruction,
                                synthetic_sensors=args.synthetic_sensors, record=bool(args.record),
                                record_dir=args.record, world=args.world, task=args.task, seed=args.seed,
                                expert=not args.no_expert, mode=args.mode, view=args.view)
    except ValueError as exc:
        print(f'[fuse] {exc}', file=sys.stderr)
        return 2
    return run_graph(args, specs)


def run_graph(args, specs: List[graph.NodeSpec], foreground: tuple = (), done_node: str = '') -> int:
    """Start the graph, show the status line, stop everything on Ctrl-C, a duration or a node's exit
    (`done_node` exiting with 0 is the graph's normal end, e.g. the episode manager after N episodes)."""
    env = dds_environment(domain_id=args.domain_id)
    env.setdefault('PYTHONUNBUFFERED', '1')
    # The status monitor in this process must use the same DDS transport as the nodes.
    use_graph_environment(env)
    procs = GraphProcesses(specs, env, Path(args.log_dir) if args.log_dir else None, foreground=foreground)
    if args.print_commands:
        for spec in specs:
            print(' '.join(procs.command(spec)))
        return 0

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f'[fuse] starting {len(specs)} nodes: {", ".join(s.name for s in specs)}; '
          f'logs in {args.log_dir}; DDS {exposure(env)}', flush=True)
    procs.start()
    monitor = None
    started = time.monotonic()
    code = 0
    tty = sys.stdout.isatty()
    last_print = 0.0
    try:
        # Inside the try: if the monitor cannot start, the nodes are still stopped (not orphaned).
        monitor = None if args.no_status else StatusMonitor(int(env['ROS_DOMAIN_ID']))
        while not stop.is_set():
            dead = procs.exited()
            if dead:
                name, rc = next(iter(dead.items()))
                if name == done_node and rc == 0:
                    print(f'\n[fuse] {name} finished; stopping the graph', flush=True)
                    break
                print(f'\n[fuse] node {name} exited with code {rc}; stopping the graph '
                      f'(see {args.log_dir}/{name}.log)', flush=True)
                code = 1
                break
            if args.duration and time.monotonic() - started >= args.duration:
                break
            now = time.monotonic()
            if monitor is not None and now - last_print >= (0.5 if tty else 2.0):
                last_print = now
                line = monitor.line()
                print(('\r' + line + ' ' * 8) if tty else line, end='' if tty else '\n', flush=True)
            stop.wait(0.1)
    finally:
        if monitor is not None:
            final = monitor.line()
            monitor.close()
        codes = procs.stop()
        print(f'\n[fuse] stopped. exit codes: {codes}', flush=True)
        if monitor is not None:
            print(f'[fuse] last status: {final}', flush=True)
    bad = {n: c for n, c in codes.items() if c not in (0, -signal.SIGINT)}
    if bad and code == 0:
        code = 1
    return code


if __name__ == '__main__':
    sys.exit(main())
