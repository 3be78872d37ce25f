"""Where the shipped files lie: the one install-layout lookup (the core is handed plain paths)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

#: The package whose share directory holds config/, launch/, web/ and the shipped bundle and recording.
BRINGUP_PACKAGE = 'fuse_bringup'


def _repo_root() -> Path | None:
    """The source checkout when running from one (editable install), else None."""
    here = Path(__file__).resolve()  # <repo>/ros2_ws/src/fuse_nodes/fuse_nodes/layout.py
    if len(here.parents) > 4:
        candidate = here.parents[4]
        if (candidate / 'ros2_ws').is_dir() and (candidate / 'models').is_dir():
            return candidate
    return None


def shipped_roots() -> List[Path]:
    """Directories to look up shipped files in (models/..., recordings/..., config/...), best first.

    A source checkout keeps models/ and recordings/ at the repository root and config/ and
    launch/ in ros2_ws/src/fuse_bringup; a colcon install puts all of them in
    share/fuse_bringup, found through the ament index, else under this Python's prefix.
    Only directories that exist are listed.
    """
    roots: List[Path] = []
    repo = _repo_root()
    if repo is not None:
        roots += [repo, repo / 'ros2_ws' / 'src' / BRINGUP_PACKAGE]
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory(BRINGUP_PACKAGE)))
    except Exception:  # not installed, or no ament index: the other roots still apply
        pass
    roots.append(Path(sys.prefix) / 'share' / BRINGUP_PACKAGE)
    unique: List[Path] = []
    for root in roots:
        if root.is_dir() and root not in unique:
            unique.append(root)
    return unique


def find_shipped(relative: str) -> Path:
    """The first shipped_roots() entry holding `relative`, joined with it (FileNotFoundError if none)."""
    roots = shipped_roots()
    for root in roots:
        if (root / relative).exists():
            return root / relative
    raise FileNotFoundError(f'{relative} is in none of {[str(r) for r in roots]}')
