"""Tasks of the twin: seeded scene randomisation, instruction, success detector, time limit.

A task never reads anything a policy could not observe to decide for it; its success
detector reads the world's true state (that is what success means).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Tuple

import numpy as np

from fuse_core.episodes.modalities import ObjectDescription
from fuse_core.errors import ConfigError
from fuse_sim.model import (CUBE_HALF, RIGID_SOLREF, SOFT_SOLREF, SceneObject, SceneSpec)

if TYPE_CHECKING:  # pragma: no cover
    from fuse_sim.world import World

RUNNING, SUCCESS, FAILURE = 'running', 'success', 'failure'

#: Object colours (name -> rgba) a task draws from.
COLOURS: Dict[str, Tuple[float, float, float, float]] = {
    'red': (0.85, 0.15, 0.12, 1.0), 'green': (0.15, 0.7, 0.2, 1.0), 'blue': (0.15, 0.3, 0.85, 1.0),
    'yellow': (0.92, 0.82, 0.12, 1.0), 'purple': (0.55, 0.2, 0.7, 1.0), 'orange': (0.95, 0.5, 0.1, 1.0),
}
#: Region of the table where objects are placed (base frame, m).
TABLE_X = (0.22, 0.36)
TABLE_Y = (-0.13, 0.15)
LIFT_HEIGHT = 0.05     # an object counts as lifted when its bottom is this far above the table
PRESS_DEPTH = 0.007    # a button counts as pressed below this displacement
#: How the twin's materials feel to a DIGIT and sound on contact (fuse_sim.audio's damped modes:
#: the soft material's are low and short, the rigid one's higher and ringing).
FEELS = {'hard': 'hard', 'soft': 'soft'}
SOUNDS = {'hard': 'sounds sharp', 'soft': 'sounds dull'}


@dataclass
class VisibleObject:
    name: str
    position: np.ndarray
    colour: str


@dataclass
class TaskStatus:
    state: str = RUNNING
    detail: str = ''
    time_left_s: float = 0.0


def _place(rng: np.random.Generator, n: int, min_sep: float, x=TABLE_X, y=TABLE_Y) -> List[np.ndarray]:
    """n positions on the table at least min_sep apart (rejection sampling, seeded)."""
    for _ in range(1000):
        pts = [np.array([rng.uniform(*x), rng.uniform(*y)]) for _ in range(n)]
        if all(np.linalg.norm(a - b) >= min_sep for i, a in enumerate(pts) for b in pts[i + 1:]):
            return pts
    raise RuntimeError('could not place the task objects')  # pragma: no cover


class Task(abc.ABC):
    """One task: its scene, a seeded reset, a success detector and a time limit."""

    name = ''
    template = ''
    time_limit_s = 20.0

    @abc.abstractmethod
    def scene(self) -> SceneSpec:
        """The objects of the task's MJCF (fixed names; a reset only moves and recolours them)."""

    @abc.abstractmethod
    def reset(self, world: 'World', rng: np.random.Generator) -> str:
        """Place and colour the objects from `rng`; return the episode's instruction."""

    @abc.abstractmethod
    def evaluate(self, world: 'World') -> TaskStatus:
        """Running, success or failure, from the world's state."""

    def on_reset_done(self, world: 'World') -> None:
        """Hook after the arm is placed (e.g. remember initial button states)."""

    def on_step(self, world: 'World') -> None:
        """Hook after each batch of physics steps (e.g. a button that beeps)."""

    def visible_objects(self, world: 'World') -> Dict[str, VisibleObject]:
        """Objects as the cameras show them (what a policy can see: position and colour), by name."""
        return {o.name: VisibleObject(o.name, world.body_position(o.name), self.colour_of(o.name))
                for o in self.scene().objects}

    def colour_of(self, name: str) -> str:
        return ''

    def material(self, world: 'World', g1: int, g2: int) -> str:
        return 'hard'

    def describe(self, world: 'World') -> ObjectDescription:
        """What this episode's target object looks, feels and sounds like (after reset)."""
        return ObjectDescription('{}', 'object')

    def modality_instructions(self, world: 'World') -> Dict[str, str]:
        """FuSe's modality-specific instructions of this episode, from `describe`."""
        return self.describe(world).instructions()

    # helpers
    def _time_left(self, world: 'World') -> float:
        return max(0.0, self.time_limit_s - world.episode_time_s)

    def _timeout(self, world: 'World', status: TaskStatus) -> TaskStatus:
        status.time_left_s = self._time_left(world)
        if status.state == RUNNING and status.time_left_s <= 0.0:
            status.state, status.detail = FAILURE, f'time limit {self.time_limit_s:.0f} s reached'
        return status

    @staticmethod
    def _set_free_pose(world: 'World', body: str, xy: np.ndarray, z: float) -> None:
        mj = world.mj
        jid = mj.mj_name2id(world.model, mj.mjtObj.mjOBJ_JOINT, f'{body}_joint')
        adr = world.model.jnt_qposadr[jid]
        world.data.qpos[adr:adr + 7] = [xy[0], xy[1], z, 1.0, 0.0, 0.0, 0.0]

    @staticmethod
    def _set_static_pos(world: 'World', body: str, xy: np.ndarray) -> None:
        mj = world.mj
        bid = mj.mj_name2id(world.model, mj.mjtObj.mjOBJ_BODY, body)
        world.model.body_pos[bid][:2] = xy

    @staticmethod
    def _lifted(world: 'World', body: str) -> bool:
        return world.body_position(body)[2] - CUBE_HALF > LIFT_HEIGHT


def _cubes(n: int) -> List[SceneObject]:
    return [SceneObject(f'cube_{i}', 'cube') for i in range(n)]


class _ColouredCubes(Task):
    """Cubes of distinct colours; the instruction names the target cube's colour."""

    n_cubes = 2
    described = '{}'  # the ObjectDescription template of `describe`

    def __init__(self) -> None:
        self.target = 'cube_0'
        self.colours: List[str] = []

    def _draw_colours(self, rng: np.random.Generator) -> None:
        self.colours = list(rng.choice(sorted(COLOURS), size=self.n_cubes, replace=False))

    def _place_cubes(self, world: 'World', rng: np.random.Generator, spots: List[np.ndarray], present: int) -> str:
        """Cubes below `present` at their spots, the rest off the table; draw the target among them."""
        for i in range(self.n_cubes):
            xy = spots[i] if i < present else np.array([0.5 + 0.1 * i, 0.45])
            self._set_free_pose(world, f'cube_{i}', xy, CUBE_HALF)
            world.model.geom_rgba[world.geom_id(f'cube_{i}_geom')] = COLOURS[self.colours[i]]
        k = int(rng.integers(0, present))
        self.target = f'cube_{k}'
        return self.template.format(colour=self.colours[k])

    def colour_of(self, name: str) -> str:
        return self.colours[int(name.split('_')[1])]

    def describe(self, world: 'World') -> ObjectDescription:
        return ObjectDescription(self.described, 'cube', self.colour_of(self.target), FEELS['hard'], SOUNDS['hard'])


class PickCube(_ColouredCubes):
    name = 'pick_cube'
    template = 'pick up the {colour} cube'
    described = 'pick up the {}'
    time_limit_s = 20.0
    n_cubes = 3

    def scene(self) -> SceneSpec:
        return SceneSpec(_cubes(self.n_cubes))

    def reset(self, world: 'World', rng: np.random.Generator) -> str:
        n = int(rng.integers(2, self.n_cubes + 1))     # two or three cubes; the rest off the table
        self._draw_colours(rng)
        spots = _place(rng, self.n_cubes, 0.08)
        self.present = [f'cube_{i}' for i in range(n)]
        return self._place_cubes(world, rng, spots, n)

    def visible_objects(self, world: 'World') -> Dict[str, VisibleObject]:
        return {n: VisibleObject(n, world.body_position(n), self.colour_of(n)) for n in self.present}

    def evaluate(self, world: 'World') -> TaskStatus:
        status = TaskStatus()
        if self._lifted(world, self.target):
            status.state, status.detail = SUCCESS, f'{self.target} lifted'
        return self._timeout(world, status)


class PlaceInBowl(_ColouredCubes):
    name = 'place_in_bowl'
    template = 'put the {colour} cube in the bowl'
    described = 'put the {} in the bowl'
    time_limit_s = 25.0

    def scene(self) -> SceneSpec:
        return SceneSpec(_cubes(2) + [SceneObject('bowl', 'bowl', rgba=(0.9, 0.9, 0.92, 1.0))])

    def reset(self, world: 'World', rng: np.random.Generator) -> str:
        self._draw_colours(rng)
        spots = _place(rng, 3, 0.12)
        self._set_static_pos(world, 'bowl', spots[2])
        return self._place_cubes(world, rng, spots, 2)

    def colour_of(self, name: str) -> str:
        return 'white' if name == 'bowl' else super().colour_of(name)

    def evaluate(self, world: 'World') -> TaskStatus:
        from fuse_sim.model import BOWL_RADIUS, BOWL_WALL_HEIGHT
        status = TaskStatus()
        p = world.body_position(self.target)
        bowl = world.body_position('bowl')
        inside = np.linalg.norm(p[:2] - bowl[:2]) < BOWL_RADIUS - 0.01 and p[2] < BOWL_WALL_HEIGHT + CUBE_HALF
        gid = world.geom_id(f'{self.target}_geom')
        touching = any(g == gid for side in world.pad_contacts().values() for g, _, _ in side)
        if inside and not touching and world.body_speed(self.target) < 0.05:
            status.state, status.detail = SUCCESS, f'{self.target} rests in the bowl'
        return self._timeout(world, status)


class PickSoft(Task):
    """Two cubes that look the same; one is soft. Only touch tells them apart."""

    name = 'pick_soft'
    template = 'pick up the soft cube'
    time_limit_s = 30.0

    def __init__(self) -> None:
        self.soft = 'cube_0'
        self.colour = 'red'

    def scene(self) -> SceneSpec:
        return SceneSpec(_cubes(2))

    def reset(self, world: 'World', rng: np.random.Generator) -> str:
        self.colour = str(rng.choice(sorted(COLOURS)))
        colour = COLOURS[self.colour]
        spots = _place(rng, 2, 0.10)
        k = int(rng.integers(0, 2))
        for i in range(2):
            self._set_free_pose(world, f'cube_{i}', spots[i], CUBE_HALF)
            gid = world.geom_id(f'cube_{i}_geom')
            world.model.geom_rgba[gid] = colour
            world.model.geom_solref[gid] = SOFT_SOLREF if i == k else RIGID_SOLREF
        self.soft = f'cube_{k}'
        return self.template

    def colour_of(self, name: str) -> str:
        return self.colour

    def describe(self, world: 'World') -> ObjectDescription:
        return ObjectDescription('pick up the {}', 'cube', self.colour, FEELS['soft'], SOUNDS['soft'])

    def material(self, world: 'World', g1: int, g2: int) -> str:
        soft = world.geom_id(f'{self.soft}_geom')
        return 'soft' if soft in (g1, g2) else 'hard'

    def evaluate(self, world: 'World') -> TaskStatus:
        status = TaskStatus()
        hard = 'cube_1' if self.soft == 'cube_0' else 'cube_0'
        if self._lifted(world, self.soft):
            status.state, status.detail = SUCCESS, f'soft {self.soft} lifted'
        elif self._lifted(world, hard):
            status.state, status.detail = FAILURE, f'the hard cube {hard} was lifted'
        return self._timeout(world, status)


class PressBeep(Task):
    """Two identical buttons; only one beeps when pressed. Only sound tells them apart."""

    name = 'press_beep'
    template = 'press the button that beeps'
    time_limit_s = 30.0
    beep_hz = 2000.0
    beep_s = 0.4

    def __init__(self) -> None:
        self.beeper = 'button_0'
        self._pressed: Dict[str, bool] = {}
        self.beeped = False

    def scene(self) -> SceneSpec:
        return SceneSpec([SceneObject('button_0', 'button', rgba=(0.8, 0.1, 0.1, 1.0)),
                          SceneObject('button_1', 'button', rgba=(0.8, 0.1, 0.1, 1.0))])

    def reset(self, world: 'World', rng: np.random.Generator) -> str:
        spots = _place(rng, 2, 0.12)
        for i in range(2):
            self._set_static_pos(world, f'button_{i}', spots[i])
        self.beeper = f'button_{int(rng.integers(0, 2))}'
        self.beeped = False
        return self.template

    def on_reset_done(self, world: 'World') -> None:
        self._pressed = {f'button_{i}': False for i in range(2)}

    def pressed(self, world: 'World', button: str) -> bool:
        return world.joint_value(f'{button}_joint') < -PRESS_DEPTH

    def on_step(self, world: 'World') -> None:
        from fuse_sim.world import ContactEvent
        for b in self._pressed:
            now = self.pressed(world, b)
            if now and not self._pressed[b] and b == self.beeper:
                world.events.append(ContactEvent(world.time_s, 1.0, 'beep'))
                self.beeped = True
            self._pressed[b] = now

    def visible_objects(self, world: 'World') -> Dict[str, VisibleObject]:
        return {f'button_{i}': VisibleObject(f'button_{i}', world.body_position(f'button_{i}_cap'), 'red')
                for i in range(2)}

    def describe(self, world: 'World') -> ObjectDescription:
        # Both buttons are red and spring back alike: only the sound tells the beeper apart.
        return ObjectDescription('press the {}', 'button', 'red', 'springy', 'beeps')

    def evaluate(self, world: 'World') -> TaskStatus:
        status = TaskStatus()
        if self.beeped:
            status.state, status.detail = SUCCESS, f'{self.beeper} pressed (it beeped)'
        return self._timeout(world, status)


TASKS = {t.name: t for t in (PickCube, PlaceInBowl, PickSoft, PressBeep)}


def make_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f'unknown task {name!r}; known tasks: {sorted(TASKS)}')
    return TASKS[name]()


