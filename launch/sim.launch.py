"""Simulation: a recorded bag (or synthetic sensors) -> sync -> policy -> mock WidowX 250s.

    ros2 launch fuse_bringup sim.launch.py [bag:=DIR] [bundle:=DIR] [instruction:='...']
        [synthetic_sensors:=true] [record:=DIR]

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

    specs = graph.sim_graph(
        bag_path=arg('bag'), bundle_path=arg('bundle'), instruction=arg('instruction'),
        synthetic_sensors=(arg('synthetic_sensors') or 'false').lower() == 'true',
        record=arg('record') is not None, record_dir=arg('record'))
    return [to_launch_node(spec) for spec in specs]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('bag', default_value='',
                              description='rosbag2 MCAP directory (default: the shipped recording)'),
        DeclareLaunchArgument('bundle', default_value='',
                              description='model bundle directory (default: models/reference)'),
        DeclareLaunchArgument('instruction', default_value='', description='language instruction'),
        DeclareLaunchArgument('synthetic_sensors', default_value='false',
                              description='run the sensor nodes with synthetic sources instead of the bag'),
        DeclareLaunchArgument('record', default_value='', description='record the run to this directory'),
        OpaqueFunction(function=_nodes),
    ])
