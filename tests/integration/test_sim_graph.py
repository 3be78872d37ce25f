"""The bag simulation graph as `./run.sh sim --world bag` starts it: shipped bag -> sync -> policy -> mock arm."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fuse_bringup import graph
from fuse_bringup.runner import GraphProcesses
from support.ros_harness import fresh_domain_id, node_env, running_graph, wait_for

pytestmark = pytest.mark.integration


def test_sim_graph_replays_the_bag_and_commands_the_arm_at_5hz(tmp_path):
    from fuse_interfaces.msg import ArmStatus, DeltaEECommand
    from fuse_nodes.common import CONTROL_QOS, STATE_QOS

    specs = graph.sim_graph(world='bag')
    assert [s.name for s in specs] == ['bag_player', 'sync', 'policy', 'arm', 'robot_state']
    with running_graph(specs, tmp_path, 'sim_graph_test') as run:
        commands, status = [], []
        run.node.create_subscription(DeltaEECommand, '/policy/command', commands.append, CONTROL_QOS)
        run.node.create_subscription(ArmStatus, '/arm/status', status.append, STATE_QOS)
        assert wait_for(lambda: len([c for c in commands if not c.hold]) >= 30, 90, spin=run.spin), run.logs()
        assert not run.procs.exited(), run.logs()
        moving = [c for c in commands if not c.hold]
        ticks = np.array([c.tick_index for c in moving])
        stamps = np.array([c.header.stamp.sec + c.header.stamp.nanosec * 1e-9 for c in moving])
        rate = (ticks[-1] - ticks[0]) / (stamps[-1] - stamps[0])
        assert abs(rate - 5.0) < 0.1, f'{rate:.3f} Hz'
        assert len(moving) >= 0.9 * (ticks[-1] - ticks[0] + 1), 'commands missing for fresh ticks'
        assert status and status[-1].backend == 'mock' and status[-1].commands_applied > 0, run.logs()


def test_run_sh_prints_status_and_stops_cleanly(tmp_path):
    """The README's bag run command: live status line, then a clean stop after --duration."""
    domain = fresh_domain_id()
    # A user's shell: no DDS settings of the project's own (the runner applies them).
    env = {k: v for k, v in os.environ.items() if not k.startswith(('FASTDDS_', 'ROS_DOMAIN_ID'))}
    res = subprocess.run([sys.executable, '-m', 'fuse_bringup.runner', 'sim', '--world', 'bag', '--duration', '25',
                          '--domain-id', str(domain), '--log-dir', str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=env)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert 'tick' in out and 'commands' in out
    last = [line for line in out.splitlines() if line.startswith('[fuse] last status:')]
    assert last, out
    count = int(last[0].split('commands')[1].split('|')[0])
    assert count > 0, out
    assert "exit codes: {'bag_player': 0, 'sync': 0, 'policy': 0, 'arm': 0, 'robot_state': 0}" in out


def test_sim_run_records_sensors_commands_and_joint_states(tmp_path):
    """`./run.sh sim --world bag --record DIR`: the recorder writes a readable MCAP bag of the run."""
    from fuse_core.bag import BagReader

    domain = fresh_domain_id()
    bag_dir = tmp_path / 'run_bag'
    specs = graph.sim_graph(world='bag', record=True, record_dir=str(bag_dir))
    procs = GraphProcesses(specs, node_env(domain), tmp_path / 'logs')
    procs.start()
    try:
        wait_for(lambda: bool(procs.exited()), 25.0)
        assert not procs.exited(), procs.exited()
    finally:
        codes = procs.stop()
    assert all(c == 0 for c in codes.values()), codes
    reader = BagReader(bag_dir, required_topics=['/camera_primary/image_raw', '/digit_left/background',
                                                 '/policy/command', '/arm/joint_states'], verify=True)
    assert reader.topics['/policy/command'].type == 'fuse_interfaces/msg/DeltaEECommand'
    assert reader.topics['/policy/command'].message_count > 10
    assert reader.topics['/arm/joint_states'].message_count > 100
