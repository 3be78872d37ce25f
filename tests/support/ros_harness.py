"""Helpers for tests that run fuse-ros nodes as real processes and talk to them over DDS."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence

from fuse_bringup.dds import dds_environment
from fuse_bringup.graph import NodeSpec, ros_args

_domain_lock = threading.Lock()
_next_domain = [0]


def fresh_domain_id() -> int:
    """A ROS_DOMAIN_ID no other test in this run uses (and unlikely to clash with other runs)."""
    with _domain_lock:
        _next_domain[0] += 1
        return 1 + (os.getpid() * 7 + _next_domain[0]) % 100


class NodeProcess:
    """One node in its own process: `python -m fuse_nodes.<module> --ros-args ...`.

    The `--ros-args` tail is the runner's own (fuse_bringup.graph.ros_args), so a test starts
    a node with exactly the parameter formatting that `fuse sim` and the launch files use.
    """

    def __init__(self, module: str, name: str, env: Dict[str, str], log_dir: Path,
                 params: Optional[Dict[str, object]] = None,
                 params_files: Sequence[Path] = (), remaps: Optional[Dict[str, str]] = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.module, self.name = module, name
        # Absolute parameter-file paths: ros_args joins them to its config directory unchanged.
        spec = NodeSpec(name, module, tuple(str(Path(f).resolve()) for f in params_files),
                        dict(params or {}), tuple((remaps or {}).items()))
        args: List[str] = [sys.executable, '-m', module] + ros_args(spec) + list(extra_args)
        self.args = args
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f'{name}.log'
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (Ctrl-C), wait; SIGKILL if it does not exit. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode



def make_test_node(rclpy_context, name: str):
    """A plain rclpy node for the test's own subscriptions and clients, with its executor."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    node = rclpy.create_node(name, context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    return node, executor


def make_probe(rclpy_context, name: str, spin_timeout_s: float = 0.05):
    """make_test_node and a spin() of its executor that waits at most `spin_timeout_s`."""
    node, executor = make_test_node(rclpy_context, name)
    return node, executor, lambda: executor.spin_once(timeout_sec=spin_timeout_s)


def spin_for(executor, seconds: float, timeout_s: float = 0.01) -> None:
    """Spin `executor` for `seconds`, waiting at most `timeout_s` for each callback."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=timeout_s)


class ProbeNode:
    """The test's side of a node under test: one rclpy node (subclasses add subscriptions,
    publishers and clients to ``self.node``) and its executor."""

    #: How long spin() waits for one callback.
    spin_timeout_s = 0.02

    def __init__(self, context, name: str) -> None:
        self.node, self.executor = make_test_node(context, name)

    def spin(self) -> None:
        self.executor.spin_once(timeout_sec=self.spin_timeout_s)

    def spin_for(self, seconds: float) -> None:
        spin_for(self.executor, seconds, self.spin_timeout_s)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def wait_for(pred: Callable[[], bool], timeout: float, spin: Optional[Callable[[], None]] = None,
             period: float = 0.02) -> bool:
    """Poll pred (spinning the test node between polls) until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spin is not None:
            spin()
        else:
            time.sleep(period)
        if pred():
            return True
    return pred()


def node_env(domain_id: int) -> Dict[str, str]:
    """Environment for node processes in a test: isolated domain, the project's DDS settings."""
    env = dds_environment(domain_id=domain_id)
    env.setdefault('PYTHONUNBUFFERED', '1')
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    return env


def graph_logs(specs: Sequence[NodeSpec], log_dir: Path, tail: int = 2500) -> str:
    """The end of each node's log under `log_dir`, one section per node (for assertion messages)."""
    return '\n'.join(f'--- {s.name} ---\n' + (Path(log_dir) / f'{s.name}.log').read_text(errors='replace')[-tail:]
                     for s in specs)


class RunningGraph(NamedTuple):
    procs: object                      # fuse_bringup.runner.GraphProcesses
    node: object                       # the test's probe node, on the graph's domain
    spin: Callable[[], None]           # one spin of the probe's executor (at most 50 ms)
    logs: Callable[[], str]            # graph_logs of the graph


@contextlib.contextmanager
def running_graph(specs: Sequence[NodeSpec], log_dir: Path, probe_name: str) -> Iterator[RunningGraph]:
    """Start `specs` as the runner does (fuse_bringup.runner.GraphProcesses) on a fresh domain, with
    a probe node of the test on that domain.

    On leaving, the probe is destroyed and the graph stopped (Ctrl-C); when the body passed,
    every node must then have exited with 0.
    """
    import rclpy
    from fuse_bringup.runner import GraphProcesses
    domain = fresh_domain_id()
    procs = GraphProcesses(specs, node_env(domain), log_dir)
    procs.start()
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node, executor = make_test_node(ctx, probe_name)

    def logs() -> str:
        return graph_logs(specs, log_dir)
    try:
        yield RunningGraph(procs, node, lambda: executor.spin_once(timeout_sec=0.05), logs)
    finally:
        executor.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
        codes = procs.stop()
    assert all(c == 0 for c in codes.values()), f'{codes}\n' + logs()
