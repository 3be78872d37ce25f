"""DDS exposure at run time: a process with the project's default settings is invisible to a
participant that only has UDP, as a process on another host would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fuse_bringup.dds import dds_environment
from support.ros_harness import fresh_domain_id

pytestmark = pytest.mark.integration


def test_a_network_only_participant_cannot_see_the_default_graph(tmp_path):
    """A process with the default settings publishes; one that only has UDP (as another host
    would) on the same domain discovers nothing, while a default-settings process does."""
    domain = fresh_domain_id()
    talker = textwrap.dedent('''
        import time, rclpy
        from std_msgs.msg import String
        rclpy.init(); n = rclpy.create_node('exposed_talker')
        p = n.create_publisher(String, '/exposure_probe', 10)
        end = time.monotonic() + 8
        while time.monotonic() < end:
            p.publish(String(data='x')); time.sleep(0.05)
        ''')
    listener = textwrap.dedent('''
        import time, rclpy
        rclpy.init(); n = rclpy.create_node('exposure_listener')
        end = time.monotonic() + 4
        seen = False
        while time.monotonic() < end and not seen:
            seen = any(t == '/exposure_probe' for t, _ in n.get_topic_names_and_types())
            time.sleep(0.1)
        print('seen' if seen else 'unseen')
        ''')
    env = dds_environment({k: v for k, v in os.environ.items()
                           if not k.startswith(('FASTDDS_', 'ROS_AUTOMATIC'))}, domain_id=domain)
    proc = subprocess.Popen([sys.executable, '-c', talker], env=env)
    try:
        udp_env = dict(env, FASTDDS_BUILTIN_TRANSPORTS='UDPv4')
        remote = subprocess.run([sys.executable, '-c', listener], env=udp_env, capture_output=True, text=True,
                                timeout=60)
        local = subprocess.run([sys.executable, '-c', listener], env=env, capture_output=True, text=True,
                               timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert local.stdout.strip() == 'seen', local.stdout + local.stderr
    assert remote.stdout.strip() == 'unseen', remote.stdout + remote.stderr
