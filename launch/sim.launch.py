"""Simulation: the MuJoCo twin world (default) or a recorded bag -> sync -> policy/expert -> arm.

    ros2 launch fuse_bringup sim.launch.py [world:=twin|bag] [task:=pick_cube] [seed:=0]
        [expert:=true|false] [mode:=realtime|lockstep] [bundle:=DIR] [instruction:='...']
        [bag:=DIR] [synthetic_sensors:=true] [record:=DIR] [view:=true]

The nodes and parameter files come from fuse_bringup.graph, the description `./run.sh sim`
uses too, so the two ways of starting the simulation cannot drift apart.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from fuse_bringup import graph
from fuse_bringup.launch_nodes import to_launch_node


def _nodes(context):
    def arg(name):
        value = LaunchConfiguration(name).perform(context)
        return value or None

    seed = arg('seed')
    specs = graph.sim_graph(
        bag_path=arg('bag'), bundle_path=arg('bundle'), instruction=arg('instruction'),
        synthetic_sensors=(arg('synthetic_sensors') or 'false').lower() == 'true',
        record=arg('record') is not None, record_dir=arg('record'), world=arg('world'),
        task=arg('task'), seed=int(seed) if seed is not None else None,
        expert=(arg('expert') or 'true').lower() == 'true', mode=arg('mode'),
        view=(arg('view') or 'false').lower() == 'true')
    return [to_launch_node(spec) for spec in specs]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('world', default_value='',
                              description='twin: closed-loop MuJoCo world (the default, unless bag or '
                                          'synthetic_sensors is given); bag: replay a recording open loop'),
        DeclareLaunchArgument('task', default_value='', description='twin task (default: twin.yaml)'),
        DeclareLaunchArgument('seed', default_value='', description='twin: seed of the first episode'),
        DeclareLaunchArgument('expert', default_value='true',
                              description="twin: the task's scripted expert in place of the policy"),
        DeclareLaunchArgument('mode', default_value='',
                              description='twin: realtime (default) or lockstep (every node on /clock)'),
        DeclareLaunchArgument('bag', default_value='',
                              description='world bag: rosbag2 MCAP directory (default: the shipped recording)'),
        DeclareLaunchArgument('bundle', default_value='',
                              description='model bundle directory (default: models/reference)'),
        DeclareLaunchArgument('instruction', default_value='', description='language instruction'),
        DeclareLaunchArgument('synthetic_sensors', default_value='false',
                              description='run the sensor nodes with synthetic sources instead of the bag'),
        DeclareLaunchArgument('record', default_value='', description='record the run to this directory'),
        DeclareLaunchArgument('view', default_value='false',
                              description='also start the Foxglove viewer (ws://127.0.0.1:8765, '
                                          'layout config/foxglove_layout.json)'),
        OpaqueFunction(function=_nodes),
    ])
