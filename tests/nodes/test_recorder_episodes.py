"""The recorder in mode episodes: one bag per episode, metadata inside and beside it, and a
recording cut short (Ctrl-C or a kill) never passes for finished."""

from __future__ import annotations

import json
import signal

import pytest

from support.ros_harness import ProbeNode, wait_for

pytestmark = pytest.mark.integration


class Client(ProbeNode):
    spin_timeout_s = 0.01

    def __init__(self, context):
        from fuse_interfaces.srv import RecordEpisode
        from sensor_msgs.msg import Image, Imu

        from fuse_nodes.common import LATCHED_QOS, STATE_QOS
        super().__init__(context, 'recorder_episodes_test')
        self.imu = self.node.create_publisher(Imu, '/imu/data', STATE_QOS)
        self.bg = self.node.create_publisher(Image, '/digit_left/background', LATCHED_QOS)
        self.srv = RecordEpisode
        self.start_cli = self.node.create_client(RecordEpisode, '/recorder/start')
        self.stop_cli = self.node.create_client(RecordEpisode, '/recorder/stop')
        self.Imu = Imu
        self.n = 0

    def publish(self, count):
        for _ in range(count):
            m = self.Imu()
            m.header.stamp.sec, m.header.stamp.nanosec = 1_700_000_000, self.n
            self.n += 1
            self.imu.publish(m)
            self.spin_for(0.01)

    def call(self, client, episode_id, md=None):
        assert client.wait_for_service(timeout_sec=20)
        req = self.srv.Request(episode_id=episode_id, metadata_json=json.dumps(md) if md else '')
        fut = client.call_async(req)
        assert wait_for(fut.done, 10, lambda: self.executor.spin_once(timeout_sec=0.05))
        return fut.result()


def test_episode_bags_with_metadata_and_interrupted_markers(rclpy_context, launch_node, tmp_path):
    from sensor_msgs.msg import Image

    from fuse_core.bag import BagReader
    from fuse_core.episodes import COMPLETE, INTERRUPTED, EpisodeMetadata, load_episode
    c = Client(rclpy_context)
    bg = Image(height=2, width=2, encoding='bgr8', step=6, data=bytes(range(12)))
    c.bg.publish(bg)
    root = tmp_path / 'eps'
    topics = ['/imu/data', '/digit_left/background', '/imu/mag']
    params = {'output_dir': str(root), 'mode': 'episodes', 'record_episode_topics': False,
              'topics': topics, 'ready_topics': topics}
    rec = launch_node('fuse_nodes.recorder_node', 'recorder', params=params)
    assert wait_for(lambda: c.imu.get_subscription_count() > 0 and c.bg.get_subscription_count() > 0,
                    20, lambda: c.executor.spin_once(timeout_sec=0.05)), rec.log()
    # ~/ready says no, naming the topic, until every ready topic is subscribed.
    from sensor_msgs.msg import MagneticField
    from std_srvs.srv import Trigger

    from fuse_nodes.common import STATE_QOS
    ready = c.node.create_client(Trigger, '/recorder/ready')
    assert ready.wait_for_service(timeout_sec=20)

    def ask():
        fut = ready.call_async(Trigger.Request())
        assert wait_for(fut.done, 10, lambda: c.executor.spin_once(timeout_sec=0.05))
        return fut.result()
    res = ask()
    assert not res.success and '/imu/mag' in res.message and '/imu/data' not in res.message, res.message
    mag = c.node.create_publisher(MagneticField, '/imu/mag', STATE_QOS)
    assert wait_for(lambda: mag.get_subscription_count() > 0, 20, lambda: c.executor.spin_once(timeout_sec=0.05))
    res = ask()
    assert res.success and res.message.startswith('ready'), res.message
    c.spin_for(0.5)
    c.publish(10)  # between episodes: recorded nowhere

    md = EpisodeMetadata(episode_id='ep_a', task='pick_cube', instruction='pick up the red cube',
                         action_source='fake', seed=4)
    res = c.call(c.start_cli, 'ep_a', md.to_dict())
    assert res.success, res.message
    assert c.call(c.start_cli, 'ep_b').success is False  # one at a time
    assert load_episode(root / 'ep_a').status == INTERRUPTED  # while recording: not finished
    c.publish(30)
    c.spin_for(0.3)
    md.outcome, md.note = 'success', 'fine'
    res = c.call(c.stop_cli, 'ep_a', md.to_dict())
    assert res.success and res.message_count >= 30, res.message
    r = BagReader(root / 'ep_a', verify=True)
    assert r.topics['/imu/data'].message_count == 30
    assert r.topics['/digit_left/background'].message_count == 1  # the latched background
    inside = EpisodeMetadata.from_json(r.metadata.custom_data['fuse_episode'])
    beside = load_episode(root / 'ep_a')
    assert inside.to_dict() == beside.to_dict()
    assert (beside.status, beside.outcome, beside.seed) == (COMPLETE, 'success', 4)
    assert c.call(c.stop_cli, 'ep_a').success is False  # nothing recording now

    # Ctrl-C mid-episode: the bag is closed (readable) but marked interrupted.
    assert c.call(c.start_cli, 'ep_b').success
    c.publish(12)
    c.spin_for(0.3)
    assert rec.stop() == 0, rec.log()
    got = load_episode(root / 'ep_b')
    assert got.status == INTERRUPTED and got.events[-1]['event'] == 'recorder_stopped'
    r = BagReader(root / 'ep_b', verify=True)
    assert r.topics['/digit_left/background'].message_count == 1
    assert EpisodeMetadata.from_json(r.metadata.custom_data['fuse_episode']).status == INTERRUPTED

    # Killed mid-episode: readable with recover=True, reads as interrupted.
    rec2 = launch_node('fuse_nodes.recorder_node', 'recorder',
                       params={**params, 'chunk_size_kb': 4})
    assert wait_for(lambda: c.imu.get_subscription_count() > 0, 20,
                    lambda: c.executor.spin_once(timeout_sec=0.05)), rec2.log()
    c.spin_for(0.5)
    assert c.call(c.start_cli, 'ep_c').success
    c.publish(200)
    c.spin_for(0.3)
    rec2.proc.send_signal(signal.SIGKILL)
    rec2.proc.wait(10)
    got = load_episode(root / 'ep_c')
    assert got.status == INTERRUPTED and got.events[-1]['event'] == 'recorder_died'
    r = BagReader(root / 'ep_c', recover=True)
    assert sum(1 for m in r.messages(['/imu/data'])) > 0
