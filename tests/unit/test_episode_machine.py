"""The episode state machine: every transition, refusals naming the state, abort mid-episode."""

from __future__ import annotations

import pytest

from fuse_core.episodes import (ABORTED, COMPLETE, IDLE, INTERRUPTED, READY, RECORDING, RESETTING,
                                EpisodeMachine, EpisodeMetadata, load_episode, write_episode)
from fuse_core.episodes.machine import EpisodeContext
from fuse_core.errors import EpisodeError


class Clock:
    def __init__(self):
        self.t = 1_800_000_000_000_000_000

    def __call__(self):
        self.t += 1_000_000
        return self.t


def machine():
    return EpisodeMachine(EpisodeContext(operator='ada', action_source='keyboard', world='twin',
                                         robot={'robot_model': 'wx250s'}), clock_ns=Clock())


def test_full_cycle_success_then_next_episode():
    m = machine()
    assert m.state == IDLE and 'reset' in m.allowed
    m.reset('pick_cube', 7)
    assert m.state == RESETTING
    m.reset_done(True, task='pick_cube', seed=7, instruction='pick up the red cube')
    assert m.state == READY and m.instruction == 'pick up the red cube'
    ep = m.start()
    assert m.state == RECORDING and ep.status == 'recording'
    assert (ep.task, ep.seed, ep.operator, ep.action_source, ep.world) == ('pick_cube', 7, 'ada',
                                                                           'keyboard', 'twin')
    assert ep.robot == {'robot_model': 'wx250s'} and ep.project_version
    m.mark('teleop_lost', 'gamepad unplugged')
    done = m.end('success', 'clean grasp')
    assert m.state == IDLE and m.episode is None and m.last is done
    assert (done.outcome, done.note, done.status) == ('success', 'clean grasp', COMPLETE)
    assert done.end_time_ns > done.start_time_ns and done.events[0]['event'] == 'teleop_lost'
    # The next one: a new id, the instruction kept, the seed from its own reset.
    m.reset(seed=8)
    m.reset_done(True, seed=8)
    ep2 = m.start()
    assert ep2.episode_id != done.episode_id and ep2.seed == 8 and ep2.instruction == done.instruction
    assert m.end('failure').outcome == 'failure'


@pytest.mark.parametrize('outcome', ['success', 'failure', 'discard'])
def test_every_outcome_is_accepted(outcome):
    m = machine()
    m.set_instruction('press the button')
    m.reset()
    m.reset_done(True)
    m.start()
    assert m.end(outcome).outcome == outcome


def test_abort_mid_episode_marks_it_interrupted():
    m = machine()
    m.set_instruction('x')
    m.reset()
    m.reset_done(True)
    ep = m.start()
    out = m.abort('operator pressed abort')
    assert m.state == IDLE and out.episode_id == ep.episode_id
    assert (out.outcome, out.status, out.note) == (ABORTED, INTERRUPTED, 'operator pressed abort')


def test_abort_during_reset_and_failed_reset_return_to_idle_with_the_reason():
    m = machine()
    m.reset('pick_cube')
    assert m.abort('operator') is None and m.state == IDLE and m.last_error == 'operator'
    m.reset()
    m.reset_done(False, 'world reset: unknown task')
    assert m.state == IDLE and 'unknown task' in m.last_error


def test_ready_may_reset_again_and_change_instruction():
    m = machine()
    m.reset()
    m.reset_done(True)
    m.set_instruction('new words')
    m.reset(seed=3)
    assert m.state == RESETTING and m.seed == 3


@pytest.mark.parametrize('step,state', [
    ('start', IDLE), ('end', IDLE), ('abort', IDLE), ('mark', IDLE), ('reset_done', IDLE),
    ('reset', RESETTING), ('start', RESETTING), ('end', READY), ('reset', RECORDING),
    ('start', RECORDING), ('set_instruction', RECORDING), ('set_instruction', RESETTING),
])
def test_steps_not_allowed_in_a_state_are_refused_naming_it(step, state):
    m = machine()
    m.set_instruction('go')
    if state in (RESETTING, READY, RECORDING):
        m.reset()
    if state in (READY, RECORDING):
        m.reset_done(True)
    if state == RECORDING:
        m.start()
    assert m.state == state
    args = {'start': (), 'end': ('success',), 'abort': ('x',), 'mark': ('e',), 'reset_done': (True,),
            'reset': (), 'set_instruction': ('y',)}[step]
    with pytest.raises(EpisodeError, match=f'{step}: not allowed while {state}'):
        getattr(m, step)(*args)
    assert m.state == state


def test_bad_input_is_refused():
    m = machine()
    with pytest.raises(EpisodeError, match='empty'):
        m.set_instruction('   ')
    with pytest.raises(EpisodeError, match='at most'):
        m.set_instruction('x' * 300)
    m.reset()
    m.reset_done(True)
    with pytest.raises(EpisodeError, match='no instruction'):
        m.start()
    m.set_instruction('go')
    m.start()
    with pytest.raises(EpisodeError, match='outcome'):
        m.end('maybe')
    assert m.state == RECORDING


def test_metadata_round_trip_and_interrupted_detection(tmp_path):
    md = EpisodeMetadata(episode_id='ep1', task='t', instruction='i', seed=3)
    write_episode(tmp_path, md)
    # Still marked recording, no closed bag: the recorder died.
    got = load_episode(tmp_path)
    assert got.status == INTERRUPTED and got.events[-1]['event'] == 'recorder_died'
    md.status, md.outcome = COMPLETE, 'success'
    write_episode(tmp_path, md)
    assert load_episode(tmp_path).status == INTERRUPTED  # complete but the bag was never closed
    (tmp_path / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    got = load_episode(tmp_path)
    assert got.status == COMPLETE and got.to_dict() == md.to_dict()
    with pytest.raises(EpisodeError, match='unknown field'):
        EpisodeMetadata.from_json('{"episode_id": "a", "colour": 1}')
    with pytest.raises(EpisodeError, match='file name'):
        EpisodeMetadata(episode_id='../x')
    with pytest.raises(EpisodeError, match='not an episode bag'):
        load_episode(tmp_path / 'nothing')
