"""Which config dataclass declares each node's parameters, and what the YAML files set on top.

The dataclasses (fuse_core/*/config.py, fuse_sim/config.py) are the one source of every
parameter's name and default; the parameter files in fuse_bringup/config carry only what
differs for the robot (the node family's own file) or the simulation (sim.yaml, twin.yaml).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import yaml

from fuse_bringup import graph
from fuse_core.config import field_defaults

#: Node executable (fuse_nodes module) -> 'module:Class' of the config it declares.
NODE_CONFIGS: Dict[str, str] = {
    'camera_node': 'fuse_core.camera:CameraConfig',
    'digit_node': 'fuse_core.digit:DigitConfig',
    'audio_node': 'fuse_core.audio.config:AudioConfig',
    'imu_node': 'fuse_core.imu.config:ImuConfig',
    'sync_node': 'fuse_core.sync:SyncConfig',
    'policy_node': 'fuse_core.bundle.policy:PolicyConfig',
    'arm_node': 'fuse_core.arm.config:ArmConfig',
    'bag_player_node': 'fuse_core.bag.config:BagPlayerConfig',
    'recorder_node': 'fuse_core.bag.config:RecorderConfig',
    'episodes_node': 'fuse_core.episodes.config:EpisodesConfig',
    'teleop_node': 'fuse_core.teleop.mapper:TeleopConfig',
    'viewer_node': 'fuse_core.viewer:ViewerConfig',
    'robot_state_node': 'fuse_core.arm.robot_state:RobotStateConfig',
    'world_node': 'fuse_sim.config:WorldConfig',
    'expert_node': 'fuse_sim.config:ExpertConfig',
}

#: Parameters the sync node declares per stream, under streams.<name>.
STREAMS_KEY = 'streams'


def config_class(executable: str) -> type:
    module, name = NODE_CONFIGS[executable].split(':')
    return getattr(importlib.import_module(module), name)


def all_specs() -> List[graph.NodeSpec]:
    """Every node of every graph the launch files and the runner start (one spec per name and files)."""
    graphs = [graph.robot_graph(), graph.robot_graph(record=True, view=True),
              graph.robot_graph(collect='keyboard'), graph.robot_graph(evaluate=True, instruction='x'),
              graph.sim_graph(synthetic_sensors=True, record=True, view=True), graph.sim_graph(world='bag'),
              graph.sim_graph(record=True), graph.collect_graph(teleop='keyboard')]
    seen: Dict[Tuple[str, Tuple[str, ...]], graph.NodeSpec] = {}
    for specs in graphs:
        for s in specs:
            seen.setdefault((s.name, s.params_files), s)
    return list(seen.values())


def executables() -> Dict[str, str]:
    """Node name -> executable, over every graph."""
    return {s.name: s.executable for s in all_specs()}


def defaults(executable: str) -> Dict[str, Any]:
    """The dataclass defaults of a node's parameters."""
    return field_defaults(config_class(executable))


def yaml_sections(path: Path) -> Dict[str, Dict[str, Any]]:
    """Node name -> its ros__parameters in one parameter file."""
    data = yaml.safe_load(path.read_text()) or {}
    return {node: dict(section.get('ros__parameters') or {}) for node, section in data.items()}


#: A graph's override files, layered after the node family's own file.
OVERRIDE_FILES = ('sim.yaml', 'twin.yaml')


def family_values(node: str) -> Dict[str, Any]:
    """What the node runs from its own family's file (the robot's configuration) over the
    dataclass defaults; a node that only the twin runs (world, expert) has only its defaults."""
    spec = next(s for s in all_specs() if s.name == node)
    values = defaults(spec.executable)
    if spec.params_files and spec.params_files[0] not in OVERRIDE_FILES:
        values.update(yaml_sections(graph.config_path(spec.params_files[0])).get(node, {}))
    return values


def same_value(a: Any, b: Any) -> bool:
    """Equal as ROS parameters: 1 and 1.0 are the same value, [1, 2] and (1.0, 2.0) too."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def restated(path: Path) -> Iterator[str]:
    """'node: key = value' for each value in `path` that equals what the node has without it.

    For the node family's own file that is the dataclass default; for a graph's override file
    (sim.yaml, twin.yaml) it is the value the files layered before it already give.
    """
    from fuse_core.sync import stream_defaults
    names = executables()
    for node, params in yaml_sections(path).items():
        if node not in names:
            continue
        spec = next(s for s in all_specs() if s.name == node and path.name in s.params_files)
        before = defaults(spec.executable)
        for f in spec.params_files[:spec.params_files.index(path.name)]:
            before.update(yaml_sections(graph.config_path(f)).get(node, {}))
        for key, value in params.items():
            if key == STREAMS_KEY and spec.executable == 'sync_node':
                earlier = before.get(STREAMS_KEY, {})
                for stream, fields in value.items():
                    base = dict(stream_defaults(stream), **earlier.get(stream, {}))
                    for k, v in fields.items():
                        if k in base and same_value(base[k], v):
                            yield f'{node}: streams.{stream}.{k} = {v!r}'
            elif key in before and same_value(before[key], value):
                yield f'{node}: {key} = {value!r}'
