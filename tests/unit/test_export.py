"""Dataset export: steps from episode bags, the sync node's preprocessing, bad episodes named and
skipped, and both formats reloaded with their own libraries (tensorflow_datasets, lerobot)."""

from __future__ import annotations

import numpy as np
import pytest

from fuse_core.bundle.manifest import FUSE_OBSERVATION_INPUTS
from fuse_core.errors import EpisodeError
from fuse_core.export import cli
from fuse_core.export.steps import MIC_RATE_HZ, MIC_SAMPLES, load_steps
from support.episode_bags import RED_CUBE, T0, ee_x, make_episode_bag, mic_ramp


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('episodes')
    good = [make_episode_bag(root, f'ep_{i}', steps=8 + i, seed=i,
                             instruction=['pick up the red cube', 'press the button'][i % 2]) for i in range(2)]
    return root, good


def test_steps_keys_shapes_dtypes_and_actions(bags):
    _, good = bags
    s = load_steps(good[0])
    assert s.num_steps == 8 and s.dropped_leading == 0 and s.has_mic
    shapes = {k: (v.shape[1:], v.dtype) for k, v in s.observations.items()}
    assert shapes == {'image_0': ((256, 256, 3), np.uint8), 'image_1': ((128, 128, 3), np.uint8),
                      'digit_0': ((224, 224, 3), np.uint8), 'digit_1': ((224, 224, 3), np.uint8),
                      'digit_0_background': ((224, 224, 3), np.uint8),
                      'digit_1_background': ((224, 224, 3), np.uint8),
                      'mel_spectro': ((128, 128), np.float32), 'mic': ((13230,), np.float32),
                      'state': ((7,), np.float32)}
    assert s.action.shape == (8, 7) and s.action.dtype == np.float32
    np.testing.assert_allclose(s.action[0], [0.01, 0.0, 0.001, 0, 0, 0, 1.0], atol=1e-7)
    np.testing.assert_allclose(s.action[3], [0, 0, 0, 0, 0, 0, 1.0])  # the hold: no motion
    assert s.action[7, 6] == 0.0
    assert s.observations['state'][0][6] == pytest.approx(1.0)  # fingers fully open
    np.testing.assert_allclose(s.observations['state'][:, 3:6], 0.0, atol=1e-6)  # gripper down


def expected_mic(t_ns, lost=()):
    """The synthetic microphone's window for a step at t_ns: the samples up to the newest one
    captured at or before t_ns (sample i at T0 + i / 44.1 kHz), zeros before the first and where lost."""
    newest = (int(t_ns) - T0) * MIC_RATE_HZ // 10**9
    index = np.arange(newest - MIC_SAMPLES + 1, newest + 1)
    chunk = index // (MIC_RATE_HZ // 10)
    keep = (index >= 0) & ~np.isin(chunk, list(lost))
    return np.where(keep, mic_ramp(np.maximum(index, 0)), 0).astype(np.float32)


def test_mic_is_the_waveform_up_to_each_step(tmp_path, bags):
    """FuSe's `mic`: 0.3 s at 44.1 kHz ending with the latest sample at or before the step."""
    assert (MIC_RATE_HZ, MIC_SAMPLES) == (44100, 13230)
    s = load_steps(bags[1][0])
    for i, t in enumerate(s.stamps_ns):
        np.testing.assert_array_equal(s.observations['mic'][i], expected_mic(t))
    # The first step, 50 ms in, has 2206 samples (2205 / 44100 s after the first): zeros before them.
    first = s.observations['mic'][0]
    assert np.count_nonzero(first[:MIC_SAMPLES - 2206]) == 0 and first[-1] == mic_ramp(2205)
    # Lost input (a chunk never sent: a gap in the sample indices) is zeros at its place.
    lost = load_steps(make_episode_bag(tmp_path, 'lost_chunk', steps=8, mic_lost=(5,)))
    for i, t in enumerate(lost.stamps_ns):
        np.testing.assert_array_equal(lost.observations['mic'][i], expected_mic(t, lost=(5,)))
    assert lost.has_mic and np.count_nonzero(lost.observations['mic'][3]) < np.count_nonzero(s.observations['mic'][3])
    # Recorded without a microphone: zeros, and has_mic false (FuSe's mask).
    quiet = load_steps(make_episode_bag(tmp_path, 'no_mic', steps=4, skip_topics=('/audio/chunk',)))
    assert not quiet.has_mic and quiet.observations['mic'].shape == (4, MIC_SAMPLES)
    assert np.count_nonzero(quiet.observations['mic']) == 0
    # Audio the mic key cannot hold is named.
    with pytest.raises(EpisodeError, match='mic_48k: audio chunk 0 is at 48000 Hz; the mic key is 13230 '
                                           'samples at 44100 Hz'):
        load_steps(make_episode_bag(tmp_path, 'mic_48k', steps=4, mic_rate=48000))
    with pytest.raises(EpisodeError, match='mic_back: audio chunk 3 starts at sample 8820, before the end of '
                                           'the one before \\(13230\\): the audio clock went back'):
        load_steps(make_episode_bag(tmp_path, 'mic_back', steps=4, mic_index_back_at=3))


def test_export_observations_equal_the_sync_nodes_model_inputs(bags):
    """Replay one episode through the sync core (WindowBuilder, what sync_node runs) and the exporter."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from fuse_core.bag import BagReader
    from fuse_core.sync.window import WindowBuilder, stream_settings
    from fuse_nodes.conversions import image_to_array
    _, good = bags
    s = load_steps(good[0], with_model_inputs=True)
    streams = {'/camera_primary/image_raw': 'camera_primary', '/camera_wrist/image_raw': 'camera_wrist',
               '/digit_left/image_raw': 'digit_left', '/digit_right/image_raw': 'digit_right',
               '/audio/mel_spectrogram': 'audio'}
    wb = WindowBuilder(FUSE_OBSERVATION_INPUTS, stream_settings({n: 10.0 for n in streams.values()}, 10.0),
                       window_size=1, control_rate_hz=5.0)
    r = BagReader(good[0])
    msgs = list(r.messages(list(streams) + ['/digit_left/background', '/digit_right/background']))
    for m in msgs:
        if m.topic.endswith('/background'):
            img = deserialize_message(m.data, Image)
            wb.set_background(m.topic.split('/')[1], image_to_array(img), img.encoding)
    feed = [m for m in msgs if m.topic in streams]
    j = 0
    for i, t in enumerate(s.stamps_ns):
        while j < len(feed):
            img = deserialize_message(feed[j].data, Image)
            stamp = img.header.stamp.sec * 10**9 + img.header.stamp.nanosec
            if stamp > t:
                break
            wb.add_sample(streams[feed[j].topic], stamp, image_to_array(img), img.encoding)
            j += 1
        win = wb.build(int(t))
        np.testing.assert_array_equal(win.tensor('image_primary').array[-1], s.observations['image_0'][i])
        np.testing.assert_array_equal(win.tensor('image_wrist').array[-1], s.observations['image_1'][i])
        np.testing.assert_array_equal(win.tensor('image_digit_left').array[-1], s.model_inputs['digit_0'][i])
        np.testing.assert_array_equal(win.tensor('image_digit_right').array[-1], s.model_inputs['digit_1'][i])
        np.testing.assert_array_equal(win.tensor('mel_spectro').array[-1], s.observations['mel_spectro'][i])
    assert s.stamps_ns[0] > T0


def test_bad_episodes_are_named_and_skipped_or_refused(tmp_path, bags):
    _, good = bags
    missing = make_episode_bag(tmp_path, 'no_wrist', steps=4, skip_topics=('/camera_wrist/image_raw',))
    jump = make_episode_bag(tmp_path, 'jumpy', steps=6, clock_jump_at=3)
    cut = make_episode_bag(tmp_path, 'cut', steps=4)
    (cut / 'metadata.yaml').unlink()  # a recording whose bag was never closed
    discard = make_episode_bag(tmp_path, 'thrown', steps=4, outcome='discard')
    with pytest.raises(EpisodeError, match='no_wrist: .*camera_wrist'):
        load_steps(missing)
    with pytest.raises(EpisodeError, match='jumpy: clock jump between commands 2 and 3'):
        load_steps(jump)
    with pytest.raises(EpisodeError, match='cut: status interrupted'):
        load_steps(cut)
    with pytest.raises(EpisodeError, match="thrown: outcome 'discard'"):
        load_steps(discard)
    # --strict refuses the whole export before anything is written.
    out = tmp_path / 'ds'
    with pytest.raises(EpisodeError, match='no_wrist'):
        cli.export([good[0], missing], 'rlds', out, strict=True)
    assert not out.exists()
    # A non-empty output directory is refused unless asked to overwrite.
    out.mkdir()
    (out / 'keep.txt').write_text('x')
    with pytest.raises(EpisodeError, match='refusing to overwrite'):
        cli.export([good[0]], 'rlds', out)
    with pytest.raises(EpisodeError, match='no episode to export'):
        cli.export([missing, jump], 'rlds', tmp_path / 'ds2')
    assert cli.find_episodes([tmp_path]) == sorted([missing, jump, cut, discard])


def test_image_size_native_keeps_each_sensor_s_resolution(tmp_path):
    bag = make_episode_bag(tmp_path, 'small_cams', steps=4, cam_size=(120, 160))
    model = load_steps(bag)
    native = load_steps(bag, image_size='native')
    shapes = lambda s: {k: s.observations[k].shape[1:] for k in s.observations}  # noqa: E731
    assert shapes(model)['image_0'] == (256, 256, 3) and shapes(model)['digit_0'] == (224, 224, 3)
    assert shapes(native) == {'image_0': (120, 160, 3), 'image_1': (120, 160, 3),
                              'digit_0': (240, 320, 3), 'digit_1': (240, 320, 3),
                              'digit_0_background': (240, 320, 3), 'digit_1_background': (240, 320, 3),
                              'mel_spectro': (128, 128), 'mic': (13230,), 'state': (7,)}
    assert native.observations['image_0'].dtype == np.uint8
    # Native is the recorded frame in RGB: resized as the sync node resizes, it is the model's image.
    from fuse_core.sync.preprocess import make_preprocessor, resize
    spec = {i['name']: i for i in FUSE_OBSERVATION_INPUTS}['image_primary']
    pre = make_preprocessor(spec)
    np.testing.assert_array_equal(resize(native.observations['image_0'][0], pre.size, pre.interpolation),
                                  model.observations['image_0'][0])
    np.testing.assert_array_equal(native.action, model.action)
    np.testing.assert_array_equal(native.observations['state'], model.observations['state'])
    with pytest.raises(EpisodeError, match="image size 'huge' is not one of"):
        load_steps(bag, image_size='huge')
    with pytest.raises(EpisodeError, match='model inputs need image_size model'):
        load_steps(bag, image_size='native', with_model_inputs=True)
    # One dataset has one size per key: an episode of another native size is named.
    other = make_episode_bag(tmp_path, 'big_cams', steps=4, seed=1)
    with pytest.raises(EpisodeError, match=r'big_cams: native image sizes differ.*image_0.*320x240 '
                                           r'\(first episode 160x120\)'):
        cli.export([bag, other], 'lerobot', tmp_path / 'ds', strict=True, image_size='native')
    with pytest.raises(EpisodeError, match="unknown image size 'x'"):
        cli.export([bag], 'lerobot', tmp_path / 'ds', image_size='x')


needs_datasets = pytest.mark.skipif(cli.datasets_python() is None,
                                    reason='the dataset libraries are not installed (./setup.sh --datasets)')


@needs_datasets
@pytest.mark.parametrize('fmt', ['rlds', 'lerobot'])
def test_export_reloads_with_the_ecosystems_own_reader(tmp_path, bags, fmt):
    root, good = bags
    skipped = make_episode_bag(tmp_path, 'no_mel', steps=4, skip_topics=('/audio/mel_spectrogram',))
    quiet = make_episode_bag(tmp_path, 'no_mic', steps=5, seed=5, skip_topics=('/audio/chunk',))
    out = tmp_path / fmt
    logs = []
    summary = cli.export(cli.find_episodes([root]) + [skipped, quiet], fmt, out, log=logs.append)
    assert summary['episodes'] == 3 and summary['steps'] == 22 and summary['with_mic'] == 2
    assert len(summary['skipped']) == 1 and 'no_mel' in summary['skipped'][0]
    # What the ecosystem's own reader read back (tfds.builder_from_directory / LeRobotDataset),
    # in the writer's subprocess after the dataset was written.
    check = summary['reloaded']
    if fmt == 'rlds':
        assert (out / 'fuse_episodes' / '1.0.0' / 'dataset_info.json').is_file() and \
            summary['dataset'] == str(out / 'fuse_episodes' / '1.0.0')
    eps = sorted(check['episodes'], key=lambda e: e['steps'])
    assert [e['steps'] for e in eps] == [5, 8, 9]
    assert [e['instruction'] for e in eps] == ['pick up the red cube', 'pick up the red cube', 'press the button']
    for e, bag in zip(eps, [quiet] + good):
        s = load_steps(bag)
        np.testing.assert_allclose(np.asarray(e['actions']), s.action, atol=1e-7)
        first = s.observations['image_0'][0].reshape(-1)[:64].tolist()
        assert e['image_0_first'] == first  # uint8 images arrive unchanged
        assert e['mic_last'] == s.observations['mic'][-1][-64:].tolist()  # float32 samples unchanged
    assert set(eps[0]['mic_last']) == {0.0} and len(set(eps[1]['mic_last'])) == 64
    if fmt == 'rlds':
        obs = eps[0]['observation']
        assert obs['image_0'] == [[256, 256, 3], 'uint8'] and obs['digit_1_background'] == [[224, 224, 3], 'uint8']
        assert obs['mel_spectro'] == [[128, 128], 'float32'] and obs['state'] == [[7], 'float32']
        assert obs['mic'] == [[13230], 'float32']
        assert eps[1]['is_first'] == 1 and eps[1]['is_last_at_end'] and eps[1]['has_mic']
        assert not eps[0]['has_mic']
    else:
        assert check['fps'] == 5 and check['codebase_version'].startswith('v3')
        assert sorted(check['tasks']) == ['pick up the red cube', 'press the button']
        obs = eps[0]['observation']
        assert obs['observation.images.image_0'][0] == [3, 256, 256]
        assert obs['observation.state'] == [[7], 'torch.float32']
        assert obs['observation.mic'] == [[13230], 'torch.float32']


def test_lerobot_writer_pools_the_audio_statistics_and_passes_the_rest_on():
    """The datasets venv is optional, so lerobot's own functions are stood in for here."""
    from fuse_core.export.lerobot_writer import POOLED_KEYS, pooled_episode_stats
    seen = []

    def per_element(data, features, quantile_list=None):
        seen.append(sorted(data))
        return {k: {'mean': np.mean(v, axis=0), 'count': np.array([len(v)])} for k, v in data.items()}

    def feature_stats(array, axis, keepdims, quantile_list=None):
        assert array.ndim == 2 and array.shape[1] == 1 and axis == 0   # one pooled column
        return {'mean': array.mean(axis=0), 'max': array.max(axis=0), 'count': np.array([array.shape[0]])}

    rng = np.random.default_rng(0)
    data = {'observation.mic': rng.normal(size=(5, MIC_SAMPLES)).astype(np.float32),
            'observation.mel_spectro': rng.normal(size=(5, 128, 30)).astype(np.float32),
            'action': rng.normal(size=(5, 7)).astype(np.float32)}
    stats = pooled_episode_stats(per_element, feature_stats)(data, {})
    assert seen == [['action']] and set(POOLED_KEYS) <= set(stats)
    np.testing.assert_allclose(stats['action']['mean'], data['action'].mean(axis=0))
    mic = stats['observation.mic']
    assert mic['mean'].shape == (MIC_SAMPLES,) and mic['count'].tolist() == [5]
    np.testing.assert_allclose(mic['mean'], data['observation.mic'].mean(), rtol=1e-5)
    np.testing.assert_allclose(mic['max'], data['observation.mic'].max())
    assert stats['observation.mel_spectro']['max'].shape == (128, 30)


def test_relabel_expert_gives_the_twin_experts_actions_in_the_states_reached(tmp_path):
    """DAgger: --relabel expert replaces each step's applied command by what the scripted expert
    commands in the state the episode reached (the latest /world/task_state and /arm/status at or
    before the step), replayed in order, bounded as the arm's safety filter bounds a step (per
    axis 5 cm, then 5 cm in all at 0.25 m/s and 5 Hz); the observations stay as they were."""
    from fuse_sim.expert import APPROACH_Z, ExpertObservation, ScriptedExpert
    from fuse_sim.relabel import ExpertRelabel
    from fuse_sim.tasks import VisibleObject
    bag = make_episode_bag(tmp_path, 'policy_ep', steps=6, outcome='failure', expert_topics=True)
    applied = load_steps(bag, outcomes=None)
    s = load_steps(bag, outcomes=None, relabel=ExpertRelabel())
    assert s.metadata.action_source == 'expert, relabelled by expert'
    for key, v in applied.observations.items():
        np.testing.assert_array_equal(s.observations[key], v)
    expert = ScriptedExpert('pick_cube')
    objects = {'cube_0': VisibleObject('cube_0', np.array(RED_CUBE), 'red'),
               'cube_1': VisibleObject('cube_1', np.array([0.3, -0.1, 0.02]), 'blue')}
    for i, t in enumerate(s.stamps_ns):
        k = 2 * i                         # the sensor tick at or before the step (50 ms before it)
        assert T0 + k * 100_000_000 <= t < T0 + (k + 1) * 100_000_000
        obs = ExpertObservation(ee_xyz=np.array([ee_x(k), 0.0, 0.15]), gripper_opening=0.037, objects=objects,
                                instruction='pick up the red cube', target_xyz=np.array([ee_x(k) + 0.01, 0.0, 0.15]))
        a = expert.act(obs)
        norm = np.linalg.norm(a[:3])
        np.testing.assert_allclose(s.action[i, :3], a[:3] * min(1.0, 0.05 / norm), atol=1e-6)
        np.testing.assert_allclose(s.action[i, 3:], a[3:], atol=1e-6)
    # Towards the red cube's approach point from the commanded target: per axis at most 5 cm
    # (x: 9 cm to go), then the whole step scaled to 5 cm.
    wanted = np.array([0.05, RED_CUBE[1], APPROACH_Z - 0.15])
    np.testing.assert_allclose(s.action[0, :3], wanted * 0.05 / np.linalg.norm(wanted), atol=1e-6)
    assert np.linalg.norm(s.action[:, :3], axis=1).max() <= 0.05 + 1e-6
    assert not np.allclose(s.action, applied.action)


def test_relabel_gives_each_step_the_status_from_before_its_own_command(tmp_path, monkeypatch):
    """In lockstep the arm can publish a status with a command's own stamp that already counts it
    (its target already holds the motion being labelled): the expert is replayed on the latest
    status that does not count the command yet, as its sender read, so those statuses change no
    label; read at or before the stamp, they would."""
    from fuse_core.export.steps import read_episode
    from fuse_sim.relabel import TASK_TOPIC, STATUS_TOPIC, ExpertRelabel, status_before_each_command
    plain = make_episode_bag(tmp_path, 'plain', steps=6, outcome='failure', expert_topics=True)
    raced = make_episode_bag(tmp_path, 'raced', steps=6, outcome='failure', expert_topics=True,
                             status_after_commands=True)
    rec = read_episode(raced, outcomes=None, topics=[TASK_TOPIC, STATUS_TOPIC])
    chosen = status_before_each_command(rec)
    applied_before = 0
    for i, (t, cmd, st) in enumerate(zip(rec.stamps_ns, rec.commands, chosen)):
        assert st.commands_applied == applied_before, i
        assert rec.streams[STATUS_TOPIC].at(int(t)).commands_applied == applied_before + (not cmd.hold), i
        applied_before += 0 if cmd.hold else 1
    expected = load_steps(plain, outcomes=None, relabel=ExpertRelabel()).action
    np.testing.assert_allclose(load_steps(raced, outcomes=None, relabel=ExpertRelabel()).action, expected)
    # The statuses at the commands' stamps are far ahead: read at or before the stamp, they would
    # have given other labels (the target 20 cm past the approach point: the expert steps back).
    def at_or_before(r):
        return [r.streams[STATUS_TOPIC].at(int(t)) for t in r.stamps_ns]
    assert at_or_before(rec)[0].target_pose.position.x > chosen[0].target_pose.position.x + 0.1
    from fuse_sim import relabel as relabel_module
    monkeypatch.setattr(relabel_module, 'status_before_each_command', at_or_before)
    wrong = load_steps(raced, outcomes=None, relabel=ExpertRelabel()).action
    assert np.abs(wrong[:, 0] - expected[:, 0]).max() > 0.01


def test_relabel_status_choice_follows_the_arms_count_when_it_runs_ahead():
    """Only a status with the command's own stamp that counts the command is passed over; the count
    expected before a command is at least that of the latest status stamped before it, so an
    applied motion missing from the recording (the arm's count runs ahead) does not make a status
    from before the next command look as if it counted that command."""
    from types import SimpleNamespace as NS
    from fuse_sim.relabel import STATUS_TOPIC, status_before_each_command
    # commands at 10, 20, 30; the arm counted one motion the recording lacks between 10 and 15
    stamps, counts = [0, 15, 20, 25, 30], [5, 7, 7, 8, 9]
    msgs = [NS(commands_applied=c, name=f's{t}') for t, c in zip(stamps, counts)]
    rec = NS(streams={STATUS_TOPIC: NS(stamps=stamps, msgs=msgs)}, stamps_ns=np.array([10, 20, 30]),
             commands=[NS(hold=False)] * 3)
    # s20 (7) is from before the command at 20 (counting from the commands alone would expect 6
    # and pass it over); s30 (9) already counts the command at 30, so s25 is read there.
    assert [m.name for m in status_before_each_command(rec)] == ['s0', 's20', 's25']


def test_relabel_refuses_what_the_expert_cannot_label(tmp_path):
    from fuse_sim.relabel import ExpertRelabel
    with pytest.raises(EpisodeError, match=r"no_state.*/world/task_state"):
        load_steps(make_episode_bag(tmp_path, 'no_state', steps=4), outcomes=None, relabel=ExpertRelabel())
    robot = make_episode_bag(tmp_path, 'on_robot', steps=4, expert_topics=True, world='robot')
    with pytest.raises(EpisodeError, match="on_robot: world 'robot': only twin episodes can be relabelled"):
        load_steps(robot, outcomes=None, relabel=ExpertRelabel())
    # fuse_core knows no relabeller itself: `./run.sh export` hands it the twin's.
    with pytest.raises(SystemExit):
        cli.main([str(robot), '--format', 'lerobot', '--out', str(tmp_path / 'out'), '--relabel', 'expert'])
    with pytest.raises(SystemExit):
        cli.main([str(robot), '--format', 'lerobot', '--out', str(tmp_path / 'out'), '--relabel', 'oracle'],
                 relabellers={'expert': ExpertRelabel})
