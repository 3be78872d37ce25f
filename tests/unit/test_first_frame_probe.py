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


def test_pointing_is_measured_from_the_named_colour_to_the_nearest_located_point():
    from types import SimpleNamespace

    from models.twin.first_frame_probe import pointing_figures

    img = np.full((256, 256, 3), 120, np.uint8)
    img[50:56, 100:106] = (np.array(COLOURS['green'][:3]) * 255).astype(np.uint8)   # centroid (102.5, 52.5)
    img[200:210, 10:14] = (np.array(COLOURS['red'][:3]) * 255).astype(np.uint8)     # centroid (11.5, 204.5)
    data = SimpleNamespace(instructions={0: {'simple': 'pick up the green cube'},
                                         1: {'simple': 'pick up the red cube'}})
    samples = [{'episode': 0, 'image_primary': img[None]}, {'episode': 1, 'image_primary': img[None]}]
    # episode 0: one query on the green cube (5 px off), the other far; episode 1: both far from red
    points = [np.array([[105.5, 56.5], [200.0, 200.0]]), np.array([[102.5, 52.5], [11.5, 100.5]])]
    median, share = pointing_figures(samples, points, data, 'ds')
    assert median == (5.0 + 104.0) / 2 and share == 0.5
