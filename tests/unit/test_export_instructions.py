"""Modality-specific instructions: described per episode, recorded in its metadata, exported in each
format's layout, and read back by the project's trainer (models/trainer) from a LeRobot export."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from fuse_core.episodes import EpisodeMachine, EpisodeMetadata
from fuse_core.episodes.modalities import (FUSE_COMBINATIONS, ObjectDescription, check_modalities, from_lists,
                                           load_modality_table, parse_modality_table, to_lists)
from fuse_core.errors import EpisodeError
from fuse_core.export import cli
from fuse_core.export.instructions import (ALL_LANG_INFO, ALL_LANG_KEYS, LEROBOT_FILE, lerobot_instructions,
                                           rlds_language_fields)
from fuse_core.export.steps import load_steps, staged_meta
from support.episode_bags import make_episode_bag

SOFT = ObjectDescription('pick up the {}', 'cube', 'red', 'soft', 'sounds dull')


def test_the_combinations_are_fuse_s_and_the_trainer_s():
    from models.exporter.spec import MODALITY_COMBINATIONS
    assert FUSE_COMBINATIONS == tuple(MODALITY_COMBINATIONS)
    assert ALL_LANG_INFO.split('|') == list(FUSE_COMBINATIONS) and len(ALL_LANG_KEYS) == 9


def test_an_object_description_gives_one_instruction_per_combination():
    assert SOFT.instructions() == {
        'visual': 'pick up the red cube',
        'tactile': 'pick up the cube that feels soft',
        'audio': 'pick up the cube that sounds dull',
        'visual,tactile': 'pick up the red cube that feels soft',
        'visual,audio': 'pick up the red cube that sounds dull',
        'tactile,audio': 'pick up the cube that feels soft and sounds dull',
        'visual,tactile,audio': 'pick up the red cube that feels soft and sounds dull',
    }
    # A modality that says nothing of the object makes every combination with it invalid.
    silent = ObjectDescription('press the {}', 'button', 'red', 'springy', '')
    assert sorted(silent.instructions()) == ['tactile', 'visual', 'visual,tactile']
    with pytest.raises(EpisodeError, match='no {}'):
        ObjectDescription('pick up', 'cube', 'red').instructions()


def test_bad_descriptions_are_named():
    with pytest.raises(EpisodeError, match="unknown modality combination 'smell'"):
        check_modalities({'smell': 'it stinks'})
    with pytest.raises(EpisodeError, match=r"\['tactile'\]: the text must be a string"):
        check_modalities({'tactile': 3})
    with pytest.raises(EpisodeError, match='2 combinations but 1 texts'):
        from_lists(['visual', 'tactile'], ['x'])
    with pytest.raises(EpisodeError, match='named twice'):
        from_lists(['visual', 'visual'], ['x', 'y'])
    with pytest.raises(EpisodeError, match='episode e1: modalities: unknown modality combination'):
        EpisodeMetadata(episode_id='e1', modalities={'visual,smell': 'x'})
    assert check_modalities({'visual': '  ', 'tactile': ' soft '}) == {'tactile': 'soft'}
    assert from_lists(*to_lists(SOFT.instructions())) == SOFT.instructions()


def test_the_machine_records_the_scene_s_descriptions_with_the_episode():
    m = EpisodeMachine()
    m.reset('pick_soft', 4)
    m.reset_done(True, instruction='pick up the soft cube', modalities=SOFT.instructions())
    ep = m.start()
    assert ep.modalities == SOFT.instructions()
    assert EpisodeMetadata.from_json(ep.to_json()).modalities == SOFT.instructions()
    m.end('success')
    m.reset()                       # a new scene: nothing carried over from the last one
    m.reset_done(True)
    assert m.start().modalities == {}


MODALITIES_FILE = """\
# instruction or task -> FuSe combination -> text
pick up the sponge:
  visual: pick up the yellow sponge
  tactile: pick up the object that feels soft
  "tactile, visual": pick up the yellow object that feels soft
press_beep:
  audio: press the button that beeps
"""


def test_a_modalities_file_is_parsed_and_its_bad_keys_named(tmp_path):
    path = tmp_path / 'modalities.yaml'
    path.write_text(MODALITIES_FILE)
    table = load_modality_table(path)
    # The combination's modalities in any order and spacing are FuSe's spelling.
    assert table.entries['pick up the sponge'] == {
        'visual': 'pick up the yellow sponge', 'tactile': 'pick up the object that feels soft',
        'visual,tactile': 'pick up the yellow object that feels soft'}
    # The instruction first (case and spaces aside), then the task; None when neither is named.
    assert table.lookup('Pick up  the SPONGE', 'press_beep') == table.entries['pick up the sponge']
    assert table.lookup('press it', 'press_beep') == {'audio': 'press the button that beeps'}
    assert table.lookup('wave', 'pick_cube') is None
    # JSON is YAML too.
    as_json = tmp_path / 'm.json'
    as_json.write_text(json.dumps({'pick_cube': {'visual': 'pick up the red cube'}}))
    assert load_modality_table(as_json).lookup(task='pick_cube') == {'visual': 'pick up the red cube'}
    bad = [({'x': {'smell': 'it stinks'}}, "'x': unknown modality combination 'smell'"),
           ({'x': {'visual,visual': 'red'}}, "'x': unknown modality combination 'visual,visual'"),
           ({'x': {'visual': 'a', ' visual ': 'b'}}, "'x': combination 'visual' is given twice"),
           ({'x': {'tactile': 3}}, r"'x'\['tactile'\]: the text must be a string"),
           ({'x': 'soft'}, "'x': expected a mapping combination -> text, got str"),
           ({'x': {'visual': ' '}}, "'x': no text for any combination"),
           ({'Pick it': {'visual': 'a'}, 'pick  it': {'visual': 'b'}}, 'name the same instruction or task'),
           ({'': {'visual': 'a'}}, "entry '': the key must be an instruction or a task name"),
           (['pick'], 'expected a mapping of instruction or task'),
           (None, 'got nothing')]
    for values, message in bad:
        with pytest.raises(EpisodeError, match=message):
            parse_modality_table(values, 'modalities file m.yaml')
    with pytest.raises(EpisodeError, match='not found'):
        load_modality_table(tmp_path / 'missing.yaml')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('pick: [unclosed')
    with pytest.raises(EpisodeError, match=f'modalities file {broken}: not valid YAML/JSON'):
        load_modality_table(broken)


def test_the_operator_s_file_gives_the_episode_s_modalities(tmp_path):
    """The robot's (and keyboard-teleop's) way: the set instruction picks the file's texts."""
    path = tmp_path / 'modalities.yaml'
    path.write_text(MODALITIES_FILE)
    m = EpisodeMachine(modality_table=load_modality_table(path))
    m.reset('sponge_task')
    m.reset_done(True)
    m.set_instruction('pick up the sponge')
    texts, source = m.episode_modalities()
    assert source == f'modalities file {path}' and texts['tactile'] == 'pick up the object that feels soft'
    ep = m.start()
    assert ep.modalities == load_modality_table(path).entries['pick up the sponge']
    assert EpisodeMetadata.from_json(ep.to_json()).modalities == ep.modalities
    m.end('success')
    # The file replaces the scene's own descriptions where it names the task ...
    m.reset('press_beep')
    m.reset_done(True, modalities={'visual': 'press the red button'})
    m.set_instruction('press the button')
    assert m.start().modalities == {'audio': 'press the button that beeps'}
    m.end('success')
    # ... and leaves them where it names neither instruction nor task.
    m.reset('pick_soft')
    m.reset_done(True, modalities=SOFT.instructions())
    m.set_instruction('pick up the soft cube')
    assert m.episode_modalities() == (SOFT.instructions(), 'the scene')
    assert m.start().modalities == SOFT.instructions()


def test_the_twin_s_tasks_describe_their_objects():
    pytest.importorskip('mujoco')
    from fuse_sim.config import WorldConfig
    from fuse_sim.world import World
    w = World(WorldConfig(task='pick_soft', seed=2))
    assert w.modality_instructions['tactile'] == 'pick up the cube that feels soft'
    assert w.modality_instructions['audio'] == 'pick up the cube that sounds dull'
    assert w.modality_instructions['visual'] == f'pick up the {w.task.colour} cube'
    w.reset('pick_cube', 5)
    colour = w.task.colour_of(w.task.target)
    assert w.instruction == f'pick up the {colour} cube' == w.modality_instructions['visual']
    assert w.modality_instructions['tactile'] == 'pick up the cube that feels hard'
    w.reset('press_beep', 1)
    assert w.modality_instructions['audio'] == 'press the button that beeps'
    check_modalities(w.modality_instructions)


def test_rlds_steps_carry_fuse_s_all_lang_fields():
    meta = {'episode_id': 'e', 'instruction': 'pick up the soft cube', 'modalities': SOFT.instructions()}
    fields = rlds_language_fields(meta)
    assert list(fields) == [f'all_lang_{i}' for i in range(9)]
    assert fields['all_lang_0'] == 'pick up the soft cube'          # simple = the instruction
    assert fields['all_lang_1'] == ''                               # FuSe's unused combination
    assert fields['all_lang_3'] == 'pick up the cube that feels soft'
    assert fields['all_lang_8'] == 'pick up the red cube that feels soft and sounds dull'
    plain = rlds_language_fields({'episode_id': 'p', 'instruction': 'do it', 'modalities': {}})
    assert plain['all_lang_0'] == 'do it' and set(list(plain.values())[1:]) == {''}


def test_lerobot_instructions_are_what_the_trainer_reads(tmp_path):
    from models.trainer.dataset import INSTRUCTIONS_FILE, LeRobotWindows, write_tiny_dataset
    assert LEROBOT_FILE == INSTRUCTIONS_FILE
    bags = [make_episode_bag(tmp_path / 'bags', 'ep_0', steps=4, modalities=SOFT.instructions()),
            make_episode_bag(tmp_path / 'bags', 'ep_1', steps=4, seed=1),
            make_episode_bag(tmp_path / 'bags', 'ep_2', steps=4, seed=2, modalities={'tactile': 'feels hard'})]
    metas = [staged_meta(load_steps(b)) for b in bags]
    assert metas[0]['modalities'] == SOFT.instructions()
    assert lerobot_instructions([metas[1]]) is None          # nobody described: no file
    data = lerobot_instructions(metas)
    assert data == {'episodes': {'0': SOFT.instructions(), '2': {'tactile': 'feels hard'}}}
    root = write_tiny_dataset(tmp_path / 'ds', episodes=3, length=4, instructions=False)
    (root / INSTRUCTIONS_FILE).write_text(json.dumps(data))
    ds = LeRobotWindows(root)
    tasks = {e: ds.instructions[e]['simple'] for e in range(3)}
    assert ds.instructions[0] == dict(SOFT.instructions(), simple=tasks[0])
    assert ds.instructions[1] == {'simple': tasks[1]}
    assert ds.instructions[2] == {'tactile': 'feels hard', 'simple': tasks[2]}
    ds.require_instructions(['tactile'], 'the contrastive loss')   # does not raise


FAKE_WRITER = '''\
"""Stands in for the datasets venv: writes a small LeRobot v3 dataset (pyarrow) and reports it."""
import json, sys
from pathlib import Path
sys.path[:0] = {paths!r}
import numpy as np
from models.trainer.dataset import write_tiny_dataset
staged, target = Path(sys.argv[3]), Path(sys.argv[4])
files = sorted(staged.glob('*.npz'))
write_tiny_dataset(target, episodes=len(files), length=4, instructions=False)
staged = [np.load(f) for f in files]
print(json.dumps({{'path': str(target), 'episodes': [
    {{'steps': int(z['action'].shape[0]),
      'observation': {{'observation.mic': [list(z['obs_mic'].shape[1:]), 'float32']}}}} for z in staged]}}))
'''


def test_export_writes_the_instructions_the_trainer_reads_back(tmp_path, monkeypatch):
    """./run.sh export --format lerobot, with a stand-in writer (the datasets venv is not needed)."""
    from models.trainer.dataset import LeRobotWindows
    repo = Path(__file__).resolve().parents[2]
    fake = tmp_path / 'fake_python'
    fake.write_text(f'#!{sys.executable}\n' + textwrap.dedent(FAKE_WRITER).format(
        paths=[str(repo / 'models'), str(repo)] + [p for p in sys.path if p]))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv('FUSE_DATASETS_PYTHON', str(fake))
    root = tmp_path / 'bags'
    make_episode_bag(root, 'a_plain', steps=4)
    make_episode_bag(root, 'b_soft', steps=4, seed=1, modalities=SOFT.instructions())
    summary = cli.export(cli.find_episodes([root]), 'lerobot', tmp_path / 'out', log=lambda *_: None)
    assert summary['episodes'] == 2 and summary['with_modality_instructions'] == 1
    ds = LeRobotWindows(tmp_path / 'out')
    assert set(ds.instructions[0]) == {'simple'}               # a_plain, exported first
    assert {k: v for k, v in ds.instructions[1].items() if k != 'simple'} == SOFT.instructions()
