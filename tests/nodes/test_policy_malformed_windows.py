"""The policy node survives malformed observation windows: each one is a counted mismatch with an
explicit hold, never a dead node or a motion command (the issue's cases, then a fuzzed batch)."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.bundle import read_manifest, resolve_bundle_path
from support.ros_harness import wait_for
from test_policy_node import INSTRUCTION, PolicyClient, make_window, random_arrays

pytestmark = pytest.mark.integration


def test_malformed_windows_become_holds_and_the_node_keeps_going(launch_node, rclpy_context):
    from fuse_interfaces.msg import ObservationTensor, ObservationWindow

    manifest = read_manifest(resolve_bundle_path(''))
    proc = launch_node('fuse_nodes.policy_node', 'policy', params={
        'instruction': INSTRUCTION, 'max_window_age_s': 2.0, 'tick_deadline_s': 3.0,
        'intra_op_threads': 1, 'providers': 'cpu'})
    client = PolicyClient(rclpy_context, 'policy_fuzz_test')
    spin, pub, commands = client.spin, client.pub, client.commands
    assert wait_for(lambda: pub.get_subscription_count() > 0, 20.0, spin), proc.log()
    arrays = random_arrays(manifest, 1)
    mel = next(s.name for s in manifest.inputs if s.dtype == 'float32')

    def window(tick, stamp_ns=None):
        return make_window(manifest, tick, client.now_ns() if stamp_ns is None else stamp_ns, arrays,
                           ObservationWindow, ObservationTensor)

    # Each case is built when it is published: 45 round trips on a busy machine can take longer
    # than max_window_age_s, and a window built early would be refused as late instead.
    def zero_byte_shape():
        w = window(1)
        w.tensors[0].shape = [65536] * 4      # np.prod wraps to 0 bytes
        w.tensors[0].data = []
        return w

    def with_mel(tick, value):
        changed = dict(arrays)
        changed[mel] = np.full_like(arrays[mel], value)
        return make_window(manifest, tick, client.now_ns(), changed, ObservationWindow, ObservationTensor)

    def big_endian():
        w = window(4)
        w.tensors[-1].dtype = '>f4'
        return w

    cases = {
        1: (zero_byte_shape, 'over'),
        2: (lambda: with_mel(2, 3e38), 'beyond'),
        3: (lambda: window(3, client.now_ns() + 3600 * 10**9), 'future'),
        4: (big_endian, 'big-endian'),
        45: (lambda: with_mel(45, 500.0), 'value_range'),   # finite, but no log-mel spectrogram in dB
    }
    rng = np.random.default_rng(5)

    def fuzzed(tick):                         # random shapes, dtypes and byte counts
        w = window(tick)
        t = w.tensors[int(rng.integers(len(w.tensors)))]
        t.shape = [int(v) for v in rng.choice([0, 1, 3, 128, 2**31], size=int(rng.integers(0, 6)))]
        t.dtype = str(rng.choice(['uint8', 'float32', 'int16', 'object', 'float64', 'U3']))
        t.data = rng.integers(0, 256, int(rng.choice([0, 5, 1000]))).astype(np.uint8).tolist()
        return w

    for tick in range(5, 45):
        cases[tick] = (lambda tick=tick: fuzzed(tick), '')
    for tick, (build, _) in sorted(cases.items()):
        pub.publish(build())
        assert wait_for(lambda: tick in commands, 10.0, spin), f'no answer to window {tick}:\n{proc.log()}'
    for tick, (_, needle) in cases.items():
        cmd = commands[tick]
        assert cmd.hold, f'window {tick} produced a motion command'
        assert needle in cmd.reason, (tick, cmd.reason)
        assert len(cmd.reason) < 600
    # Still alive and commanding for a good window.
    pub.publish(window(100))
    assert wait_for(lambda: 100 in commands, 10.0, spin), proc.log()
    assert not commands[100].hold, commands[100].reason
    assert proc.alive()
    assert proc.stop() == 0, proc.log()
