"""DDS exposure: this machine only by default, the user's discovery range kept, a non-zero domain,
the SROS2 policy (one enclave per node, only the policy may command the arm)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from fuse_bringup import graph
from fuse_bringup.dds import DEFAULT_DOMAIN_ID, NETWORK_TRANSPORT, dds_environment, exposure
from fuse_bringup.security import ENCLAVE_ROOT, main as security_main, node_permissions, policy_xml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'ros2_ws/src/fuse_bringup/config'


def test_default_is_shared_memory_only_on_a_non_zero_domain():
    env = dds_environment({})
    assert env['FASTDDS_BUILTIN_TRANSPORTS'].startswith('SHM')
    assert env['ROS_DOMAIN_ID'] == str(DEFAULT_DOMAIN_ID) != '0'
    assert 'this machine' in exposure(env)
    assert dds_environment({'ROS_DOMAIN_ID': '7'})['ROS_DOMAIN_ID'] == '7'
    assert dds_environment({'ROS_DOMAIN_ID': '7'}, domain_id=9)['ROS_DOMAIN_ID'] == '9'


def test_network_is_an_explicit_opt_in():
    env = dds_environment({'FUSE_NETWORK': '1'})
    assert env['FASTDDS_BUILTIN_TRANSPORTS'] == NETWORK_TRANSPORT
    assert 'network' in exposure(env)


def test_the_users_discovery_range_is_kept():
    env = dds_environment({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 'LOCALHOST' in exposure(env)


def test_xml_profiles_keep_udp_on_loopback_unless_networked():
    local = ET.parse(CONFIG / 'fastdds_profile.xml').getroot()
    ns = {'d': 'http://www.eprosima.com'}
    udp = [t for t in local.iterfind('.//d:transport_descriptor', ns) if t.find('d:type', ns).text == 'UDPv4']
    assert udp and all([a.text for a in t.iterfind('d:interfaceWhiteList/d:address', ns)] == ['127.0.0.1']
                       for t in udp)
    net = ET.parse(CONFIG / 'fastdds_profile_network.xml').getroot()
    assert net.find('.//d:interfaceWhiteList', ns) is None


def test_docker_defaults_are_local_and_not_domain_zero():
    compose = yaml.safe_load((REPO / 'docker/compose.yaml').read_text())
    env = compose['services']['robot']['environment']
    assert 'ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42}' in env and 'FUSE_NETWORK=${FUSE_NETWORK:-0}' in env
    assert any(v.endswith(':/keystore:ro') for v in compose['services']['robot']['volumes'])
    entry = (REPO / 'docker/entrypoint.sh').read_text()
    for needle in ('ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST', 'ROS_SECURITY_STRATEGY=Enforce',
                   'fastdds_profile_network.xml', 'ROS_DOMAIN_ID:-42'):
        assert needle in entry


def test_sros2_policy_has_one_enclave_per_robot_node_and_one_commander():
    perms = node_permissions(record=True)
    for spec in graph.robot_graph(record=True, view=True):
        assert spec.name in perms, f'no enclave for {spec.name}'
    root = ET.fromstring(policy_xml(perms))
    enclaves = {e.get('path'): e for e in root.iter('enclave')}
    assert f'{ENCLAVE_ROOT}/arm' in enclaves and f'{ENCLAVE_ROOT}/xs_sdk' in enclaves
    publishers = [path for path, e in enclaves.items()
                  for group in e.iter('topics') if group.get('publish') == 'ALLOW'
                  for t in group if t.text == '/policy/command']
    assert publishers == [f'{ENCLAVE_ROOT}/policy']
    # Nobody but the arm serves, and nobody is allowed to call, the services that move the arm.
    for path, e in enclaves.items():
        for group in e.iter('services'):
            names = {s.text for s in group}
            if group.get('request') == 'ALLOW':
                assert not names & {'/arm/reset_estop', '/arm/move_to_start', '/arm/move_to_pose'}, path
            if group.get('reply') == 'ALLOW' and path != f'{ENCLAVE_ROOT}/arm':
                assert not any(n.startswith('/arm/') for n in names), path


def test_security_script_writes_the_policy(tmp_path):
    out = tmp_path / 'policy.xml'
    assert security_main(['--policy-only', '--out', str(out)]) == 0
    assert ET.parse(out).getroot().get('version') == '0.2.0'
