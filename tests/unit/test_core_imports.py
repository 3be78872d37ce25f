"""fuse_core is ROS-free and light: importing any of its modules loads numpy and nothing heavy."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import fuse_core

HEAVY = ('rclpy', 'cv2', 'onnxruntime', 'serial', 'sounddevice', 'digit_interface', 'mcap', 'tokenizers',
         'librosa', 'torch', 'jax', 'onnx')


def test_every_fuse_core_module_imports_without_ros_or_heavy_packages():
    modules = sorted(m.name for m in pkgutil.walk_packages(fuse_core.__path__, 'fuse_core.'))
    assert len(modules) > 30
    code = ('import sys\n'
            f'for m in {modules!r}:\n'
            '    __import__(m)\n'
            f'print(sorted(h for h in {HEAVY!r} if h in sys.modules))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]', f'heavy packages loaded at import: {out.strip()}'
