"""The one description of the fuse-ros node graphs, read by the launch files and by the runner.

`sim.launch.py` / `robot.launch.py` turn these NodeSpecs into launch_ros Nodes; `fuse sim`
(fuse_bringup.runner) starts the same NodeSpecs as processes where `ros2 launch` is not
installed. Parameter files are layered in order: the per-node-family YAML used on the robot,
then the graph's override file (sim.yaml for the simulation), then explicit overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from fuse_nodes.layout import find_shipped

NODES_PACKAGE = 'fuse_nodes'


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph: what runs, under which name, with which parameters."""

    name: str                                   # node name; its private topics live under /<name>/
    executable: str                             # console script of fuse_nodes (= module name)
    params_files: Tuple[str, ...] = ()          # file names in the config directory, layered in order
    parameters: Dict[str, object] = field(default_factory=dict)  # overrides, applied last
    remappings: Tuple[Tuple[str, str], ...] = ()
    package: str = NODES_PACKAGE


def share_dir() -> Path:
    """Directory holding config/ and launch/: the source's fuse_bringup, else its install share dir."""
    # A file only fuse_bringup ships, so a config/ folder elsewhere in a checkout is not taken for it.
    return find_shipped('config/arm.yaml').parents[1]


def config_dir() -> Path:
    return share_dir() / 'config'


def config_path(name: str) -> Path:
    return config_dir() / name


def default_bundle_path() -> str:
    """The reference model bundle that ships with the project."""
    return str(find_shipped('models/reference'))


def default_bag_path() -> str:
    """The synthetic recording that ships with the project for the simulation."""
    return str(find_shipped('recordings/sim_synthetic'))


# Parameter files of each node family (the same files on the robot and in the simulation).
SENSOR_NODES: List[NodeSpec] = [
    NodeSpec('camera_primary', 'camera_node', ('cameras.yaml',)),
    NodeSpec('camera_wrist', 'camera_node', ('cameras.yaml',)),
    NodeSpec('digit_left', 'digit_node', ('digits.yaml',)),
    NodeSpec('digit_right', 'digit_node', ('digits.yaml',)),
    NodeSpec('audio', 'audio_node', ('audio.yaml',)),
    NodeSpec('imu', 'imu_node', ('imu.yaml',)),
]


def _with(spec: NodeSpec, extra_files: Tuple[str, ...] = (), **parameters: object) -> NodeSpec:
    params = dict(spec.parameters)
    params.update({k: v for k, v in parameters.items() if v is not None})
    return NodeSpec(spec.name, spec.executable, spec.params_files + extra_files, params,
                    spec.remappings, spec.package)


def control_nodes(bundle_path: str, instruction: Optional[str], backend: str,
                  robot_model: str, dry_run: bool, overrides: Tuple[str, ...]) -> List[NodeSpec]:
    """sync -> policy -> arm, shared by every graph."""
    return [
        NodeSpec('sync', 'sync_node', ('sync.yaml',) + overrides, {'bundle_path': bundle_path}),
        NodeSpec('policy', 'policy_node', ('policy.yaml',) + overrides,
                 {k: v for k, v in {'bundle_path': bundle_path, 'instruction': instruction}.items()
                  if v is not None}),
        NodeSpec('arm', 'arm_node', ('arm.yaml',) + overrides,
                 {'backend': backend, 'robot_model': robot_model, 'dry_run': dry_run}),
    ]


def robot_state_node(robot_model: str = 'wx250s', publish_arm_links: bool = True,
                     extra_files: Tuple[str, ...] = ()) -> NodeSpec:
    """/tf from the arm's joint states, sensor mounts on /tf_static from config/calibration/sensor_frames.yaml.

    On the real robot the Interbotix driver's robot_state_publisher owns the arm links, so
    publish_arm_links is false there and only the sensor mounts are added to its tree.
    """
    return NodeSpec('robot_state', 'robot_state_node', ('robot_state.yaml',) + extra_files,
                    {'robot_model': robot_model, 'publish_arm_links': publish_arm_links,
                     'sensor_frames_file': str(config_path('calibration/sensor_frames.yaml'))})


def viewer_node() -> NodeSpec:
    """The Foxglove live view (foxglove-sdk WebSocket server, localhost:8765 by default)."""
    return NodeSpec('viewer', 'viewer_node', ('viewer.yaml',))


WORLDS = ('twin', 'bag')


def sim_graph(bag_path: Optional[str] = None, bundle_path: Optional[str] = None,
              instruction: Optional[str] = None, synthetic_sensors: bool = False,
              record: bool = False, record_dir: Optional[str] = None, world: Optional[str] = None,
              task: Optional[str] = None, seed: Optional[int] = None, expert: bool = True,
              mode: Optional[str] = None, view: bool = False) -> List[NodeSpec]:
    """The simulation (with `view`, plus the Foxglove viewer).

    world 'twin' (the default): the MuJoCo world publishes the drivers' topics -> sync ->
    policy (or the task's scripted expert in its place) -> arm with the `sim` backend, which
    drives the world's arm. In lockstep mode every node but the world runs on /clock.
    world 'bag': a recorded bag (or, with synthetic_sensors, six synthetic sensor nodes) ->
    sync -> policy -> mock arm, open loop.
    """
    if world is None:
        world = 'bag' if (bag_path or synthetic_sensors) else 'twin'
    if world not in WORLDS:
        raise ValueError(f'unknown world {world!r}; one of {list(WORLDS)}')
    bundle_path = bundle_path or default_bundle_path()
    if world == 'twin':
        if bag_path or synthetic_sensors:
            raise ValueError('world twin publishes its own sensors: bag_path and synthetic_sensors need world bag')
        return twin_graph(bundle_path, instruction, task, seed, expert, mode, record, record_dir) + \
            ([viewer_node()] if view else [])
    overrides = ('sim.yaml',)
    nodes: List[NodeSpec] = []
    if synthetic_sensors:
        nodes += [_with(s, overrides) for s in SENSOR_NODES]
    else:
        nodes.append(NodeSpec('bag_player', 'bag_player_node', ('bag_player.yaml',) + overrides,
                              {'bag_path': bag_path or default_bag_path()}))
    nodes += control_nodes(bundle_path, instruction, 'mock', 'wx250s', False, overrides)
    nodes.append(robot_state_node())
    if record:
        nodes.append(NodeSpec('recorder', 'recorder_node', ('recorder.yaml',) + overrides,
                              {'output_dir': record_dir} if record_dir else {}))
    if view:
        nodes.append(viewer_node())
    return nodes


def twin_graph(bundle_path: str, instruction: Optional[str] = None, task: Optional[str] = None,
               seed: Optional[int] = None, expert: bool = True, mode: Optional[str] = None,
               record: bool = False, record_dir: Optional[str] = None) -> List[NodeSpec]:
    """World node -> sync -> policy or expert -> arm (sim backend); twin.yaml over sim.yaml."""
    overrides = ('sim.yaml', 'twin.yaml')
    lockstep = mode == 'lockstep'
    clock = {'use_sim_time': True} if lockstep else {}
    nodes = [NodeSpec('world', 'world_node', ('twin.yaml',),
                      {k: v for k, v in {'task': task, 'seed': seed, 'mode': mode}.items() if v is not None})]
    control = control_nodes(bundle_path, instruction, 'sim', 'wx250s', False, overrides)
    if expert:
        # The expert stands in for the policy on its command topic.
        control = [c if c.name != 'arm' else _with(c, (), commander='/expert') for c in control if c.name != 'policy']
        control.append(NodeSpec('expert', 'expert_node', ('twin.yaml',),
                                {k: v for k, v in {'task': task, 'seed': seed}.items() if v is not None}))
    nodes += [_with(c, (), **clock) for c in control]
    nodes.append(_with(robot_state_node(), (), **clock))
    if record:
        nodes.append(NodeSpec('recorder', 'recorder_node', ('recorder.yaml',) + overrides,
                              dict(clock, **({'output_dir': record_dir} if record_dir else {}))))
    return nodes


def robot_graph(bundle_path: Optional[str] = None, instruction: Optional[str] = None,
                robot_model: str = 'wx250s', dry_run: bool = False, record: bool = False,
                record_dir: Optional[str] = None,
                sensor_overrides: Optional[Dict[str, Dict[str, object]]] = None,
                motion_services: bool = False, collect: Optional[str] = None, episodes: int = 0,
                operator: str = '', view: bool = False, modalities: Optional[str] = None,
                evaluate: bool = False, task: Optional[str] = None, synthetic: bool = False) -> List[NodeSpec]:
    """The real robot: every sensor, sync, policy and the arm through the Interbotix driver.

    view: also the Foxglove viewer (as in sim_graph).

    collect (a teleop device: keyboard, spacemouse, gamepad, scripted): demonstration collection
    instead of the policy: the teleop node commands the arm, the episode manager resets to the
    start pose and captures the DIGIT backgrounds, the recorder writes one bag per episode.
    modalities: a modalities file (collect only; see collection_nodes).

    evaluate: operator-marked trials of the bundle (fuse_bringup.evaluate_robot; see
    evaluation_nodes): the policy commands only while the episode manager records a trial.
    task: what the trials do (free text, in every trial's metadata).

    synthetic: synthetic sensors and the mock arm (sim.yaml over every node, as the bag
    simulation's synthetic sensors) in place of the hardware: the same graph on any machine.
    """
    bundle_path = bundle_path or default_bundle_path()
    sensor_overrides = sensor_overrides or {}
    overrides = ('sim.yaml',) if synthetic else ()
    nodes = [_with(s, overrides, **sensor_overrides.get(s.name, {})) for s in SENSOR_NODES]
    nodes += [_with(n, (), motion_services=True) if n.name == 'arm' and (motion_services or evaluate) else n
              for n in control_nodes(bundle_path, instruction, 'mock' if synthetic else 'interbotix', robot_model,
                                     dry_run, overrides)]
    nodes.append(robot_state_node(robot_model, publish_arm_links=synthetic))
    viewer = [viewer_node()] if view else []
    if evaluate and collect:
        raise ValueError('eval and collect exclude each other: evaluate the policy, or collect with a teleop device')
    if collect:
        nodes = [_with(n, (), commander='/teleop', motion_services=True) if n.name == 'arm' else n
                 for n in nodes if n.name != 'policy']
        return nodes + collection_nodes(collect, 'robot', episodes, record_dir, operator,
                                        instruction=instruction, modalities=modalities) + viewer
    if modalities:
        raise ValueError('modalities: a modalities file is for collection (collect:=<teleop>)')
    if evaluate:
        if not instruction:
            raise ValueError('eval: the policy needs its language instruction (instruction:=...)')
        nodes = [_with(n, (), episodes_topic='/episodes/state') if n.name == 'policy' else n for n in nodes]
        return nodes + evaluation_nodes(bundle_path, record_dir if record else None, operator, task,
                                        instruction, record) + viewer
    if record:
        nodes.append(NodeSpec('recorder', 'recorder_node', ('recorder.yaml',),
                              {'output_dir': record_dir} if record_dir else {}))
    return nodes + viewer


def episode_recorder(out_dir: Optional[str], overrides: Tuple[str, ...] = (),
                     clock: Optional[Dict[str, object]] = None) -> NodeSpec:
    """The recorder in mode episodes: one bag per episode under out_dir (~/start, ~/stop, ~/ready)."""
    rec = {'mode': 'episodes', 'record_episode_topics': True}
    if out_dir:
        rec['output_dir'] = out_dir
    return NodeSpec('recorder', 'recorder_node', ('recorder.yaml',) + overrides, dict(clock or {}, **rec))


def evaluation_nodes(bundle_path: str, out_dir: Optional[str], operator: str = '', task: Optional[str] = None,
                     instruction: Optional[str] = None, record: bool = True) -> List[NodeSpec]:
    """Episode manager (+ the recorder, one bag per trial under out_dir) of an operator-marked
    evaluation on the robot.

    No teleop node: the operator's keys (fuse_nodes.episode_keys, run by the evaluation) ask the
    manager to reset (start pose, DIGIT backgrounds), to start a trial and to end it with
    success / failure / discard; nothing starts or resets on its own, and the manager never
    stops the graph (the evaluation does, after its trials).
    """
    epi = {'world': 'robot', 'action_source': f'bundle:{bundle_path}', 'operator': operator, 'episodes': 0,
           'auto_start': False, 'auto_reset': False, 'task': task, 'instruction': instruction,
           'recorder': None if record else ''}
    manager = NodeSpec('episodes', 'episodes_node', ('episodes.yaml',), {k: v for k, v in epi.items() if v is not None})
    return ([episode_recorder(out_dir)] if record else []) + [manager]


TELEOPS = ('keyboard', 'spacemouse', 'gamepad', 'expert', 'scripted', 'fake')


def collection_nodes(teleop: str, world: str, episodes: int, out_dir: Optional[str],
                     operator: str = '', task: Optional[str] = None, seed: Optional[int] = None,
                     instruction: Optional[str] = None, overrides: Tuple[str, ...] = (),
                     clock: Optional[Dict[str, object]] = None,
                     modalities: Optional[str] = None) -> List[NodeSpec]:
    """Episode manager + per-episode recorder (+ the teleop node unless the expert drives).

    modalities: a modalities file (instruction or task -> {combination: text}), checked here so
    that a bad one is named before anything starts; the episode manager records its texts with
    every episode whose instruction or task it names.
    """
    if teleop not in TELEOPS:
        raise ValueError(f'unknown teleop {teleop!r}; one of {list(TELEOPS)}')
    if modalities:
        from fuse_core.episodes.modalities import load_modality_table
        from fuse_core.errors import EpisodeError
        try:
            load_modality_table(modalities)
        except EpisodeError as exc:
            raise ValueError(str(exc)) from exc
        modalities = str(Path(modalities).expanduser().resolve())
    clock = clock or {}
    twin = world == 'twin'
    expert = teleop == 'expert'
    if expert and not twin:
        raise ValueError('teleop expert is the twin\'s scripted expert: it needs world twin')
    epi = {'world': world, 'action_source': teleop, 'operator': operator, 'episodes': int(episodes),
           'world_reset': twin and not expert, 'follow_world': expert, 'auto_outcome': twin,
           'auto_reset': twin, 'task': task, 'seed': seed, 'instruction': instruction,
           'modalities_file': modalities}
    nodes = [episode_recorder(out_dir, overrides, clock),
             NodeSpec('episodes', 'episodes_node', ('episodes.yaml',),
                      dict(clock, **{k: v for k, v in epi.items() if v is not None}))]
    if not expert:
        nodes.append(NodeSpec('teleop', 'teleop_node', ('teleop.yaml',), dict(clock, device=teleop)))
    return nodes


def collect_graph(task: Optional[str] = None, teleop: str = 'expert', episodes: int = 0,
                  world: str = 'twin', out_dir: Optional[str] = None, mode: Optional[str] = None,
                  seed: Optional[int] = None, operator: str = '', bundle_path: Optional[str] = None,
                  instruction: Optional[str] = None, modalities: Optional[str] = None,
                  expert_noise: float = 0.0) -> List[NodeSpec]:
    """Demonstration collection in the twin: world -> sync -> expert or teleop -> arm, recorded
    one bag per episode by the recorder, episodes driven by the episode manager, which ends the
    graph after `episodes` recorded ones. Nothing starts before the recorder is ready: the episode
    manager waits for its ~/ready, the expert for the manager's recorder_ready. `expert_noise`:
    the expert's action_noise_m (its operator name in the episodes' metadata says so)."""
    if world != 'twin':
        raise ValueError('world robot: collect with robot.launch.py collect:=<teleop> on the robot machine')
    bundle_path = bundle_path or default_bundle_path()
    expert = teleop == 'expert'
    if expert_noise and not expert:
        raise ValueError(f'expert noise {expert_noise} m needs teleop expert (got {teleop!r})')
    if not 0.0 <= expert_noise <= 0.05:
        raise ValueError(f'expert noise {expert_noise} m is outside 0 - 0.05 m')
    if expert_noise and not operator:
        operator = f'scripted expert, action noise {expert_noise:g} m'
    nodes = twin_graph(bundle_path, instruction, task, seed, expert=expert, mode=mode)
    clock = {'use_sim_time': True} if mode == 'lockstep' else {}
    if not expert:
        # The operator's device stands in for the policy.
        nodes = [_with(n, (), commander='/teleop') if n.name == 'arm' else n for n in nodes if n.name != 'policy']
    nodes = [_with(n, (), motion_services=True) if n.name == 'arm' else n for n in nodes]
    # The expert's first reset waits for the episode manager, which waits for the recorder.
    nodes = [_with(n, (), wait_for_episodes='/episodes/state') if n.name == 'expert' else n for n in nodes]
    if expert_noise:
        nodes = [_with(n, (), action_noise_m=float(expert_noise)) if n.name == 'expert' else n for n in nodes]
    return nodes + collection_nodes(teleop, 'twin', episodes, out_dir, operator, task, seed, instruction,
                                    ('sim.yaml', 'twin.yaml'), clock, modalities)


def ros_args(spec: NodeSpec, cfg_dir: Optional[Path] = None) -> List[str]:
    """The `--ros-args ...` command-line tail that starts `spec` as launch_ros would."""
    cfg_dir = cfg_dir or config_dir()
    args = ['--ros-args', '-r', f'__node:={spec.name}']
    for f in spec.params_files:
        args += ['--params-file', str(cfg_dir / f)]
    for key, value in spec.parameters.items():
        args += ['-p', f'{key}:={format_param(value)}']
    for src, dst in spec.remappings:
        args += ['-r', f'{src}:={dst}']
    return args


def parameter_overrides(items: Iterable[str]) -> Dict[str, object]:
    """NAME=VALUE command-line items -> parameters, each value read as the ROS command line
    reads it (YAML: 50 is an integer, true a bool, clock a string); raises ValueError."""
    import yaml

    out: Dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition('=')
        if not sep or not name.strip():
            raise ValueError(f'{item!r}: expected NAME=VALUE')
        out[name.strip()] = yaml.safe_load(text) if text.strip() else ''
    return out


def with_parameters(specs: List[NodeSpec], node: str, parameters: Dict[str, object]) -> List[NodeSpec]:
    """`specs` with `parameters` added to (or replacing those of) the node named `node`."""
    if not parameters:
        return specs
    return [dataclasses.replace(s, parameters={**s.parameters, **parameters}) if s.name == node else s
            for s in specs]


def format_param(value: object) -> str:
    """A parameter value as the ROS command line parses it (YAML)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(format_param(v) for v in value) + ']'
    if isinstance(value, str):
        # Quote so that YAML keeps it a string ("5" stays a string, spaces survive).
        return "'" + value.replace("'", "''") + "'"
    return repr(value)
