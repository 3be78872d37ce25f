"""SROS2 for the robot graph: an access-control policy with one enclave per node, and the keystore.

On a ROS 2 install (sros2 and a Fast DDS built with its security plugins, as the ROS debs
are) this writes the policy and runs `ros2 security create_keystore` and
`ros2 security generate_artifacts`, which sign one enclave per node whose permissions allow
exactly the topics it publishes and subscribes and the services it serves and calls. With
ROS_SECURITY_ENABLE=true and ROS_SECURITY_STRATEGY=Enforce a process without a valid
enclave cannot join, and only the policy's enclave may publish on /policy/command: the arm's
single-commander rule then holds cryptographically, not only by node name.

    python -m fuse_bringup.security --keystore ~/fuse_keystore          # policy + keystore + enclaves
    python -m fuse_bringup.security --policy-only --out policy.xml      # only the policy XML

The pip-wheel Fast DDS used on machines without a ROS install has no security plugins, so
none of this can be exercised there; the tests check the policy statically.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

#: Enclave root of the project's nodes: /fuse/<node name>.
ENCLAVE_ROOT = '/fuse'

#: What every rclpy node does: log, parameter events, its own parameter services, diagnostics.
_PARAMETER_SERVICES = ('describe_parameters', 'get_parameter_types', 'get_parameters', 'list_parameters',
                       'set_parameters', 'set_parameters_atomically', 'get_type_description')


@dataclass(frozen=True)
class Permissions:
    """Topics (absolute names) a node publishes and subscribes, services it serves and calls."""

    publish: Tuple[str, ...] = ()
    subscribe: Tuple[str, ...] = ()
    reply: Tuple[str, ...] = ()
    request: Tuple[str, ...] = ()
    notes: str = ''


@dataclass
class Policy:
    enclaves: Dict[str, Permissions] = field(default_factory=dict)


def _common(node: str) -> Permissions:
    return Permissions(publish=('/rosout', '/parameter_events', '/diagnostics'),
                       subscribe=('/parameter_events',),
                       reply=tuple(f'/{node}/{s}' for s in _PARAMETER_SERVICES))


def _merge(a: Permissions, b: Permissions) -> Permissions:
    return Permissions(*(tuple(dict.fromkeys(getattr(a, f) + getattr(b, f)))
                         for f in ('publish', 'subscribe', 'reply', 'request')), notes=b.notes)


def _sensor_topics() -> List[str]:
    return ['/camera_primary/image_raw', '/camera_wrist/image_raw', '/digit_left/image_raw',
            '/digit_right/image_raw', '/digit_left/background', '/digit_right/background',
            '/audio/mel_spectrogram', '/audio/chunk', '/imu/data', '/imu/mag']


def node_permissions(robot_model: str = 'wx250s', record: bool = False) -> Dict[str, Permissions]:
    """Per node of the robot graph (fuse_bringup.graph.robot_graph), what it may do on DDS."""
    ns = f'/{robot_model}'
    perms: Dict[str, Permissions] = {
        'camera_primary': Permissions(publish=('/camera_primary/image_raw', '/camera_primary/camera_info')),
        'camera_wrist': Permissions(publish=('/camera_wrist/image_raw', '/camera_wrist/camera_info')),
        'digit_left': Permissions(publish=('/digit_left/image_raw', '/digit_left/background'),
                                  reply=('/digit_left/capture_background',)),
        'digit_right': Permissions(publish=('/digit_right/image_raw', '/digit_right/background'),
                                   reply=('/digit_right/capture_background',)),
        'audio': Permissions(publish=('/audio/chunk', '/audio/mel_spectrogram')),
        'imu': Permissions(publish=('/imu/data', '/imu/mag')),
        'sync': Permissions(publish=('/sync/window',), subscribe=tuple(_sensor_topics()),
                            reply=('/sync/reset',)),
        'policy': Permissions(publish=('/policy/command', '/policy/action_chunk'),
                              subscribe=('/sync/window', '/policy/instruction'),
                              reply=('/policy/set_instruction', '/policy/describe'),
                              notes='the only enclave allowed to publish /policy/command'),
        # The arm node and its in-process Interbotix API node share the process, so one enclave.
        'arm': Permissions(publish=('/arm/joint_states', '/arm/ee_pose', '/arm/status', '/arm/applied_command',
                                    f'{ns}/commands/joint_group', f'{ns}/commands/joint_single',
                                    f'{ns}/commands/joint_trajectory'),
                           subscribe=('/policy/command', f'{ns}/joint_states'),
                           reply=('/arm/estop', '/arm/reset_estop', '/arm/move_to_start', '/arm/move_to_pose'),
                           request=tuple(f'{ns}/{s}' for s in ('get_robot_info', 'set_operating_modes',
                                                               'set_motor_pid_gains', 'set_motor_registers',
                                                               'get_motor_registers', 'torque_enable',
                                                               'reboot_motors'))),
        # The sensor mounts and (in simulation) the arm links on /tf; the URDF.
        'robot_state': Permissions(publish=('/tf', '/tf_static', '/robot_description'),
                                   subscribe=('/arm/joint_states',)),
        # The Interbotix driver's launch (xs_sdk and its robot_state_publisher) runs with this
        # enclave: robot.launch.py gives its processes the override.
        'xs_sdk': Permissions(publish=(f'{ns}/joint_states', '/tf', '/tf_static', f'{ns}/robot_description'),
                              subscribe=(f'{ns}/commands/joint_group', f'{ns}/commands/joint_single',
                                         f'{ns}/commands/joint_trajectory', f'{ns}/joint_states'),
                              reply=tuple(f'{ns}/{s}' for s in ('get_robot_info', 'set_operating_modes',
                                                                'set_motor_pid_gains', 'set_motor_registers',
                                                                'get_motor_registers', 'torque_enable',
                                                                'reboot_motors'))),
        # The Foxglove viewer (view:=true): reads what the layout shows, publishes nothing on DDS.
        'viewer': Permissions(subscribe=tuple(_sensor_topics()) + (
            '/camera_primary/camera_info', '/camera_wrist/camera_info', '/tf', '/tf_static',
            '/policy/command', '/policy/action_chunk', '/arm/status', '/episodes/state', '/world/task_state'),
            notes='view:=true; its WebSocket server is outside DDS (localhost unless host is changed)'),
        # Operator tools (ros2 CLI, rviz): read everything, and the e-stop; nothing that moves the arm.
        'operator': Permissions(subscribe=tuple(_sensor_topics()) + (
            '/sync/window', '/policy/command', '/policy/action_chunk', '/arm/joint_states', '/arm/ee_pose',
            '/arm/status', '/diagnostics', '/rosout', f'{ns}/joint_states', '/tf', '/tf_static',
            '/robot_description', f'{ns}/robot_description', '/camera_primary/camera_info',
            '/camera_wrist/camera_info'),
            request=('/arm/estop', '/policy/describe'),
            notes='ros2 CLI / rviz with --enclave /fuse/operator: watch, and call the e-stop'),
    }
    if record:
        perms['recorder'] = Permissions(subscribe=tuple(_sensor_topics()) + (
            '/policy/command', '/policy/action_chunk', '/arm/joint_states', '/arm/status'))
    return {name: _merge(_common(name), p) for name, p in perms.items()}


def policy_xml(perms: Dict[str, Permissions]) -> str:
    """SROS2 access-control policy (format 0.2.0): one enclave per node, deny by default."""
    root = ET.Element('policy', version='0.2.0')
    enclaves = ET.SubElement(root, 'enclaves')
    for name, p in perms.items():
        enclave = ET.SubElement(enclaves, 'enclave', path=f'{ENCLAVE_ROOT}/{name}')
        profiles = ET.SubElement(enclave, 'profiles')
        profile = ET.SubElement(profiles, 'profile', ns='/', node=name if name != 'operator' else '*')
        for kind, attr, names in (('topics', 'publish', p.publish), ('topics', 'subscribe', p.subscribe),
                                  ('services', 'reply', p.reply), ('services', 'request', p.request)):
            if not names:
                continue
            group = ET.SubElement(profile, kind, **{attr: 'ALLOW'})
            for n in names:
                ET.SubElement(group, kind[:-1]).text = n
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding='unicode') + '\n'


def commands(keystore: Path, policy_path: Path) -> List[List[str]]:
    return [['ros2', 'security', 'create_keystore', str(keystore)],
            ['ros2', 'security', 'generate_artifacts', '-k', str(keystore), '-p', str(policy_path)]]


def environment(keystore: Path) -> Dict[str, str]:
    """What each process needs (plus `--ros-args --enclave /fuse/<node>`)."""
    return {'ROS_SECURITY_KEYSTORE': str(keystore), 'ROS_SECURITY_ENABLE': 'true',
            'ROS_SECURITY_STRATEGY': 'Enforce'}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--keystore', type=Path, help='keystore directory to create (with one enclave per node)')
    ap.add_argument('--out', type=Path, help='where to write the policy XML (default: <keystore>/fuse_policy.xml)')
    ap.add_argument('--policy-only', action='store_true', help='write the policy XML and stop')
    ap.add_argument('--robot-model', default='wx250s')
    ap.add_argument('--record', action='store_true', help='include the recorder enclave')
    args = ap.parse_args(argv)
    if args.out is None and args.keystore is None:
        ap.error('give --keystore DIR or --out FILE')
    out = args.out or args.keystore / 'fuse_policy.xml'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(policy_xml(node_permissions(args.robot_model, args.record)))
    print(f'policy written to {out}')
    if args.policy_only:
        return 0
    if args.keystore is None:
        ap.error('--keystore is needed unless --policy-only')
    if shutil.which('ros2') is None:
        print('the ros2 CLI (with sros2) is not installed here; on a ROS 2 install run:', file=sys.stderr)
        for cmd in commands(args.keystore, out):
            print('  ' + ' '.join(cmd), file=sys.stderr)
        return 2
    for cmd in commands(args.keystore, out):
        print('$ ' + ' '.join(cmd))
        subprocess.run(cmd, check=True)
    env = ' '.join(f'{k}={v}' for k, v in environment(args.keystore).items())
    print(f'done. Run each node with {env} and --ros-args --enclave {ENCLAVE_ROOT}/<node>; '
          'robot.launch.py does this when launched with keystore:=DIR')
    return 0


if __name__ == '__main__':
    sys.exit(main())
