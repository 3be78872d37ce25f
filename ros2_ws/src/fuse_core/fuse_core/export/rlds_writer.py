"""RLDS writer (run in the datasets venv: TensorFlow Datasets only, never with torch).

    python -m fuse_core.export.rlds_writer STAGED_DIR OUT_DIR [--name fuse_episodes]

Writes a TFDS dataset OUT_DIR/<name>/1.0.0 that tfds.builder_from_directory opens, in the layout
Octo/FuSe finetuning reads: steps with observation/{image_0, image_1, digit_0, digit_1,
digit_0_background, digit_1_background, mel_spectro, mic, state}, action, language_instruction,
is_first/is_last/is_terminal, reward, discount, and FuSe's modality-specific instructions
all_lang_0..all_lang_8 (builder metadata all_lang_info names their combinations, '|'-separated;
'' = not valid for the episode); episode_metadata with has_mic, episode_id, modality_instructions
(JSON), ...
"""

from __future__ import annotations

import sys
from pathlib import Path


def build(staged: Path, out: Path, name: str) -> Path:
    import json

    import numpy as np
    import tensorflow_datasets as tfds

    from fuse_core.export.instructions import ALL_LANG_INFO, ALL_LANG_KEYS, rlds_language_fields
    from fuse_core.export.steps import read_staged, staged_files
    files = staged_files(staged, 'rlds')
    _, obs0, _ = read_staged(files[0])

    def image(key):
        shape = obs0[key].shape[1:]
        return tfds.features.Image(shape=shape, dtype=np.uint8, encoding_format='png')

    observation = {k: image(k) for k in ('image_0', 'image_1', 'digit_0', 'digit_1',
                                         'digit_0_background', 'digit_1_background')}
    observation['mel_spectro'] = tfds.features.Tensor(shape=obs0['mel_spectro'].shape[1:], dtype=np.float32)
    observation['mic'] = tfds.features.Tensor(shape=obs0['mic'].shape[1:], dtype=np.float32,
                                              doc='microphone, mono -1..1: the samples up to the step '
                                                  '(44.1 kHz; zeros before the first, and when has_mic is false)')
    observation['state'] = tfds.features.Tensor(shape=(7,), dtype=np.float32,
                                                doc='x, y, z, roll, pitch, yaw, gripper (1 open)')
    features = tfds.features.FeaturesDict({
        'steps': tfds.features.Dataset({
            'observation': tfds.features.FeaturesDict(observation),
            'action': tfds.features.Tensor(shape=(7,), dtype=np.float32,
                                           doc='applied delta: dx dy dz droll dpitch dyaw, gripper'),
            'language_instruction': tfds.features.Text(),
            **{k: tfds.features.Text() for k in ALL_LANG_KEYS},
            'reward': tfds.features.Scalar(dtype=np.float32),
            'discount': tfds.features.Scalar(dtype=np.float32),
            'is_first': tfds.features.Scalar(dtype=np.bool_),
            'is_last': tfds.features.Scalar(dtype=np.bool_),
            'is_terminal': tfds.features.Scalar(dtype=np.bool_),
        }),
        'episode_metadata': tfds.features.FeaturesDict({
            'episode_id': tfds.features.Text(), 'file_path': tfds.features.Text(),
            'task': tfds.features.Text(), 'outcome': tfds.features.Text(),
            'action_source': tfds.features.Text(), 'has_mic': tfds.features.Scalar(dtype=np.bool_),
            'seed': tfds.features.Scalar(dtype=np.int64),
            'modality_instructions': tfds.features.Text(doc='JSON: FuSe combination -> instruction'),
        }),
    })

    def examples():
        for f in files:
            meta, obs, action = read_staged(f)
            n = action.shape[0]
            language = rlds_language_fields(meta)
            steps = []
            for i in range(n):
                steps.append({
                    'observation': {k: obs[k][i] for k in observation},
                    'action': action[i], 'language_instruction': meta['instruction'], **language,
                    'reward': np.float32(1.0 if (i == n - 1 and meta['outcome'] == 'success') else 0.0),
                    'discount': np.float32(1.0), 'is_first': i == 0, 'is_last': i == n - 1,
                    'is_terminal': i == n - 1 and meta['outcome'] == 'success',
                })
            yield meta['episode_id'], {'steps': steps, 'episode_metadata': {
                'episode_id': meta['episode_id'], 'file_path': str(f.name), 'task': meta['task'] or '',
                'outcome': meta['outcome'], 'action_source': meta['action_source'] or '',
                'has_mic': bool(meta['has_mic']), 'seed': int(meta['seed'] if meta['seed'] is not None else -1),
                'modality_instructions': json.dumps(meta.get('modalities') or {}, sort_keys=True)}}

    dataset_name = name

    class FuseEpisodes(tfds.core.GeneratorBasedBuilder):
        name = dataset_name
        VERSION = tfds.core.Version('1.0.0')
        RELEASE_NOTES = {'1.0.0': 'fuse-ros episode export'}

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=features,
                                         description='fuse-ros demonstrations (FuSe layout)',
                                         metadata=tfds.core.MetadataDict(all_lang_info=ALL_LANG_INFO))

        def _split_generators(self, dl_manager):
            return {'train': self._generate_examples()}

        def _generate_examples(self):
            yield from examples()

    builder = FuseEpisodes(data_dir=str(out))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
    return Path(builder.data_dir)


def main(argv=None) -> int:
    # Through the module (not __main__), so TFDS sees the builder in a real package.
    from fuse_core.export import check, rlds_writer
    return check.writer_main(argv, __doc__, '--name', 'fuse_episodes', rlds_writer.build, check.rlds)


if __name__ == '__main__':
    sys.exit(main())
