"""The launch files parse, build their nodes from the shared graph description, and match it.

`launch` is not installable here, so these checks read the launch files' syntax tree and the
graph description instead of importing them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from fuse_bringup import graph

REPO = Path(__file__).resolve().parents[2]
LAUNCH_DIR = REPO / 'launch'
SETUP_PY = REPO / 'ros2_ws/src/fuse_nodes/setup.py'


def _tree(name: str) -> ast.Module:
    return ast.parse((LAUNCH_DIR / name).read_text(), filename=name)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            yield (f.attr if isinstance(f, ast.Attribute) else getattr(f, 'id', None)), node


@pytest.mark.parametrize('name,builder', [('sim.launch.py', 'sim_graph'), ('robot.launch.py', 'robot_graph')])
def test_launch_file_builds_nodes_from_the_graph_description(name, builder):
    tree = _tree(name)
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description' for n in tree.body)
    calls = dict(_calls(tree))
    assert builder in calls, f'{name} must build its nodes with fuse_bringup.graph.{builder}'
    assert 'to_launch_node' in calls, f'{name} must turn NodeSpecs into Nodes with launch_nodes.to_launch_node'
    # No node is written into the launch file by hand.
    assert 'Node' not in calls, f'{name} creates a launch_ros Node directly'


def _declared_arguments(tree: ast.AST):
    out = {}
    for fn, call in _calls(tree):
        if fn == 'DeclareLaunchArgument' and call.args and isinstance(call.args[0], ast.Constant):
            out[call.args[0].value] = {k.arg: ast.unparse(k.value) for k in call.keywords}
    return out


@pytest.mark.parametrize('name,builder', [('sim.launch.py', 'sim_graph'), ('robot.launch.py', 'robot_graph')])
def test_view_argument_is_declared_and_passed_to_the_graph(name, builder):
    """Both launch files take view:= (default false) and hand it to the graph builder as `view`."""
    tree = _tree(name)
    view = _declared_arguments(tree).get('view')
    assert view is not None, f'{name} declares no view launch argument'
    assert view['default_value'] == "'false'"
    assert 'Foxglove viewer' in view['description']
    build = dict(_calls(tree))[builder]
    kw = {k.arg: ast.unparse(k.value) for k in build.keywords}
    assert 'view' in kw and "arg('view')" in kw['view'], f'{name} does not pass view to {builder}'


def test_robot_collection_takes_a_modalities_file():
    """robot.launch.py modalities:=FILE reaches robot_graph (which checks it and hands it to episodes)."""
    tree = _tree('robot.launch.py')
    declared = _declared_arguments(tree).get('modalities')
    assert declared is not None and declared['default_value'] == "''"
    kw = {k.arg: ast.unparse(k.value) for k in dict(_calls(tree))['robot_graph'].keywords}
    assert "arg('modalities')" in kw.get('modalities', '')


def test_robot_evaluation_arguments_reach_the_graph():
    """robot.launch.py eval:=true task:=TEXT reach robot_graph as evaluate and task."""
    tree = _tree('robot.launch.py')
    declared = _declared_arguments(tree)
    assert declared['eval']['default_value'] == "'false'" and declared['task']['default_value'] == "''"
    kw = {k.arg: ast.unparse(k.value) for k in dict(_calls(tree))['robot_graph'].keywords}
    assert "arg('eval')" in kw.get('evaluate', '') and "arg('task')" in kw.get('task', '')


@pytest.mark.parametrize('builder,kwargs', [('sim_graph', {}), ('sim_graph', {'world': 'bag'}),
                                            ('robot_graph', {}), ('robot_graph', {'collect': 'scripted'})])
def test_view_adds_exactly_the_viewer_node(builder, kwargs):
    build = getattr(graph, builder)
    without = [s.name for s in build(**kwargs)]
    with_view = build(view=True, **kwargs)
    assert 'viewer' not in without
    assert [s.name for s in with_view if s.name != 'viewer'] == without
    viewer = [s for s in with_view if s.name == 'viewer']
    assert len(viewer) == 1 and viewer[0].params_files == ('viewer.yaml',)


def test_launch_nodes_come_from_nodespec_fields():
    tree = ast.parse((REPO / 'ros2_ws/src/fuse_bringup/fuse_bringup/launch_nodes.py').read_text())
    node_calls = [c for fn, c in _calls(tree) if fn == 'Node']
    assert len(node_calls) == 1
    kw = {k.arg: k.value for k in node_calls[0].keywords}
    for field in ('package', 'executable', 'name'):
        value = kw.get(field)
        assert isinstance(value, ast.Attribute) and value.attr == field, field
    params = ast.unparse(kw['parameters'])
    assert 'params_files' in params and 'spec.parameters' in params
    assert 'spec.remappings' in ast.unparse(kw['remappings'])


def _console_scripts():
    text = SETUP_PY.read_text()
    names = re.search(r'NODES = \[(.*?)\]', text, re.S).group(1)
    return set(re.findall(r"'(\w+)'", names))


ALL_GRAPHS = {
    'sim': graph.sim_graph(),
    'sim_lockstep_policy': graph.sim_graph(mode='lockstep', expert=False, record=True),
    'sim_bag': graph.sim_graph(world='bag'),
    'sim_view': graph.sim_graph(view=True),
    'sim_synthetic_record': graph.sim_graph(synthetic_sensors=True, record=True),
    'robot': graph.robot_graph(record=True),
    'collect_expert': graph.collect_graph(teleop='expert', mode='lockstep'),
    'collect_teleop': graph.collect_graph(teleop='keyboard'),
    'robot_collect': graph.robot_graph(collect='gamepad', episodes=3),
    'robot_view': graph.robot_graph(view=True),
    'robot_collect_view': graph.robot_graph(collect='scripted', view=True),
    'robot_eval': graph.robot_graph(instruction='pick up the cup', evaluate=True, record=True),
    'robot_eval_synthetic': graph.robot_graph(instruction='pick up the cup', evaluate=True, synthetic=True),
}


@pytest.mark.parametrize('graph_name', sorted(ALL_GRAPHS))
def test_graph_nodes_exist_and_their_parameter_files_exist(graph_name):
    specs = ALL_GRAPHS[graph_name]
    names = [s.name for s in specs]
    assert len(names) == len(set(names)), f'duplicate node names in {graph_name}: {names}'
    scripts = _console_scripts()
    for spec in specs:
        assert spec.executable in scripts, f'{spec.executable} is not a console script of fuse_nodes'
        module = REPO / 'ros2_ws/src/fuse_nodes/fuse_nodes' / f'{spec.executable}.py'
        assert module.is_file(), f'{module} missing'
        for f in spec.params_files:
            path = graph.config_path(f)
            assert path.is_file(), f'{spec.name}: parameter file {f} missing'
            data = yaml.safe_load(path.read_text()) or {}
            for node_name, section in data.items():
                assert 'ros__parameters' in section, f'{f}: {node_name} lacks ros__parameters'


def test_every_node_family_file_configures_only_nodes_of_some_graph():
    known = {s.name for specs in ALL_GRAPHS.values() for s in specs}
    for path in sorted(graph.config_dir().glob('*.yaml')):
        data = yaml.safe_load(path.read_text()) or {}
        for node_name in data:
            assert node_name in known or node_name == '/**', f'{path.name} configures unknown node {node_name!r}'


def test_robot_and_sim_share_the_node_family_files():
    sim = {s.name: s for s in graph.sim_graph(synthetic_sensors=True)}
    robot = {s.name: s for s in graph.robot_graph()}
    for name, r in robot.items():
        if name in sim:
            # The simulation may only add override files after the robot's own ones.
            assert sim[name].params_files[:len(r.params_files)] == r.params_files, name
            assert sim[name].executable == r.executable


def test_ros_args_match_what_launch_ros_passes():
    spec = graph.NodeSpec('policy', 'policy_node', ('policy.yaml',), {'instruction': 'pick up the cup', 'x': 2.0},
                          (('/a', '/b'),))
    args = graph.ros_args(spec)
    assert args[:3] == ['--ros-args', '-r', '__node:=policy']
    assert ['--params-file', str(graph.config_path('policy.yaml'))] == args[3:5]
    assert "instruction:='pick up the cup'" in args and 'x:=2.0' in args and '/a:=/b' in args


def test_the_two_foxglove_layouts_have_the_same_panels():
    """config/foxglove_layout.json (viewer channels) and its foxglove_bridge twin (ROS topics)."""
    import json
    viewer = json.loads(graph.config_path('foxglove_layout.json').read_text())
    bridge = json.loads(graph.config_path('foxglove_layout_bridge.json').read_text())
    assert set(viewer['configById']) == set(bridge['configById'])
    assert viewer['layout'] == bridge['layout']
    topics = [p.get('imageMode', {}).get('imageTopic') for p in bridge['configById'].values()]
    assert '/camera_primary/image_raw' in topics
