"""models/twin/first_frame_probe.py: the colour baseline finds the named colour's pixels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fuse_sim.tasks import COLOURS  # noqa: E402
from models.twin.first_frame_probe import colour_centroid  # noqa: E402


def test_the_centroid_is_the_named_colours_patch_not_the_others():
    green, red = COLOURS['green'][:3], COLOURS['red'][:3]
    img = np.full((256, 256, 3), 120, np.uint8)                 # a grey floor
    img[50:56, 100:106] = (np.array(green) * 255).astype(np.uint8)   # rows 50-55, columns 100-105
    img[200:210, 10:14] = (np.array(red) * 255).astype(np.uint8)
    assert colour_centroid(img, green) == (102.5, 52.5)
    assert colour_centroid(img, red) == (11.5, 204.5)
    # shaded faces (darker, within the margin) count; the floor, far from both colours, does not
    img[56, 100:106] = (np.array(green) * 255 * 0.85).astype(np.uint8)
    x, y = colour_centroid(img, green)
    assert x == 102.5 and 52.5 < y < 53.5
