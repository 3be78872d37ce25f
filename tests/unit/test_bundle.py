"""Model bundle: manifest parsing, loader checks against tiny ONNX graphs, tokenizer and runner."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from fuse_core.bundle import (
    HashWordsTokenizer,
    InstructionError,
    Observation,
    ObservationError,
    PolicyRunner,
    load_bundle,
    parse_manifest,
    read_manifest,
    resolve_bundle_path,
    unnormalize,
)
from fuse_core.bundle.manifest import DELTA_EE_LAYOUT
from fuse_core.bundle.tokenizers import fnv1a_32
from fuse_core.errors import BundleError
from support.manifests import camera_and_spectrogram_manifest

W, H, A, L, LD = 2, 3, 7, 6, 4
MEAN = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.5]
STD = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5]
MASK = [True] * 6 + [False]
ONNX_TYPES = {
    'uint8': TensorProto.UINT8,
    'int16': TensorProto.INT16,
    'float32': TensorProto.FLOAT,
    'int64': TensorProto.INT64,
    'bool': TensorProto.BOOL,
}


def manifest_dict(encoder=True, language=True):
    m = camera_and_spectrogram_manifest(
        'tiny', W,
        {'horizon': H, 'dim': A, 'layout': list(DELTA_EE_LAYOUT),
         'normalization': {'mean': MEAN, 'std': STD, 'mask': MASK}, 'gripper_index': 6},
        {'op': 'rgb_image', 'size': [4, 4], 'interpolation': 'lanczos'})
    m['statistics'] = 'dataset_statistics.json'
    if encoder:
        m['graphs']['observation_encoder'] = 'observation_encoder.onnx'
    if language:
        m['graphs']['language'] = 'language.onnx'
        m['language'] = {
            'max_length': L,
            'tokenizer': {'type': 'hash_words', 'vocab_size': 64},
            'embedding_shape': [L, LD],
            'max_chars': 40,
        }
    return copy.deepcopy(m)


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, ONNX_TYPES[dtype], shape)


def const(name, array):
    return helper.make_node('Constant', [], [name], value=numpy_helper.from_array(np.asarray(array), name))


def save(path, nodes, inputs, outputs):
    graph = helper.make_graph(nodes, path.stem, [vi(*i) for i in inputs], [vi(*o) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


def encoder_graph(path, cam=('cam', 'uint8', [1, 4, 4, 3])):
    """tok[1, 2] = [mean(cam) / 255, mean(spec)]."""
    nodes = [
        helper.make_node('Cast', ['cam'], ['camf'], to=TensorProto.FLOAT),
        helper.make_node('ReduceMean', ['camf'], ['cm'], axes=[1, 2, 3], keepdims=1),
        const('s255', np.array(255.0, np.float32)),
        helper.make_node('Div', ['cm', 's255'], ['cmn']),
        helper.make_node('ReduceMean', ['spec'], ['sm'], axes=[1, 2], keepdims=1),
        const('shape12', np.array([1, 1], np.int64)),
        helper.make_node('Reshape', ['cmn', 'shape12'], ['a']),
        helper.make_node('Reshape', ['sm', 'shape12'], ['b']),
        helper.make_node('Concat', ['a', 'b'], ['tok'], axis=1),
    ]
    save(path, nodes, [cam, ('spec', 'float32', [1, 2, 2])], [('tok', 'float32', [1, 2])])


def policy_graph(path, language=True, horizon=H, extra_input=None):
    """action = (sum(tok * pad) + sum(lang)) * C, C[h, a] = (h + 1) * 0.1 + a * 0.01."""
    c = ((np.arange(horizon)[:, None] + 1) * 0.1 + np.arange(A)[None] * 0.01).astype(np.float32)[None]
    nodes = [
        helper.make_node('Cast', ['timestep_pad_mask'], ['padf'], to=TensorProto.FLOAT),
        helper.make_node('Unsqueeze', ['padf', 'ax2'], ['pad3']),
        const('ax2', np.array([2], np.int64)),
        helper.make_node('Mul', ['tok', 'pad3'], ['tokm']),
        helper.make_node('ReduceSum', ['tokm'], ['s'], keepdims=0),
        const('C', c),
    ]
    inputs = [('tok', 'float32', [1, W, 2]), ('timestep_pad_mask', 'bool', [1, W])]
    if language:
        inputs.append(('language_embedding', 'float32', [1, L, LD]))
        nodes += [
            helper.make_node('ReduceSum', ['language_embedding'], ['ls'], keepdims=0),
            helper.make_node('Add', ['s', 'ls'], ['total']),
        ]
    else:
        nodes.append(helper.make_node('Identity', ['s'], ['total']))
    nodes.append(helper.make_node('Mul', ['C', 'total'], ['action']))
    if extra_input:
        inputs.append(extra_input)
    # Order nodes topologically: the Unsqueeze above needs 'ax2' first.
    nodes.insert(0, nodes.pop(2))
    save(path, nodes, inputs, [('action', 'float32', [1, horizon, A])])


def language_graph(path, width=LD):
    """language_embedding[0, i, :] = input_ids[i] * mask[i] * 0.001."""
    nodes = [
        helper.make_node('Mul', ['input_ids', 'attention_mask'], ['m']),
        helper.make_node('Cast', ['m'], ['mf'], to=TensorProto.FLOAT),
        const('ax', np.array([2], np.int64)),
        helper.make_node('Unsqueeze', ['mf', 'ax'], ['m3']),
        const('scale', np.full((1, 1, width), 0.001, np.float32)),
        helper.make_node('Mul', ['m3', 'scale'], ['language_embedding']),
    ]
    save(
        path,
        nodes,
        [('input_ids', 'int64', [1, L]), ('attention_mask', 'int64', [1, L])],
        [('language_embedding', 'float32', [1, L, width])],
    )


def make_bundle(root: Path, encoder=True, language=True, manifest=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    m = manifest or manifest_dict(encoder, language)
    (root / 'manifest.json').write_text(json.dumps(m))
    (root / 'dataset_statistics.json').write_text(
        json.dumps(
            {
                'action': {
                    'mean': MEAN,
                    'std': STD,
                    'mask': MASK,
                    'max': [1] * A,
                    'min': [-1] * A,
                    'p99': [1] * A,
                    'p01': [-1] * A,
                },
                'num_transitions': 1,
                'num_trajectories': 1,
            }
        )
    )
    if encoder:
        encoder_graph(root / 'observation_encoder.onnx')
        policy_graph(root / 'policy.onnx', language=language)
    else:
        # Without an encoder the policy takes the raw inputs; reuse the encoder maths per step.
        nodes = [
            helper.make_node('Cast', ['cam'], ['camf'], to=TensorProto.FLOAT),
            helper.make_node('ReduceSum', ['camf'], ['cs'], keepdims=0),
            helper.make_node('ReduceSum', ['spec'], ['ss'], keepdims=0),
            helper.make_node('Add', ['cs', 'ss'], ['total']),
            const('C', np.ones((1, H, A), np.float32)),
            helper.make_node('Mul', ['C', 'total'], ['action']),
        ]
        inputs = [
            ('cam', 'uint8', [1, W, 4, 4, 3]),
            ('spec', 'float32', [1, W, 2, 2]),
            ('timestep_pad_mask', 'bool', [1, W]),
        ]
        if language:
            inputs.append(('language_embedding', 'float32', [1, L, LD]))
        save(root / 'policy.onnx', nodes, inputs, [('action', 'float32', [1, H, A])])
    if language:
        language_graph(root / 'language.onnx')
    return root


def observation(stamps=(100, 200), seed=0, pad=(True, True)):
    rng = np.random.default_rng(seed)
    tensors = {
        'cam': rng.integers(0, 256, (W, 4, 4, 3), dtype=np.uint8),
        'spec': rng.standard_normal((W, 2, 2)).astype(np.float32),
    }
    return Observation(tensors, np.array(pad), {'cam': list(stamps), 'spec': list(stamps)})


# --- manifest ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    'mutate, fragment',
    [
        (lambda m: m.pop('window_size'), "missing key 'window_size'"),
        (lambda m: m.update(format_version=2), 'format_version 2 is not supported'),
        (lambda m: m.update(window_size=0), 'window_size = 0 must be > 0'),
        (lambda m: m.update(window_size='2'), 'window_size must be int'),
        (lambda m: m['inputs'][0].update(dtype='uint9'), "inputs[0] (cam).dtype = 'uint9' is not one of"),
        (lambda m: m['inputs'][0]['preprocess'].update(op='resize'), "preprocess.op = 'resize'"),
        (lambda m: m['inputs'][0].update(shape=[4, 5, 3]), "op 'rgb_image' needs shape [4, 4, 3]"),
        (lambda m: m['inputs'][0].update(dtype='float32'), 'rgb_image delivers uint8'),
        (lambda m: m['inputs'].append(dict(m['inputs'][1])), "input name(s) ['spec'] appear more than once"),
        (lambda m: m['inputs'][1].update(name='timestep_pad_mask'), 'reserved'),
        (lambda m: m['action']['normalization'].update(mean=[0.0] * 6), 'must have 7 entries'),
        (lambda m: m['action']['normalization']['std'].__setitem__(2, 0.0), 'dims [2] are not'),
        (lambda m: m['action'].update(gripper_index=7), 'gripper_index = 7 is outside 0..6'),
        (lambda m: m['language'].update(embedding_shape=[5, 4]), 'must equal language.max_length = 6'),
        (
            lambda m: m['language']['tokenizer'].update(type='sentencepiece'),
            "tokenizer.type = 'sentencepiece'",
        ),
        (lambda m: m['graphs'].update(policy='/abs/policy.onnx'), 'must be a file name inside the bundle'),
        (lambda m: m['graphs'].update(policy='../policy.onnx'), 'must be a file name inside the bundle'),
        (lambda m: m['graphs'].update(extra='x.onnx'), "unknown key(s) ['extra'] in graphs"),
        (lambda m: m.update(colour='red'), "unknown key(s) ['colour'] in top level"),
        (lambda m: m.pop('language'), 'graphs.language and the language section must come together'),
    ],
)
def test_manifest_errors_name_the_key(mutate, fragment):
    m = manifest_dict()
    mutate(m)
    with pytest.raises(BundleError) as err:
        parse_manifest(m)
    assert fragment in str(err.value)


def test_manifest_parses_contract_example():
    m = parse_manifest(manifest_dict())
    assert m.input_names == ('cam', 'spec')
    assert m.input('cam').preprocess.size == (4, 4)
    assert m.language.embedding_shape == (L, LD)
    assert m.action.normalization.mask == tuple(MASK)
    assert set(m.files()) == {
        'policy.onnx',
        'observation_encoder.onnx',
        'language.onnx',
        'dataset_statistics.json',
    }


def test_manifest_not_json(tmp_path):
    (tmp_path / 'manifest.json').write_text('{"format_version": 1,')
    with pytest.raises(BundleError, match='not valid JSON'):
        read_manifest(tmp_path)


# --- loader -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    'missing', ['policy.onnx', 'observation_encoder.onnx', 'language.onnx', 'dataset_statistics.json']
)
def test_missing_file_is_named(tmp_path, missing):
    root = make_bundle(tmp_path / 'b')
    (root / missing).unlink()
    with pytest.raises(BundleError, match=f'file missing: {missing}'):
        load_bundle(root)


def test_missing_manifest(tmp_path):
    with pytest.raises(BundleError, match='manifest.json'):
        load_bundle(tmp_path)


def test_tiny_bundle_loads(tmp_path):
    b = load_bundle(make_bundle(tmp_path / 'b'), providers='cpu')
    assert b.has_encoder and b.providers == ['CPUExecutionProvider']
    assert set(b.encoder_outputs) == {'tok'}


def test_encoder_input_wrong_dtype_names_input_expected_actual(tmp_path):
    root = make_bundle(tmp_path / 'b')
    encoder_graph(root / 'observation_encoder.onnx', cam=('cam', 'float32', [1, 4, 4, 3]))
    with pytest.raises(BundleError) as err:
        load_bundle(root)
    msg = str(err.value)
    assert (
        "input 'cam'" in msg and 'expected uint8 [1, 4, 4, 3]' in msg and 'actual float32 [1, 4, 4, 3]' in msg
    )


def test_encoder_input_wrong_shape(tmp_path):
    root = make_bundle(tmp_path / 'b')
    encoder_graph(root / 'observation_encoder.onnx', cam=('cam', 'uint8', [1, 8, 8, 3]))
    with pytest.raises(
        BundleError, match=r"input 'cam' expected uint8 \[1, 4, 4, 3\], actual uint8 \[1, 8, 8, 3\]"
    ):
        load_bundle(root)


def test_symbolic_dims_only_on_batch_axis(tmp_path):
    root = make_bundle(tmp_path / 'b')
    encoder_graph(root / 'observation_encoder.onnx', cam=('cam', 'uint8', ['batch', 4, 4, 3]))
    load_bundle(root)  # batch axis may be symbolic
    encoder_graph(root / 'observation_encoder.onnx', cam=('cam', 'uint8', [1, 'h', 4, 3]))
    with pytest.raises(BundleError, match=r'expected uint8 \[1, 4, 4, 3\], actual uint8 \[1, h, 4, 3\]'):
        load_bundle(root)


@pytest.mark.parametrize('write_graph, message', [
    (lambda root: policy_graph(root / 'policy.onnx', extra_input=('proprio', 'float32', [1, W, 7])),
     r"unexpected input\(s\) \['proprio'\]"),
    (lambda root: policy_graph(root / 'policy.onnx', language=False),
     r"input 'language_embedding' expected float32 \[1, 6, 4\], actual: not in the graph"),
    (lambda root: policy_graph(root / 'policy.onnx', horizon=H + 1),
     r"output 'action' expected float32 \[1, 3, 7\], actual float32 \[1, 4, 7\]"),
    (lambda root: language_graph(root / 'language.onnx', width=LD + 1),
     r"'language_embedding' expected float32 \[1, 6, 4\], actual float32 \[1, 6, 5\]"),
], ids=['unexpected_policy_input', 'missing_policy_input', 'wrong_action_shape', 'wrong_language_embedding_shape'])
def test_a_graph_off_the_manifest_is_refused_naming_the_tensor(tmp_path, write_graph, message):
    root = make_bundle(tmp_path / 'b')
    write_graph(root)
    with pytest.raises(BundleError, match=message):
        load_bundle(root)


def test_raw_inputs_without_encoder(tmp_path):
    root = make_bundle(tmp_path / 'b', encoder=False)
    runner = PolicyRunner(load_bundle(root))
    runner.set_instruction('go')
    obs = observation()
    res = runner.infer(obs)
    expected = obs.tensors['cam'].astype(np.float64).sum() + obs.tensors['spec'].sum()
    np.testing.assert_allclose(res.normalized, np.full((H, A), expected), rtol=1e-5)


def test_statistics_must_agree_with_manifest(tmp_path):
    root = make_bundle(tmp_path / 'b')
    stats = json.loads((root / 'dataset_statistics.json').read_text())
    stats['action']['std'][1] = 9.0
    (root / 'dataset_statistics.json').write_text(json.dumps(stats))
    with pytest.raises(BundleError, match='action dim 1 mean/std'):
        load_bundle(root)


def test_cuda_refused_when_absent(tmp_path):
    import onnxruntime

    if 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
        pytest.skip('CUDA is available here')
    with pytest.raises(BundleError, match='providers=cuda'):
        load_bundle(make_bundle(tmp_path / 'b'), providers='cuda')


def test_resolve_bundle_path(tmp_path, monkeypatch):
    assert resolve_bundle_path('').name == 'reference'
    assert (resolve_bundle_path('models/reference') / 'manifest.json').is_file()
    root = make_bundle(tmp_path / 'b')
    assert resolve_bundle_path(str(root)) == root
    monkeypatch.chdir(tmp_path)
    assert resolve_bundle_path('b') == root.resolve()
    with pytest.raises(BundleError, match='no manifest.json'):
        resolve_bundle_path('nowhere/at/all')
    with pytest.raises(BundleError, match='URL schemes'):
        resolve_bundle_path('package://fuse_bringup/models')


# --- tokenizer and instructions ---------------------------------------------------------------
def test_hash_words_tokenizer():
    tok = HashWordsTokenizer(vocab_size=64, max_length=6, max_chars=40)
    ids, mask = tok('Pick up the CUP!')
    assert ids.dtype == np.int64 and ids.shape == (1, 6) and mask.shape == (1, 6)
    words = ['pick', 'up', 'the', 'cup']
    assert ids[0, :4].tolist() == [2 + fnv1a_32(w.encode()) % 62 for w in words]
    assert ids[0, 4] == 1 and ids[0, 5] == 0  # eos, then padding
    assert mask[0].tolist() == [1, 1, 1, 1, 1, 0]
    assert tok('pick up the cup')[0].tolist() == ids.tolist()  # case and punctuation do not matter
    assert fnv1a_32(b'') == 0x811C9DC5 and fnv1a_32(b'a') == 0xE40C292C  # published FNV-1a vectors


@pytest.mark.parametrize(
    'text, fragment',
    [
        ('', 'empty'),
        ('   ', 'empty'),
        ('?!', 'no tokens'),
        ('one two three four five six', "is 7 tokens long, more than the model's max_length 6"),
        ('a' * 41, '41 characters'),
    ],
)
def test_bad_instruction(tmp_path, text, fragment):
    runner = PolicyRunner(load_bundle(make_bundle(tmp_path / 'b')))
    with pytest.raises(InstructionError, match=fragment):
        runner.encode_instruction(text)
    with pytest.raises(InstructionError):
        runner.set_instruction(text)
    assert runner.instruction is None


def test_instruction_is_encoded_once(tmp_path):
    runner = PolicyRunner(load_bundle(make_bundle(tmp_path / 'b')))
    a = runner.encode_instruction('pick up the cup')
    b = runner.encode_instruction('pick up the cup')
    assert runner.stats.language_runs == 1 and a is b
    runner.encode_instruction('push the cup')
    assert runner.stats.language_runs == 2


def test_hf_tokenizer(tmp_path):
    tokenizers = pytest.importorskip('tokenizers')
    from tokenizers import models, pre_tokenizers, processors

    vocab = {'<pad>': 0, '</s>': 1, '<unk>': 2, 'pick': 3, 'up': 4, 'the': 5, 'cup': 6}
    tk = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token='<unk>'))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single='$A </s>', special_tokens=[('</s>', 1)])
    m = manifest_dict()
    m['language']['tokenizer'] = {'type': 'hf_tokenizers', 'file': 'tokenizer.json', 'pad_id': 0}
    root = make_bundle(tmp_path / 'b', manifest=m)
    with pytest.raises(BundleError, match='file missing: tokenizer.json'):
        load_bundle(root)
    tk.save(str(root / 'tokenizer.json'))
    bundle = load_bundle(root)
    ids, mask = bundle.tokenizer('pick up the cup')
    assert ids[0].tolist() == [3, 4, 5, 6, 1, 0] and mask[0].tolist() == [1, 1, 1, 1, 1, 0]
    with pytest.raises(InstructionError, match='7 tokens long'):
        bundle.tokenizer('pick up the cup the cup')


# --- runner -----------------------------------------------------------------------------------
def test_unnormalize_masked_dims_only():
    a = np.array([[1.0, -1.0, 0.0, 2.0, 0.5, -0.5, 0.7]])
    out = unnormalize(a, MEAN, STD, MASK)
    np.testing.assert_allclose(out[0, :6], a[0, :6] * np.array(STD[:6]) + np.array(MEAN[:6]), rtol=1e-6)
    assert out[0, 6] == pytest.approx(0.7)  # gripper passes unchanged
    assert out.dtype == np.float32


def test_infer_matches_graph_maths_and_unnormalises(tmp_path):
    runner = PolicyRunner(load_bundle(make_bundle(tmp_path / 'b')))
    runner.set_instruction('pick up the cup')
    obs = observation()
    res = runner.infer(obs)
    cam = obs.tensors['cam'].astype(np.float64).mean(axis=(1, 2, 3)) / 255
    spec = obs.tensors['spec'].astype(np.float64).mean(axis=(1, 2))
    total = cam.sum() + spec.sum() + runner.encode_instruction('pick up the cup').sum()
    c = (np.arange(H)[:, None] + 1) * 0.1 + np.arange(A)[None] * 0.01
    np.testing.assert_allclose(res.normalized, total * c, rtol=1e-5)
    np.testing.assert_allclose(res.actions, unnormalize(total * c, MEAN, STD, MASK), rtol=1e-5)
    assert set(res.timing_ms) == {'encode', 'policy', 'total'}


def test_no_instruction_is_an_error(tmp_path):
    runner = PolicyRunner(load_bundle(make_bundle(tmp_path / 'b')))
    with pytest.raises(InstructionError, match='no instruction set'):
        runner.infer(observation())


@pytest.fixture
def runner(tmp_path):
    """A PolicyRunner of a fresh make_bundle() bundle, instructed 'go'."""
    runner = PolicyRunner(load_bundle(make_bundle(tmp_path / 'b')))
    runner.set_instruction('go')
    return runner


def test_encoder_runs_once_per_new_sample(runner):
    first = observation(stamps=(100, 200), seed=1)
    r1 = runner.infer(first)
    assert (r1.encoder_runs, r1.encoder_reused) == (2, 0)
    # The next tick: the old newest step becomes the older step (same stamps, same data).
    second = observation(stamps=(200, 300), seed=2)
    second.tensors['cam'][0] = first.tensors['cam'][1]
    second.tensors['spec'][0] = first.tensors['spec'][1]
    r2 = runner.infer(second)
    assert (r2.encoder_runs, r2.encoder_reused) == (1, 1)
    assert runner.stats.encoder_runs == 3
    fresh = runner.infer(second, reuse_encodings=False)
    np.testing.assert_allclose(r2.normalized, fresh.normalized, rtol=1e-6)


def test_encoder_not_reused_when_data_changes_under_the_same_stamp(runner):
    obs = observation(stamps=(100, 200), seed=5)
    runner.infer(obs)
    changed = copy.deepcopy(obs)
    changed.tensors['cam'][0] = 255 - changed.tensors['cam'][0]
    r = runner.infer(changed)
    assert (r.encoder_runs, r.encoder_reused) == (1, 1)
    fresh = runner.infer(changed, reuse_encodings=False)
    np.testing.assert_allclose(r.normalized, fresh.normalized, rtol=1e-6)


def test_with_sample_ids_the_encoder_is_reused_by_id_without_reading_the_data(runner):
    obs = observation(stamps=(100, 200), seed=5)
    obs.sample_ids = {'cam': [7, 8], 'spec': [9, 10]}
    runner.infer(obs)
    same_ids = copy.deepcopy(obs)
    same_ids.tensors['cam'][0] = 255 - same_ids.tensors['cam'][0]   # an id names the data: not re-read
    assert (runner.infer(same_ids).encoder_runs, runner.stats.encoder_reused) == (0, 2)
    new_id = copy.deepcopy(obs)
    new_id.sample_ids['cam'][1] = 11                                   # same stamp, other data
    r = runner.infer(new_id)
    assert (r.encoder_runs, r.encoder_reused) == (1, 1)
    new_id.sample_ids['cam'][0] = 0                                    # no id: never cached
    assert runner.infer(new_id).encoder_runs == 1
    with pytest.raises(ObservationError, match=r"sample_ids\['spec'\]: expected 2 entries, actual 1"):
        runner.infer(Observation(obs.tensors, obs.timestep_pad_mask, obs.sample_stamps,
                                 {'cam': [1, 2], 'spec': [3]}))


def test_encoder_not_reused_for_missing_stamps_or_padding(runner):
    r = runner.infer(observation(stamps=(0, 200)))
    assert r.encoder_runs == 2
    r = runner.infer(observation(stamps=(0, 200)))
    assert (r.encoder_runs, r.encoder_reused) == (1, 1)  # the zero-stamp step is encoded again
    r = runner.infer(observation(stamps=(150, 300), pad=(False, True)))
    assert (r.encoder_runs, r.encoder_reused) == (1, 0)  # padded steps are not encoded at all


def test_padded_step_is_masked(runner):
    a = observation(pad=(False, True), seed=3)
    b = copy.deepcopy(a)
    b.tensors['cam'][0] = 255 - b.tensors['cam'][0]
    np.testing.assert_allclose(runner.infer(a).normalized, runner.infer(b).normalized)


@pytest.mark.parametrize(
    'mutate, fragment',
    [
        (lambda o: o.tensors.pop('spec'), r"lacks input\(s\) \['spec'\]"),
        (lambda o: o.tensors.update(extra=np.zeros(2)), r"unexpected input\(s\) \['extra'\]"),
        (
            lambda o: o.tensors.update(cam=o.tensors['cam'].astype(np.float32) / 255),
            r"input 'cam': expected uint8 \[2, 4, 4, 3\], actual float32 \[2, 4, 4, 3\]",
        ),
        (lambda o: o.tensors.update(cam=o.tensors['cam'][:1]), r'actual uint8 \[1, 4, 4, 3\]'),
        (lambda o: setattr(o, 'timestep_pad_mask', np.ones(3, bool)), 'timestep_pad_mask'),
    ],
)
def test_observation_mismatch_names_the_input(runner, mutate, fragment):
    obs = observation()
    mutate(obs)
    with pytest.raises(ObservationError, match=fragment):
        runner.infer(obs)


def test_describe_without_generative_head(tmp_path):
    runner = PolicyRunner(load_bundle(make_bundle(tmp_path / 'b')))
    with pytest.raises(BundleError, match='bundle has no generative head'):
        runner.describe(observation(), ['tactile'])
