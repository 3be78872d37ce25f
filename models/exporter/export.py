"""Export an Octo/FuSe checkpoint to the project's ONNX model bundle."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from fuse_core.bundle.manifest import FUSE_OBSERVATION_INPUTS

from . import graphs
from . import precision as P
from .checkpoint import Checkpoint, load_checkpoint
from .errors import ExportError
from .params import ParamStore
from .spec import MODALITY_COMBINATIONS, ModelSpec, parse_model
from .t5config import resolve_t5_settings

ACTION_LAYOUT = ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper']

# The FuSe observation set and the sensor streams and preprocessing that feed it (docs/CONTRACTS.md).
FUSE_INPUTS = FUSE_OBSERVATION_INPUTS


def _action_statistics(stats: dict, dataset: str | None) -> dict:
    if 'action' in stats and dataset is None:
        return stats
    names = sorted(k for k, v in stats.items() if isinstance(v, dict) and 'action' in v)
    if dataset is not None:
        if dataset not in names:
            raise ExportError(f'dataset_statistics.json has no dataset {dataset!r}; it has {names}')
        return stats[dataset]
    if len(names) == 1:
        return stats[names[0]]
    raise ExportError(f'dataset_statistics.json holds several datasets {names}: choose one with --dataset')


def _normalization(stats: dict, dim: int) -> dict:
    a = stats.get('action')
    if not isinstance(a, dict) or 'mean' not in a or 'std' not in a:
        raise ExportError('dataset_statistics.json: action.mean and action.std are required')
    mean = [float(x) for x in np.ravel(a['mean'])]
    std = [float(x) for x in np.ravel(a['std'])]
    mask = [bool(x) for x in np.ravel(a.get('mask', [True] * dim))]
    for key, v in (('mean', mean), ('std', std), ('mask', mask)):
        if len(v) != dim:
            raise ExportError(
                f'dataset_statistics.json: action.{key} has {len(v)} values, the action head {dim}'
            )
    return {'mean': mean, 'std': std, 'mask': mask}


def check_inputs(spec: ModelSpec, inputs: list[dict]) -> None:
    """The requested manifest inputs must be exactly the checkpoint's observations, same shape and dtype."""
    wanted = {i['name']: i for i in inputs}
    used = {k for grp in spec.groups for k in grp.obs_keys}
    if set(wanted) != used:
        missing = sorted(set(wanted) - used)
        extra = sorted(used - set(wanted))
        parts = []
        if missing:
            parts.append(f'requested but not observed by the checkpoint: {missing}')
        if extra:
            parts.append(f'observed by the checkpoint but not requested: {extra}')
        raise ExportError(
            'checkpoint observation keys differ from the requested manifest inputs; ' + '; '.join(parts)
        )
    for name, entry in wanted.items():
        shape, dtype = spec.observation_shapes[name]
        if list(shape) != list(entry['shape']) or dtype != entry['dtype']:
            raise ExportError(
                f'input {name!r}: the manifest asks for {entry["dtype"]} {list(entry["shape"])}, '
                f'the checkpoint was trained on {dtype} {list(shape)}'
            )


def _tokenizer_file(path: str | Path | None) -> Path:
    if path is None:
        raise ExportError(
            'the model has a language encoder: give its tokenizer with --tokenizer '
            '(tokenizer.json, or a directory holding it)'
        )
    p = Path(path)
    if p.is_dir():
        p = p / 'tokenizer.json'
    if not p.is_file():
        raise ExportError(f'tokenizer file not found: {p}')
    return p


def _prepare_tokenizer(src: Path, max_length: int):
    """Load tokenizer.json with the `tokenizers` package, padded and truncated to the model's length."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ExportError('the `tokenizers` package is needed to check the tokenizer') from exc
    try:
        tok = Tokenizer.from_file(str(src))
    except Exception as exc:  # the library raises its own untyped exceptions
        raise ExportError(f'{src}: not a readable tokenizer.json: {exc}') from exc
    pad_id = tok.token_to_id('<pad>')
    if pad_id is None:
        raise ExportError(f'{src}: the tokenizer has no <pad> token (a T5 tokenizer is expected)')
    tok.enable_padding(length=max_length, pad_id=pad_id, pad_token='<pad>')
    tok.enable_truncation(max_length=max_length)
    return tok, pad_id


def _run(model, feeds: dict) -> list:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=['CPUExecutionProvider'])
    return sess.run(None, feeds)


def export_checkpoint(
    checkpoint: str | Path | Checkpoint,
    out_dir: str | Path,
    *,
    step: int | None = None,
    tokenizer: str | Path | None = None,
    inputs: list[dict] | None = None,
    name: str = 'fuse',
    control_rate_hz: float = 5.0,
    dataset: str | None = None,
    generative: bool = True,
    overwrite: bool = False,
    t5_config: str | Path | None = None,
    precision: str = 'float32',
    parity_bound: float | None = None,
    keep_over_bound: bool = False,
    parity_threads: int = 2,
    log=print,
) -> dict:
    """Write the bundle to out_dir (atomically: nothing is left behind on failure); returns the manifest.

    precision int8 / float16 converts the per-tick graphs (observation encoder, policy) after a
    parity check against the float32 export; over the bound (default precision.DEFAULT_BOUNDS)
    nothing is written unless keep_over_bound.
    """
    if precision not in P.PRECISIONS:
        raise ExportError(f'precision {precision!r} is not one of {list(P.PRECISIONS)}')
    if parity_bound is not None and not (parity_bound > 0):
        raise ExportError(f'parity bound must be > 0, got {parity_bound}')
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ExportError(f'{out_dir} already exists (pass overwrite=True / --force to replace it)')
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, step)
    spec = parse_model(ckpt.config, ckpt.example_batch)
    inputs = [dict(i) for i in (inputs if inputs is not None else FUSE_INPUTS)]
    check_inputs(spec, inputs)
    order = [i['name'] for i in inputs]
    stats = _action_statistics(ckpt.dataset_statistics, dataset)
    norm = _normalization(stats, spec.action_dim)
    tok_src = _tokenizer_file(tokenizer) if spec.language else None
    t5 = resolve_t5_settings(spec.language_encoder, t5_config) if spec.language else None
    if t5 is not None:
        log(f'T5 relative_attention_max_distance {t5.relative_attention_max_distance}, layer_norm_epsilon '
            f'{t5.layer_norm_epsilon:g} from {t5.source}')

    store = ParamStore(ckpt.params)
    for head in spec.skipped_heads:
        n = store.skip_prefix(f'heads_{head}')
        log(f'not exported: training-only head {head!r} ({n} parameters)')
    if spec.gen_head is None and store.has_prefix('heads_gen'):
        raise ExportError('parameters heads_gen/* exist but the config has no supported generative head')
    if not generative and spec.gen_head is not None:
        store.skip_prefix('heads_gen')

    encoder = graphs.observation_encoder(spec, store)
    models = {'observation_encoder.onnx': encoder.model('FuSe observation encoders, one timestep')}
    lang_dim = 0
    empty_embedding = None
    if spec.language:
        if not spec.language_length:
            spec.language_length = store.shape('octo_transformer', 'task_language_pos_embedding')[1]
        lang_graph, lang_dim = graphs.language_encoder(spec, store, t5)
        models['language.onnx'] = lang_graph.model('T5 instruction encoder')
        tok, pad_id = _prepare_tokenizer(tok_src, spec.language_length)
    policy, info = graphs.policy(spec, store, lang_dim)
    models['policy.onnx'] = policy.model('Octo transformer + action head, action readout only')
    modality_index = {}
    if generative and spec.gen_head is not None:
        if spec.language:
            enc = tok.encode('')
            empty_embedding = _run(
                models['language.onnx'],
                {
                    'input_ids': np.array([enc.ids], np.int64),
                    'attention_mask': np.array([enc.attention_mask], np.int64),
                },
            )[0]
        gen = graphs.generative_head(spec, store, lang_dim, empty_embedding)
        modality_index = {c: i for i, c in enumerate(MODALITY_COMBINATIONS) if c}
        model = gen.model('FuSe generative head: instruction token ids from one modality combination')
        from onnx import helper

        helper.set_model_props(
            model,
            {
                'modality_index': json.dumps(modality_index),
                'instruction': '',
                'decode': 'token_ids with the bundle tokenizer.json, special tokens skipped',
            },
        )
        models['gen_head.onnx'] = model
    store.check_all_mapped()
    parity = None
    if precision != 'float32':
        language = None
        if spec.language:
            enc = tok.encode('pick up the object')
            language = _run(models['language.onnx'], {
                'input_ids': np.array([enc.ids], np.int64),
                'attention_mask': np.array([enc.attention_mask], np.int64),
            })[0]
        converted = {f: P.convert(models[f], precision) for f in P.PER_TICK}
        bound = parity_bound if parity_bound is not None else P.DEFAULT_BOUNDS[precision]
        parity = P.parity_report(models, converted, inputs, spec.window_size, language,
                                 std=norm['std'], threads=parity_threads)
        parity.update({'precision': precision, 'bound': bound, 'graphs': list(P.PER_TICK)})
        log(P.format_report(precision, parity, bound))
        P.check_bound(precision, parity, bound, keep_over_bound, log)
        models.update(converted)

    manifest = {
        'format_version': 1,
        'name': name,
        'control_rate_hz': float(control_rate_hz),
        'window_size': spec.window_size,
        'graphs': {'policy': 'policy.onnx', 'observation_encoder': 'observation_encoder.onnx'},
        'inputs': sorted(inputs, key=lambda i: order.index(i['name'])),
        'action': {
            'horizon': spec.action_horizon,
            'dim': spec.action_dim,
            'layout': ACTION_LAYOUT if spec.action_dim == 7 else [f'a{i}' for i in range(spec.action_dim)],
            'normalization': norm,
            'gripper_index': 6 if spec.action_dim == 7 else None,
        },
        'statistics': 'dataset_statistics.json',
        'description': (
            f'Exported from {ckpt.path.name} step {ckpt.step}: '
            f'{store.count()} parameters; the policy runs {info["kept_tokens"]} of '
            f'{info["sequence_tokens"]} transformer tokens (the rest cannot reach the '
            'action readout through the block-causal mask).'
        ),
    }
    if spec.language:
        manifest['graphs']['language'] = 'language.onnx'
        manifest['language'] = {
            'max_length': spec.language_length,
            'tokenizer': {'type': 'hf_tokenizers', 'file': 'tokenizer.json', 'pad_id': pad_id},
            'embedding_shape': [spec.language_length, lang_dim],
        }
    if 'gen_head.onnx' in models:
        manifest['graphs']['generative'] = 'gen_head.onnx'
    if precision != 'float32':
        manifest['precision'] = precision

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        import onnx

        for fname, model in models.items():
            onnx.save(model, str(tmp / fname))
        if spec.language:
            tok.save(str(tmp / 'tokenizer.json'))
        (tmp / 'dataset_statistics.json').write_text(json.dumps(stats, indent=1))
        if parity is not None:
            (tmp / 'precision_report.json').write_text(json.dumps(parity, indent=1) + '\n')
        (tmp / 'manifest.json').write_text(json.dumps(manifest, indent=2) + '\n')
        if out_dir.exists():
            old = out_dir.with_name(out_dir.name + '.old')
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(
        f'wrote {out_dir}: {", ".join(sorted(models))}; {store.count()} parameters exported; '
        f'policy runs {info["kept_tokens"]}/{info["sequence_tokens"]} tokens'
    )
    return manifest
