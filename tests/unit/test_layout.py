"""fuse_nodes.layout: the one lookup of where the shipped bundle, recording and config lie."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuse_core.bag.config import default_recording_path
from fuse_core.bundle import resolve_bundle_path
from fuse_core.errors import BagError
from fuse_nodes.layout import find_shipped, shipped_roots

REPO = Path(__file__).resolve().parents[2]


def test_a_source_checkout_comes_first():
    roots = shipped_roots()
    assert roots[:2] == [REPO, REPO / 'ros2_ws/src/fuse_bringup']
    assert find_shipped('models/reference') == REPO / 'models/reference'
    assert find_shipped('config') == REPO / 'ros2_ws/src/fuse_bringup/config'
    with pytest.raises(FileNotFoundError, match='nowhere'):
        find_shipped('nowhere')


def test_the_core_gets_the_roots_as_plain_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_bundle_path('models/reference', shipped_roots()) == (REPO / 'models/reference').resolve()
    assert default_recording_path(shipped_roots()) == REPO / 'recordings/sim_synthetic'
    with pytest.raises(BagError, match='not found'):
        default_recording_path([tmp_path])
