"""The open-loop replay check: recorded episodes through the sync node's code into a bundle.

Each episode bag is replayed in stamp order into the sync node's own WindowBuilder (built by
`fuse_core.sync.config.builder_from` from the bundle's manifest, the node's defaults and the
default topics), one window at each applied command's stamp (the tick the recorded action was
executed at), and every window goes through the policy node's own PolicyController
(checks, history masking, receding-horizon execution, gripper binarisation). The first action
of each predicted chunk is compared per dimension with the action the arm applied. Variants
break the preprocessing on purpose (colour order, 0..1 images, no DIGIT background, a silent
microphone) so that a
bundle's sensitivity to exactly the bugs that go unnoticed on a robot is measured, not assumed:
a bundle that scores no worse with a broken pipeline than with the right one is not reading
that input.

With `--describe MODALITIES` (e.g. `tactile`, `audio`) every compared window is also described
by the bundle's generative head from those modalities alone, and the text is compared with the
episode's own modality-specific instruction: exact matches, and how often it names the
property that instruction gives (its words after "that": "feels soft", "beeps") and no other,
split by whether the gripper was closed (touching) at that step and by the expected text.

    ./run.sh replay-check --bundle models/NAME episodes/ [--variants correct,bgr] --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from fuse_core.bundle.outcome import PolicyOutcome
from fuse_core.errors import BundleError, ConfigError, EpisodeError, EvaluationError, FuseError
from fuse_core.gripper import gripper_open

#: Variant -> what it does to the deployed preprocessing (the left column of the report).
VARIANTS: Dict[str, str] = {
    'correct': 'the sync node\'s preprocessing, as deployed',
    'bgr': 'camera images with the colour channels swapped (BGR fed as RGB)',
    'unit_scale': 'camera images divided by 255 (0..1 values in the model\'s input type)',
    'no_background': 'DIGIT frames fed without their background subtracted',
    'silent': 'the microphone spectrogram replaced by that of silence (a dead or muted microphone)',
}
DEFAULT_VARIANTS = ('correct', 'bgr', 'unit_scale', 'no_background', 'silent')
#: The preprocessing op a variant breaks; a bundle without an input of that op is unaffected.
VARIANT_OP = {'bgr': 'rgb_image', 'unit_scale': 'rgb_image', 'no_background': 'tactile_minus_background',
              'silent': 'passthrough'}
REPORT_JSON, REPORT_HTML = 'replay.json', 'replay.html'
DIM_NAMES = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')


@dataclass
class EpisodeReplay:
    """One episode through one variant: per compared step, recorded and predicted actions."""

    episode: str
    variant: str
    instruction: str
    recorded: np.ndarray            # (N, 7) applied actions
    predicted: np.ndarray           # (N, 7) first action of each chunk (gripper as predicted)
    executed_gripper: np.ndarray    # (N,) the controller's binarised gripper
    stamps_ns: np.ndarray           # (N,)
    skipped: Dict[str, int] = field(default_factory=dict)  # controller outcome -> windows
    inference_ms: List[float] = field(default_factory=list)
    expected: Dict[str, str] = field(default_factory=dict)            # modalities -> the episode's text
    descriptions: Dict[str, List[str]] = field(default_factory=dict)  # modalities -> text per compared step


def input_topics(manifest) -> Dict[str, List[str]]:
    """Manifest input -> the recorded topics it needs (sample topic, and background topic)."""
    from fuse_core.sync.config import DEFAULT_STREAMS
    out = {}
    for spec in manifest.inputs:
        if spec.stream not in DEFAULT_STREAMS:
            raise EvaluationError(f'input {spec.name!r} reads stream {spec.stream!r}, which episodes do not '
                                  f'record (recorded streams: {sorted(DEFAULT_STREAMS)})')
        topic, background = DEFAULT_STREAMS[spec.stream]
        out[spec.name] = [topic] + ([background] if spec.preprocess.op == 'tactile_minus_background' else [])
    return out


def check_recording(manifest, bag_dir) -> None:
    """Refuse an episode that lacks a topic one of the bundle's inputs reads, naming the input."""
    from fuse_core.bag.reader import BagReader
    from fuse_core.errors import BagError
    try:
        recorded = set(BagReader(bag_dir).topics)
    except BagError as exc:
        raise EvaluationError(f'{Path(bag_dir).name}: {exc}') from exc
    for name, topics in input_topics(manifest).items():
        missing = [t for t in topics if t not in recorded]
        if missing:
            raise EvaluationError(f'{Path(bag_dir).name}: input {name!r} reads {missing}, which this episode '
                                  'did not record; the bundle does not match the recording')


def applicable_variants(manifest, variants: Sequence[str]):
    """(kept, left out): a variant that breaks an op none of the bundle's inputs uses would
    replay the correct pipeline under another name."""
    ops = {spec.preprocess.op for spec in manifest.inputs}
    out = [v for v in variants if v in VARIANT_OP and VARIANT_OP[v] not in ops]
    return [v for v in variants if v not in out], out


def _variant_transform(manifest, variant: str) -> Callable[[str, np.ndarray], np.ndarray]:
    ops = {spec.name: spec.preprocess.op for spec in manifest.inputs}
    audio = {spec.name for spec in manifest.inputs if spec.stream == 'audio'}

    def correct(name, arr):
        return arr

    def bgr(name, arr):
        return np.ascontiguousarray(arr[..., ::-1]) if ops[name] == 'rgb_image' else arr

    def unit_scale(name, arr):
        if ops[name] != 'rgb_image':
            return arr
        return (arr.astype(np.float32) / 255.0).astype(arr.dtype)

    quiet = 0.0
    if variant == 'silent':  # once per replay: silence is one value, the spectrogram's dB floor
        from fuse_core.audio.config import AudioConfig
        spectrogram = AudioConfig().spectrogram()
        quiet = float(spectrogram(np.zeros(spectrogram.window_samples, np.float32)).flat[0])

    def silent(name, arr):
        return np.full_like(arr, quiet) if name in audio else arr
    # no_background changes what the builder is given (a black background), not the window.
    return {'correct': correct, 'bgr': bgr, 'unit_scale': unit_scale, 'no_background': correct,
            'silent': silent}[variant]


def describe_key(modalities: Sequence[str]) -> str:
    """'audio,tactile' for ['tactile', 'audio']: the canonical name of a modality set."""
    return ','.join(sorted({m.strip().lower() for m in modalities if m.strip()}))


def _episode_text(rec, key: str) -> str:
    """The episode's instruction for a modality set (its metadata's combination, in any order)."""
    for combo, text in (rec.metadata.modalities or {}).items():
        if describe_key(combo.split(',')) == key:
            return text
    return ''


def replay_episode(runner, rec, variant: str = 'correct', describe: Sequence[str] = ()) -> EpisodeReplay:
    """Replay one RecordedEpisode (fuse_core.export.steps.read_episode) through one variant.

    describe: modality sets ('tactile', 'audio,tactile') the generative head describes every
    compared window from (see the module docstring)."""
    from fuse_core.bundle.policy import PolicyConfig, PolicyController, WindowInput
    from fuse_core.export.steps import applied_action
    from fuse_core.images import image_to_array
    from fuse_core.sync.config import DEFAULT_STREAMS, SyncConfig, builder_from, stream_config, stream_defaults

    if variant not in VARIANTS:
        raise EvaluationError(f'unknown variant {variant!r} (variants: {list(VARIANTS)})')
    manifest = runner.manifest
    used = sorted({spec.stream for spec in manifest.inputs})
    streams = {name: stream_config(name, stream_defaults(name)) for name in used}
    builder = builder_from(manifest, SyncConfig(), streams)
    transform = _variant_transform(manifest, variant)
    clock = [0]
    controller = PolicyController(runner, PolicyConfig(), lambda: clock[0])
    try:
        controller.set_instruction(rec.metadata.instruction)
    except FuseError as exc:
        raise EvaluationError(f'{rec.name}: instruction {rec.metadata.instruction!r}: {exc}') from exc
    # Every sample of the used streams, merged in stamp order, fed up to each command's stamp.
    feed = []
    for stream in used:
        topic, bg_topic = DEFAULT_STREAMS[stream]
        s = rec.streams[topic]
        feed += [(t, 0, stream, m) for t, m in zip(s.stamps, s.msgs)]
        if bg_topic and stream in builder.tactile_streams():
            b = rec.streams[bg_topic]
            feed += [(t, 1, stream, m) for t, m in zip(b.stamps, b.msgs)]
    feed.sort(key=lambda x: (x[0], x[1]))
    recorded, predicted, grip, stamps, inference = [], [], [], [], []
    keys = [describe_key(m.split(',')) for m in describe]
    texts: Dict[str, List[str]] = {k: [] for k in keys}
    skipped: Dict[str, int] = {}
    g = manifest.action.gripper_index
    gripper = 1.0
    i = 0
    try:
        for cmd, t in zip(rec.commands, rec.stamps_ns):
            t = int(t)
            while i < len(feed) and feed[i][0] <= t:
                _, is_bg, stream, msg = feed[i]
                img = image_to_array(msg, copy=True)
                if is_bg:
                    if variant == 'no_background':
                        img = np.zeros_like(img)
                    builder.set_background(stream, img, msg.encoding)
                else:
                    try:
                        builder.add_sample(stream, int(feed[i][0]), img, msg.encoding)
                    except FuseError:
                        pass  # counted in the builder's stream stats, masked like the node does
                i += 1
            action = applied_action(cmd, gripper)
            gripper = float(action[6])
            w = builder.build(t)
            win = WindowInput.from_window(w, tensors={x.name: transform(x.name, x.array) for x in w.tensors})
            clock[0] = t
            d = controller.process(win)
            if d.outcome is not PolicyOutcome.COMMAND:
                skipped[d.outcome.value] = skipped.get(d.outcome.value, 0) + 1
                continue
            recorded.append(action)
            predicted.append(np.asarray(d.chunk[0], dtype=np.float32))
            grip.append(float(d.action[g]))
            stamps.append(t)
            inference.append(float(d.inference_ms))
            for k in keys:
                texts[k].append(runner.describe(controller.last_observation, k.split(',')))
    finally:
        controller.close()
    dim = manifest.action.dim
    return EpisodeReplay(rec.name, variant, rec.metadata.instruction,
                         np.asarray(recorded, dtype=np.float32).reshape(-1, 7),
                         np.asarray(predicted, dtype=np.float32).reshape(-1, dim),
                         np.asarray(grip, dtype=np.float32), np.asarray(stamps, dtype=np.int64), skipped, inference,
                         {k: _episode_text(rec, k) for k in keys}, texts)


def _pearson(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    if len(a) < 2 or np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def score(replays: Sequence[EpisodeReplay], std: Sequence[float]) -> dict:
    """Per-dimension figures over every compared step of every episode of one variant.

    nmse: mean over dims 0-5 of the squared error in units of the bundle's action std (the
    training statistics); lower is better, 1 is about as good as predicting the mean.
    """
    rec = np.concatenate([r.recorded for r in replays]) if replays else np.zeros((0, 7), np.float32)
    pred = np.concatenate([r.predicted for r in replays]) if replays else np.zeros((0, 7), np.float32)
    grip = np.concatenate([r.executed_gripper for r in replays]) if replays else np.zeros(0, np.float32)
    skipped: Dict[str, int] = {}
    for r in replays:
        for k, v in r.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    out = {'steps': int(len(rec)), 'episodes': len(replays), 'skipped': skipped, 'dims': {}}
    if not len(rec):
        out.update(nmse=None, gripper_agreement=None)
        return out
    std = np.maximum(np.asarray(std, dtype=np.float64)[:6], 1e-9)
    err = pred[:, :6].astype(np.float64) - rec[:, :6]
    for d in range(6):
        out['dims'][DIM_NAMES[d]] = {'mae': float(np.mean(np.abs(err[:, d]))),
                                     'rmse': float(np.sqrt(np.mean(err[:, d] ** 2))),
                                     'pearson': _pearson(pred[:, d], rec[:, d])}
    out['nmse'] = float(np.mean((err / std) ** 2))
    out['gripper_agreement'] = float(np.mean(gripper_open(grip) == gripper_open(rec[:, 6])))
    inf = np.concatenate([np.asarray(r.inference_ms) for r in replays])
    out['inference_ms_p50'] = float(np.percentile(inf, 50)) if len(inf) else None
    return out


def property_of(text: str) -> str:
    """What an instruction says of its object's property: its words after 'that' ('' if none)."""
    _, sep, tail = text.partition(' that ')
    return tail.strip() if sep else ''


def score_descriptions(replays: Sequence[EpisodeReplay], key: str) -> dict:
    """How the generated descriptions from `key` compare with the episodes' own texts.

    exact: the whole text matches. names_property: the text names the episode's property
    ('feels soft') and no other property that the scored episodes' texts give ('feels springy'):
    a text that names them all names none. Over every described step, split by the recorded
    gripper (closed: touching or holding; open), and per expected text (in the twin, per task).
    Episodes without a text for `key` are left out."""
    props = {property_of(r.expected.get(key, '')) for r in replays} - {''}
    rows = []  # (expected, said, exact, named, closed)
    for r in replays:
        want = r.expected.get(key, '')
        if not want:
            continue
        prop = property_of(want)
        others = [o for o in props if o != prop and o not in prop]
        for text, action in zip(r.descriptions.get(key, []), r.recorded):
            named = bool(prop) and prop in text and not any(o in text for o in others)
            rows.append((want, text, text == want, named, not gripper_open(float(action[6]))))

    def rate(sel):
        sel = list(sel)
        said: Dict[str, int] = {}
        for row in sel:
            said[row[1]] = said.get(row[1], 0) + 1
        return {'steps': len(sel), 'exact': float(np.mean([row[2] for row in sel])) if sel else None,
                'names_property': float(np.mean([row[3] for row in sel])) if sel else None,
                'most_said': sorted(said.items(), key=lambda kv: -kv[1])[:3]}
    out = {'modalities': key, 'properties': sorted(props), 'all': rate(rows),
           'gripper_closed': rate(row for row in rows if row[4]),
           'gripper_open': rate(row for row in rows if not row[4]),
           'by_expected': {}}
    for want in sorted({row[0] for row in rows}):
        mine = [row for row in rows if row[0] == want]
        out['by_expected'][want] = dict(rate(mine),
                                        gripper_closed=rate(row for row in mine if row[4])['names_property'],
                                        gripper_open=rate(row for row in mine if not row[4])['names_property'])
    out['most_said'] = out['all']['most_said']
    return out


def run(bundle_path: str, episodes: Sequence[Path], variants: Sequence[str] = DEFAULT_VARIANTS,
        outcomes: Optional[Sequence[str]] = ('success',), threads: int = 2,
        progress: Callable[[str], None] = print, roots: Sequence[Path] = (), describe: Sequence[str] = ()) -> dict:
    """Replay every episode through every variant; returns the report (see write_report).

    A relative bundle_path is looked up under `roots`, then the current directory."""
    from fuse_core.bundle import load_bundle, resolve_bundle_path
    from fuse_core.bundle.runner import PolicyRunner
    from fuse_core.export.steps import APPLIED_TOPIC, read_episode
    for v in variants:
        if v not in VARIANTS:
            raise EvaluationError(f'unknown variant {v!r} (variants: {list(VARIANTS)})')
    try:
        path = resolve_bundle_path(bundle_path, roots)
        bundle = load_bundle(path, threads=threads)
    except (BundleError, ConfigError) as exc:
        raise EvaluationError(f'bundle {bundle_path!r}: {exc}') from exc
    manifest = bundle.manifest
    if describe and 'generative' not in bundle.sessions:
        raise EvaluationError(f'bundle {bundle_path!r} has no generative head: nothing to --describe with')
    known = {describe_key(k) for k in bundle.modality_index if k}
    wrong = [m for m in describe if describe_key(m.split(',')) not in known]
    if wrong:
        raise EvaluationError(f'--describe {wrong}: not a combination the bundle\'s head knows ({sorted(known)})')
    variants, inapplicable = applicable_variants(manifest, variants)
    if inapplicable:
        progress(f'[replay] left out {inapplicable}: the bundle has no input they change '
                 f'(its preprocessing ops: {sorted({spec.preprocess.op for spec in manifest.inputs})})')
    topics = sorted({t for ts in input_topics(manifest).values() for t in ts} | {APPLIED_TOPIC})
    for ep in episodes:  # all refusals before the first inference
        check_recording(manifest, ep)
    runner = PolicyRunner(bundle)
    per_variant: Dict[str, List[EpisodeReplay]] = {v: [] for v in variants}
    unusable: Dict[str, str] = {}
    t0 = time.monotonic()
    for k, ep in enumerate(episodes):
        try:
            rec = read_episode(ep, outcomes=outcomes, topics=topics)
        except EpisodeError as exc:
            unusable[Path(ep).name] = str(exc)
            progress(f'[replay] skipped {exc}')
            continue
        for v in variants:
            per_variant[v].append(replay_episode(runner, rec, v, describe))
        progress(f'[replay] {k + 1}/{len(episodes)} {rec.name}: {len(rec.stamps_ns)} steps '
                 + ' '.join(f'{v} nmse {_fmt(score(per_variant[v][-1:], manifest.action.normalization.std)["nmse"])}'
                            for v in variants)
                 + f' ({time.monotonic() - t0:.0f} s)')
    std = manifest.action.normalization.std
    return {'bundle': str(path), 'bundle_name': manifest.name, 'variants': list(variants),
            'variant_descriptions': {v: VARIANTS[v] for v in variants}, 'variants_left_out': inapplicable,
            'episodes': [r.episode for r in per_variant[variants[0]]] if variants else [],
            'unusable': unusable, 'action_std': [float(x) for x in std],
            'scores': {v: score(per_variant[v], std) for v in variants},
            'descriptions': {v: {describe_key(m.split(',')): score_descriptions(per_variant[v],
                                                                                 describe_key(m.split(',')))
                                 for m in describe} for v in variants} if describe else {},
            'per_episode': {v: [{'episode': r.episode, 'instruction': r.instruction,
                                 **{k: s for k, s in score([r], std).items() if k in ('steps', 'nmse',
                                                                                      'gripper_agreement',
                                                                                      'skipped')},
                                 'recorded': r.recorded.round(5).tolist(), 'predicted': r.predicted.round(5).tolist(),
                                 **({'expected': r.expected, 'descriptions': r.descriptions} if describe else {})}
                                for r in per_variant[v]] for v in variants}}


def _fmt(x, digits: int = 3) -> str:
    return '-' if x is None or (isinstance(x, float) and math.isnan(x)) else f'{x:.{digits}f}'


def table(report: dict) -> str:
    """The variants side by side as plain text (what the command prints)."""
    lines = [f'{"variant":<14} {"steps":>6} {"nmse":>8} {"gripper":>8}  '
             + ' '.join(f'{"r " + d:>9}' for d in DIM_NAMES[:6]) + '  skipped']
    for v in report['variants']:
        s = report['scores'][v]
        r = [_fmt((s['dims'].get(d) or {}).get('pearson'), 2) for d in DIM_NAMES[:6]]
        lines.append(f'{v:<14} {s["steps"]:>6} {_fmt(s["nmse"]):>8} {_fmt(s["gripper_agreement"], 2):>8}  '
                     + ' '.join(f'{x:>9}' for x in r) + '  ' + (json.dumps(s['skipped']) if s['skipped'] else '-'))
    for v, per_key in report.get('descriptions', {}).items():
        for key, d in per_key.items():
            named = {k: _fmt(d[k]['names_property'], 2) for k in ('all', 'gripper_closed', 'gripper_open')}
            lines.append(f'describe from {key:<8} {v:<14} names the property: all {named["all"]}'
                         f' ({d["all"]["steps"]} steps), gripper closed {named["gripper_closed"]}'
                         f', open {named["gripper_open"]}; exact {_fmt(d["all"]["exact"], 2)};'
                         f' most said: {d["most_said"][0][0] if d["most_said"] else "-"!r}')
    return '\n'.join(lines)


def write_report(report: dict, out: Path) -> None:
    from fuse_core.evaluation.html import replay_page
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1) + '\n')
    (out / REPORT_HTML).write_text(replay_page(report))


def main(argv: Optional[List[str]] = None, roots: Sequence[Path] = ()) -> int:
    from fuse_core.export.cli import find_episodes
    p = argparse.ArgumentParser(prog='fuse replay-check', description=(
        'Open-loop replay check: feed recorded episodes through the sync node\'s preprocessing into a '
        'bundle and compare its actions with the recorded ones, per variant of the preprocessing.'))
    p.add_argument('episodes', nargs='+', type=Path, help='episode bags, or directories of them')
    p.add_argument('--bundle', required=True, help='model bundle directory')
    p.add_argument('--variants', default=','.join(DEFAULT_VARIANTS),
                   help=f'comma-separated, from {list(VARIANTS)} (default: all)')
    p.add_argument('--outcomes', default='success',
                   help='episode outcomes replayed, comma-separated (default success; "any" = all)')
    p.add_argument('--out', type=Path, help='report directory (replay.json, replay.html)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    p.add_argument('--threads', type=int, default=2, help='ONNX Runtime threads')
    p.add_argument('--describe', action='append', default=[], metavar='MODALITIES',
                   help='also describe every window from these modalities (e.g. tactile, audio, tactile,audio) '
                        'with the generative head, against the episodes\' own texts; repeatable')
    a = p.parse_args(argv)
    variants = [v.strip() for v in a.variants.split(',') if v.strip()]
    outcomes = None if a.outcomes == 'any' else [o.strip() for o in a.outcomes.split(',') if o.strip()]
    try:
        if a.out is not None and a.out.exists() and any(a.out.iterdir()) and not a.overwrite:
            raise EvaluationError(f'{a.out} exists and is not empty (use --overwrite)')
        episodes = find_episodes(a.episodes)
        if not episodes:
            raise EvaluationError(f'no episode bags in {[str(x) for x in a.episodes]}')
        report = run(a.bundle, episodes, variants, outcomes, a.threads, roots=roots, describe=a.describe)
    except (EvaluationError, EpisodeError) as exc:
        print(f'[replay] error: {exc}', file=sys.stderr)
        return 2
    print(table(report))
    if not report['episodes']:
        print('[replay] error: no episode could be replayed', file=sys.stderr)
        return 1
    if a.out is not None:
        if a.out.exists() and a.overwrite:
            shutil.rmtree(a.out)
        write_report(report, a.out)
        print(f'[replay] report: {a.out / REPORT_HTML}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
