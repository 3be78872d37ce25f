"""The model-bundle manifest (manifest.json) as validated dataclasses."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from fuse_core.errors import BundleError

FORMAT_VERSION = 1
GRAPH_KEYS = ('policy', 'observation_encoder', 'language', 'generative')

#: The dtype each image op delivers; an image input's shape is its (height, width) size by 3 channels.
IMAGE_OP_DTYPES = {'rgb_image': 'uint8', 'tactile_minus_background': 'int16'}


def image_input(name: str, stream: str, op: str, size: Tuple[int, int],
                interpolation: str = 'lanczos') -> Dict[str, Any]:
    """The manifest entry of an image input: its shape and dtype follow from the op and size."""
    return {
        'name': name,
        'shape': [size[0], size[1], 3],
        'dtype': IMAGE_OP_DTYPES[op],
        'stream': stream,
        'preprocess': {'op': op, 'size': list(size), 'interpolation': interpolation},
    }


#: FuSe's observation set per timestep and the sensor stream + preprocessing feeding each input
#: (docs/CONTRACTS.md): the manifest `inputs` of the reference bundle and of exported FuSe bundles.
FUSE_OBSERVATION_INPUTS = [
    image_input('image_primary', 'camera_primary', 'rgb_image', (256, 256)),
    image_input('image_wrist', 'camera_wrist', 'rgb_image', (128, 128)),
    image_input('image_digit_left', 'digit_left', 'tactile_minus_background', (224, 224)),
    image_input('image_digit_right', 'digit_right', 'tactile_minus_background', (224, 224)),
    {
        'name': 'mel_spectro',
        'shape': [128, 128],
        'dtype': 'float32',
        'stream': 'audio',
        'preprocess': {'op': 'passthrough'},
        # log-mel power in dB (ref 1, top_db 80): far inside this for any microphone signal
        'value_range': [-300.0, 200.0],
    },
]
INPUT_DTYPES = ('uint8', 'int8', 'uint16', 'int16', 'int32', 'int64', 'float16', 'float32', 'float64', 'bool')
PREPROCESS_OPS = ('rgb_image', 'tactile_minus_background', 'passthrough')
INTERPOLATIONS = ('lanczos', 'area', 'linear', 'cubic', 'nearest')
TOKENIZER_TYPES = ('hash_words', 'hf_tokenizers')
#: The action layout a DeltaEECommand is built from.
DELTA_EE_LAYOUT = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')


@dataclass(frozen=True)
class Preprocess:
    """How the sync node turns a stream's samples into this input (op plus its options)."""

    op: str
    size: Optional[Tuple[int, int]] = None  # (height, width) after resizing
    interpolation: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)  # any other keys, passed through


@dataclass(frozen=True)
class InputSpec:
    """One model input for one timestep: the window tensor is (W, *shape)."""

    name: str
    shape: Tuple[int, ...]
    dtype: str
    stream: str
    preprocess: Preprocess
    required: bool = True  # False: the policy still runs when this input is stale (it is masked)
    value_range: Optional[Tuple[float, float]] = None  # values outside: the window is refused


@dataclass(frozen=True)
class TokenizerSpec:
    type: str
    vocab_size: Optional[int] = None  # hash_words
    file: Optional[str] = None  # hf_tokenizers: tokenizer.json, relative to the bundle
    pad_id: int = 0
    eos_id: Optional[int] = 1  # hash_words appends it; hf_tokenizers adds its own


@dataclass(frozen=True)
class LanguageSpec:
    max_length: int
    tokenizer: TokenizerSpec
    embedding_shape: Tuple[int, int]  # (L, D); L == max_length
    max_chars: int = 512


@dataclass(frozen=True)
class Normalization:
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    mask: Tuple[bool, ...]


@dataclass(frozen=True)
class ActionSpec:
    horizon: int
    dim: int
    layout: Tuple[str, ...]
    normalization: Normalization
    gripper_index: Optional[int] = None


#: Weight precisions an exporter may write (manifest key `precision`; float32 when absent).
PRECISIONS = ('float32', 'float16', 'int8')


@dataclass(frozen=True)
class Manifest:
    format_version: int
    name: str
    control_rate_hz: float
    window_size: int
    graphs: Dict[str, str]
    inputs: Tuple[InputSpec, ...]
    action: ActionSpec
    language: Optional[LanguageSpec] = None
    statistics: Optional[str] = None
    description: str = ''
    precision: str = 'float32'  # weights of the per-tick graphs: float32, float16 (CUDA) or int8

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def input_names(self) -> Tuple[str, ...]:
        return tuple(s.name for s in self.inputs)

    def files(self) -> List[str]:
        """Every file the manifest names, relative to the bundle directory."""
        names = list(self.graphs.values())
        if self.language is not None and self.language.tokenizer.file:
            names.append(self.language.tokenizer.file)
        if self.statistics:
            names.append(self.statistics)
        return names


# --- parsing ----------------------------------------------------------------------------------
class _Reader:
    """Typed access to one JSON object with errors that name the full key path."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise BundleError(f'manifest: {where} must be an object, got {type(data).__name__}')
        self.data, self.where = data, where
        self.used = set()

    def _path(self, key: str) -> str:
        return f'{self.where}.{key}' if self.where else key

    def get(self, key: str, kind, default: Any = ..., check=None) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise BundleError(f'manifest: missing key {self._path(key)!r}')
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            name = kind.__name__ if isinstance(kind, type) else '/'.join(k.__name__ for k in kind)
            raise BundleError(f'manifest: {self._path(key)} must be {name}, got {value!r}')
        if check is not None:
            problem = check(value)
            if problem:
                raise BundleError(f'manifest: {self._path(key)} = {value!r} {problem}')
        return value

    def sub(self, key: str, default: Any = ...) -> Optional['_Reader']:
        value = self.get(key, dict, default)
        return None if value is None else _Reader(value, self._path(key))

    def no_unknown(self, allowed_extra: Tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.data) - self.used - set(allowed_extra))
        if unknown:
            raise BundleError(f'manifest: unknown key(s) {unknown} in {self.where or "top level"}')


def _positive(v) -> str:
    return '' if v > 0 else 'must be > 0'


def _one_of(choices: Tuple[str, ...]):
    return lambda v: '' if v in choices else f'is not one of {list(choices)}'


def _int_list(r: _Reader, key: str, length: Optional[int] = None) -> Tuple[int, ...]:
    def check(v):
        if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
            return 'must be a list of positive integers'
        if length is not None and len(v) != length:
            return f'must have {length} entries'
        return ''

    return tuple(r.get(key, list, check=check))


def _float_list(r: _Reader, key: str, length: int) -> Tuple[float, ...]:
    def check(v):
        if len(v) != length:
            return f'must have {length} entries (action.dim)'
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            return 'must be finite numbers'
        return ''

    return tuple(float(x) for x in r.get(key, list, check=check))


def _per_dim(r: _Reader, key: str, kind: type, what: str, dim: int) -> Tuple[Any, ...]:
    """A list with one `kind` entry per action dimension."""
    def check(v):
        if len(v) == dim and all(isinstance(x, kind) for x in v):
            return ''
        return f'must be {dim} {what} (action.dim)'

    return tuple(r.get(key, list, check=check))


def _relative_file(v: str) -> str:
    p = Path(v)
    if not v or p.is_absolute() or '..' in p.parts:
        return 'must be a file name inside the bundle directory'
    return ''


def _parse_input(raw: Any, index: int) -> InputSpec:
    r = _Reader(raw, f'inputs[{index}]')
    name = r.get('name', str, check=lambda v: '' if v.isidentifier() else 'must be an identifier')
    r.where = f'inputs[{index}] ({name})'
    shape = _int_list(r, 'shape')
    dtype = r.get('dtype', str, check=_one_of(INPUT_DTYPES))
    stream = r.get('stream', str, check=lambda v: '' if v else 'must not be empty')
    required = r.get('required', bool, True)
    value_range = None
    if 'value_range' in r.data:
        raw_range = r.get('value_range', list)
        if (len(raw_range) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           and math.isfinite(v) for v in raw_range)
                or not raw_range[0] < raw_range[1]):
            raise BundleError(f'manifest: {r.where}.value_range must be [low, high], finite, low < high; '
                              f'got {raw_range!r}')
        value_range = (float(raw_range[0]), float(raw_range[1]))
    p = r.sub('preprocess')
    op = p.get('op', str, check=_one_of(PREPROCESS_OPS))
    size = tuple(_int_list(p, 'size', 2)) if 'size' in p.data else None
    interp = p.get('interpolation', str, None, check=_one_of(INTERPOLATIONS))
    options = {k: v for k, v in p.data.items() if k not in ('op', 'size', 'interpolation')}
    if op in IMAGE_OP_DTYPES:
        if size is None:
            raise BundleError(f'manifest: {p.where}.size is required for op {op!r}')
        if len(shape) != 3 or shape[2] != 3 or tuple(shape[:2]) != size:
            raise BundleError(
                f'manifest: {r.where}: op {op!r} needs shape [{size[0]}, {size[1]}, 3], got {list(shape)}'
            )
        if dtype != IMAGE_OP_DTYPES[op]:
            raise BundleError(f'manifest: {r.where}: op {op} delivers {IMAGE_OP_DTYPES[op]}, dtype is {dtype!r}')
    r.no_unknown()
    return InputSpec(
        name=name,
        shape=shape,
        dtype=dtype,
        stream=stream,
        required=required,
        preprocess=Preprocess(op=op, size=size, interpolation=interp, options=options),
        value_range=value_range,
    )


def _parse_language(r: _Reader) -> LanguageSpec:
    max_length = r.get('max_length', int, check=_positive)
    t = r.sub('tokenizer')
    ttype = t.get('type', str, check=_one_of(TOKENIZER_TYPES))
    if ttype == 'hash_words':
        tok = TokenizerSpec(
            type=ttype,
            vocab_size=t.get('vocab_size', int, check=lambda v: '' if v > 2 else 'must be > 2'),
            pad_id=t.get('pad_id', int, 0),
            eos_id=t.get('eos_id', int, 1),
        )
        if {tok.pad_id, tok.eos_id} != {0, 1}:
            raise BundleError(f'manifest: {t.where}: hash_words reserves ids 0 and 1 for pad and eos')
    else:
        tok = TokenizerSpec(
            type=ttype,
            file=t.get('file', str, 'tokenizer.json', check=_relative_file),
            pad_id=t.get('pad_id', int, 0),
            eos_id=None,
        )
    t.no_unknown()
    emb = _int_list(r, 'embedding_shape', 2)
    if emb[0] != max_length:
        raise BundleError(
            f'manifest: language.embedding_shape[0] = {emb[0]} must equal language.max_length = {max_length}'
        )
    max_chars = r.get('max_chars', int, 512, check=_positive)
    r.no_unknown()
    return LanguageSpec(
        max_length=max_length, tokenizer=tok, embedding_shape=(emb[0], emb[1]), max_chars=max_chars
    )


def _parse_action(r: _Reader) -> ActionSpec:
    horizon = r.get('horizon', int, check=_positive)
    dim = r.get('dim', int, check=_positive)
    layout = _per_dim(r, 'layout', str, 'names', dim)
    n = r.sub('normalization')
    mean = _float_list(n, 'mean', dim)
    std = _float_list(n, 'std', dim)
    mask = _per_dim(n, 'mask', bool, 'booleans', dim)
    n.no_unknown()
    bad = [i for i in range(dim) if mask[i] and not std[i] > 0]
    if bad:
        raise BundleError(
            f'manifest: action.normalization.std must be > 0 on masked dims; dims {bad} are not'
        )
    gripper = r.get('gripper_index', (int, type(None)), None)
    if gripper is not None and not 0 <= gripper < dim:
        raise BundleError(f'manifest: action.gripper_index = {gripper} is outside 0..{dim - 1}')
    r.no_unknown()
    return ActionSpec(
        horizon=horizon,
        dim=dim,
        layout=layout,
        gripper_index=gripper,
        normalization=Normalization(mean=mean, std=std, mask=mask),
    )


def parse_manifest(data: Any) -> Manifest:
    """Validate a decoded manifest.json; raises BundleError naming the offending key."""
    r = _Reader(data, '')
    version = r.get('format_version', int)
    if version != FORMAT_VERSION:
        raise BundleError(
            f'manifest: format_version {version} is not supported (this runtime reads {FORMAT_VERSION})'
        )
    name = r.get('name', str, check=lambda v: '' if v else 'must not be empty')
    rate = r.get('control_rate_hz', float, check=_positive)
    window = r.get('window_size', int, check=_positive)
    g = r.sub('graphs')
    graphs = {}
    for key in GRAPH_KEYS:
        value = g.get(key, str, ... if key == 'policy' else None, check=_relative_file)
        if value is not None:
            graphs[key] = value
    g.no_unknown()
    raw_inputs = r.get('inputs', list, check=lambda v: '' if v else 'must list at least one input')
    inputs = tuple(_parse_input(x, i) for i, x in enumerate(raw_inputs))
    names = [s.name for s in inputs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BundleError(f'manifest: input name(s) {dupes} appear more than once')
    reserved = {'timestep_pad_mask', 'language_embedding', 'input_ids', 'attention_mask'} & set(names)
    if reserved:
        raise BundleError(f'manifest: input name(s) {sorted(reserved)} are reserved for the runtime')
    lang_r = r.sub('language', None)
    language = _parse_language(lang_r) if lang_r is not None else None
    if ('language' in graphs) != (language is not None):
        raise BundleError('manifest: graphs.language and the language section must come together')
    action = _parse_action(r.sub('action'))
    statistics = r.get('statistics', str, None, check=_relative_file)
    description = r.get('description', str, '')
    precision = r.get('precision', str, 'float32', check=_one_of(PRECISIONS))
    r.no_unknown()
    return Manifest(
        format_version=version,
        name=name,
        control_rate_hz=rate,
        window_size=window,
        graphs=graphs,
        inputs=inputs,
        action=action,
        language=language,
        statistics=statistics,
        description=description,
        precision=precision,
    )


def read_manifest(path: Path) -> Manifest:
    """Read and validate manifest.json (path to the file or to the bundle directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / 'manifest.json'
    if not path.is_file():
        raise BundleError(f'bundle file missing: {path}')
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f'manifest {path} is not valid JSON: {exc}') from exc
    try:
        return parse_manifest(data)
    except BundleError as exc:
        raise BundleError(f'{path}: {exc}') from exc


def manifest_to_dict(m: Manifest) -> Dict[str, Any]:
    """The JSON form of a manifest (what parse_manifest reads back)."""
    inputs = []
    for s in m.inputs:
        pre: Dict[str, Any] = {'op': s.preprocess.op}
        if s.preprocess.size is not None:
            pre['size'] = list(s.preprocess.size)
        if s.preprocess.interpolation is not None:
            pre['interpolation'] = s.preprocess.interpolation
        pre.update(s.preprocess.options)
        item = {
            'name': s.name,
            'shape': list(s.shape),
            'dtype': s.dtype,
            'stream': s.stream,
            'preprocess': pre,
        }
        if not s.required:
            item['required'] = False
        if s.value_range is not None:
            item['value_range'] = list(s.value_range)
        inputs.append(item)
    out: Dict[str, Any] = {'format_version': m.format_version, 'name': m.name}
    if m.description:
        out['description'] = m.description
    out.update(
        {
            'control_rate_hz': m.control_rate_hz,
            'window_size': m.window_size,
            'graphs': dict(m.graphs),
            'inputs': inputs,
        }
    )
    if m.language is not None:
        t = m.language.tokenizer
        tok: Dict[str, Any] = {'type': t.type}
        if t.type == 'hash_words':
            tok['vocab_size'] = t.vocab_size
        else:
            tok['file'] = t.file
            tok['pad_id'] = t.pad_id
        out['language'] = {
            'max_length': m.language.max_length,
            'tokenizer': tok,
            'embedding_shape': list(m.language.embedding_shape),
            'max_chars': m.language.max_chars,
        }
    a = m.action
    out['action'] = {
        'horizon': a.horizon,
        'dim': a.dim,
        'layout': list(a.layout),
        'normalization': {
            'mean': list(a.normalization.mean),
            'std': list(a.normalization.std),
            'mask': list(a.normalization.mask),
        },
        'gripper_index': a.gripper_index,
    }
    if m.statistics:
        out['statistics'] = m.statistics
    if m.precision != 'float32':
        out['precision'] = m.precision
    return out
