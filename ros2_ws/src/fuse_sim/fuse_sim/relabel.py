"""Expert relabelling (DAgger): the twin's scripted expert's action at every step of a recorded episode.

A policy's episode in the twin (`./run.sh eval --bundle ...`, bags on) records what the scripted
expert reads: /world/task_state (the instruction, the objects as the cameras show them),
/arm/status (the measured and commanded end effector, the gripper opening) and /audio/chunk.
Replaying the expert through the episode's steps in order, each step given the latest of these
at or before its stamp (the export's rule for observations, fuse_core.export.steps), gives the
action the expert would have commanded in the states the policy itself reached: DAgger's labels.
The one exception is a status that already counts the step's own command: in lockstep the sim
clock stands still while a command is applied, so the status published just after it can carry
the command's own stamp, and its target already holds the motion being labelled (measured on
20 clean expert episodes: 92 of 322 labels off the applied command by over 1 mm, a whole
approach step labelled 0 among them). A sender can only have read a status that does not count
its command yet (ArmStatus.commands_applied), so that is the one each step is given.
The expert's plan advances on what it observes and on the tick count, never on its own past
actions, so labelling after the episode gives the labels it would have given running beside
the policy. Each label is the motion the arm's safety filter lets through at 5 Hz (per-axis
clip, then the speed limit; the arm node's default limits), as a demonstration's applied
command is. `./run.sh export --relabel expert` writes them as the steps' actions.
"""

from __future__ import annotations

import bisect

import numpy as np

from fuse_core.arm.config import ArmConfig
from fuse_core.arm.safety import bounded_step, nominal_budget
from fuse_core.errors import EpisodeError
from fuse_core.export.steps import MIC_RATE_HZ, MicStream, RecordedEpisode
from fuse_sim.config import ExpertConfig
from fuse_sim.expert import ScriptedExpert, observation_from_messages
from fuse_sim.rollout import CONTROL_PERIOD_S

TASK_TOPIC, STATUS_TOPIC = '/world/task_state', '/arm/status'


class ExpertRelabel:
    """The `relabel` of fuse_core.export.steps.load_steps: topics it needs, and the actions."""

    name = 'expert'
    topics = (TASK_TOPIC, STATUS_TOPIC)

    def __init__(self, audio_window_s: float = ExpertConfig().audio_window_s) -> None:
        self.audio_samples = int(round(audio_window_s * MIC_RATE_HZ))
        self.limits = ArmConfig().safety_limits()
        self.budget = nominal_budget(self.limits, CONTROL_PERIOD_S)

    def actions(self, rec: RecordedEpisode) -> np.ndarray:
        """(N, 7) float32: the expert's action at each applied command's stamp, in order."""
        if rec.metadata.world != 'twin':
            raise EpisodeError(f'{rec.name}: world {rec.metadata.world!r}: only twin episodes can be '
                               'relabelled by the scripted expert')
        tasks = rec.streams[TASK_TOPIC]
        statuses = status_before_each_command(rec)
        mic = MicStream(rec.streams['/audio/chunk'].msgs if rec.has_mic else [], rec.name)
        expert = None
        out = np.zeros((len(rec.stamps_ns), 7), np.float32)
        for i, t in enumerate(rec.stamps_ns):
            task, arm = tasks.at(int(t)), statuses[i]
            if task is None or arm is None or task.state != 'running':
                out[i, 6] = out[i - 1, 6] if i else 1.0     # a hold: no motion, the gripper kept
                continue
            if expert is None:
                expert = ScriptedExpert(task.task)
            try:
                obs = observation_from_messages(task, arm, mic.window(int(t), self.audio_samples), MIC_RATE_HZ)
                a = expert.act(obs)
                out[i, :6] = bounded_step(a, self.limits, *self.budget)[0]
                out[i, 6] = a[6]
            except ValueError as exc:
                raise EpisodeError(f'{rec.name}: step {i}: the expert cannot label it: {exc}') from exc
        if expert is None:
            raise EpisodeError(f'{rec.name}: no {TASK_TOPIC} of a running episode and {STATUS_TOPIC} '
                               'before any command: nothing to relabel')
        return out


def status_before_each_command(rec: RecordedEpisode) -> list:
    """For each applied command of the episode, the /arm/status its sender could have read: the
    latest stamped at or before the command, less one stamped with the command's own stamp that
    already counts it among commands_applied (None when there is none). A status stamped before
    the command cannot count it; the count expected before each command is the count of the
    latest such status, or one more for each motion command since (holds are not applied),
    whichever is larger, so a command the arm did not count does not leave later steps on old
    statuses."""
    stream = rec.streams[STATUS_TOPIC]
    stamps, msgs = stream.stamps, stream.msgs
    applied, out = None, []
    for t, cmd in zip(rec.stamps_ns, rec.commands):
        before = bisect.bisect_left(stamps, int(t)) - 1           # the latest stamped before t
        if before >= 0:
            seen = int(msgs[before].commands_applied)
            applied = seen if applied is None else max(applied, seen)
        j = bisect.bisect_right(stamps, int(t)) - 1
        while applied is not None and j > before and int(msgs[j].commands_applied) > applied:
            j -= 1
        out.append(msgs[j] if j >= 0 else None)
        if applied is not None and not cmd.hold:
            applied += 1
    return out


#: Relabellers by name (`./run.sh export --relabel NAME`).
RELABELLERS = {ExpertRelabel.name: ExpertRelabel}
