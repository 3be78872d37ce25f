"""Read LeRobotDataset v3 directories (images embedded as PNG in parquet) into FuSe training windows.

Several directories (a list, or "A,B" on the command line) are read as one dataset, their
episodes numbered one after another: demonstrations exported at different times, or of different
tasks (co-training), train together without exporting them again.

Layout read (lerobot's `LeRobotDataset.create(..., use_videos=False)` + `finalize()`):

    meta/info.json                      codebase_version v3.*, fps, features {name: {dtype, shape}}
    meta/tasks.parquet                  task string -> task_index
    data/chunk-XXX/file-XXX.parquet     one row per frame: features + episode_index, frame_index, task_index
    meta/fuse_instructions.json         FuSe's modality-specific instructions (optional; see below)

Only pyarrow and OpenCV are needed (no lerobot, TensorFlow or PyTorch import). Image features
are structs {bytes: PNG/JPEG, path}; they are decoded and resized exactly as the sync node does
(fuse_core.sync.preprocess), so training and deployment see the same pixels. DIGIT inputs are
frame minus background, both resized first.

meta/fuse_instructions.json: {"episodes": {"<episode_index>": {"<combination>": "text", ...}},
"tasks": {"<task string>": {...}}}, combinations as in FuSe (`visual`, `tactile`, `audio`,
`visual,tactile`, ...); an episode's entry wins over its task's; a missing or empty text is an
invalid combination for that episode. `simple` defaults to the episode's task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from fuse_core.bundle.manifest import FUSE_OBSERVATION_INPUTS
from fuse_core.gripper import gripper_open

from .errors import DatasetError
from .combos import MODALITY_COMBINATIONS

#: model input -> (frame feature, background feature or None) in the dataset.
#: The names are FuSe's RLDS observation keys under lerobot's `observation.images.` prefix, as the
#: project's episode export (fuse_core.export) writes them: image_0 primary, image_1 wrist,
#: digit_0 left, digit_1 right.
FEATURES = {
    'image_primary': ('observation.images.image_0', None),
    'image_wrist': ('observation.images.image_1', None),
    'image_digit_left': ('observation.images.digit_0', 'observation.images.digit_0_background'),
    'image_digit_right': ('observation.images.digit_1', 'observation.images.digit_1_background'),
    'mel_spectro': ('observation.mel_spectro', None),
}
MODALITY = {
    'image_primary': 'visual',
    'image_wrist': 'visual',
    'image_digit_left': 'tactile',
    'image_digit_right': 'tactile',
    'mel_spectro': 'audio',
}
ACTION_FEATURE = 'action'
#: The robot's proprioceptive state (x, y, z, roll, pitch, yaw, gripper; metres and radians in the
#: arm's base frame, as fuse_core.export writes it). Not a model input: read, when present, for the
#: grasp-point target (LeRobotWindows.grasp_points).
STATE_FEATURE = 'observation.state'
#: Frames whose end effector is within this (metres, x-y) of their episode's grasp point have no
#: grasp target: during the descent the gripper is itself at the grasp point, and pointing at the
#: gripper would fit those frames without finding the object (measured: README, "The grasp point").
GRASP_MIN_DISTANCE = 0.03
INSTRUCTIONS_FILE = 'meta/fuse_instructions.json'
INPUT_SPECS = {i['name']: i for i in FUSE_OBSERVATION_INPUTS}
GRIPPER = 6
#: Decoded images kept in memory by default (about 0.55 MB a frame with both cameras and both DIGITs
#: at the model's sizes, each background once per episode: a 5,000-frame dataset fits).
DEFAULT_IMAGE_CACHE_BYTES = 4 << 30


@dataclass
class Frames:
    """Every frame of the dataset, sorted by (episode, frame)."""

    episode: np.ndarray  # (N,) int64
    frame: np.ndarray  # (N,) int64
    task: List[str]  # per frame
    action: np.ndarray  # (N, A) float32
    columns: Dict[str, list]  # image feature -> encoded bytes per frame; array feature -> ndarray
    state: Optional[np.ndarray] = None  # (N, S) float32 observation.state, when the dataset has it


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f'{what}: {path} is missing') from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f'{what}: {path} is not readable JSON: {exc}') from exc


def _task_table(root: Path) -> Dict[int, str]:
    import pyarrow.parquet as pq

    path = root / 'meta' / 'tasks.parquet'
    if not path.is_file():
        raise DatasetError(f'{root}: meta/tasks.parquet is missing (the task strings)')
    table = pq.read_table(path)
    cols = table.column_names
    if 'task_index' not in cols:
        raise DatasetError(f'{path}: no task_index column (columns: {cols})')
    name = 'task' if 'task' in cols else None
    if name is None:  # pandas wrote the task strings as the index
        meta = json.loads((table.schema.metadata or {}).get(b'pandas', b'{}') or b'{}')
        idx = [c for c in meta.get('index_columns', []) if isinstance(c, str) and c in cols]
        if not idx:
            raise DatasetError(f'{path}: no task column and no pandas index holding the task strings')
        name = idx[0]
    return {int(i): str(t) for i, t in zip(table.column('task_index').to_pylist(), table.column(name).to_pylist())}


#: The action std of a dimension the training data holds constant (see action_statistics).
CONSTANT_STD = 1e-6


class LeRobotWindows:
    """FuSe training samples from a LeRobotDataset v3 directory.

    Sample i is frame i with its history (window W, padded at the episode start with the
    first frame and pad mask False) and the chunk of the next `horizon` actions (past the
    episode end: the last action repeated, mask False). Raises DatasetError naming what is
    missing or mismatched.
    """

    def __init__(self, root, inputs: Optional[Sequence[str]] = None, window: int = 2, horizon: int = 4,
                 action_dim: int = 7, binarize_gripper: bool = True,
                 image_cache_bytes: int = DEFAULT_IMAGE_CACHE_BYTES) -> None:
        # Decoded, resized images by their encoded bytes: a frame is drawn into many batches (and
        # into W windows), and a DIGIT background repeats every frame of its episode, so decoding
        # each distinct image once removes most of a batch's cost. Bounded: past the budget,
        # images are decoded again each time, as without a cache.
        self.image_cache_bytes = int(image_cache_bytes)
        self._images: Dict[Tuple[str, bytes], np.ndarray] = {}
        self._image_bytes = 0
        self.window, self.horizon, self.action_dim = int(window), int(horizon), int(action_dim)
        self.roots = dataset_roots(root)
        self.root = self.roots[0]
        metas = []
        for r in self.roots:
            if not r.is_dir():
                raise DatasetError(f'dataset {r} does not exist')
            info = _read_json(r / 'meta' / 'info.json', 'dataset')
            version = str(info.get('codebase_version', ''))
            if not version.startswith('v3'):
                raise DatasetError(f'{r}: codebase_version {version!r} is not a LeRobotDataset v3.x '
                                   '(meta/info.json)')
            features = info.get('features')
            if not isinstance(features, dict):
                raise DatasetError(f'{r}: meta/info.json has no features')
            metas.append((r, float(info.get('fps', 0) or 0), features))
        fps = sorted({m[1] for m in metas})
        if len(fps) > 1:
            raise DatasetError(f'datasets {[str(r) for r in self.roots]} have different fps {fps}: '
                               'their action chunks would not mean the same time')
        self.fps = fps[0]
        self.features = metas[0][2]
        if inputs is None:
            inputs = [n for n, (f, _) in FEATURES.items() if f in self.features]
            if not inputs:
                raise DatasetError(f'{self.root}: none of the model inputs\' features '
                                   f'{[f for f, _ in FEATURES.values()]} is in meta/info.json')
        unknown = [n for n in inputs if n not in FEATURES]
        if unknown:
            raise DatasetError(f'unknown model input(s) {unknown}; known: {list(FEATURES)}')
        self.inputs = tuple(n for n in FEATURES if n in inputs)
        # Several datasets are read one after another, each one's episodes numbered after the last's.
        parts, self.instructions, self.has_instruction_file, offset = [], {}, False, 0
        for r, _, features in metas:
            self._check_features(r, features)
            frames = self._read_frames(r, features)
            frames.episode = frames.episode + offset
            parts.append(frames)
            self.instructions.update(self._read_instructions(r, frames, offset))
            offset = int(frames.episode.max()) + 1
        self.frames = _concatenate(parts)
        self._index_episodes()

    # --- schema ---------------------------------------------------------------------------------
    def _check_features(self, root: Path, features: dict) -> None:
        missing = []
        for name in self.inputs:
            for key in FEATURES[name]:
                if key is not None and key not in features:
                    missing.append(key)
        if ACTION_FEATURE not in features:
            missing.append(ACTION_FEATURE)
        if missing:
            raise DatasetError(f'{root}: meta/info.json lacks feature(s) {missing} '
                               f'(needed for inputs {list(self.inputs)} and the action)')
        shape = list(features[ACTION_FEATURE].get('shape', []))
        if shape != [self.action_dim]:
            raise DatasetError(f'{root}: feature {ACTION_FEATURE!r} has shape {shape}, the model '
                               f'needs [{self.action_dim}] (dx dy dz droll dpitch dyaw gripper)')
        for name in self.inputs:
            for key in FEATURES[name]:
                if key is None:
                    continue
                f = features[key]
                dtype = f.get('dtype')
                if name == 'mel_spectro':
                    want = INPUT_SPECS[name]['shape']
                    if dtype not in ('float32', 'float64') or list(f.get('shape', [])) != want:
                        raise DatasetError(f'{root}: feature {key!r} is {dtype} {f.get("shape")}, '
                                           f'input {name!r} needs float32 {want} (dB log-mel)')
                elif dtype == 'video':
                    raise DatasetError(f'{root}: feature {key!r} is stored as video; export the '
                                       'dataset with images embedded (use_videos=False)')
                elif dtype != 'image':
                    raise DatasetError(f'{root}: feature {key!r} has dtype {dtype!r}, input '
                                       f'{name!r} needs an image feature')
                elif len(f.get('shape', [])) != 3 or f['shape'][2] != 3:
                    raise DatasetError(f'{root}: image feature {key!r} has shape {f.get("shape")}, '
                                       'expected [height, width, 3]')

    def _read_frames(self, root: Path, features: dict) -> Frames:
        import pyarrow.parquet as pq

        files = sorted((root / 'data').glob('chunk-*/file-*.parquet'))
        if not files:
            raise DatasetError(f'{root}: no data/chunk-*/file-*.parquet files')
        tasks = _task_table(root)
        keys = [k for n in self.inputs for k in FEATURES[n] if k is not None]
        wanted = ['episode_index', 'frame_index', 'task_index', ACTION_FEATURE] + keys
        episode, frame, task_idx, action, state = [], [], [], [], []
        columns: Dict[str, list] = {k: [] for k in keys}
        has_state = STATE_FEATURE in features
        for path in files:
            try:
                table = pq.read_table(path)
            except Exception as exc:  # pyarrow raises several untyped errors on corrupt files
                raise DatasetError(f'{path}: not a readable parquet file: {exc}') from exc
            missing = [c for c in wanted if c not in table.column_names]
            if missing:
                raise DatasetError(f'{path}: column(s) {missing} missing (it has {table.column_names})')
            episode.append(np.asarray(table.column('episode_index').to_numpy(), np.int64))
            frame.append(np.asarray(table.column('frame_index').to_numpy(), np.int64))
            task_idx.append(np.asarray(table.column('task_index').to_numpy(), np.int64))
            action.append(np.asarray(table.column(ACTION_FEATURE).to_pylist(), np.float32).reshape(len(table), -1))
            if has_state and STATE_FEATURE in table.column_names:
                state.append(np.asarray(table.column(STATE_FEATURE).to_pylist(), np.float32).reshape(len(table), -1))
            else:
                has_state = False
            for k in keys:
                col = table.column(k)
                if features[k].get('dtype') == 'image':
                    for item in col.to_pylist():
                        data = item.get('bytes') if isinstance(item, dict) else item
                        if not data:
                            raise DatasetError(f'{path}: image feature {k!r} has a row without embedded '
                                               'bytes (images must be embedded, not paths)')
                        columns[k].append(data)
                else:
                    arr = np.asarray(col.to_pylist(), np.float32)
                    want = tuple(features[k]['shape'])
                    if arr.shape[1:] != want:
                        raise DatasetError(f'{path}: feature {k!r} rows have shape {list(arr.shape[1:])}, '
                                           f'meta/info.json says {list(want)}')
                    columns[k].append(arr)
        ep, fr, ti = np.concatenate(episode), np.concatenate(frame), np.concatenate(task_idx)
        act = np.concatenate(action)
        if act.shape[1] != self.action_dim:
            raise DatasetError(f'{root}: action rows have {act.shape[1]} values, expected {self.action_dim}')
        if not np.isfinite(act).all():
            raise DatasetError(f'{root}: the action column has NaN or infinite values')
        unknown = sorted(set(ti.tolist()) - set(tasks))
        if unknown:
            raise DatasetError(f'{root}: task_index value(s) {unknown} are not in meta/tasks.parquet')
        order = np.lexsort((fr, ep))
        cols: Dict[str, list] = {}
        for k, parts in columns.items():
            if features[k].get('dtype') == 'image':
                cols[k] = [parts[i] for i in order]
            else:
                cols[k] = np.concatenate(parts)[order]
        st = np.concatenate(state)[order] if has_state else None
        if st is not None and not np.isfinite(st).all():
            raise DatasetError(f'{root}: the {STATE_FEATURE} column has NaN or infinite values')
        return Frames(episode=ep[order], frame=fr[order], task=[tasks[int(t)] for t in ti[order]],
                      action=act[order], columns=cols, state=st)

    def _index_episodes(self) -> None:
        ep, fr = self.frames.episode, self.frames.frame
        self.episode_ids = sorted(set(ep.tolist()))
        start = np.zeros(len(ep), np.int64)
        end = np.zeros(len(ep), np.int64)
        for e in self.episode_ids:
            idx = np.flatnonzero(ep == e)
            if not np.array_equal(fr[idx], np.arange(len(idx))):
                where = self.root if len(self.roots) == 1 else [str(r) for r in self.roots]
                raise DatasetError(f'{where}: episode {e} frame_index is not 0..{len(idx) - 1} '
                                   '(frames missing or repeated)')
            start[idx], end[idx] = idx[0], idx[-1]
        self._start, self._end = start, end

    def _read_instructions(self, root: Path, frames: Frames, offset: int) -> Dict[int, Dict[str, str]]:
        """episode (numbered from `offset`) -> {combination: text} of one dataset; `simple` defaults
        to the episode's task."""
        path = root / INSTRUCTIONS_FILE
        raw = _read_json(path, 'modality-specific instructions') if path.is_file() else {}
        by_ep, by_task = raw.get('episodes', {}) or {}, raw.get('tasks', {}) or {}
        for where, table in (('episodes', by_ep), ('tasks', by_task)):
            for key, entry in table.items():
                if not isinstance(entry, Mapping):
                    raise DatasetError(f'{path}: {where}[{key!r}] must map combinations to text')
                bad = sorted(set(entry) - set(c for c in MODALITY_COMBINATIONS if c))
                if bad:
                    raise DatasetError(f'{path}: {where}[{key!r}] has unknown combination(s) {bad}; '
                                       f'known: {[c for c in MODALITY_COMBINATIONS if c]}')
        self.has_instruction_file = self.has_instruction_file or path.is_file()
        out = {}
        first = {int(e): i for i, e in reversed(list(enumerate(frames.episode.tolist())))}
        for e in sorted(first):
            task = frames.task[first[e]]
            texts = {'simple': task}
            texts.update({k: v for k, v in (by_task.get(task) or {}).items() if isinstance(v, str) and v.strip()})
            texts.update({k: v for k, v in (by_ep.get(str(e - offset)) or {}).items()
                          if isinstance(v, str) and v.strip()})
            out[e] = texts
        return out

    # --- what the auxiliary losses need -----------------------------------------------------------
    @property
    def modalities(self) -> frozenset:
        return frozenset(MODALITY[n] for n in self.inputs)

    def combination_counts(self) -> Dict[str, int]:
        """How many episodes have an instruction for each combination."""
        counts = {c: 0 for c in MODALITY_COMBINATIONS if c}
        for texts in self.instructions.values():
            for c in texts:
                counts[c] += 1
        return counts

    def require_instructions(self, combos: Sequence[str], what: str) -> None:
        """Refuse when none of `combos` (other than simple) has an instruction in any episode."""
        counts = self.combination_counts()
        specific = [c for c in combos if c != 'simple']
        if specific and not any(counts[c] for c in specific):
            files = [r / INSTRUCTIONS_FILE for r in self.roots]
            where = ', '.join(f'{f}' if f.is_file() else f'{f} (missing)' for f in files)
            raise DatasetError(f'{what} needs modality-specific instructions for at least one of '
                               f'{specific}; {where} give(s) none')

    def texts(self) -> List[str]:
        return [t for texts in self.instructions.values() for t in texts.values()]

    # --- samples ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frames.episode)

    def action_statistics(self) -> dict:
        """Octo's dataset_statistics.json from the training frames (gripper not normalised)."""
        a = self.frames.action.astype(np.float64)
        mean, std = a.mean(axis=0), a.std(axis=0)
        mask = np.ones(self.action_dim, bool)
        if self.action_dim > GRIPPER:
            mask[GRIPPER] = False
        # A dimension the demonstrations never moved (the twin expert's rotations) gets a tiny std:
        # its targets stay within +-1, and the bundle denormalises whatever the model predicts
        # there to within CONSTANT_STD of the constant. An std of 1 would let the model's small
        # errors through in raw units (0.03 rad a tick on the rotations, which turned the
        # gripper over within an episode).
        constant = (a.max(axis=0) - a.min(axis=0)) <= CONSTANT_STD if len(a) else np.ones(a.shape[1], bool)
        std = np.where(constant, CONSTANT_STD, np.maximum(std, CONSTANT_STD))
        return {
            'action': {
                'mean': mean.tolist(), 'std': std.tolist(), 'max': a.max(axis=0).tolist(),
                'min': a.min(axis=0).tolist(), 'p99': np.percentile(a, 99, axis=0).tolist(),
                'p01': np.percentile(a, 1, axis=0).tolist(), 'mask': mask.tolist(),
            },
            'num_transitions': int(len(a)),
            'num_trajectories': int(len(self.episode_ids)),
        }

    def grasp_points(self, min_distance: float = GRASP_MIN_DISTANCE) -> Tuple[np.ndarray, np.ndarray]:
        """Where each frame's episode grasps, in hindsight: the end effector's (x, y) from
        observation.state at the episode's first frame whose action closes the gripper, (N, 2)
        float32, and (N,) bool, True for the frames before that one whose end effector is still
        more than `min_distance` from it in x-y (the approach, where a policy must know where the
        object is; an episode that never closes has none). Needs only what any demonstration
        records, no object poses. Raises DatasetError without observation.state."""
        if self.frames.state is None:
            where = self.root if len(self.roots) == 1 else [str(r) for r in self.roots]
            raise DatasetError(f'{where}: no {STATE_FEATURE} feature (in every dataset), which the grasp-point '
                               'target reads')
        if self.frames.state.shape[1] < 2:
            raise DatasetError(f'{self.root}: {STATE_FEATURE} has {self.frames.state.shape[1]} value(s); the '
                               'grasp point needs x and y first')
        points = np.zeros((len(self), 2), np.float32)
        valid = np.zeros(len(self), bool)
        closing = ~gripper_open(self.frames.action[:, GRIPPER]) if self.action_dim > GRIPPER else None
        if closing is None:
            return points, valid
        for e in self.episode_ids:
            idx = np.flatnonzero(self.frames.episode == e)
            closed = np.flatnonzero(closing[idx])
            if not len(closed):
                continue
            grasp = idx[closed[0]]
            upto = idx[: closed[0] + 1]
            points[upto] = self.frames.state[grasp, :2]
            far = np.hypot(*(self.frames.state[upto, :2] - self.frames.state[grasp, :2]).T) > min_distance
            valid[upto[far]] = True
        return points, valid

    def _input(self, name: str, i: int) -> np.ndarray:
        spec = INPUT_SPECS[name]
        frame_key, bg_key = FEATURES[name]
        if name == 'mel_spectro':
            return np.asarray(self.frames.columns[frame_key][i], np.float32)
        size, interp = spec['preprocess']['size'], spec['preprocess']['interpolation']
        img = self._image(frame_key, i, size, interp)
        if bg_key is None:
            return img
        bg = self._image(bg_key, i, size, interp)
        return np.subtract(img, bg, dtype=np.int16)

    def _image(self, key: str, i: int, size, interp: str) -> np.ndarray:
        """Frame i of image feature `key`, decoded and resized as the sync node does (read-only:
        the array may be the cached one every later use of the same image gets)."""
        from fuse_core.sync.preprocess import rgb_resized

        data = self.frames.columns[key][i]
        got = self._images.get((key, data))
        if got is not None:
            return got
        img = rgb_resized(_decode(data, key), 'bgr8', size, interp, key)
        if self._image_bytes + img.nbytes <= self.image_cache_bytes:
            img.flags.writeable = False
            self._images[(key, data)] = img
            self._image_bytes += img.nbytes
        return img

    def sample(self, i: int, stats: Mapping, binarize_gripper: bool = True) -> Dict[str, np.ndarray]:
        """Window, pad mask, normalised action chunk and its mask, and the episode id, for frame i."""
        W, H = self.window, self.horizon
        start, end = int(self._start[i]), int(self._end[i])
        steps = [i - (W - 1 - t) for t in range(W)]
        pad = np.array([s >= start for s in steps])
        steps = [max(s, start) for s in steps]
        out = {n: np.stack([self._input(n, s) for s in steps]) for n in self.inputs}
        out['timestep_pad_mask'] = pad
        idx = [min(i + k, end) for k in range(H)]
        chunk = self.frames.action[idx].astype(np.float64)
        a = stats['action']
        mean, std, mask = np.asarray(a['mean']), np.asarray(a['std']), np.asarray(a['mask'], bool)
        chunk[:, mask] = (chunk[:, mask] - mean[mask]) / std[mask]
        if binarize_gripper and self.action_dim > GRIPPER and not mask[GRIPPER]:
            chunk[:, GRIPPER] = gripper_open(chunk[:, GRIPPER]).astype(np.float64)
        out['action'] = chunk.astype(np.float32)
        out['action_mask'] = np.array([i + k <= end for k in range(H)])
        out['episode'] = np.int64(self.frames.episode[i])
        return out


def dataset_roots(root) -> List[Path]:
    """One dataset directory, or several: a list, or one string of comma-separated paths."""
    items = list(root) if isinstance(root, (list, tuple)) else str(root).split(',')
    roots = [Path(str(r).strip()) for r in items if str(r).strip()]
    if not roots:
        raise DatasetError(f'no dataset directory in {root!r}')
    return roots


def _concatenate(parts: List[Frames]) -> Frames:
    if len(parts) == 1:
        return parts[0]
    cols: Dict[str, list] = {}
    for k in parts[0].columns:
        vals = [p.columns[k] for p in parts]
        cols[k] = [x for v in vals for x in v] if isinstance(vals[0], list) else np.concatenate(vals)
    states = [p.state for p in parts]
    state = np.concatenate(states) if all(s is not None for s in states) else None
    return Frames(episode=np.concatenate([p.episode for p in parts]), frame=np.concatenate([p.frame for p in parts]),
                  task=[t for p in parts for t in p.task], action=np.concatenate([p.action for p in parts]),
                  columns=cols, state=state)


def _decode(data: bytes, what: str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f'feature {what!r}: an image could not be decoded')
    return img  # BGR, as OpenCV decodes


def write_tiny_dataset(root, episodes: int = 3, length: int = 6, inputs: Optional[Sequence[str]] = None,
                       seed: int = 0, image_size: Tuple[int, int] = (48, 64), instructions: bool = True,
                       fps: int = 5) -> Path:
    """A small LeRobotDataset v3 directory with pyarrow (for tests and examples; no lerobot needed).

    Episodes alternate between two tasks; the DIGIT frames show a pressed blob only in the
    'soft' episodes, and actions depend on the task so a model can learn something.
    """
    import cv2
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    inputs = list(inputs if inputs is not None else FEATURES)
    rng = np.random.default_rng(seed)
    tasks = ['pick up the soft cube', 'pick up the hard cube']
    features = {
        'action': {'dtype': 'float32', 'shape': [7], 'names': ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper']},
        STATE_FEATURE: {'dtype': 'float32', 'shape': [7], 'names': ['x', 'y', 'z', 'roll', 'pitch', 'yaw', 'gripper']},
        'timestamp': {'dtype': 'float32', 'shape': [1]},
        'frame_index': {'dtype': 'int64', 'shape': [1]},
        'episode_index': {'dtype': 'int64', 'shape': [1]},
        'index': {'dtype': 'int64', 'shape': [1]},
        'task_index': {'dtype': 'int64', 'shape': [1]},
    }
    h, w = image_size
    for name in inputs:
        for key in FEATURES[name]:
            if key is None:
                continue
            if name == 'mel_spectro':
                features[key] = {'dtype': 'float32', 'shape': [128, 128]}
            else:
                features[key] = {'dtype': 'image', 'shape': [h, w, 3], 'names': ['height', 'width', 'channel']}

    def png(img):
        ok, buf = cv2.imencode('.png', img[:, :, ::-1])  # stored RGB, as PIL writes it
        assert ok
        return {'bytes': buf.tobytes(), 'path': None}

    rows: Dict[str, list] = {k: [] for k in features}
    index = 0
    for e in range(episodes):
        t = e % 2
        soft = t == 0
        pose = np.array([0.25, 0.0, 0.2, 0.0, 0.0, 0.0, 1.0], np.float32)  # the state follows the actions
        for f in range(length):
            a = np.zeros(7, np.float32)
            a[0] = (0.01 if soft else -0.01) + rng.normal(0, 0.002)
            a[2] = -0.005 * f / length + rng.normal(0, 0.001)
            a[1], a[3:6] = rng.normal(0, 0.003), rng.normal(0, 0.01, 3)
            a[6] = 1.0 if f < length // 2 else 0.0
            rows['action'].append(a.tolist())
            rows[STATE_FEATURE].append(pose.tolist())
            pose[:6] += 4.0 * a[:6]  # steps of 4 cm, so the approach starts beyond GRASP_MIN_DISTANCE
            pose[6] = a[6]
            rows['timestamp'].append(f / fps)
            rows['frame_index'].append(f)
            rows['episode_index'].append(e)
            rows['index'].append(index)
            rows['task_index'].append(t)
            index += 1
            for name in inputs:
                frame_key, bg_key = FEATURES[name]
                if name == 'mel_spectro':
                    level = -20.0 if soft else -60.0
                    rows[frame_key].append((level + rng.normal(0, 3, (128, 128))).astype(np.float32).tolist())
                    continue
                img = np.clip(rng.normal(120 if soft else 60, 20, (h, w, 3)), 0, 255).astype(np.uint8)
                if bg_key is not None:
                    bg = np.full((h, w, 3), 100, np.uint8)
                    img = bg.copy()
                    if soft and f >= 1:
                        img[h // 4: h // 2, w // 4: w // 2] = 160
                    rows[bg_key].append(png(bg))
                rows[frame_key].append(png(img))
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    (root / 'data' / 'chunk-000').mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([('bytes', pa.binary()), ('path', pa.string())])
    arrays, names = [], []
    for k, v in rows.items():
        f = features[k]
        if f['dtype'] == 'image':
            arrays.append(pa.array(v, type=image_type))
        elif k in ('action', STATE_FEATURE):
            arrays.append(pa.array(v, type=pa.list_(pa.float32(), 7)))
        elif k in FEATURES.get('mel_spectro', ()):
            arrays.append(pa.array(v, type=pa.list_(pa.list_(pa.float32(), 128), 128)))
        elif f['dtype'] == 'float32':
            arrays.append(pa.array(v, type=pa.float32()))
        else:
            arrays.append(pa.array(v, type=pa.int64()))
        names.append(k)
    pq.write_table(pa.Table.from_arrays(arrays, names=names), root / 'data' / 'chunk-000' / 'file-000.parquet')
    pq.write_table(pa.table({'task_index': pa.array([0, 1], pa.int64()), 'task': tasks}),
                   root / 'meta' / 'tasks.parquet')
    info = {
        'codebase_version': 'v3.0', 'robot_type': 'wx250s', 'fps': fps, 'total_episodes': episodes,
        'total_frames': index, 'total_tasks': len(tasks), 'chunks_size': 1000,
        'data_path': 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet', 'features': features,
    }
    (root / 'meta' / 'info.json').write_text(json.dumps(info, indent=2))
    if instructions:
        text = {
            tasks[0]: {'visual': 'pick up the bright cube', 'tactile': 'pick up the cube that feels soft',
                       'audio': 'pick up the cube that sounds loud', 'visual,tactile': 'pick up the bright soft cube',
                       'tactile,audio': 'pick up the soft loud cube'},
            tasks[1]: {'visual': 'pick up the dark cube', 'tactile': 'pick up the cube that feels hard',
                       'audio': 'pick up the cube that sounds quiet', 'visual,tactile': 'pick up the dark hard cube',
                       'tactile,audio': 'pick up the hard quiet cube'},
        }
        (root / INSTRUCTIONS_FILE).write_text(json.dumps({'tasks': text}, indent=2))
    return root
