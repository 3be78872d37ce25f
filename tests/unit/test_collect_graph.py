"""The collection graphs (./run.sh collect, robot.launch.py collect:=): who commands, what records."""

from __future__ import annotations

import pytest

from fuse_bringup import graph


def by_name(specs):
    return {s.name: s for s in specs}


def test_twin_collection_with_a_teleop_device():
    g = by_name(graph.collect_graph(task='pick_cube', teleop='gamepad', episodes=3, out_dir='/tmp/x'))
    assert 'policy' not in g and 'expert' not in g
    assert g['arm'].parameters['commander'] == '/teleop' and g['arm'].parameters['motion_services'] is True
    assert g['teleop'].parameters['device'] == 'gamepad'
    assert g['recorder'].parameters['mode'] == 'episodes' and g['recorder'].parameters['output_dir'] == '/tmp/x'
    e = g['episodes'].parameters
    assert (e['world'], e['world_reset'], e['follow_world'], e['episodes'], e['task']) == \
        ('twin', True, False, 3, 'pick_cube')


def test_twin_collection_with_the_expert_follows_the_world():
    g = by_name(graph.collect_graph(teleop='expert', episodes=5, mode='lockstep'))
    assert 'teleop' not in g and 'episodes' not in g['expert'].parameters
    assert g['episodes'].parameters['episodes'] == 5
    assert g['arm'].parameters['commander'] == '/expert'
    # Its first reset waits for the episode manager, which waits for the recorder.
    assert g['expert'].parameters['wait_for_episodes'] == '/episodes/state'
    e = g['episodes'].parameters
    assert e['follow_world'] is True and e['world_reset'] is False and e['use_sim_time'] is True
    assert g['recorder'].parameters['use_sim_time'] is True


def test_robot_collection_and_bad_choices():
    g = by_name(graph.robot_graph(collect='spacemouse', episodes=2, record_dir='/data/eps', operator='ada'))
    assert 'policy' not in g and g['teleop'].parameters['device'] == 'spacemouse'
    assert g['episodes'].parameters['world'] == 'robot' and g['episodes'].parameters['world_reset'] is False
    assert g['arm'].parameters['commander'] == '/teleop'
    assert 'teleop' not in by_name(graph.robot_graph())
    with pytest.raises(ValueError, match='needs world twin'):
        graph.robot_graph(collect='expert')
    with pytest.raises(ValueError, match='unknown teleop'):
        graph.collect_graph(teleop='joystick')
    with pytest.raises(ValueError, match='robot.launch.py'):
        graph.collect_graph(world='robot')


def test_a_modalities_file_reaches_the_episode_manager_and_a_bad_one_is_named(tmp_path):
    good = tmp_path / 'modalities.yaml'
    good.write_text('pick_cube:\n  visual: pick up the red cube\n')
    g = by_name(graph.collect_graph(task='pick_cube', teleop='keyboard', modalities=str(good)))
    assert g['episodes'].parameters['modalities_file'] == str(good.resolve())
    r = by_name(graph.robot_graph(collect='keyboard', modalities=str(good)))
    assert r['episodes'].parameters['modalities_file'] == str(good.resolve())
    assert 'modalities_file' not in by_name(graph.collect_graph(teleop='expert'))['episodes'].parameters
    bad = tmp_path / 'bad.yaml'
    bad.write_text('pick_cube:\n  smell: it stinks\n')
    with pytest.raises(ValueError, match=f"modalities file {bad}: 'pick_cube': unknown modality combination 'smell'"):
        graph.collect_graph(teleop='keyboard', modalities=str(bad))
    with pytest.raises(ValueError, match='is for collection'):
        graph.robot_graph(modalities=str(good))


def test_robot_evaluation_graph_gates_the_policy_and_resets_only_on_the_operators_keys():
    g = by_name(graph.robot_graph(bundle_path='/b', instruction='pick up the cup', evaluate=True, task='cup',
                                  operator='ada', record=True, record_dir='/r/episodes'))
    assert 'teleop' not in g and g['policy'].parameters['episodes_topic'] == '/episodes/state'
    assert 'commander' not in g['arm'].parameters        # the policy's, as in arm.yaml
    assert g['arm'].parameters['motion_services'] is True and g['arm'].parameters['backend'] == 'interbotix'
    e = g['episodes'].parameters
    assert (e['world'], e['action_source'], e['operator'], e['task'], e['instruction']) == \
        ('robot', 'bundle:/b', 'ada', 'cup', 'pick up the cup')
    # Nothing resets or starts on its own, and the manager never ends the graph.
    assert (e['auto_start'], e['auto_reset'], e['episodes']) == (False, False, 0) and 'recorder' not in e
    assert g['recorder'].parameters['output_dir'] == '/r/episodes'
    # No bags: no recorder, and the manager does not wait for one.
    n = by_name(graph.robot_graph(instruction='x', evaluate=True))
    assert 'recorder' not in n and n['episodes'].parameters['recorder'] == ''
    # Off the robot: synthetic sensors and the mock arm, sim.yaml over every sensor and control node.
    s = by_name(graph.robot_graph(instruction='x', evaluate=True, synthetic=True))
    assert s['arm'].parameters['backend'] == 'mock' and s['robot_state'].parameters['publish_arm_links'] is True
    for name in ('camera_primary', 'digit_left', 'audio', 'imu', 'sync', 'policy', 'arm'):
        assert s[name].params_files[-1] == 'sim.yaml', name
    assert 'sim.yaml' not in g['camera_primary'].params_files
    with pytest.raises(ValueError, match='eval and collect exclude each other'):
        graph.robot_graph(instruction='x', evaluate=True, collect='keyboard')
    with pytest.raises(ValueError, match='needs its language instruction'):
        graph.robot_graph(evaluate=True)


def test_command_line_parameter_overrides_read_as_ros_reads_them():
    from fuse_bringup import graph as g

    params = g.parameter_overrides(['execution=temporal_ensemble', 'tick_thread_priority=50', 'ensemble_k=0.5',
                                    'motion_services=true', 'instruction=pick up the cube', 'frame_id='])
    assert params == {'execution': 'temporal_ensemble', 'tick_thread_priority': 50, 'ensemble_k': 0.5,
                      'motion_services': True, 'instruction': 'pick up the cube', 'frame_id': ''}
    with pytest.raises(ValueError, match='NAME=VALUE'):
        g.parameter_overrides(['execution'])
    specs = g.twin_graph('models/reference', None, 'pick_cube', 0, expert=False, mode='lockstep')
    changed = g.with_parameters(specs, 'policy', {'execution': 'async'})
    policy = next(s for s in changed if s.name == 'policy')
    assert policy.parameters['execution'] == 'async'
    assert [s for s in changed if s.name != 'policy'] == [s for s in specs if s.name != 'policy']
    assert g.with_parameters(specs, 'policy', {}) is specs


def test_expert_noise_reaches_the_expert_and_its_operator_name():
    g = by_name(graph.collect_graph(teleop='expert', episodes=2, expert_noise=0.008))
    assert g['expert'].parameters['action_noise_m'] == 0.008
    assert g['episodes'].parameters['operator'] == 'scripted expert, action noise 0.008 m'
    assert 'action_noise_m' not in by_name(graph.collect_graph(teleop='expert'))['expert'].parameters
    with pytest.raises(ValueError, match='needs teleop expert'):
        graph.collect_graph(teleop='keyboard', expert_noise=0.01)
    with pytest.raises(ValueError, match='outside 0 - 0.05 m'):
        graph.collect_graph(teleop='expert', expert_noise=0.2)
