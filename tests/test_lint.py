"""Lint as a test: pyflakes and pycodestyle rules (ruff) over the project's Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PATHS = ['ros2_ws', 'launch', 'tests', 'benchmarks', 'models', 'recordings']


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).parent / 'ruff'
    res = subprocess.run([str(ruff), 'check', *PATHS, '--select', 'E,F,W', '--line-length', '120',
                          '--output-format', 'concise', '--no-cache'],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
