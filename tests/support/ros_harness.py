"""Helpers for tests that run fuse-ros nodes as real processes and talk to them over DDS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from fuse_bringup.dds import dds_environment

_domain_lock = threading.Lock()
_next_domain = [0]


def fresh_domain_id() -> int:
    """A ROS_DOMAIN_ID no other test in this run uses (and unlikely to clash with other runs)."""
    with _domain_lock:
        _next_domain[0] += 1
        return 1 + (os.getpid() * 7 + _next_domain[0]) % 100


class NodeProcess:
    """One node in its own process: `python -m fuse_nodes.<module> --ros-args ...`."""

    def __init__(self, module: str, name: str, env: Dict[str, str], log_dir: Path,
                 params: Optional[Dict[str, object]] = None,
                 params_files: Sequence[Path] = (), remaps: Optional[Dict[str, str]] = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.module, self.name = module, name
        args: List[str] = [sys.executable, '-m', module, '--ros-args', '-r', f'__node:={name}']
        for f in params_files:
            args += ['--params-file', str(f)]
        for k, v in (params or {}).items():
            args += ['-p', f'{k}:={_ros_value(v)}']
        for k, v in (remaps or {}).items():
            args += ['-r', f'{k}:={v}']
        args += list(extra_args)
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


def _ros_value(v: object) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (list, tuple)):
        return '[' + ','.join(_ros_value(x) for x in v) + ']'
    if isinstance(v, str):
        return f'"{v}"' if v == '' else v
    return str(v)


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
