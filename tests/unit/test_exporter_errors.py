"""Bad checkpoints and requests give one clear ExportError and leave no partial bundle."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.exporter import ExportError, FUSE_INPUTS, export_checkpoint, msgpack_restore  # noqa: E402
from models.exporter.__main__ import main as cli_main  # noqa: E402

FIXTURE = REPO / 'tests' / 'fixtures' / 'fuse_small'
CKPT = FIXTURE / 'checkpoint'
TOKENIZER = FIXTURE / 'tokenizer.json'
PARAMS = Path('5000') / 'default' / 'checkpoint'


def _pack(tree) -> bytes:
    """Flax's msgpack layout: ndarrays as extension type 1 holding (shape, dtype name, bytes)."""

    def default(obj):
        if isinstance(obj, np.ndarray):
            payload = msgpack.packb((list(obj.shape), obj.dtype.name, obj.tobytes('C')), use_bin_type=True)
            return msgpack.ExtType(1, payload)
        raise TypeError(type(obj))

    return msgpack.packb(tree, default=default, use_bin_type=True)


def _copy_with_params(tmp_path: Path, edit) -> Path:
    dst = tmp_path / 'ckpt'
    shutil.copytree(CKPT, dst)
    tree = msgpack_restore((CKPT / PARAMS).read_bytes())
    edit(tree)
    (dst / PARAMS).write_bytes(_pack(tree))
    return dst


def _export(ckpt, out, **kw):
    kw.setdefault('tokenizer', TOKENIZER)
    kw.setdefault('t5_config', TOKENIZER.parent / 't5_config.json')
    return export_checkpoint(ckpt, out, log=lambda *_: None, **kw)


def _assert_nothing_written(out: Path):
    assert not out.exists(), 'a partial bundle was left behind'
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith('.')], 'temporary files left behind'


def test_directory_that_is_not_a_checkpoint(tmp_path):
    src = tmp_path / 'photos'
    src.mkdir()
    (src / 'cat.jpg').write_bytes(b'\xff\xd8')
    out = tmp_path / 'bundle'
    with pytest.raises(ExportError, match=r'not an Octo checkpoint directory: missing config\.json'):
        _export(src, out)
    _assert_nothing_written(out)


def test_checkpoint_without_the_requested_step(tmp_path):
    with pytest.raises(ExportError, match=r'no step 7; available steps: \[5000\]'):
        _export(CKPT, tmp_path / 'bundle', step=7)


def test_observation_keys_differ_from_requested_manifest(tmp_path):
    inputs = [dict(i) for i in FUSE_INPUTS if i['name'] != 'mel_spectro']
    inputs.append(
        {
            'name': 'image_side',
            'shape': [256, 256, 3],
            'dtype': 'uint8',
            'stream': 'camera_side',
            'preprocess': {'op': 'rgb_image', 'size': [256, 256]},
        }
    )
    out = tmp_path / 'bundle'
    with pytest.raises(ExportError) as err:
        _export(CKPT, out, inputs=inputs)
    msg = str(err.value)
    assert 'differ from the requested manifest inputs' in msg
    assert "not observed by the checkpoint: ['image_side']" in msg
    assert "not requested: ['mel_spectro']" in msg
    _assert_nothing_written(out)


def test_requested_input_shape_differs_from_training(tmp_path):
    inputs = [dict(i) for i in FUSE_INPUTS]
    inputs[1] = dict(inputs[1], shape=[256, 256, 3])
    with pytest.raises(
        ExportError, match=r"input 'image_wrist'.*uint8 \[256, 256, 3\].*uint8 \[128, 128, 3\]"
    ):
        _export(CKPT, tmp_path / 'bundle', inputs=inputs)


def test_parameter_shape_mismatch_names_the_parameter(tmp_path):
    def edit(tree):
        blk = tree['octo_transformer']['BlockTransformer_0']['Transformer_0']['encoderblock_1']['MlpBlock_0']
        blk['Dense_0']['kernel'] = np.zeros((64, 200), np.float32)

    ckpt = _copy_with_params(tmp_path, edit)
    out = tmp_path / 'bundle'
    with pytest.raises(
        ExportError,
        match=r'parameter octo_transformer/BlockTransformer_0/Transformer_0/'
        r'encoderblock_1/MlpBlock_0/Dense_0/kernel has shape \(64, 200\), '
        r'expected \(64, 256\)',
    ):
        _export(ckpt, out)
    _assert_nothing_written(out)


def test_missing_parameter_names_it(tmp_path):
    ckpt = _copy_with_params(
        tmp_path,
        lambda t: t['octo_transformer']['observation_tokenizers_wrist']['SmallStem16_0'].pop('GroupNorm_2'),
    )
    with pytest.raises(
        ExportError,
        match=r'missing parameter octo_transformer/observation_tokenizers_wrist/'
        r'SmallStem16_0/GroupNorm_2/',
    ):
        _export(ckpt, tmp_path / 'bundle')


def test_unexpected_parameter_names_it(tmp_path):
    ckpt = _copy_with_params(
        tmp_path, lambda t: t['heads_action'].update(extra_bias={'bias': np.ones(7, np.float32)})
    )
    out = tmp_path / 'bundle'
    with pytest.raises(
        ExportError,
        match=r'unexpected parameters not mapped by the exporter: '
        r'heads_action/extra_bias/bias',
    ):
        _export(ckpt, out)
    _assert_nothing_written(out)


def test_missing_tokenizer_file(tmp_path):
    out = tmp_path / 'bundle'
    with pytest.raises(ExportError, match=r'tokenizer file not found: .*nowhere/tokenizer\.json'):
        _export(CKPT, out, tokenizer=tmp_path / 'nowhere' / 'tokenizer.json')
    _assert_nothing_written(out)
    with pytest.raises(ExportError, match=r'give its tokenizer with --tokenizer'):
        _export(CKPT, out, tokenizer=None)
    _assert_nothing_written(out)


def test_unreadable_tokenizer_file(tmp_path):
    bad = tmp_path / 'tokenizer.json'
    bad.write_text('{"not": "a tokenizer"}')
    with pytest.raises(ExportError, match=r'not a readable tokenizer\.json'):
        _export(CKPT, tmp_path / 'bundle', tokenizer=bad)


def test_unsupported_action_head_is_named(tmp_path):
    dst = tmp_path / 'ckpt'
    shutil.copytree(CKPT, dst)
    cfg = json.loads((dst / 'config.json').read_text())
    cfg['model']['heads']['action']['name'] = 'DiffusionActionHead'
    (dst / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match=r'action head DiffusionActionHead is not supported'):
        _export(dst, tmp_path / 'bundle')


def test_existing_bundle_is_kept_unless_forced(tmp_path):
    out = tmp_path / 'bundle'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    with pytest.raises(ExportError, match='already exists'):
        _export(CKPT, out)
    assert (out / 'keep.txt').read_text() == 'mine'
    _export(CKPT, out, overwrite=True, generative=False)
    assert not (out / 'keep.txt').exists()
    assert (out / 'policy.onnx').is_file() and not (out / 'gen_head.onnx').exists()


def test_cli_reports_errors_and_exports(tmp_path, capsys):
    out = tmp_path / 'bundle'
    assert cli_main([str(tmp_path), '--out', str(out)]) == 2
    assert 'export failed:' in capsys.readouterr().err
    assert not out.exists()
    assert cli_main([str(CKPT), '--out', str(out), '--tokenizer', str(FIXTURE), '--step', '5000',
                     '--t5-config', str(FIXTURE / 't5_config.json')]) == 0
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['graphs']['generative'] == 'gen_head.onnx'


def test_unknown_t5_without_its_config_is_refused(tmp_path):
    out = tmp_path / 'bundle'
    with pytest.raises(ExportError, match=r"T5 encoder '.*t5-tiny' is not a published T5.*--t5-config"):
        _export(CKPT, out, t5_config=None)
    _assert_nothing_written(out)


@pytest.mark.parametrize('edit, message', [
    ({'feed_forward_proj': 'gated-silu'}, "feed_forward_proj 'gated-silu' is not supported"),
    ({'relative_attention_max_distance': 0}, 'relative_attention_max_distance 0 must be a positive integer'),
    ({'relative_attention_max_distance': 8}, 'relative_attention_max_distance 8 must exceed 8'),
    ({'relative_attention_num_buckets': 64}, 'relative_attention_num_buckets 64, the parameters have 32'),
    ({'feed_forward_proj': 'gated-gelu'}, "feed_forward_proj 'gated-gelu', the parameters are relu"),
    ({'model_type': 'bert'}, "model_type 'bert' is not t5"),
])
def test_t5_config_that_does_not_fit_is_refused(tmp_path, edit, message):
    cfg = json.loads((FIXTURE / 't5_config.json').read_text())
    cfg.update(edit)
    path = tmp_path / 't5.json'
    path.write_text(json.dumps(cfg))
    out = tmp_path / 'bundle'
    with pytest.raises(ExportError, match=re.escape(message)):
        _export(CKPT, out, t5_config=path)
    _assert_nothing_written(out)


def test_published_t5_names_need_no_config():
    from models.exporter.t5config import resolve_t5_settings

    s = resolve_t5_settings('t5-base')
    assert (s.relative_attention_max_distance, s.layer_norm_epsilon) == (128, 1e-6)
    assert 'published t5-base' in s.source
