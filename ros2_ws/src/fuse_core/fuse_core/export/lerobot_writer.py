"""LeRobotDataset writer (run in the datasets venv: lerobot/torch only, never with TensorFlow).

    python -m fuse_core.export.lerobot_writer STAGED_DIR OUT_DIR [--repo-id local/fuse_episodes]

Written with lerobot's own LeRobotDataset.create / add_frame / save_episode / finalize (v3 layout),
fps 5, one task per instruction, images stored as images (no video encoding needed), the microphone
waveform as observation.mic.

The statistics of observation.mic and observation.mel_spectro are pooled over all their elements
(each element gets the same figures, in the shapes lerobot expects): quantiles per waveform
sample position mean nothing, and lerobot's per-element histograms of 13,230 + 3,840 elements
took about 7 s an episode, most of the export's time.
"""

from __future__ import annotations

import sys
from pathlib import Path

FPS = 5
IMAGE_KEYS = ('image_0', 'image_1', 'digit_0', 'digit_1', 'digit_0_background', 'digit_1_background')
POOLED_KEYS = ('observation.mic', 'observation.mel_spectro')


def pooled_episode_stats(compute_episode_stats, get_feature_stats):
    """lerobot's compute_episode_stats, with the POOLED_KEYS' statistics over all elements."""
    import numpy as np

    def compute(episode_data, features, quantile_list=None):
        stats = compute_episode_stats({k: v for k, v in episode_data.items() if k not in POOLED_KEYS},
                                      features, quantile_list)
        for key in POOLED_KEYS:
            if key not in episode_data:
                continue
            arr = np.asarray(episode_data[key], dtype=np.float32)
            pooled = get_feature_stats(arr.reshape(-1, 1), axis=0, keepdims=False, quantile_list=quantile_list)
            stats[key] = {name: np.array([arr.shape[0]]) if name == 'count'
                          else np.full(arr.shape[1:], float(np.asarray(v).reshape(-1)[0]), dtype=np.float64)
                          for name, v in pooled.items()}
        return stats
    return compute


def build(staged: Path, out: Path, repo_id: str) -> Path:
    import lerobot.datasets.lerobot_dataset as lerobot_dataset
    from lerobot.datasets.compute_stats import get_feature_stats
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    # save_episode looks compute_episode_stats up in its module: pool the audio keys' statistics
    lerobot_dataset.compute_episode_stats = pooled_episode_stats(lerobot_dataset.compute_episode_stats,
                                                                 get_feature_stats)
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
