"""Episode manager + teleop (fake device) + arm (mock) + recorder as processes: nothing starts before
the recorder is ready (the manager waits for its ~/ready, saying so), a reset with a
(fake) twin world reset, a recorded episode whose bag holds the sent and the applied commands,
the outcome and the operator's modality-specific instructions (a modalities file naming its
instruction, in place of the world's), and a teleop hold when not recording; a bad modalities
file stops the manager at start, naming the problem."""

from __future__ import annotations

import time

import numpy as np
import pytest

from support.ros_harness import make_probe, wait_for

pytestmark = pytest.mark.integration


def test_reset_record_end_with_fake_world_and_fake_teleop(rclpy_context, launch_node, tmp_path):
    from fuse_interfaces.msg import DeltaEECommand, EpisodeState
    from fuse_interfaces.srv import EndEpisode, ResetTask
    from rclpy.serialization import deserialize_message

    from fuse_core.bag import BagReader
    from fuse_core.episodes import COMPLETE, load_episode
    from fuse_nodes.common import CONTROL_QOS, STATE_QOS
    node, ex, spin = make_probe(rclpy_context, 'episodes_test', 0.02)
    resets = []

    def world_reset(req, res):  # a small stand-in for the twin's /world/reset
        resets.append((req.task, req.seed))
        res.success, res.message, res.task, res.seed = True, 'reset', req.task or 'pick_cube', 11
        res.instruction, res.tasks = 'pick up the red cube', ['pick_cube']
        res.modality_combinations = ['visual', 'tactile']
        res.modality_instructions = ['pick up the red cube', 'pick up the cube that feels hard']
        return res
    node.create_service(ResetTask, '/world/reset', world_reset)
    states, commands = [], []
    node.create_subscription(EpisodeState, '/episodes/state', states.append, STATE_QOS)
    node.create_subscription(DeltaEECommand, '/policy/command', commands.append, CONTROL_QOS)

    root = tmp_path / 'episodes'
    modalities = tmp_path / 'modalities.yaml'
    modalities.write_text('pick up the red cube:\n  audio: pick up the cube that sounds dull\n'
                          '  tactile, visual: pick up the red cube that feels hard\n')
    arm = launch_node('fuse_nodes.arm_node', 'arm',
                      params={'backend': 'mock', 'commander': '/teleop', 'motion_services': True})
    tele = launch_node('fuse_nodes.teleop_node', 'teleop', params={'device': 'fake'})
    epi = launch_node('fuse_nodes.episodes_node', 'episodes',
                      params={'world': 'twin', 'world_reset': True, 'task': 'pick_cube', 'seed': 11,
                              'capture_backgrounds': False, 'action_source': 'fake', 'operator': 'test',
                              'modalities_file': str(modalities)})
    procs = [arm, tele, epi]
    logs = lambda: '\n'.join(p.log()[-3000:] for p in procs)  # noqa: E731
    assert wait_for(lambda: states and commands, 30, spin), logs()
    # No recorder yet: the manager says it waits for it and refuses to reset (nothing would be recorded).
    assert not states[-1].recorder_ready and 'waiting for the recorder /recorder' in states[-1].message
    client = node.create_client(ResetTask, '/episodes/reset')
    assert client.wait_for_service(timeout_sec=20)
    fut = client.call_async(ResetTask.Request(task='', seed=-1))
    assert wait_for(fut.done, 10, spin) and not fut.result().success
    assert 'the recorder /recorder is not ready yet' in fut.result().message and resets == []
    topics = ['/arm/applied_command', '/policy/command', '/arm/ee_pose']
    rec = launch_node('fuse_nodes.recorder_node', 'recorder',
                      params={'output_dir': str(root), 'mode': 'episodes', 'topics': topics,
                              'ready_topics': topics, 'record_episode_topics': False})
    procs.append(rec)
    assert wait_for(lambda: states[-1].recorder_ready, 30, spin), logs()
    assert 'recorder /recorder ready' in states[-1].message
    # Not recording: the teleop holds, naming why.
    assert wait_for(lambda: commands[-1].hold and 'not recording' in commands[-1].reason, 5, spin), logs()
    fut = client.call_async(ResetTask.Request(task='', seed=-1))
    assert wait_for(fut.done, 10, spin) and fut.result().success, fut.result().message
    assert wait_for(lambda: states[-1].state == 'recording', 40, spin), logs()
    assert resets == [('pick_cube', 11)]
    st = states[-1]
    assert (st.task, st.seed, st.instruction) == ('pick_cube', 11, 'pick up the red cube')
    assert f'modalities audio | visual,tactile (from modalities file {modalities})' in st.message, st.message
    episode_id = st.episode_id
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:
        spin()
    assert any(not c.hold for c in commands), logs()
    # The teleop reports a lost device: the episode is marked (the teleop itself holds that tick).
    from std_msgs.msg import String
    keys = node.create_publisher(String, '/teleop/episode_key', STATE_QOS)
    assert wait_for(lambda: keys.get_subscription_count() > 0, 10, spin)
    keys.publish(String(data='device_lost: fake: device unplugged'))
    assert wait_for(lambda: 'device lost' in states[-1].message, 10, spin), logs()
    end = node.create_client(EndEpisode, '/episodes/end')
    assert end.wait_for_service(timeout_sec=10)
    fut = end.call_async(EndEpisode.Request(outcome='success', note='fake operator'))
    assert wait_for(fut.done, 10, spin) and fut.result().success, fut.result().message
    assert wait_for(lambda: states[-1].state == 'idle' and states[-1].last_outcome == 'success', 10, spin)
    # The bag closes first, then episode.json turns complete.
    assert wait_for(lambda: (root / episode_id / 'metadata.yaml').is_file()
                    and load_episode(root / episode_id).status == COMPLETE, 10, spin), logs()
    md = load_episode(root / episode_id)
    assert (md.status, md.outcome, md.task, md.seed, md.operator, md.action_source, md.world) == \
        (COMPLETE, 'success', 'pick_cube', 11, 'test', 'fake', 'twin')
    assert [e['detail'] for e in md.events if e['event'] == 'teleop_lost'] == ['fake: device unplugged']
    # The operator's modality-specific instructions for this instruction are recorded with the
    # episode, in place of the world's (visual, tactile).
    assert md.modalities == {'audio': 'pick up the cube that sounds dull',
                             'visual,tactile': 'pick up the red cube that feels hard'}
    r = BagReader(root / episode_id, verify=True)
    applied = [deserialize_message(m.data, DeltaEECommand) for m in r.messages(['/arm/applied_command'])]
    sent = [deserialize_message(m.data, DeltaEECommand) for m in r.messages(['/policy/command'])]
    moves = [a for a in applied if not a.hold]
    assert len(moves) >= 5, (len(applied), logs())
    # The fake operator pushes +x at half deflection: 0.5 * 0.02 m per tick, applied as sent.
    np.testing.assert_allclose([a.translation[0] for a in moves], 0.01, atol=1e-6)
    by_tick = {c.tick_index: c for c in sent}
    assert all(a.tick_index in by_tick for a in moves[1:])
    ex.shutdown()
    node.destroy_node()
    for p in procs:
        assert p.stop() == 0, p.log()


def test_a_bad_modalities_file_is_named_at_start(launch_node, tmp_path):
    bad = tmp_path / 'modalities.yaml'
    bad.write_text('pick_cube:\n  smell: it stinks\n')
    epi = launch_node('fuse_nodes.episodes_node', 'episodes', params={'modalities_file': str(bad)})
    assert epi.proc.wait(30) == 2, epi.log()
    assert f"parameter 'modalities_file': modalities file {bad}: 'pick_cube': unknown modality " \
        "combination 'smell'" in epi.log()


def test_auto_reset_makes_the_first_reset_without_a_key(rclpy_context, launch_node):
    """The twin's teleop collection (auto_reset): the first episode resets once the recorder is
    ready, as every later one does after the one before, with no key pressed."""
    from fuse_interfaces.msg import EpisodeState

    from fuse_nodes.common import STATE_QOS
    node, ex, spin = make_probe(rclpy_context, 'episodes_auto_test', 0.02)
    states = []
    node.create_subscription(EpisodeState, '/episodes/state', states.append, STATE_QOS)
    epi = launch_node('fuse_nodes.episodes_node', 'episodes',
                      params={'recorder': '', 'auto_reset': True, 'auto_start': False, 'move_to_start': False,
                              'capture_backgrounds': False, 'instruction': 'press the button'})
    assert wait_for(lambda: states and states[-1].state == 'ready', 30, spin), epi.log()
    assert states[-1].instruction == 'press the button' and states[-1].message.startswith('ready:')
    ex.shutdown()
    node.destroy_node()
    assert epi.stop() == 0, epi.log()
