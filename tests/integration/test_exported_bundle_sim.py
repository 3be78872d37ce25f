"""An exported FuSe bundle runs in the simulation unchanged: same nodes, same contract, describe works."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuse_bringup import graph
from support.ros_harness import running_graph, wait_for

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / 'fixtures' / 'fuse_small'


def test_exported_fuse_bundle_drives_the_simulation(tmp_path):
    from fuse_interfaces.msg import DeltaEECommand
    from fuse_interfaces.srv import Describe
    from fuse_nodes.common import CONTROL_QOS
    from models.exporter import export_checkpoint

    bundle = tmp_path / 'fuse_small_bundle'
    export_checkpoint(FIXTURE / 'checkpoint', bundle, tokenizer=FIXTURE / 'tokenizer.json',
                      t5_config=FIXTURE / 't5_config.json', log=lambda *_: None)
    specs = graph.sim_graph(world='bag', bundle_path=str(bundle), instruction='pick up the cup')
    with running_graph(specs, tmp_path / 'logs', 'exported_bundle_test') as run:
        commands = []
        run.node.create_subscription(DeltaEECommand, '/policy/command', commands.append, CONTROL_QOS)
        describe = run.node.create_client(Describe, '/policy/describe')
        assert wait_for(lambda: len([c for c in commands if not c.hold]) >= 10, 90, spin=run.spin), run.logs()
        assert describe.wait_for_service(timeout_sec=10)
        fut = describe.call_async(Describe.Request(modalities=['tactile']))
        assert wait_for(fut.done, 20, spin=run.spin)
        res = fut.result()
        assert res.success, res.message
        assert isinstance(res.text, str)
        fut = describe.call_async(Describe.Request(modalities=['smell']))
        assert wait_for(fut.done, 20, spin=run.spin)
        assert not fut.result().success and 'smell' in fut.result().message
