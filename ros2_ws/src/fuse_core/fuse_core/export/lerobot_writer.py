"""LeRobotDataset writer (run in the datasets venv: lerobot/torch only, never with TensorFlow).

    python -m fuse_core.export.lerobot_writer STAGED_DIR OUT_DIR [--repo-id local/fuse_episodes]

Written with lerobot's own LeRobotDataset.create / add_frame / save_episode / finalize (v3 layout),
fps 5, one task per instruction, images stored as images (no video encoding needed), the microphone
waveform as observation.mic.
"""

from __future__ import annotations

import sys
from pathlib import Path

FPS = 5
IMAGE_KEYS = ('image_0', 'image_1', 'digit_0', 'digit_1', 'digit_0_background', 'digit_1_background')


def build(staged: Path, out: Path, repo_id: str) -> Path:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from fuse_core.export.steps import read_staged, staged_files
    files = staged_files(staged, 'lerobot')
    _, obs0, _ = read_staged(files[0])
    features = {f'observation.images.{k}': {'dtype': 'image', 'shape': tuple(obs0[k].shape[1:]),
                                            'names': ['height', 'width', 'channels']} for k in IMAGE_KEYS}
    features['observation.mel_spectro'] = {'dtype': 'float32', 'shape': tuple(obs0['mel_spectro'].shape[1:]),
                                           'names': ['mel', 'frame']}
    features['observation.mic'] = {'dtype': 'float32', 'shape': tuple(obs0['mic'].shape[1:]), 'names': ['sample']}
    features['observation.state'] = {'dtype': 'float32', 'shape': (7,),
                                     'names': ['x', 'y', 'z', 'roll', 'pitch', 'yaw', 'gripper']}
    features['action'] = {'dtype': 'float32', 'shape': (7,),
                          'names': ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper']}
    ds = LeRobotDataset.create(repo_id, fps=FPS, features=features, root=out, robot_type='wx250s',
                               use_videos=False)
    for f in files:
        meta, obs, action = read_staged(f)
        for i in range(action.shape[0]):
            frame = {f'observation.images.{k}': obs[k][i] for k in IMAGE_KEYS}
            frame['observation.mel_spectro'] = obs['mel_spectro'][i]
            frame['observation.mic'] = obs['mic'][i]
            frame['observation.state'] = obs['state'][i]
            frame['action'] = action[i]
            frame['task'] = meta['instruction']
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return out


def main(argv=None) -> int:
    from fuse_core.export import check
    return check.writer_main(argv, __doc__, '--repo-id', 'local/fuse_episodes', build, check.lerobot)


if __name__ == '__main__':
    sys.exit(main())
