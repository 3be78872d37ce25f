"""Packaging checks that run here: package.xml files, the Dockerfile and the compose file."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / 'ros2_ws/src'
PYTHON_PACKAGES = ['fuse_core', 'fuse_sim', 'fuse_nodes', 'fuse_bringup']

# Python import name -> the rosdep key (or ROS package) that provides it.
IMPORT_TO_DEP = {
    'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'cv2': 'python3-opencv', 'serial': 'python3-serial',
    'pyudev': 'python3-pyudev', 'rclpy': 'rclpy', 'std_msgs': 'std_msgs', 'std_srvs': 'std_srvs',
    'sensor_msgs': 'sensor_msgs', 'geometry_msgs': 'geometry_msgs', 'diagnostic_msgs': 'diagnostic_msgs',
    'rosgraph_msgs': 'rosgraph_msgs', 'tf2_msgs': 'tf2_msgs', 'builtin_interfaces': 'builtin_interfaces',
    'rcl_interfaces': 'rcl_interfaces', 'fuse_interfaces': 'fuse_interfaces', 'fuse_core': 'fuse_core',
    'fuse_sim': 'fuse_sim', 'fuse_nodes': 'fuse_nodes', 'mujoco': 'python3-mujoco-pip',
    'fuse_bringup': 'fuse_bringup', 'launch': 'launch', 'launch_ros': 'launch_ros',
    'ament_index_python': 'ament_index_python', 'onnxruntime': 'python3-onnxruntime-pip',
    'sounddevice': 'python3-sounddevice-pip', 'digit_interface': 'digit-interface-pip',
    'mcap': 'python3-mcap-pip', 'mcap_ros2': 'python3-mcap-ros2-pip', 'psutil': 'python3-psutil',
    'tokenizers': 'python3-tokenizers-pip', 'foxglove': 'python3-foxglove-sdk-pip',
    'rosidl_runtime_py': 'rosidl_runtime_py',
    'interbotix_xs_modules': 'interbotix_xs_modules', 'interbotix_common_modules': 'interbotix_common_modules',
    'evdev': 'python3-evdev', 'hid': 'python3-hid-pip',
    'tensorflow_datasets': 'tensorflow-datasets-pip', 'lerobot': 'lerobot-pip', 'torch': 'python3-torch-pip',
}
# Installed by pip in the docker image and by setup.sh (no rosdep key): documented in README.
PIP_ONLY = {'python3-onnxruntime-pip', 'python3-sounddevice-pip', 'digit-interface-pip', 'python3-mcap-pip',
            'python3-mcap-ros2-pip', 'python3-tokenizers-pip', 'python3-mujoco-pip', 'python3-foxglove-sdk-pip'}
# Imported only when the user selects the hardware that needs them, on the robot machine
# (evdev, hidapi: requirements/teleop.txt); the dataset writers run in .venv-datasets
# (requirements/datasets.txt, ./setup.sh --datasets).
OPTIONAL = {'interbotix_xs_modules', 'interbotix_common_modules', 'evdev', 'hid', 'tensorflow_datasets',
            'lerobot', 'torch'}


def _deps(pkg: str) -> set:
    root = ET.parse(SRC / pkg / 'package.xml').getroot()
    tags = ('depend', 'exec_depend', 'build_depend', 'buildtool_depend', 'test_depend')
    return {e.text.strip() for t in tags for e in root.findall(t)}


@pytest.mark.parametrize('pkg', PYTHON_PACKAGES + ['fuse_interfaces'])
def test_package_xml_is_format_3_and_names_its_package(pkg):
    root = ET.parse(SRC / pkg / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == pkg
    for tag in ('version', 'description', 'maintainer', 'license'):
        assert (root.findtext(tag) or '').strip(), f'{pkg}: <{tag}> empty'
    assert root.find('maintainer').get('email')
    build_type = root.find('export/build_type').text
    assert build_type == ('ament_cmake' if pkg == 'fuse_interfaces' else 'ament_python')


def _imports(pkg: str) -> set:
    found = set()
    for path in (SRC / pkg / pkg).rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split('.')[0])
    return found


@pytest.mark.parametrize('pkg', PYTHON_PACKAGES)
def test_package_xml_lists_every_dependency_the_code_imports(pkg):
    stdlib = set(sys.stdlib_module_names)
    deps = _deps(pkg)
    missing = []
    for mod in sorted(_imports(pkg) - stdlib - {pkg}):
        dep = IMPORT_TO_DEP.get(mod)
        assert dep is not None, f'{pkg} imports {mod!r}: add it to IMPORT_TO_DEP and package.xml'
        if dep in PIP_ONLY or mod in OPTIONAL:
            continue
        if dep not in deps:
            missing.append(f'{mod} -> <exec_depend>{dep}</exec_depend>')
    assert not missing, f'{pkg}/package.xml lacks: {missing}'


def test_fuse_core_imports_no_ros():
    assert not ({'rclpy', 'launch', 'launch_ros', 'ament_index_python'} & _imports('fuse_core'))


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which('hadolint') or str(Path(sys.executable).parent / 'hadolint')
    res = subprocess.run([hadolint, '--config', str(REPO / 'docker/.hadolint.yaml'), str(REPO / 'docker/Dockerfile')],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_targets_and_copied_paths_exist():
    text = (REPO / 'docker/Dockerfile').read_text()
    targets = set(re.findall(r'^FROM \S+ AS (\w+)', text, re.M))
    assert {'base', 'robot', 'ci'} <= targets
    for src in re.findall(r'^COPY (?!--)(\S+) ', text, re.M):
        if src != '.':
            assert (REPO / src).exists(), f'Dockerfile copies missing path {src}'


def test_compose_services_use_the_dockerfile_targets():
    compose = yaml.safe_load((REPO / 'docker/compose.yaml').read_text())
    services = compose['services']
    assert {'sim', 'robot'} <= set(services)
    assert services['robot']['build']['target'] == 'robot'
    assert 'sim.launch.py' in services['sim']['command']
    assert 'robot.launch.py' in services['robot']['command']
    assert any('/dev/snd' in d for d in services['robot']['devices'])
