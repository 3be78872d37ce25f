"""Scripted experts: delta end-effector actions at 5 Hz from what the sensors reveal.

An expert sees what a policy could: object positions and colours (what the cameras show),
the instruction, the measured gripper opening and end-effector pose, the arm's commanded
target, and the microphone. Where a task needs touch or sound it squeezes then decides,
or presses then listens; it never reads the hidden stiffness or which button beeps.

The plans also recover from states the expert itself never reaches (a policy's, when the expert
labels them for DAgger, fuse_sim.relabel): a descent that has drifted off the cube goes back up
to the approach, the fingers close until they have closed, and a lift that leaves the cube
behind opens and tries again. On its own demonstrations none of this changes a step.

`perturbed` adds seeded noise to the commands the expert sends while its fingers are open, so
that its demonstrations leave its own path and come back (DART, Laskey et al. 2017); exported
with `--relabel expert`, each step is labelled with the expert's clean action in that state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Generator, Optional, Tuple

import numpy as np

from fuse_core.arm.safety import TRACKING
from fuse_sim.audio import hears_beep
from fuse_sim.model import BOWL_WALL_HEIGHT, CUBE_HALF
from fuse_sim.tasks import VisibleObject

#: A squeezed cube whose fingers close below this opening (m) is the soft one (rigid: ~0.0198).
SOFT_OPENING = 0.0183
APPROACH_Z = 0.10
GRASP_Z = CUBE_HALF - 0.005
LIFT_Z = 0.15
MAX_STEP = 0.05
#: A descent further than this (m, horizontally) from the cube goes back up to the approach.
DESCENT_DRIFT = 0.02
#: The fingers count as closed below this opening (m): on a rigid cube they stop at ~0.0198.
CLOSED_OPENING = 0.021
#: A lift whose end effector rises this far (m) above the cube's centre has left it behind.
LEFT_BEHIND = 0.03

Goal = Tuple[np.ndarray, float]


#: `perturbed`'s noise is full for commanded steps at least this long (m) and shrinks with shorter
#: ones: the expert's moves end within its 6 mm tolerance, which a constant noise would not let them.
FULL_NOISE_STEP = 0.02


def perturbed(action: np.ndarray, rng: np.random.Generator, std_m: float) -> np.ndarray:
    """`action` with N(0, s) added to each translation axis while the gripper is commanded open
    (the approach and the descent, where a policy misses; a closing or lifting grasp is left
    alone); s is std_m for a step of FULL_NOISE_STEP or more, proportionally less for a shorter
    one. std_m 0: the action itself."""
    if std_m <= 0.0 or action[6] < 0.5:
        return action
    out = np.array(action, dtype=float)
    scale = min(1.0, float(np.linalg.norm(out[:3])) / FULL_NOISE_STEP)
    out[:3] += rng.normal(0.0, std_m * scale, 3)
    return out


@dataclass
class ExpertObservation:
    ee_xyz: np.ndarray                       # measured end-effector position (base frame)
    gripper_opening: float                   # measured finger position (m)
    objects: Dict[str, VisibleObject]        # what the cameras show
    instruction: str
    target_xyz: Optional[np.ndarray] = None  # the arm's commanded target (None before the first)
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))  # last ~0.5 s
    sample_rate: int = 44100


def objects_from_message(task) -> Dict[str, VisibleObject]:
    """What the cameras show, from a /world/task_state message (rclpy's, or decoded from a bag)."""
    return {n: VisibleObject(n, np.array([p.x, p.y, p.z]), c)
            for n, c, p in zip(task.object_names, task.object_colours, task.object_positions)}


def named_cube(instruction: str, objects: Dict[str, VisibleObject]) -> str:
    """The cube whose colour the instruction names; ValueError when none is."""
    words = set(instruction.lower().replace(',', ' ').split())
    for name, o in objects.items():
        if o.colour and o.colour in words and name.startswith('cube'):
            return name
    raise ValueError(f'no visible cube matches the instruction {instruction!r}')


def observation_from_messages(task, arm, audio: np.ndarray, sample_rate: int) -> ExpertObservation:
    """The expert's observation from a /world/task_state and an /arm/status message (rclpy's, or
    decoded from a bag: the same fields) and the last audio samples. The commanded target counts
    only while the arm is tracking (before, the arm has no target of the episode)."""
    ee, tgt = arm.ee_pose.position, arm.target_pose.position
    return ExpertObservation(ee_xyz=np.array([ee.x, ee.y, ee.z]), gripper_opening=float(arm.gripper_opening),
                             objects=objects_from_message(task), instruction=task.instruction,
                             target_xyz=np.array([tgt.x, tgt.y, tgt.z]) if arm.state == TRACKING else None,
                             audio=audio, sample_rate=int(sample_rate))


class ScriptedExpert:
    """One episode's expert for a task; call :meth:`act` once per 5 Hz tick."""

    def __init__(self, task: str, position_tolerance: float = 0.006) -> None:
        plans = {'pick_cube': self._pick_named, 'place_in_bowl': self._place_named,
                 'pick_soft': self._pick_soft, 'press_beep': self._press_beep}
        if task not in plans:
            raise ValueError(f'no scripted expert for task {task!r}; known: {sorted(plans)}')
        self.task = task
        self.tol = position_tolerance
        self._plan = plans[task]
        self._gen: Optional[Generator[Goal, None, None]] = None
        self.obs: Optional[ExpertObservation] = None
        self.phase = 'start'
        self.done = False
        self.decisions: Dict[str, str] = {}

    # --- the 5 Hz step ------------------------------------------------------------------------
    def act(self, obs: ExpertObservation) -> np.ndarray:
        """7-D action [dx, dy, dz, droll, dpitch, dyaw, gripper] (world axes, gripper 1 = open)."""
        self.obs = obs
        if self._gen is None:
            self._gen = self._plan()
        try:
            goal, gripper = next(self._gen)
        except StopIteration:
            self.done = True
            goal, gripper = self._hold_goal
        self._hold_goal = (goal, gripper)
        ref = obs.target_xyz if obs.target_xyz is not None else obs.ee_xyz
        delta = np.clip(np.asarray(goal) - ref, -MAX_STEP, MAX_STEP)
        return np.concatenate([delta, np.zeros(3), [gripper]])

    # --- building blocks ------------------------------------------------------------------------
    def _reached(self, goal: np.ndarray) -> bool:
        o = self.obs
        ok = np.linalg.norm(o.ee_xyz - goal) < self.tol
        if o.target_xyz is not None:
            ok = ok and np.linalg.norm(o.target_xyz - goal) < 1e-3
        return bool(ok)

    def _move(self, xyz, gripper: float, phase: str, max_ticks: int = 40, give_up=None):
        """Towards xyz until reached or max_ticks; False (at once) when give_up() comes true."""
        self.phase = phase
        goal = np.asarray(xyz, dtype=float)
        for _ in range(max_ticks):
            yield goal, gripper
            if give_up is not None and give_up():
                return False
            if self._reached(goal):
                break
        return True

    def _wait(self, xyz, gripper: float, ticks: int, phase: str):
        self.phase = phase
        goal = np.asarray(xyz, dtype=float)
        for _ in range(ticks):
            yield goal, gripper

    def _grasp(self, name: str):
        while True:
            p = self.obs.objects[name].position
            yield from self._move([p[0], p[1], APPROACH_Z], 1.0, f'approach {name}')
            p = self.obs.objects[name].position          # look again before going down
            goal = np.array([p[0], p[1], GRASP_Z])

            def drifted(goal=goal) -> bool:
                return bool(np.linalg.norm(self.obs.ee_xyz[:2] - goal[:2]) > DESCENT_DRIFT)
            if (yield from self._move(goal, 1.0, f'descend to {name}', give_up=drifted)):
                break
        # Close for at least 4 ticks, and on until the fingers have closed.
        self.phase = f'close on {name}'
        for k in range(10):
            yield goal, 0.0
            if k >= 3 and self.obs.gripper_opening < CLOSED_OPENING:
                break
        return goal

    def _lift(self, name: str, at: np.ndarray):
        """Up to LIFT_Z with the fingers closed; False when the cube stays behind."""
        return (yield from self._move([at[0], at[1], LIFT_Z], 0.0, f'lift {name}', give_up=lambda: (
            self.obs.ee_xyz[2] - self.obs.objects[name].position[2] > LEFT_BEHIND)))

    def _pick(self, name: str):
        """Grasp and lift `name`, again after a miss; returns where it was grasped."""
        while True:
            at = yield from self._grasp(name)
            if (yield from self._lift(name, at)):
                return at
            yield from self._wait(self.obs.ee_xyz.copy(), 1.0, 2, f'missed {name}: open')

    # --- plans ----------------------------------------------------------------------------------
    def _pick_named(self):
        name = named_cube(self.obs.instruction, self.obs.objects)
        at = yield from self._pick(name)
        while True:
            yield from self._wait([at[0], at[1], LIFT_Z], 0.0, 1, 'hold')

    def _place_named(self):
        name = named_cube(self.obs.instruction, self.obs.objects)
        yield from self._pick(name)
        bowl = self.obs.objects['bowl'].position
        yield from self._move([bowl[0], bowl[1], LIFT_Z], 0.0, 'carry to the bowl')
        low = BOWL_WALL_HEIGHT + 0.035
        yield from self._move([bowl[0], bowl[1], low], 0.0, 'lower into the bowl')
        yield from self._wait([bowl[0], bowl[1], low], 1.0, 3, 'release')
        yield from self._move([bowl[0], bowl[1], LIFT_Z], 1.0, 'retreat')
        while True:
            yield from self._wait([bowl[0], bowl[1], LIFT_Z], 1.0, 1, 'hold')

    def _pick_soft(self):
        for name in sorted(n for n in self.obs.objects if n.startswith('cube')):
            at = yield from self._grasp(name)
            opening = self.obs.gripper_opening
            soft = opening < SOFT_OPENING
            self.decisions[name] = f'opening {opening * 1000:.1f} mm: {"soft" if soft else "hard"}'
            if soft:
                yield from self._move([at[0], at[1], LIFT_Z], 0.0, f'lift {name}')
                while True:
                    yield from self._wait([at[0], at[1], LIFT_Z], 0.0, 1, 'hold')
            yield from self._wait(at, 1.0, 3, f'release {name}')
            yield from self._move([at[0], at[1], APPROACH_Z], 1.0, f'back off {name}')

    def _press_beep(self):
        for name in sorted(self.obs.objects):
            top = self.obs.objects[name].position.copy()
            top[2] += 0.008                      # cap half height
            above = [top[0], top[1], top[2] + 0.06]
            down = [top[0], top[1], top[2] - 0.011]
            yield from self._move(above, 0.0, f'approach {name}')
            heard = False
            self.phase = f'press {name} and listen'
            for _ in range(8):
                yield np.asarray(down), 0.0
                heard = heard or hears_beep(self.obs.audio, self.obs.sample_rate)
                if heard:
                    break
            self.decisions[name] = 'beeped' if heard else 'silent'
            yield from self._move(above, 0.0, f'release {name}')
            if heard:
                while True:
                    yield from self._wait(above, 0.0, 1, 'hold')
