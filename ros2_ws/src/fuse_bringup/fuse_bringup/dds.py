"""Fast DDS settings the project applies to its own processes.

Fast DDS defaults lose nearly every best-effort 640x480 image between processes on this
kind of machine (UDP fragments overflow the default socket buffers). The builtin
shared-memory transport with 2 MB messages and 16 MB segments moves them in ~3-4 ms
with no loss, and keeps all traffic (discovery included) on this machine.

The same settings as an XML profile live in config/fastdds_profile.xml for ROS 2 installs.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

#: SHM only: nothing leaves the machine. LARGE_DATA (SHM + TCP) reaches other hosts.
DEFAULT_TRANSPORT = 'SHM?max_msg_size=2MB&sockets_size=16MB'


def dds_environment(base: Optional[Mapping[str, str]] = None, domain_id: Optional[int] = None,
                    transport: Optional[str] = None) -> Dict[str, str]:
    """Environment for a fuse-ros process: the project's transport unless the user set one.

    FUSE_DDS_TRANSPORT=default leaves Fast DDS at its own defaults (for comparisons).
    """
    env = dict(os.environ if base is None else base)
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    chosen = transport or env.get('FUSE_DDS_TRANSPORT') or DEFAULT_TRANSPORT
    if chosen == 'default':
        env.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
    elif 'FASTRTPS_DEFAULT_PROFILES_FILE' not in env and 'FASTDDS_DEFAULT_PROFILES_FILE' not in env:
        env['FASTDDS_BUILTIN_TRANSPORTS'] = chosen
    # ROS_AUTOMATIC_DISCOVERY_RANGE makes rmw_fastrtps pick its own transports and would
    # override the setting above.
    env.pop('ROS_AUTOMATIC_DISCOVERY_RANGE', None)
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    return env
