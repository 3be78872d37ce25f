"""A view of a pick_soft dataset whose tactile texts say what the expert felt (an experiment).

    python models/twin/felt_instructions.py EPISODES_DIR DATASET_DIR OUT_DIR

The twin describes the target, which in pick_soft is always the soft cube, so every episode has
the same tactile text and FuSe's tactile loss terms have nothing to tell apart. The expert grasps
cube_0 first: when the soft one is cube_1 it first squeezed the hard cube and put it down. This
writes OUT_DIR with the dataset's data/ linked, its meta/ copied, and the tactile and
visual,tactile texts of those episodes saying so (episode_index = export order = sorted bags).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

FELT_HARD = 'put down the cube that feels hard then pick up the cube that feels soft'


def main(argv) -> int:
    episodes, dataset, out = (Path(a) for a in argv)
    bags = sorted(d for d in episodes.iterdir() if (d / 'episode.json').is_file())
    out.mkdir(parents=True, exist_ok=False)
    (out / 'data').symlink_to((dataset / 'data').resolve())
    shutil.copytree(dataset / 'meta', out / 'meta')
    path = out / 'meta' / 'fuse_instructions.json'
    table = json.loads(path.read_text())
    changed = 0
    for index, bag in enumerate(bags):
        meta = json.loads((bag / 'episode.json').read_text())
        if meta.get('task') != 'pick_soft' or meta.get('note') != 'soft cube_1 lifted':
            continue
        texts = table['episodes'][str(index)]
        texts['tactile'] = FELT_HARD
        texts['visual,tactile'] = texts['visual'].replace(
            'pick up the ', 'put down the cube that feels hard then pick up the ') + ' that feels soft'
        changed += 1
    path.write_text(json.dumps(table, indent=2, sort_keys=True))
    print(f'{out}: {changed} of {len(bags)} episodes felt the hard cube first')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
