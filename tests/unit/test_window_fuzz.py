"""Observation-tensor decoding under fuzzed input: every malformed tensor is a ConversionError."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_interfaces.msg import ObservationTensor
from fuse_nodes.conversions import MAX_TENSOR_BYTES, ConversionError, array_to_tensor, tensor_to_array

DTYPES = ['uint8', 'int16', 'float32', 'float64', '>f4', '<f4', '>i2', 'object', 'U8', 'complex64', 'f', 'V4',
          'datetime64', '', 'float32 ', 'bool', 'int64']


def test_wrapping_byte_counts_are_refused_not_reshaped():
    """The issue's case: [65536] x 4 with empty data made np.prod wrap to 0."""
    t = ObservationTensor(name='mel_spectro', dtype='float32', shape=[65536] * 4, data=[])
    with pytest.raises(ConversionError, match='over'):
        tensor_to_array(t)


def test_big_endian_dtype_names_its_byte_order():
    t = ObservationTensor(name='mel_spectro', dtype='>f4', shape=[1], data=[0, 0, 0, 0])
    with pytest.raises(ConversionError, match='big-endian.*expected float32 \\(little-endian\\)'):
        tensor_to_array(t)


def test_round_trip_still_works():
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    np.testing.assert_array_equal(tensor_to_array(array_to_tensor(ObservationTensor(), 'x', a, [1, 1], [])), a)


def test_ten_thousand_fuzzed_tensors_decode_or_raise_conversion_error():
    rng = np.random.default_rng(9)
    decoded = refused = 0
    for _ in range(10_000):
        ndim = int(rng.integers(0, 10))
        shape = [int(v) for v in rng.choice([0, 1, 2, 3, 7, 128, 65536, 2**31, 2**32 - 1], size=ndim)]
        dtype = str(rng.choice(DTYPES))
        n = int(rng.choice([0, 1, 4, 24, 96, 1000]))
        t = ObservationTensor(name='t' * int(rng.integers(0, 300)), dtype=dtype, shape=shape,
                              data=rng.integers(0, 256, n).astype(np.uint8).tolist())
        try:
            arr = tensor_to_array(t)
        except ConversionError as exc:
            refused += 1
            assert len(str(exc)) < 400
        else:
            decoded += 1
            assert arr.nbytes == n <= MAX_TENSOR_BYTES
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
