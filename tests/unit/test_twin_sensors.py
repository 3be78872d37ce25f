"""Twin sensors rendered off-screen (EGL), checked in a child process: cameras, DIGIT touch, resets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('mujoco')

HELPER = Path(__file__).resolve().parents[1] / 'support' / 'twin_render_check.py'


@pytest.fixture(scope='module')
def rendered():
    res = subprocess.run([sys.executable, str(HELPER)], capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_seeded_resets_give_the_same_first_images(rendered):
    assert rendered['same_seed_same_image']
    assert rendered['other_seed_other_image']


def test_cameras_render_bgr_at_the_configured_size(rendered):
    assert rendered['primary_shape'] == [240, 320, 3]
    assert rendered['wrist_shape'] == [240, 320, 3]
    assert rendered['primary_not_blank'] > 10.0
    assert rendered['intrinsics_fx'] > 100.0


def test_digit_equals_background_when_free_and_differs_when_squeezing(rendered):
    assert rendered['digit_shape'] == [240, 320, 3]       # DIGIT QVGA, landscape
    assert rendered['digit_free_equals_background']
    for side, fraction in rendered['digit_squeezed_changed_fraction'].items():
        assert fraction > 0.05, (side, fraction)


def test_missing_egl_names_the_debian_packages(monkeypatch):
    import ctypes.util

    from fuse_core.errors import DeviceError
    from fuse_sim import sensors
    monkeypatch.setenv('MUJOCO_GL', 'egl')
    monkeypatch.setattr(ctypes.util, 'find_library', lambda name: None)
    with pytest.raises(DeviceError, match='libegl1 libegl-mesa0 libgl1-mesa-dri'):
        sensors.check_egl()
