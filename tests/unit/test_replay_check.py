"""The open-loop replay check: recorded episodes through the sync node's code into a bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fuse_core.bundle import load_bundle, resolve_bundle_path
from fuse_core.bundle.runner import Observation, PolicyRunner
from fuse_core.errors import EvaluationError
from fuse_core.evaluation import replay
from fuse_core.export.steps import load_steps, read_episode
from support.episode_bags import make_episode_bag

STEPS = 8


@pytest.fixture(scope='module')
def episode(tmp_path_factory):
    return make_episode_bag(tmp_path_factory.mktemp('episodes'), 'ep_0', steps=STEPS, seed=3)


@pytest.fixture(scope='module')
def runner():
    return PolicyRunner(load_bundle(resolve_bundle_path('models/reference')))


def test_replayed_windows_give_the_chunks_of_the_exported_model_inputs(runner, episode):
    """The builder-made windows (sync node code) and the exporter's model inputs are the same
    observations: the replay's predictions equal a direct inference on the exported steps."""
    rec = read_episode(episode)
    result = replay.replay_episode(runner, rec, 'correct')
    assert len(result.predicted) == STEPS and not result.skipped
    np.testing.assert_allclose(result.recorded, load_steps(episode).action)
    steps = load_steps(episode, with_model_inputs=True)
    inputs = {'image_primary': steps.observations['image_0'], 'image_wrist': steps.observations['image_1'],
              'image_digit_left': steps.model_inputs['digit_0'], 'image_digit_right': steps.model_inputs['digit_1'],
              'mel_spectro': steps.observations['mel_spectro']}
    runner.set_instruction(rec.metadata.instruction)
    for k in range(STEPS):
        idx = [max(k - 1, 0), k]
        obs = Observation({n: v[idx] for n, v in inputs.items()}, np.array([k > 0, True]))
        expected = runner.infer(obs, reuse_encodings=False).actions[0]
        np.testing.assert_allclose(result.predicted[k], expected, atol=1e-5, err_msg=f'step {k}')


def test_each_broken_preprocessing_changes_the_predictions(runner, episode):
    rec = read_episode(episode)
    correct = replay.replay_episode(runner, rec, 'correct').predicted
    again = replay.replay_episode(runner, rec, 'correct').predicted
    np.testing.assert_array_equal(correct, again)
    for variant in ('bgr', 'unit_scale', 'no_background', 'silent'):
        broken = replay.replay_episode(runner, rec, variant).predicted
        assert broken.shape == correct.shape
        assert np.max(np.abs(broken - correct)) > 1e-4, variant


def test_score_per_dimension_against_a_hand_computation():
    rec = np.zeros((4, 7), np.float32)
    rec[:, 0] = [0.0, 1.0, 2.0, 3.0]
    rec[:, 6] = [1, 1, 0, 0]
    pred = rec.copy()
    pred[:, 0] += 0.5
    pred[:, 1] = 0.2
    r = replay.EpisodeReplay('e', 'correct', 'x', rec, pred, np.array([1, 0, 0, 0], np.float32),
                             np.arange(4), {'stale': 2}, [1.0] * 4)
    s = replay.score([r], [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert s['steps'] == 4 and s['skipped'] == {'stale': 2}
    assert s['dims']['dx']['mae'] == pytest.approx(0.5)
    assert s['dims']['dx']['pearson'] == pytest.approx(1.0)
    assert s['dims']['dy']['rmse'] == pytest.approx(0.2)
    assert s['dims']['dy']['pearson'] is None  # constant prediction: no correlation
    assert s['nmse'] == pytest.approx((1.0 + 0.04) / 6)  # dx err 0.5/0.5 = 1, dy 0.2^2
    assert s['gripper_agreement'] == pytest.approx(0.75)


def test_a_bundle_input_the_recording_lacks_is_refused_naming_it(tmp_path):
    bag = make_episode_bag(tmp_path, 'no_wrist', steps=4, skip_topics=('/camera_wrist/image_raw',))
    with pytest.raises(EvaluationError, match="input 'image_wrist' reads .*/camera_wrist/image_raw"):
        replay.run('models/reference', [bag], ['correct'], progress=lambda s: None)


def test_unknown_variant_is_refused(episode):
    with pytest.raises(EvaluationError, match="unknown variant 'grey'"):
        replay.run('models/reference', [episode], ['correct', 'grey'], progress=lambda s: None)


def test_command_writes_the_report_and_refuses_an_existing_directory(episode, tmp_path, capsys):
    out = tmp_path / 'replay'
    rc = replay.main([str(episode.parent), '--bundle', 'models/reference', '--variants', 'correct,bgr',
                      '--out', str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert 'correct' in printed and 'bgr' in printed
    report = json.loads((out / replay.REPORT_JSON).read_text())
    assert report['variants'] == ['correct', 'bgr'] and report['episodes'] == ['ep_0']
    assert report['scores']['correct']['steps'] == STEPS
    assert report['scores']['correct']['nmse'] != report['scores']['bgr']['nmse']
    page = (out / replay.REPORT_HTML).read_text()
    assert page.count('<svg') == 7 and 'Replay check' in page and 'ep_0' in page
    assert replay.main([str(episode), '--bundle', 'models/reference', '--out', str(out)]) == 2
    assert 'exists and is not empty' in capsys.readouterr().err


def test_a_variant_that_changes_no_input_of_the_bundle_is_left_out():
    """A vision-only bundle: no_background would replay the correct pipeline under another name."""
    from types import SimpleNamespace as NS
    vision = NS(inputs=[NS(preprocess=NS(op='rgb_image')), NS(preprocess=NS(op='passthrough'))])
    kept, out = replay.applicable_variants(vision, ['correct', 'bgr', 'unit_scale', 'no_background'])
    assert kept == ['correct', 'bgr', 'unit_scale'] and out == ['no_background']
    touch = NS(inputs=[NS(preprocess=NS(op='tactile_minus_background'))])
    assert replay.applicable_variants(touch, ['correct', 'bgr', 'no_background', 'silent']) == (
        ['correct', 'no_background'], ['bgr', 'silent'])


def test_the_silent_variant_feeds_the_spectrogram_of_silence_and_nothing_else(runner):
    silent = replay._variant_transform(runner.manifest, 'silent')
    mel = np.random.default_rng(0).normal(-40, 10, (2, 128, 30)).astype(np.float32)
    out = silent('mel_spectro', mel)
    assert out.shape == mel.shape and out.dtype == mel.dtype
    np.testing.assert_array_equal(out, np.full_like(mel, -100.0))   # 10 log10(amin = 1e-10), ref 1
    image = np.full((2, 256, 256, 3), 7, np.uint8)
    assert silent('image_primary', image) is image


def test_descriptions_are_scored_against_the_episode_s_property_by_gripper_state():
    rec = np.zeros((4, 7), np.float32)
    rec[:, 6] = [1, 0, 0, 1]  # open, closed, closed, open
    want = 'pick up the cube that feels soft'
    r = replay.EpisodeReplay('e', 'correct', 'x', rec, rec.copy(), rec[:, 6], np.arange(4),
                             expected={'tactile': want},
                             descriptions={'tactile': [want, 'pick up the cube that feels hard',
                                                       'the cube feels soft', want]})
    button = 'press the button that feels springy'
    b = replay.EpisodeReplay('b', 'correct', 'x', rec[:2], rec[:2].copy(), rec[:2, 6], np.arange(2),
                             expected={'tactile': button},
                             descriptions={'tactile': [button, 'press the button that feels springy feels soft']})
    plain = replay.EpisodeReplay('p', 'correct', 'x', rec, rec.copy(), rec[:, 6], np.arange(4),
                                 expected={}, descriptions={'tactile': ['a'] * 4})  # no text: left out
    d = replay.score_descriptions([r, b, plain], 'tactile')
    assert d['properties'] == ['feels soft', 'feels springy']
    # 'feels hard' is no property of these episodes, but it is not 'feels soft' either; the
    # button's second text names both properties, so it names none
    assert (d['all']['steps'], d['all']['exact'], d['all']['names_property']) == (6, 0.5, 4 / 6)
    assert d['gripper_closed']['steps'] == 3 and d['gripper_closed']['names_property'] == pytest.approx(1 / 3)
    assert d['gripper_open']['names_property'] == 1.0
    assert d['by_expected'][want]['names_property'] == 0.75 and d['by_expected'][button]['names_property'] == 0.5
    assert d['by_expected'][button]['gripper_closed'] == 0.0 and d['by_expected'][button]['gripper_open'] == 1.0
    assert d['most_said'][0] == (want, 2)
    assert replay.property_of('press the button that beeps') == 'beeps' and replay.property_of('go') == ''
    assert replay.describe_key(['tactile', ' Audio']) == 'audio,tactile'


@pytest.fixture(scope='module')
def generative_bundle(tmp_path_factory):
    """A two-step trainer run with both auxiliary losses, exported (it has a generative head)."""
    pytest.importorskip('torch', reason='the trainer needs PyTorch: ./setup.sh --train')
    pytest.importorskip('pyarrow', reason="the trainer's dataset reader needs pyarrow: ./setup.sh --train")
    from models.trainer.dataset import write_tiny_dataset
    from models.trainer.run import export_run
    from models.trainer.train import TrainConfig, Trainer
    root = tmp_path_factory.mktemp('gen')
    ds = write_tiny_dataset(root / 'ds', episodes=3, length=4)
    small = {'layers': 1, 'mlp_dim': 64, 'vocab_size': 64, 'latent_dim': 32, 'lang_readouts': 2}
    tr = Trainer(TrainConfig(dataset=str(ds), out=str(root / 'run'), steps=2, batch=2, log_every=1,
                             checkpoint_every=1, workers=1, threads=1, model=small), log=lambda *a, **k: None)
    tr.run()
    export_run(tr, root / 'bundle', log=lambda *a: None)
    return root / 'bundle'


def test_replay_describes_each_window_as_the_runner_does(generative_bundle, tmp_path):
    from fuse_core.episodes.modalities import ObjectDescription
    texts = ObjectDescription('pick up the {}', 'cube', 'red', 'soft', 'sounds dull').instructions()
    bag = make_episode_bag(tmp_path, 'soft', steps=4, seed=5, modalities=texts)
    gen = PolicyRunner(load_bundle(generative_bundle))
    rec = read_episode(bag)
    result = replay.replay_episode(gen, rec, 'correct', ['tactile', 'audio,tactile'])
    assert result.expected == {'tactile': texts['tactile'], 'audio,tactile': texts['tactile,audio']}
    assert [len(v) for v in result.descriptions.values()] == [4, 4]
    steps = load_steps(bag, with_model_inputs=True)
    inputs = {'image_primary': steps.observations['image_0'], 'image_wrist': steps.observations['image_1'],
              'image_digit_left': steps.model_inputs['digit_0'], 'image_digit_right': steps.model_inputs['digit_1'],
              'mel_spectro': steps.observations['mel_spectro']}
    for k in range(4):
        idx = [max(k - 1, 0), k]
        obs = Observation({n: v[idx] for n, v in inputs.items()}, np.array([k > 0, True]))
        assert result.descriptions['tactile'][k] == gen.describe(obs, ['tactile']), k
    report = replay.run(str(generative_bundle), [bag], ['correct'], progress=lambda s: None, describe=['tactile'])
    assert report['descriptions']['correct']['tactile']['all']['steps'] == 4
    assert report['per_episode']['correct'][0]['descriptions']['tactile'] == result.descriptions['tactile']
    with pytest.raises(EvaluationError, match="--describe \\['smell'\\]: not a combination"):
        replay.run(str(generative_bundle), [bag], ['correct'], progress=lambda s: None, describe=['smell'])
    with pytest.raises(EvaluationError, match='no generative head'):
        replay.run('models/reference', [bag], ['correct'], progress=lambda s: None, describe=['tactile'])
