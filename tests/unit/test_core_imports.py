"""fuse_core is ROS-free and light: importing any of its modules loads numpy and nothing heavy."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import fuse_core

HEAVY = ('rclpy', 'cv2', 'onnxruntime', 'serial', 'sounddevice', 'digit_interface', 'mcap', 'tokenizers',
         'librosa', 'torch', 'jax', 'onnx')

#: Top-level names that mean ROS: the client library, the package index, the message runtime.
ROS = ('rclpy', 'rcl_interfaces', 'ament_index_python', 'launch', 'launch_ros', 'builtin_interfaces',
       'fuse_interfaces', 'interbotix_xs_modules', 'interbotix_common_modules', 'tf2_ros', 'rpyutils')


def _is_ros(name: str) -> bool:
    """A ROS runtime module or a generated message/service package (std_msgs, std_srvs, ...)."""
    top = name.split('.')[0]
    return top in ROS or top.startswith('rosidl') or top.endswith(('_msgs', '_srvs', '_interfaces'))


def _modules_loaded_by(modules) -> list:
    code = ('import sys\n'
            f'for m in {modules!r}:\n'
            '    __import__(m)\n'
            'print(__import__("json").dumps(sorted(sys.modules)))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_every_fuse_core_module_imports_without_ros_or_heavy_packages():
    modules = sorted(m.name for m in pkgutil.walk_packages(fuse_core.__path__, 'fuse_core.'))
    assert len(modules) > 30
    assert 'fuse_core.arm.backends' in modules and 'fuse_core.bundle.loader' in modules
    loaded = _modules_loaded_by(modules)
    heavy = sorted(h for h in HEAVY if h in loaded)
    assert heavy == [], f'heavy packages loaded at import: {heavy}'
    ros = sorted(m for m in loaded if _is_ros(m))
    assert ros == [], f'ROS modules loaded by importing fuse_core: {ros}'


def test_the_ros_check_recognises_ros_modules():
    for name in ('rclpy.node', 'ament_index_python.packages', 'rosidl_parser', 'std_msgs.msg',
                 'sensor_msgs', 'std_srvs.srv', 'fuse_interfaces.msg', 'rcl_interfaces'):
        assert _is_ros(name), name
    for name in ('numpy', 'fuse_core.arm.backends', 'json', 'yaml'):
        assert not _is_ros(name), name
