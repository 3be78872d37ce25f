"""Find, open and check a model bundle against its manifest (ONNX Runtime imported lazily)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from fuse_core.bundle.manifest import Manifest, read_manifest
from fuse_core.bundle.tokenizers import Tokenizer, make_tokenizer
from fuse_core.errors import BundleError

DEFAULT_BUNDLE = 'models/reference'

PROVIDER_CHOICES = ('auto', 'cpu', 'cuda')
_ORT_TYPES = {
    'tensor(uint8)': 'uint8',
    'tensor(int8)': 'int8',
    'tensor(uint16)': 'uint16',
    'tensor(int16)': 'int16',
    'tensor(int32)': 'int32',
    'tensor(int64)': 'int64',
    'tensor(float16)': 'float16',
    'tensor(float)': 'float32',
    'tensor(double)': 'float64',
    'tensor(bool)': 'bool',
}


def resolve_bundle_path(value: str = '', roots: Sequence[Path] = ()) -> Path:
    """Turn the bundle_path parameter into a bundle directory.

    An absolute path is used as it is. A relative path (no ``package://`` scheme) is looked
    up under each of `roots` in order (the nodes pass fuse_nodes.layout.shipped_roots(): the
    source checkout, then the installed share directory), then under the current directory;
    the first holding a manifest.json wins. An empty value means the shipped reference bundle.
    """
    value = (value or DEFAULT_BUNDLE).strip()
    if '://' in value:
        raise BundleError(
            f'bundle_path {value!r}: URL schemes are not supported; give an absolute '
            'path or one relative to the repository'
        )
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        if not (path / 'manifest.json').is_file():
            raise BundleError(f'bundle_path {str(path)!r} has no manifest.json')
        return path
    tried = []
    for base in [*map(Path, roots), Path.cwd()]:
        candidate = base / path
        tried.append(str(candidate))
        if (candidate / 'manifest.json').is_file():
            return candidate.resolve()
    raise BundleError(f'bundle_path {value!r}: no manifest.json in any of {tried}')


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as ONNX Runtime declares it."""

    name: str
    dtype: str
    shape: Tuple[Any, ...]  # ints, or str/None for symbolic dims


def _graph_io(items) -> Dict[str, TensorInfo]:
    return {i.name: TensorInfo(i.name, _ORT_TYPES.get(i.type, i.type), tuple(i.shape)) for i in items}


def _fmt_shape(shape) -> str:
    return '[' + ', '.join(str(d) if isinstance(d, int) else (d or '?') for d in shape) + ']'


def check_tensor(graph: str, role: str, info: TensorInfo, dtype: str, shape: Sequence[int]) -> None:
    """Refuse a graph tensor whose dtype or shape differs from the manifest's.

    Only the batch axis (axis 0) may be symbolic; every other axis must be the expected integer.
    """
    expected = f'{dtype} {_fmt_shape(shape)}'
    actual = f'{info.dtype} {_fmt_shape(info.shape)}'
    ok = info.dtype == dtype and len(info.shape) == len(shape)
    if ok:
        for axis, (got, want) in enumerate(zip(info.shape, shape)):
            if isinstance(got, int):
                ok = ok and got == want
            else:
                ok = ok and axis == 0
    if not ok:
        raise BundleError(f'{graph}: {role} {info.name!r} expected {expected}, actual {actual}')


@dataclass
class Bundle:
    """An opened, checked bundle: manifest, sessions, tokenizer and action statistics."""

    path: Path
    manifest: Manifest
    sessions: Dict[str, Any]
    tokenizer: Optional[Tokenizer]
    statistics: Dict[str, Any]
    providers: List[str]
    encoder_outputs: Dict[str, TensorInfo] = field(default_factory=dict)
    #: generative head only: modality set (e.g. {'tactile'}) -> the head's modality index
    modality_index: Dict[frozenset, int] = field(default_factory=dict)

    @property
    def has_encoder(self) -> bool:
        return 'observation_encoder' in self.sessions


def select_providers(providers: Optional[Sequence[str]] | str, available: Sequence[str]) -> List[str]:
    """auto: CUDA when ONNX Runtime has it, else CPU; 'cpu'/'cuda'; or an explicit provider list."""
    if providers is None or providers == 'auto':
        chosen = ['CUDAExecutionProvider'] if 'CUDAExecutionProvider' in available else []
        return chosen + ['CPUExecutionProvider']
    if providers == 'cpu':
        return ['CPUExecutionProvider']
    if providers == 'cuda':
        if 'CUDAExecutionProvider' not in available:
            raise BundleError(f'providers=cuda but ONNX Runtime offers only {list(available)}')
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']
    if isinstance(providers, str):
        raise BundleError(f'providers {providers!r} is not one of {list(PROVIDER_CHOICES)} or a list')
    missing = [p for p in providers if p not in available]
    if missing:
        raise BundleError(
            f'execution provider(s) {missing} not available; ONNX Runtime offers {list(available)}'
        )
    return list(providers)


def load_bundle(path, providers=None, threads: int = 1) -> Bundle:
    """Open a bundle directory and check every graph against the manifest.

    Raises BundleError naming the missing file, or the graph tensor with its expected and
    actual dtype and shape.
    """
    path = Path(path)
    manifest = read_manifest(path)
    for name in manifest.files():
        if not (path / name).is_file():
            raise BundleError(f'bundle {path}: file missing: {name}')
    if threads < 1:
        raise BundleError(f'threads must be >= 1, got {threads}')
    statistics = _read_statistics(path, manifest) if manifest.statistics else {}
    tokenizer = make_tokenizer(manifest.language, path) if manifest.language is not None else None

    import onnxruntime as ort  # heavy; only the policy needs it

    chosen = select_providers(providers, ort.get_available_providers())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    sessions = {}
    for key, file in manifest.graphs.items():
        try:
            sessions[key] = ort.InferenceSession(str(path / file), sess_options=opts, providers=chosen)
        except Exception as exc:  # ORT raises its own exception types for corrupt models
            raise BundleError(f'bundle {path}: cannot open {file}: {exc}') from exc
    used = sessions['policy'].get_providers()
    bundle = Bundle(
        path=path,
        manifest=manifest,
        sessions=sessions,
        tokenizer=tokenizer,
        statistics=statistics,
        providers=list(used),
    )
    validate_graphs(bundle)
    return bundle


def _exact_inputs(
    graph: str, found: Dict[str, TensorInfo], expected: Dict[str, Tuple[str, Sequence[int]]]
) -> None:
    missing = [n for n in expected if n not in found]
    if missing:
        n = missing[0]
        dtype, shape = expected[n]
        raise BundleError(
            f'{graph}: input {n!r} expected {dtype} {_fmt_shape(shape)}, actual: '
            f'not in the graph (graph inputs: {sorted(found)})'
        )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise BundleError(f'{graph}: unexpected input(s) {extra}; expected exactly {sorted(expected)}')
    for n, (dtype, shape) in expected.items():
        check_tensor(graph, 'input', found[n], dtype, shape)


def validate_graphs(bundle: Bundle) -> None:
    """Check graph signatures against the manifest (the contract in models/README.md)."""
    m = bundle.manifest
    W = m.window_size
    files = m.graphs
    policy_expected: Dict[str, Tuple[str, Sequence[int]]] = {}
    if 'language' in bundle.sessions:
        L, D = m.language.embedding_shape
        sess = bundle.sessions['language']
        g = files['language']
        _exact_inputs(
            g,
            _graph_io(sess.get_inputs()),
            {'input_ids': ('int64', [1, L]), 'attention_mask': ('int64', [1, L])},
        )
        outs = _graph_io(sess.get_outputs())
        if 'language_embedding' not in outs:
            raise BundleError(
                f"{g}: output 'language_embedding' expected float32 [1, {L}, {D}], "
                f'actual: not in the graph (outputs: {sorted(outs)})'
            )
        check_tensor(g, 'output', outs['language_embedding'], 'float32', [1, L, D])
        policy_expected['language_embedding'] = ('float32', [1, L, D])
    per_step = {s.name: (s.dtype, [1, *s.shape]) for s in m.inputs}
    if 'observation_encoder' in bundle.sessions:
        sess = bundle.sessions['observation_encoder']
        g = files['observation_encoder']
        _exact_inputs(g, _graph_io(sess.get_inputs()), per_step)
        outs = _graph_io(sess.get_outputs())
        for info in outs.values():
            if len(info.shape) < 1 or not all(isinstance(d, int) for d in info.shape[1:]):
                raise BundleError(
                    f'{g}: output {info.name!r} must have fixed dims after the batch axis, '
                    f'actual {_fmt_shape(info.shape)}'
                )
            check_tensor(g, 'output', info, info.dtype, [1, *info.shape[1:]])
            if info.name in policy_expected or info.name == 'timestep_pad_mask':
                raise BundleError(f'{g}: output name {info.name!r} is reserved')
            policy_expected[info.name] = (info.dtype, [1, W, *info.shape[1:]])
        bundle.encoder_outputs = outs
    else:
        for name, (dtype, shape) in per_step.items():
            policy_expected[name] = (dtype, [1, W, *shape[1:]])
    policy_expected['timestep_pad_mask'] = ('bool', [1, W])
    sess = bundle.sessions['policy']
    g = files['policy']
    _exact_inputs(g, _graph_io(sess.get_inputs()), policy_expected)
    outs = _graph_io(sess.get_outputs())
    a = m.action
    if 'action' not in outs:
        raise BundleError(
            f"{g}: output 'action' expected float32 [1, {a.horizon}, {a.dim}], actual: not "
            f'in the graph (outputs: {sorted(outs)})'
        )
    check_tensor(g, 'output', outs['action'], 'float32', [1, a.horizon, a.dim])
    if 'generative' in bundle.sessions:
        _check_generative(bundle, files['generative'], policy_expected)


def _check_generative(bundle: Bundle, g: str, policy_expected: Dict[str, tuple]) -> None:
    """The generative head reads the window's encoder tokens and a modality index -> token ids."""
    if not bundle.has_encoder:
        raise BundleError(f'{g}: a generative head needs the observation_encoder graph (it reads its tokens)')
    if not hasattr(bundle.tokenizer, 'decode'):
        raise BundleError(f'{g}: a generative head needs a tokenizer that can decode (hf_tokenizers)')
    sess = bundle.sessions['generative']
    expected = {k: v for k, v in policy_expected.items() if k in bundle.encoder_outputs or k == 'timestep_pad_mask'}
    expected['modality_index'] = ('int64', [1])
    _exact_inputs(g, _graph_io(sess.get_inputs()), expected)
    outs = _graph_io(sess.get_outputs())
    if 'token_ids' not in outs:
        raise BundleError(f"{g}: output 'token_ids' expected int64 [1, L], actual: not in the graph "
                          f'(outputs: {sorted(outs)})')
    meta = sess.get_modelmeta().custom_metadata_map
    try:
        table = json.loads(meta['modality_index'])
        bundle.modality_index = {frozenset(k.split(',')): int(v) for k, v in table.items()}
    except (KeyError, ValueError, AttributeError) as exc:
        raise BundleError(f'{g}: metadata modality_index (a JSON map "visual,tactile" -> index) '
                          f'missing or unreadable: {exc}') from exc


def _read_statistics(path: Path, m: Manifest) -> Dict[str, Any]:
    """Read dataset_statistics.json (Octo layout) and check it agrees with the manifest."""
    file = path / m.statistics
    try:
        stats = json.loads(file.read_text())
        action = stats['action']
        mean, std, mask = action['mean'], action['std'], action.get('mask')
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f'{file}: not an Octo dataset_statistics.json with action mean/std: {exc}') from exc
    n = m.action.normalization
    if len(mean) != m.action.dim or len(std) != m.action.dim:
        raise BundleError(
            f'{file}: action mean/std have {len(mean)}/{len(std)} entries, '
            f'manifest action.dim is {m.action.dim}'
        )
    for i in range(m.action.dim):
        if not n.mask[i]:
            continue
        if not (
            math.isclose(mean[i], n.mean[i], rel_tol=1e-5, abs_tol=1e-9)
            and math.isclose(std[i], n.std[i], rel_tol=1e-5, abs_tol=1e-9)
        ):
            raise BundleError(
                f'{file}: action dim {i} mean/std {mean[i]}/{std[i]} differ from the '
                f'manifest normalization {n.mean[i]}/{n.std[i]}'
            )
    if mask is not None and [bool(x) for x in mask] != list(n.mask):
        raise BundleError(f'{file}: action mask {mask} differs from the manifest {list(n.mask)}')
    return stats
