"""Rendering checks of the twin, run in their own process (a mujoco.Renderer in a long pytest
process that has run many other tests has aborted before). Prints one JSON object."""

from __future__ import annotations

import json
import sys

import numpy as np


def main() -> int:
    from fuse_sim.config import WorldConfig
    from fuse_sim.sensors import DigitSimulator, SceneRenderer, primary_and_wrist
    from fuse_sim.world import World

    out = {}
    w = World(WorldConfig(task='pick_cube', seed=5))
    cams = SceneRenderer(w.model, primary_and_wrist(320, 240))
    digits = {s: DigitSimulator(w.model, f'digit_{s}', seed=i) for i, s in enumerate(('left', 'right'))}
    first = {}
    for seed in (5, 6, 5):
        w.reset(seed=seed)
        first.setdefault(seed, []).append(cams.render(w.data, 'primary'))
    out['same_seed_same_image'] = bool(np.array_equal(first[5][0], first[5][1]))
    out['other_seed_other_image'] = bool(not np.array_equal(first[5][0], first[6][0]))
    out['primary_shape'] = list(first[5][0].shape)
    out['wrist_shape'] = list(cams.render(w.data, 'wrist').shape)
    out['primary_not_blank'] = float(first[5][0].std())
    w.reset(seed=5)
    w.advance(0.3)
    out['digit_free_equals_background'] = all(bool(np.array_equal(d.render(w.data), d.background))
                                              for d in digits.values())
    out['digit_shape'] = list(digits['left'].render(w.data).shape)
    w.squeeze(w.task.target)
    changed = {}
    for side, d in digits.items():
        img = d.render(w.data).astype(int)
        changed[side] = float((np.abs(img - d.background).sum(axis=-1) > 30).mean())
    out['digit_squeezed_changed_fraction'] = changed
    out['intrinsics_fx'] = float(cams.intrinsics('primary')[0, 0])
    cams.close()
    for d in digits.values():
        d.close()
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
