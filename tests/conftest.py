"""Shared pytest fixtures: an isolated ROS domain per test and node processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'tests'))

from support.ros_harness import NodeProcess, fresh_domain_id, node_env  # noqa: E402

# The test process itself uses the project's DDS settings (set before rclpy creates a participant).
from fuse_bringup.dds import dds_environment  # noqa: E402

os.environ.update(dds_environment())


@pytest.fixture
def domain_id():
    return fresh_domain_id()


@pytest.fixture
def ros_env(domain_id):
    return node_env(domain_id)


@pytest.fixture
def rclpy_context(domain_id):
    """An rclpy context on the test's own domain, shut down afterwards."""
    import rclpy
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    yield ctx
    ctx.try_shutdown()


@pytest.fixture
def launch_node(ros_env, tmp_path):
    """Start fuse-ros nodes as processes; all are stopped (Ctrl-C) at teardown."""
    started = []

    def _start(module: str, name: str, **kwargs) -> NodeProcess:
        p = NodeProcess(module, name, ros_env, tmp_path / 'logs', **kwargs)
        started.append(p)
        return p

    yield _start
    for p in started:
        p.stop()
