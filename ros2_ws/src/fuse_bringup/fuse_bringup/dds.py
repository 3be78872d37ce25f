"""Fast DDS settings the project applies to its own processes.

Fast DDS defaults lose nearly every best-effort 640x480 image between processes on this
kind of machine (UDP fragments overflow the default socket buffers). The builtin
shared-memory transport with 2 MB messages and 16 MB segments moves them in ~3-4 ms
with no loss, and keeps all traffic (discovery included) on this machine; FUSE_NETWORK=1
opts into shared memory plus TCP for other hosts.

The same settings as an XML profile live in config/fastdds_profile.xml for ROS 2 installs.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

#: SHM only: nothing leaves the machine. LARGE_DATA (SHM + TCP) reaches other hosts.
DEFAULT_TRANSPORT = 'SHM?max_msg_size=2MB&sockets_size=16MB'
#: With FUSE_NETWORK=1 (a networked robot, rviz on a laptop): shared memory plus TCP.
NETWORK_TRANSPORT = 'LARGE_DATA?max_msg_size=2MB&sockets_size=16MB'
#: Used when neither the caller nor the environment picks a domain: not 0, where every
#: default ROS 2 install on the LAN talks.
DEFAULT_DOMAIN_ID = 42


def network_enabled(env: Optional[Mapping[str, str]] = None) -> bool:
    """FUSE_NETWORK=1: the user opts into DDS traffic beyond this machine."""
    env = os.environ if env is None else env
    return env.get('FUSE_NETWORK', '').strip().lower() in ('1', 'true', 'yes', 'on')


def dds_environment(base: Optional[Mapping[str, str]] = None, domain_id: Optional[int] = None,
                    transport: Optional[str] = None) -> Dict[str, str]:
    """Environment for a fuse-ros process: the project's transport unless the user set one.

    Discovery stays on this machine (shared memory only) unless FUSE_NETWORK=1. A user's
    ROS_AUTOMATIC_DISCOVERY_RANGE is kept as they set it (rmw_fastrtps then picks its own
    transports for that range, which takes precedence over FASTDDS_BUILTIN_TRANSPORTS).
    ROS_DOMAIN_ID: the argument, else the user's, else DEFAULT_DOMAIN_ID.
    FUSE_DDS_TRANSPORT=default leaves Fast DDS at its own defaults (for comparisons).
    """
    env = dict(os.environ if base is None else base)
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    fallback = NETWORK_TRANSPORT if network_enabled(env) else DEFAULT_TRANSPORT
    chosen = transport or env.get('FUSE_DDS_TRANSPORT') or fallback
    if chosen == 'default':
        env.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
    elif 'FASTRTPS_DEFAULT_PROFILES_FILE' not in env and 'FASTDDS_DEFAULT_PROFILES_FILE' not in env:
        env['FASTDDS_BUILTIN_TRANSPORTS'] = chosen
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    elif not env.get('ROS_DOMAIN_ID', '').strip():
        env['ROS_DOMAIN_ID'] = str(DEFAULT_DOMAIN_ID)
    return env


def exposure(env: Optional[Mapping[str, str]] = None) -> str:
    """One line saying who can reach this process's DDS traffic (for start-up logs)."""
    env = os.environ if env is None else env
    rng = env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '')
    transports = env.get('FASTDDS_BUILTIN_TRANSPORTS', '')
    domain = env.get('ROS_DOMAIN_ID', '0')
    if rng:
        return f'domain {domain}, discovery range {rng} (set by the user)'
    if transports.startswith('SHM'):
        return f'domain {domain}, shared memory only: this machine'
    return f'domain {domain}, transports {transports or "Fast DDS defaults"}: reachable from the network'
