"""One episode bag -> FuSe training steps (5 Hz), with the same preprocessing code as the sync node.

A step is one command the arm filtered (`/arm/applied_command`): its action is the delta the arm
executed (an explicit hold is a zero motion with the gripper kept), its observation the latest
sample of every stream at or before the command's stamp (the sync node's rule), preprocessed by
fuse_core.sync.preprocess from the bundle manifest's inputs (resize, RGB order; the DIGIT frame
and its background both resized, kept apart as FuSe's RLDS does; the model input is their int16
difference, exactly TactileMinusBackground's). The microphone waveform (`mic`) of a step is the
MIC_SAMPLES samples ending with the latest one captured at or before the step's stamp (zeros
before the episode's first sample, and for an episode recorded without a microphone, whose
has_mic is false). Anything that makes the episode unusable raises EpisodeError naming the
episode and the problem.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fuse_core.arm.kinematics import FINGER_MAX, FINGER_MIN, pose_to_bridge_state, quaternion_to_rotation
from fuse_core.audio.config import AudioConfig
from fuse_core.bag.reader import BagReader
from fuse_core.bundle.manifest import FUSE_OBSERVATION_INPUTS
from fuse_core.episodes.metadata import EpisodeMetadata, load_episode
from fuse_core.errors import BagError, EpisodeError, FuseError
from fuse_core.images import image_to_array
from fuse_core.sync.preprocess import make_preprocessor, rgb_resized

#: Observation key -> (stream topic, manifest input name) for FuSe's RLDS layout.
CAMERA_KEYS = {'image_0': ('/camera_primary/image_raw', 'image_primary'),
               'image_1': ('/camera_wrist/image_raw', 'image_wrist')}
DIGIT_KEYS = {'digit_0': ('/digit_left/image_raw', '/digit_left/background', 'image_digit_left'),
              'digit_1': ('/digit_right/image_raw', '/digit_right/background', 'image_digit_right')}
MEL_TOPIC, MIC_TOPIC = '/audio/mel_spectrogram', '/audio/chunk'
APPLIED_TOPIC, POSE_TOPIC, JOINTS_TOPIC = '/arm/applied_command', '/arm/ee_pose', '/arm/joint_states'
REQUIRED_TOPICS = ([t for t, _ in CAMERA_KEYS.values()] + [t for d in DIGIT_KEYS.values() for t in d[:2]]
                   + [MEL_TOPIC, APPLIED_TOPIC, POSE_TOPIC, JOINTS_TOPIC])
#: A gap between commands longer than this, or a stamp going back, is a clock jump.
MAX_COMMAND_GAP_S = 2.0
#: Image sizes of an export: the model's (the manifest inputs' sizes, what the sync node feeds the
#: model) or native (each sensor's own resolution, only converted to RGB; the trainer resizes).
IMAGE_SIZES = ('model', 'native')
IMAGE_KEYS = tuple(CAMERA_KEYS) + tuple(x for k in DIGIT_KEYS for x in (k, f'{k}_background'))
#: The `mic` key: FuSe's robot-side audio window (0.3 s at 44.1 kHz, 13230 samples: the audio one
#: spectrogram is made of), mono float32 in -1..1.
_AUDIO = AudioConfig()
MIC_RATE_HZ, MIC_SAMPLES = _AUDIO.sample_rate, _AUDIO.window_samples


@dataclass
class EpisodeSteps:
    """Everything one episode contributes to a dataset (arrays have one row per step)."""

    metadata: EpisodeMetadata
    observations: Dict[str, np.ndarray]
    action: np.ndarray                       # (N, 7) float32
    stamps_ns: np.ndarray                    # (N,) int64, the commands' stamps
    has_mic: bool
    dropped_leading: int = 0                 # commands before every stream had a sample
    model_inputs: Dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(self.action.shape[0])


def message_decoders(reader: BagReader, topics: Sequence[str]) -> Dict[str, Any]:
    """Topic -> function from CDR bytes to a message object, from the bag's own definitions."""
    from mcap_ros2._dynamic import generate_dynamic
    out = {}
    for t in topics:
        type_name = reader.topics[t].type
        out[t] = generate_dynamic(type_name, reader.definition(t))[type_name]
    return out


def _stamp(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


class _Stream:
    """Messages of one topic sorted by header stamp; `at(t)` = latest at or before t."""

    def __init__(self) -> None:
        self.stamps: List[int] = []
        self.msgs: List[Any] = []

    def add(self, msg) -> None:
        self.stamps.append(_stamp(msg))
        self.msgs.append(msg)

    def finish(self) -> None:
        order = np.argsort(np.asarray(self.stamps, dtype=np.int64), kind='stable')
        self.stamps = [self.stamps[i] for i in order]
        self.msgs = [self.msgs[i] for i in order]

    def at(self, t_ns: int):
        i = bisect.bisect_right(self.stamps, t_ns) - 1
        return self.msgs[i] if i >= 0 else None


class MicStream:
    """An episode's /audio/chunk messages as one mono waveform placed by running sample index
    (a gap in the indices, lost input, is zeros); `window(t)` = the MIC_SAMPLES samples ending
    with the latest one captured at or before t, zero-padded before the first."""

    def __init__(self, chunks: Sequence[Any], name: str) -> None:
        starts, stamps, blocks = [], [], []
        end = None
        for k, c in enumerate(chunks):
            if int(c.sample_rate) != MIC_RATE_HZ:
                raise EpisodeError(f'{name}: audio chunk {k} is at {c.sample_rate} Hz; the mic key is '
                                   f'{MIC_SAMPLES} samples at {MIC_RATE_HZ} Hz')
            channels = max(1, int(c.channels))
            x = np.asarray(c.samples, dtype=np.float32)
            if x.size % channels:
                raise EpisodeError(f'{name}: audio chunk {k}: {x.size} samples are not whole frames of '
                                   f'{channels} channels')
            x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32) if channels > 1 else x
            index = int(c.first_sample_index)
            if end is not None and index < end:
                raise EpisodeError(f'{name}: audio chunk {k} starts at sample {index}, before the end of the '
                                   f'one before ({end}): the audio clock went back')
            starts.append(index)
            stamps.append(_stamp(c))
            blocks.append(x)
            end = index + x.size
        self.stamps = stamps
        self.lengths = [b.size for b in blocks]
        if not blocks:
            self.samples, self.positions = np.zeros(0, np.float32), []
            return
        self.positions = [i - starts[0] for i in starts]
        # Indices count time (a reopened microphone's index continues by the time it was away): a
        # span far beyond the stamps' is a broken index, not seconds of lost input.
        by_stamps = (stamps[-1] - stamps[0]) * MIC_RATE_HZ // 1_000_000_000 + blocks[-1].size
        if end - starts[0] > by_stamps + MAX_COMMAND_GAP_S * MIC_RATE_HZ:
            raise EpisodeError(f'{name}: audio sample indices span {end - starts[0]} samples but the chunks\' '
                               f'stamps {by_stamps}: the audio clock jumped')
        self.samples = np.zeros(end - starts[0], dtype=np.float32)
        for pos, b in zip(self.positions, blocks):
            self.samples[pos:pos + b.size] = b

    def window(self, t_ns: int, samples: int = MIC_SAMPLES) -> np.ndarray:
        out = np.zeros(samples, dtype=np.float32)
        k = bisect.bisect_right(self.stamps, t_ns) - 1
        if k < 0:
            return out
        newest = min(self.lengths[k] - 1, int((t_ns - self.stamps[k]) * MIC_RATE_HZ // 1_000_000_000))
        stop = self.positions[k] + newest + 1
        got = self.samples[max(0, stop - samples):stop]
        out[samples - got.size:] = got
        return out


def _inputs(manifest_inputs) -> Dict[str, Any]:
    return {(i['name'] if isinstance(i, dict) else i.name): i for i in manifest_inputs}


@dataclass
class RecordedEpisode:
    """One checked episode bag, decoded: every stream's messages sorted by stamp, and the
    applied commands in arrival order (their stamps strictly increasing)."""

    name: str
    metadata: EpisodeMetadata
    streams: Dict[str, '_Stream']
    commands: List[Any]
    stamps_ns: np.ndarray
    has_mic: bool


def read_episode(bag_dir, *, outcomes: Optional[Sequence[str]] = ('success',),
                 topics: Sequence[str] = REQUIRED_TOPICS) -> RecordedEpisode:
    """Open, check and decode one episode bag; EpisodeError names the episode and the problem.

    outcomes None: any outcome. Every topic of `topics` must be in the bag; the microphone
    topic is read too when the bag has it.
    """
    bag_dir = Path(bag_dir)
    name = bag_dir.name
    try:
        md = load_episode(bag_dir)
    except EpisodeError as exc:
        raise EpisodeError(f'{name}: {exc}') from exc
    if not md.finished:
        raise EpisodeError(f'{name}: status {md.status} (the recording was cut short); not exported')
    if outcomes is not None and md.outcome not in outcomes:
        raise EpisodeError(f'{name}: outcome {md.outcome!r} is not exported (exported: {list(outcomes)})')
    if not md.instruction:
        raise EpisodeError(f'{name}: no language instruction')
    topics = list(dict.fromkeys(list(topics) + [APPLIED_TOPIC]))
    try:
        reader = BagReader(bag_dir, required_topics=topics)
    except BagError as exc:
        raise EpisodeError(f'{name}: {exc}') from exc
    topics = topics + ([MIC_TOPIC] if MIC_TOPIC in reader.topics and MIC_TOPIC not in topics else [])
    dec = message_decoders(reader, topics)
    streams = {t: _Stream() for t in topics}
    try:
        for m in reader.messages(topics):
            streams[m.topic].add(dec[m.topic](m.data))
    except (BagError, FuseError, ValueError) as exc:
        raise EpisodeError(f'{name}: bag unreadable: {exc}') from exc
    for topic, s in streams.items():
        if topic != APPLIED_TOPIC:  # commands stay in arrival order: a stamp going back is a clock jump
            s.finish()
    commands = streams[APPLIED_TOPIC]
    # The recorder keeps arrival order; commands are stamped by their sender in tick order.
    stamps = np.asarray([_stamp(c) for c in commands.msgs], dtype=np.int64)
    if len(stamps) < 2:
        raise EpisodeError(f'{name}: {len(stamps)} applied command(s): too short to export')
    gaps = np.diff(stamps) / 1e9
    if np.any(gaps <= 0) or np.any(gaps > MAX_COMMAND_GAP_S):
        bad = int(np.argmax((gaps <= 0) | (gaps > MAX_COMMAND_GAP_S)))
        raise EpisodeError(f'{name}: clock jump between commands {bad} and {bad + 1} '
                           f'({gaps[bad]:+.3f} s; allowed 0..{MAX_COMMAND_GAP_S} s)')
    has_mic = MIC_TOPIC in reader.topics and reader.topics[MIC_TOPIC].message_count > 0
    return RecordedEpisode(name, md, streams, list(commands.msgs), stamps, has_mic)


def applied_action(cmd, gripper: float) -> np.ndarray:
    """The 7-D training action of one applied command: a hold is a zero motion with the
    gripper kept (`gripper`: the previous step's), unless the hold sets it to 0 or 1."""
    if cmd.hold:
        a = np.zeros(7)
        a[6] = cmd.gripper if cmd.gripper in (0.0, 1.0) else gripper
    else:
        a = np.array(list(cmd.translation) + list(cmd.rotation) + [cmd.gripper], dtype=float)
    return a.astype(np.float32)


def load_steps(bag_dir, *, manifest_inputs=None, outcomes: Sequence[str] = ('success',),
               with_model_inputs: bool = False, image_size: str = 'model', relabel=None) -> EpisodeSteps:
    """Read and check one episode bag; EpisodeError names the episode and what is wrong.

    image_size 'model': images resized to the manifest inputs' sizes; 'native': kept at the
    sensor's resolution (RGB, no resampling), which must then stay the same through the episode.
    relabel: None (each step's action is the applied command), or an object with `name`, the
    `topics` it reads and `actions(RecordedEpisode) -> (N, 7)`, one row per applied command, that
    replaces them (fuse_sim.relabel: the twin expert's labels of a policy's episode, DAgger).
    """
    if image_size not in IMAGE_SIZES:
        raise EpisodeError(f'image size {image_size!r} is not one of {list(IMAGE_SIZES)}')
    native = image_size == 'native'
    if native and with_model_inputs:
        raise EpisodeError('model inputs need image_size model (the model\'s sizes)')
    topics = REQUIRED_TOPICS + [t for t in (relabel.topics if relabel else ()) if t not in REQUIRED_TOPICS]
    rec = read_episode(bag_dir, outcomes=outcomes, topics=topics)
    name, md, streams, stamps = rec.name, rec.metadata, rec.streams, rec.stamps_ns
    labels = None
    if relabel is not None:
        labels = np.asarray(relabel.actions(rec), dtype=np.float32)
        if labels.shape != (len(stamps), 7):
            raise EpisodeError(f'{name}: relabel {relabel.name} gave actions of shape {labels.shape}, '
                               f'expected ({len(stamps)}, 7)')
        md.action_source = f'{md.action_source}, relabelled by {relabel.name}'
    commands = streams[APPLIED_TOPIC]

    specs = _inputs(manifest_inputs or FUSE_OBSERVATION_INPUTS)
    cams = {k: make_preprocessor(specs[inp]) for k, (_, inp) in CAMERA_KEYS.items()}
    digits = {k: make_preprocessor(specs[inp]) for k, (_, _, inp) in DIGIT_KEYS.items()}

    def own_size(img, enc, what):
        return rgb_resized(img, enc, img.shape[:2], 'area', what)  # same size: RGB order only
    mel = make_preprocessor(specs['mel_spectro'])
    mic = MicStream(streams[MIC_TOPIC].msgs if rec.has_mic else [], name)
    obs: Dict[str, List[np.ndarray]] = {k: [] for k in
                                        list(cams) + [x for k in digits for x in (k, f'{k}_background')]
                                        + ['mel_spectro', 'mic', 'state']}
    model: Dict[str, List[np.ndarray]] = {}
    actions, kept = [], []
    dropped = 0
    cache: Dict[Tuple[str, int], np.ndarray] = {}

    def prepared(key, topic, msg, fn):
        k = (key, id(msg))
        if k not in cache:
            cache[k] = fn(image_to_array(msg), msg.encoding)
        return cache[k]
    gripper = 1.0
    for k, (cmd, t) in enumerate(zip(commands.msgs, stamps)):
        samples = {topic: streams[topic].at(int(t)) for topic in REQUIRED_TOPICS if topic != APPLIED_TOPIC}
        if any(v is None for v in samples.values()):
            if kept:
                missing = [tp for tp, v in samples.items() if v is None]
                raise EpisodeError(f'{name}: no {missing} sample before command {len(kept)}')
            dropped += 1
            continue
        try:
            for key, (topic, _) in CAMERA_KEYS.items():
                fn = (lambda img, enc, t=topic: own_size(img, enc, t)) if native else cams[key].prepare
                obs[key].append(prepared(key, topic, samples[topic], fn))
            for key, (topic, bg_topic, _) in DIGIT_KEYS.items():
                p = digits[key]
                fn = (lambda img, enc, t=topic: own_size(img, enc, t)) if native else p.prepare
                obs[key].append(prepared(key, topic, samples[topic], fn))
                bg = ((lambda img, enc, t=bg_topic: own_size(img, enc, t)) if native else
                      (lambda img, enc, p=p: rgb_resized(img, enc, p.size, p.interpolation, 'background')))
                obs[f'{key}_background'].append(prepared(f'{key}_background', bg_topic, samples[bg_topic], bg))
                if with_model_inputs:
                    model.setdefault(key, []).append(np.subtract(obs[key][-1], obs[f'{key}_background'][-1],
                                                                 dtype=np.int16))
            obs['mel_spectro'].append(prepared('mel', MEL_TOPIC, samples[MEL_TOPIC], mel.prepare))
            obs['mic'].append(mic.window(int(t)))
        except FuseError as exc:
            raise EpisodeError(f'{name}: step {len(kept)}: {exc}') from exc
        pose = samples[POSE_TOPIC].pose
        tf = np.eye(4)
        tf[:3, :3] = quaternion_to_rotation([pose.orientation.x, pose.orientation.y, pose.orientation.z,
                                             pose.orientation.w])
        tf[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
        js = samples[JOINTS_TOPIC]
        finger = float(js.position[list(js.name).index('left_finger')]) if 'left_finger' in js.name else 0.0
        lo, hi = FINGER_MIN, FINGER_MAX
        obs['state'].append(np.concatenate([pose_to_bridge_state(tf),
                                            [np.clip((finger - lo) / (hi - lo), 0.0, 1.0)]]).astype(np.float32))
        a = applied_action(cmd, gripper) if labels is None else labels[k]
        gripper = float(a[6])
        actions.append(a)
        kept.append(int(t))
    if len(kept) < 2:
        raise EpisodeError(f'{name}: fewer than 2 steps with every stream present')
    for k in IMAGE_KEYS:
        sizes = sorted({a.shape for a in obs[k]})
        if len(sizes) > 1:
            raise EpisodeError(f'{name}: {k} changes size within the episode {sizes}; export with '
                               'image size model')
    arrays = {k: np.stack(v) for k, v in obs.items()}
    return EpisodeSteps(md, arrays, np.stack(actions), np.asarray(kept, dtype=np.int64),
                        has_mic=rec.has_mic,
                        dropped_leading=dropped,
                        model_inputs={k: np.stack(v) for k, v in model.items()})


def staged_meta(steps: EpisodeSteps) -> dict:
    """What the writers get of an episode's metadata (JSON-able)."""
    md = steps.metadata
    return {'episode_id': md.episode_id, 'instruction': md.instruction, 'task': md.task,
            'seed': md.seed, 'outcome': md.outcome, 'action_source': md.action_source,
            'has_mic': steps.has_mic, 'modalities': dict(md.modalities), 'world': md.world}


def save_staged(steps: EpisodeSteps, path) -> Path:
    """One episode as an .npz the writer subprocesses read (numpy only on both sides)."""
    import json
    path = Path(path)
    meta = staged_meta(steps)
    np.savez(path, action=steps.action, stamps_ns=steps.stamps_ns,
             meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
             **{f'obs_{k}': v for k, v in steps.observations.items()})
    return path


def read_staged(path) -> Tuple[dict, Dict[str, np.ndarray], np.ndarray]:
    import json
    z = np.load(path)
    meta = json.loads(bytes(z['meta']).decode())
    obs = {k[4:]: z[k] for k in z.files if k.startswith('obs_')}
    return meta, obs, z['action']


def staged_files(staged: Path, writer: str) -> List[Path]:
    """The staged episodes of a directory, in order; a writer with none to write exits naming itself."""
    files = sorted(Path(staged).glob('*.npz'))
    if not files:
        raise SystemExit(f'{writer}: no staged episodes in {staged}')
    return files
