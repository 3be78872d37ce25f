"""NodeSpec -> launch_ros Node: the one translation both launch files (and launch tests) use."""

from typing import Optional

from launch_ros.actions import Node

from fuse_bringup import graph


def to_launch_node(spec: graph.NodeSpec, enclave: Optional[str] = None) -> Node:
    """A launch_ros Node that starts `spec` exactly as the runner's `graph.ros_args` does.

    enclave: the SROS2 enclave of the node (fuse_bringup.security), e.g. /fuse/arm.
    """
    cfg = graph.config_dir()
    return Node(
        package=spec.package, executable=spec.executable, name=spec.name, output='screen',
        parameters=[str(cfg / f) for f in spec.params_files] + [dict(spec.parameters)],
        remappings=list(spec.remappings), emulate_tty=True,
        ros_arguments=['--enclave', enclave] if enclave else [])
