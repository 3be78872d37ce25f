"""The viewer node's start-up: a port already in use is named and the node exits non-zero."""

from __future__ import annotations

import socket


def test_port_in_use_exits_2_naming_the_port(launch_node):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen(1)
        port = s.getsockname()[1]
        node = launch_node('fuse_nodes.viewer_node', 'viewer', params={'port': port})
        assert node.proc.wait(30) == 2
    log = node.log()
    assert f'127.0.0.1:{port}' in log and 'in use' in log, log
