"""Checks a launch runs before starting anything, so a bad argument fails fast with the reason."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional


class PreflightError(RuntimeError):
    """One or more launch arguments point at something that is not there."""


def bundle_problems(bundle_path: str) -> List[str]:
    """A bundle directory must exist and hold a manifest.json naming graph files that exist."""
    import json
    path = Path(bundle_path)
    if not path.is_dir():
        return [f'model bundle {bundle_path!r} is not a directory']
    manifest = path / 'manifest.json'
    if not manifest.is_file():
        return [f'model bundle {bundle_path!r} has no manifest.json']
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        return [f'model bundle manifest {manifest} is not valid JSON: {exc}']
    problems = []
    graphs = data.get('graphs') or {}
    if 'policy' not in graphs:
        problems.append(f'model bundle manifest {manifest} names no policy graph')
    for role, name in graphs.items():
        if isinstance(name, str) and not (path / name).is_file():
            problems.append(f'model bundle {bundle_path!r}: {role} graph file {name!r} is missing')
    return problems


def device_problems(devices: Dict[str, Optional[str]]) -> List[str]:
    """Each named device path (e.g. /dev/video0, /dev/ttyUSB0) must exist; empty = not used.

    Numeric camera indices and DIGIT serial numbers are not paths and are checked by the
    nodes themselves (which retry and report until the device appears).
    """
    problems = []
    for what, dev in devices.items():
        if dev and dev.startswith('/') and not os.path.exists(dev):
            problems.append(f'{what}: device {dev!r} does not exist')
    return problems


def check_robot_arguments(bundle_path: str, devices: Dict[str, Optional[str]]) -> None:
    problems = bundle_problems(bundle_path) + device_problems(devices)
    if problems:
        raise PreflightError('robot.launch.py refuses to start:\n  - ' + '\n  - '.join(problems))
