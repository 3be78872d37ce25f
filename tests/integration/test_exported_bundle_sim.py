"""An exported FuSe bundle runs in the simulation unchanged: same nodes, same contract, describe works."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuse_bringup import graph
from fuse_bringup.runner import GraphProcesses
from support.ros_harness import fresh_domain_id, node_env, wait_for

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / 'fixtures' / 'fuse_small'


def test_exported_fuse_bundle_drives_the_simulation(tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from fuse_interfaces.msg import DeltaEECommand
    from fuse_interfaces.srv import Describe
    from fuse_nodes.common import CONTROL_QOS
    from models.exporter import export_checkpoint

    bundle = tmp_path / 'fuse_small_bundle'
    export_checkpoint(FIXTURE / 'checkpoint', bundle, tokenizer=FIXTURE / 'tokenizer.json',
                      t5_config=FIXTURE / 't5_config.json', log=lambda *_: None)
    domain = fresh_domain_id()
    specs = graph.sim_graph(world='bag', bundle_path=str(bundle), instruction='pick up the cup')
    procs = GraphProcesses(specs, node_env(domain), tmp_path / 'logs')
    procs.start()
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node('exported_bundle_test', context=ctx)
    commands = []
    node.create_subscription(DeltaEECommand, '/policy/command', commands.append, CONTROL_QOS)
    describe = node.create_client(Describe, '/policy/describe')
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    spin = lambda: ex.spin_once(timeout_sec=0.05)  # noqa: E731

    def logs():
        log_dir = tmp_path / 'logs'
        return '\n'.join(f'--- {s.name} ---\n' + (log_dir / f'{s.name}.log').read_text(errors='replace')[-2500:]
                          for s in specs)
    try:
        assert wait_for(lambda: len([c for c in commands if not c.hold]) >= 10, 90, spin=spin), logs()
        assert describe.wait_for_service(timeout_sec=10)
        fut = describe.call_async(Describe.Request(modalities=['tactile']))
        assert wait_for(fut.done, 20, spin=spin)
        res = fut.result()
        assert res.success, res.message
        assert isinstance(res.text, str)
        fut = describe.call_async(Describe.Request(modalities=['smell']))
        assert wait_for(fut.done, 20, spin=spin)
        assert not fut.result().success and 'smell' in fut.result().message
    finally:
        ex.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
        codes = procs.stop()
    assert all(c == 0 for c in codes.values()), f'{codes}\n' + logs()
