"""NodeSpec -> launch_ros Node: the one translation both launch files (and launch tests) use."""

from launch_ros.actions import Node

from fuse_bringup import graph


def to_launch_node(spec: graph.NodeSpec) -> Node:
    """A launch_ros Node that starts `spec` exactly as the runner's `graph.ros_args` does."""
    cfg = graph.config_dir()
    return Node(
        package=spec.package, executable=spec.executable, name=spec.name, output='screen',
        parameters=[str(cfg / f) for f in spec.params_files] + [dict(spec.parameters)],
        remappings=list(spec.remappings), emulate_tty=True)
