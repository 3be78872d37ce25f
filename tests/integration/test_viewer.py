"""The Foxglove viewer in the running bag simulation, read by Foxglove's own protocol client (@foxglove/ws-protocol)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from fuse_bringup import graph
from fuse_bringup.runner import GraphProcesses
from support.ros_harness import fresh_domain_id, node_env, wait_for

pytestmark = pytest.mark.integration

CLIENT = Path(__file__).resolve().parents[1] / 'support' / 'foxglove_client'
TOPICS = ['/camera_primary/image', '/camera_wrist/image', '/digit_left/image', '/digit_left/difference',
          '/audio/spectrogram', '/tf', '/arm/model', '/policy/action_chunk', '/policy/predicted_path',
          '/policy/command', '/arm/status', '/imu', '/episodes/state']


def layout_topics() -> set:
    """Every channel the shipped Foxglove layout shows."""
    layout = json.loads(graph.config_path('foxglove_layout.json').read_text())
    topics = set()
    for panel in layout['configById'].values():
        mode = panel.get('imageMode', {})
        topics |= {mode[k] for k in ('imageTopic', 'calibrationTopic') if k in mode}
        topics |= {p['value'].split('.')[0] for p in panel.get('paths', [])}
        topics |= set(panel.get('topics', {}))
        if 'topicPath' in panel:
            topics.add(panel['topicPath'].split('.')[0])
    return topics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def probe(port: int, seconds: float, topics, stall: bool = False) -> subprocess.Popen:
    node = shutil.which('node')
    return subprocess.Popen([node, str(CLIENT / 'probe.js'), f'ws://127.0.0.1:{port}', str(seconds), *topics]
                            + (['--stall'] if stall else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


HAVE_CLIENT = shutil.which('node') is not None and (CLIENT / 'node_modules' / '@foxglove' / 'ws-protocol').is_dir()


@pytest.mark.skipif(not HAVE_CLIENT,
                    reason="Foxglove's protocol client is not installed (node and ./setup.sh's npm ci)")
def test_foxglove_client_receives_images_transforms_and_the_chunk_while_the_simulation_runs(tmp_path):
    port = free_port()
    specs = graph.sim_graph(world='bag', view=True)
    assert specs[-1].name == 'viewer'
    specs = [dataclasses.replace(s, parameters={**s.parameters, 'port': port}) if s.name == 'viewer' else s
             for s in specs]
    procs = GraphProcesses(specs, node_env(fresh_domain_id()), tmp_path)
    procs.start()

    def logs():
        return '\n'.join(f'--- {s.name} ---\n' + (tmp_path / f'{s.name}.log').read_text(errors='replace')[-2000:]
                         for s in specs)
    try:
        assert wait_for(lambda: 'Foxglove WebSocket server on' in (tmp_path / 'viewer.log').read_text(), 60), logs()
        # A stuck client (never reads) beside a normal one: the normal one and the graph keep going.
        stuck = probe(port, 14, TOPICS, stall=True)
        seconds = 12.0
        out, err = probe(port, seconds, TOPICS).communicate(timeout=60)
        stuck.communicate(timeout=60)
        assert out.strip(), err
        summary = json.loads(out.strip().splitlines()[-1])
        assert not procs.exited(), logs()
    finally:
        codes = procs.stop()
    assert all(c == 0 for c in codes.values()), f'{codes}\n' + logs()
    assert summary['serverInfo']['name'] == 'fuse-ros'
    got = summary['topics']
    assert set(TOPICS) <= set(got), (sorted(got), summary['advertised'])
    for topic in ('/camera_primary/image', '/camera_wrist/image', '/digit_left/image', '/audio/spectrogram'):
        t = got[topic]
        assert t['schemaName'] == 'foxglove.CompressedImage' and t['count'] >= 3, (topic, t['count'], logs())
        assert t['jpeg'] == t['count'], topic                      # every one a JPEG
        assert t['count'] <= 5.0 * seconds + 3, (topic, t['count'])  # at most image_rate_hz
    assert got['/digit_left/difference']['count'] >= 1 and got['/digit_left/difference']['jpeg'] >= 1
    tf = got['/tf']
    assert tf['schemaName'] == 'foxglove.FrameTransforms' and tf['count'] >= 5
    assert 'wx250s/' in tf['text'] or 'optical_frame' in tf['text']
    chunk = got['/policy/action_chunk']
    assert chunk['count'] >= 10 and chunk['json']['horizon'] == len(chunk['json']['actions']) >= 1
    assert len(chunk['json']['actions'][0]) == 7
    assert got['/policy/predicted_path']['count'] >= 5 and 'predicted_path' in got['/policy/predicted_path']['text']
    cmd = got['/policy/command']['json']
    assert {'dx', 'hold', 'latency_ms'} <= set(cmd)
    assert got['/arm/model']['count'] >= 3 and 'wx250s/gripper_link' in got['/arm/model']['text']
    assert got['/arm/status']['json']['backend'] == 'mock'
    # The layout opens only channels the viewer serves.
    assert layout_topics() <= set(summary['advertised']), layout_topics() - set(summary['advertised'])
