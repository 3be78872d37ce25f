"""Observation-tensor decoding under fuzzed input: every malformed tensor is a ConversionError."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.sync import TensorWindow
from fuse_interfaces.msg import ObservationTensor
from fuse_nodes.conversions import MAX_TENSOR_BYTES, ConversionError, msg_to_tensor, tensor_to_msg

DTYPES = ['uint8', 'int16', 'float32', 'float64', '>f4', '<f4', '>i2', 'object', 'U8', 'complex64', 'f', 'V4',
          'datetime64', '', 'float32 ', 'bool', 'int64']


def test_wrapping_byte_counts_are_refused_not_reshaped():
    """The issue's case: [65536] x 4 with empty data made np.prod wrap to 0."""
    t = ObservationTensor(name='mel_spectro', dtype='float32', shape=[65536] * 4, data=[])
    with pytest.raises(ConversionError, match='over'):
        msg_to_tensor(t)


def test_big_endian_dtype_names_its_byte_order():
    t = ObservationTensor(name='mel_spectro', dtype='>f4', shape=[1], data_steps=[0], data=[0, 0, 0, 0])
    with pytest.raises(ConversionError, match='big-endian.*expected float32 \\(little-endian\\)'):
        msg_to_tensor(t)


def test_round_trip_carries_only_the_steps_given():
    a = np.arange(36, dtype=np.int16).reshape(3, 3, 4)
    t = TensorWindow('x', np.dtype(np.int16), (3, 4), [a[0], None, a[2]], [True, True, True], [5, 6, 7],
                     [11, 12, 13])
    msg = tensor_to_msg(t)
    assert list(msg.shape) == [3, 3, 4] and list(msg.data_steps) == [0, 2] and len(msg.data) == 2 * 24
    back = msg_to_tensor(msg)
    assert back.steps[1] is None and back.sample_stamps_ns == [5, 6, 7] and back.sample_ids == [11, 12, 13]
    np.testing.assert_array_equal(back.steps[0], a[0])
    np.testing.assert_array_equal(back.steps[2], a[2])
    assert not back.steps[2].flags.writeable


@pytest.mark.parametrize('steps, fragment', [([1, 0], 'not ascending'), ([0, 0], 'not ascending'),
                                             ([2], 'not ascending'), ([0, 1], 'expected 48')])
def test_data_steps_out_of_order_or_range_or_short_data_are_refused(steps, fragment):
    t = ObservationTensor(name='x', dtype='int16', shape=[2, 3, 4], data_steps=steps, data=[0] * 24)
    with pytest.raises(ConversionError, match=fragment):
        msg_to_tensor(t)


def test_ten_thousand_fuzzed_tensors_decode_or_raise_conversion_error():
    rng = np.random.default_rng(9)
    decoded = refused = 0
    for _ in range(10_000):
        ndim = int(rng.integers(0, 10))
        shape = [int(v) for v in rng.choice([0, 1, 2, 3, 7, 128, 65536, 2**31, 2**32 - 1], size=ndim)]
        dtype = str(rng.choice(DTYPES))
        n = int(rng.choice([0, 1, 4, 24, 96, 1000]))
        carried = sorted({int(v) for v in rng.choice([0, 1, 2, 7], size=int(rng.integers(0, 3)))})
        t = ObservationTensor(name='t' * int(rng.integers(0, 300)), dtype=dtype, shape=shape,
                              data_steps=carried, data=rng.integers(0, 256, n).astype(np.uint8).tolist())
        try:
            tensor = msg_to_tensor(t)
        except ConversionError as exc:
            refused += 1
            assert len(str(exc)) < 400
        else:
            decoded += 1
            assert len(tensor.steps) == shape[0]
            assert sum(s.nbytes for s in tensor.steps if s is not None) == n <= MAX_TENSOR_BYTES
    assert decoded > 50 and refused > 5000


def test_manifest_value_range_round_trips_and_is_validated():
    import copy

    from fuse_core.bundle import read_manifest, resolve_bundle_path
    from fuse_core.bundle.manifest import manifest_to_dict, parse_manifest
    from fuse_core.errors import BundleError
    m = read_manifest(resolve_bundle_path(''))
    mel = next(s for s in m.inputs if s.name == 'mel_spectro')
    assert mel.value_range == (-300.0, 200.0)
    raw = manifest_to_dict(m)
    assert parse_manifest(copy.deepcopy(raw)) == m
    for bad in ([1.0], [5.0, 1.0], [0.0, float('inf')], 'x'):
        broken = copy.deepcopy(raw)
        next(i for i in broken['inputs'] if i['name'] == 'mel_spectro')['value_range'] = bad
        with pytest.raises(BundleError, match='value_range'):
            parse_manifest(broken)
