"""MJCF of the WidowX 250s workcell, generated from fuse_core's product-of-exponentials model.

The arm's bodies sit on the joint axes of the screw list (home configuration: every frame
aligned with the base), so MuJoCo's forward kinematics equals fuse_core's. Geometry is
primitive; nothing is copied from third-party model files. Links are visual only (they do
not collide); the finger pads and the palm collide with the table and the task objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np

from fuse_core.arm.kinematics import (FINGER_MAX, FINGER_MIN, JOINT_NAMES, WX250S_LOWER, WX250S_M,
                                      WX250S_SLIST, WX250S_UPPER)

#: Half sizes (m) shared by the model and the tasks.
CUBE_HALF = 0.02
PAD_HALF = (0.0175, 0.004, 0.011)      # along approach (gripper x), thickness (y), width (gripper z)
BUTTON_RADIUS = 0.022
BUTTON_TRAVEL = 0.012
BOWL_RADIUS = 0.065
BOWL_WALL_HEIGHT = 0.035
#: Rigid and soft contact (MuJoCo solref as direct stiffness/damping: -k, -b).
RIGID_SOLREF = (0.004, 1.0)
SOFT_SOLREF = (-600.0, -20.0)

ARM_BODIES = ('shoulder_link', 'upper_arm_link', 'upper_forearm_link', 'lower_forearm_link',
              'wrist_link', 'gripper_link')


def axis_points(slist: np.ndarray = WX250S_SLIST) -> Tuple[np.ndarray, np.ndarray]:
    """Unit axis and a point on it for each revolute screw (w, v = -w x p)."""
    w = slist[:, :3]
    v = slist[:, 3:]
    # For a unit w, the point of the axis nearest the origin is p = w x v.
    p = np.cross(w, v)
    return w, p


@dataclass
class SceneObject:
    """One task object in the MJCF (free body, static body, or a button on a spring)."""

    name: str
    kind: str                        # cube | bowl | button
    rgba: Sequence[float] = (0.8, 0.2, 0.2, 1.0)
    mass: float = 0.03


@dataclass
class SceneSpec:
    objects: List[SceneObject] = field(default_factory=list)


def _f(values: Sequence[float]) -> str:
    return ' '.join(f'{float(v):.6g}' for v in values)


def _arm_xml() -> str:
    w, p = axis_points()
    # Body origins on the joint axes, chosen along each axis so the links look like the arm.
    origins = [p[0], p[1], p[2], p[3] + np.array([0.14975, 0, 0]), p[4], p[4] + np.array([0.065, 0, 0])]
    ee_world = WX250S_M[:3, 3]
    lines: List[str] = []
    indent = '    '
    parent = np.zeros(3)
    link_geoms = [
        '<geom type="cylinder" size="0.045 0.03" pos="0 0 0.03" rgba="0.15 0.15 0.15 1"/>',
        '<geom type="capsule" size="0.025" fromto="0 0 0 0.04975 0 0.25" rgba="0.12 0.12 0.12 1"/>',
        '<geom type="capsule" size="0.022" fromto="0 0 0 0.1 0 0" rgba="0.12 0.12 0.12 1"/>',
        '<geom type="capsule" size="0.02" fromto="0 0 0 0.15 0 0" rgba="0.12 0.12 0.12 1"/>',
        '<geom type="capsule" size="0.018" fromto="0 0 0 0.065 0 0" rgba="0.2 0.2 0.2 1"/>',
        '<geom type="box" size="0.02 0.04 0.02" pos="0.01 0 0" rgba="0.25 0.25 0.25 1"/>',
    ]
    for i, name in enumerate(ARM_BODIES):
        rel = origins[i] - parent
        lo, hi = WX250S_LOWER[i], WX250S_UPPER[i]
        lines.append(f'{indent * (i + 1)}<body name="{name}" pos="{_f(rel)}" gravcomp="1">')
        lines.append(f'{indent * (i + 2)}<joint name="{JOINT_NAMES[i]}" type="hinge" axis="{_f(w[i])}" '
                     f'range="{lo:.6f} {hi:.6f}" limited="true" class="arm_joint"/>')
        geom = link_geoms[i].replace('<geom ', '<geom class="visual" ')
        lines.append(f'{indent * (i + 2)}{geom}')
        parent = origins[i]
    g = indent * 7
    ee_rel = ee_world - parent
    x_pad = ee_rel[0] - PAD_HALF[0]
    lines += [
        f'{g}<site name="ee_site" pos="{_f(ee_rel)}" size="0.004" rgba="1 0 1 0.3" group="3"/>',
        f'{g}<site name="imu_site" pos="0.0 0 0.03" size="0.006" rgba="0 1 1 0.3" group="3"/>',
        f'{g}<geom name="palm" type="box" size="0.006 0.042 0.014" pos="{ee_rel[0] - 2 * PAD_HALF[0] - 0.008:.6f} 0 0" '
        'class="grip" rgba="0.25 0.25 0.25 1"/>',
        f'{g}<camera name="wrist" pos="{ee_rel[0] - 0.07:.6f} 0 0.07" '
        'xyaxes="0 -1 0 0.34 0 0.94" fovy="80"/>',
    ]
    for side, sign in (('left', 1.0), ('right', -1.0)):
        lines += [
            f'{g}<body name="{side}_finger_link" pos="0 0 0" gravcomp="1">',
            f'{g}{indent}<joint name="{side}_finger" type="slide" axis="0 {sign:g} 0" '
            f'range="{FINGER_MIN} {FINGER_MAX}" limited="true" class="finger_joint"/>',
            f'{g}{indent}<geom name="{side}_finger_back" class="visual" type="box" size="0.02 0.003 0.012" '
            f'pos="{x_pad - 0.03:.6f} {sign * 0.008:.6f} 0" rgba="0.2 0.2 0.2 1"/>',
            f'{g}{indent}<geom name="{side}_pad" class="grip" type="box" size="{_f(PAD_HALF)}" '
            f'pos="{x_pad:.6f} {sign * PAD_HALF[1]:.6f} 0" rgba="0.85 0.85 0.8 1"/>',
            f'{g}{indent}<site name="{side}_gel" pos="{x_pad:.6f} 0 0" size="0.002" group="3"/>',
            # The DIGIT camera looks from behind the gel toward the other finger.
            f'{g}{indent}<camera name="digit_{side}" pos="{x_pad:.6f} {sign * 0.03:.6f} 0" '
            f'xyaxes="1 0 0 0 0 {-sign:g}" projection="orthographic" fovy="0.0265"/>',
            f'{g}</body>',
        ]
    for i in reversed(range(len(ARM_BODIES))):
        lines.append(f'{indent * (i + 1)}</body>')
    return '\n'.join(lines)


def _object_xml(obj: SceneObject) -> str:
    rgba = _f(obj.rgba)
    if obj.kind == 'cube':
        return (f'    <body name="{obj.name}" pos="0.3 0 {CUBE_HALF}">\n'
                f'      <freejoint name="{obj.name}_joint"/>\n'
                f'      <geom name="{obj.name}_geom" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" '
                f'mass="{obj.mass}" rgba="{rgba}" class="object"/>\n'
                f'    </body>')
    if obj.kind == 'bowl':
        parts = [f'    <body name="{obj.name}" pos="0.3 0.1 0">',
                 f'      <geom name="{obj.name}_bottom" type="cylinder" size="{BOWL_RADIUS} 0.003" pos="0 0 0.003" '
                 f'rgba="{rgba}" class="object"/>']
        n = 12
        for k in range(n):
            a = 2 * np.pi * k / n
            c, s = np.cos(a), np.sin(a)
            seg = BOWL_RADIUS * np.tan(np.pi / n) + 0.002
            parts.append(f'      <geom name="{obj.name}_wall{k}" type="box" '
                         f'size="0.004 {seg:.5f} {BOWL_WALL_HEIGHT / 2}" '
                         f'pos="{BOWL_RADIUS * c:.5f} {BOWL_RADIUS * s:.5f} {BOWL_WALL_HEIGHT / 2}" '
                         f'euler="0 0 {a:.5f}" rgba="{rgba}" class="object"/>')
        parts.append('    </body>')
        return '\n'.join(parts)
    if obj.kind == 'button':
        h = 0.02
        return (f'    <body name="{obj.name}" pos="0.3 0 0">\n'
                f'      <geom name="{obj.name}_base" type="box" size="0.035 0.035 {h / 2}" pos="0 0 {h / 2}" '
                f'rgba="0.3 0.3 0.32 1" class="object" contype="2" conaffinity="2"/>\n'
                f'      <body name="{obj.name}_cap" pos="0 0 {h + 0.008}">\n'
                f'        <joint name="{obj.name}_joint" type="slide" axis="0 0 1" range="{-BUTTON_TRAVEL} 0" '
                f'limited="true" stiffness="120" springref="0.004" damping="1.5"/>\n'
                f'        <geom name="{obj.name}_geom" type="cylinder" size="{BUTTON_RADIUS} 0.008" mass="0.01" '
                f'rgba="{rgba}" class="object"/>\n'
                f'      </body>\n'
                f'    </body>')
    raise ValueError(f'unknown scene object kind {obj.kind!r} (cube, bowl, button)')


def scene_xml(spec: SceneSpec, timestep: float = 0.0025, render_size: Tuple[int, int] = (640, 480)) -> str:
    """The whole workcell: table, lights, cameras, the arm and the task objects."""
    objects = '\n'.join(_object_xml(o) for o in spec.objects)
    width, height = render_size
    return f"""<mujoco model="wx250s_workcell">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" gravity="0 0 -9.81" magnetic="0 0.00002 -0.00004" cone="elliptic"
          impratio="5" integrator="implicitfast"/>
  <!-- A fixed extent: the clip planes scale with it, and the DIGIT cameras sit 3 cm from their gels. -->
  <statistic extent="1.0" center="0.3 0 0.1"/>
  <visual>
    <global offwidth="{width}" offheight="{height}"/>
    <map znear="0.005" zfar="20"/>
    <quality shadowsize="1024"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.3 0.3 0.3"/>
  </visual>
  <default>
    <default class="arm_joint">
      <joint armature="0.02" damping="0.2"/>
    </default>
    <default class="finger_joint">
      <joint armature="0.002" damping="2.0"/>
    </default>
    <default class="visual">
      <geom contype="0" conaffinity="0" density="300" group="1"/>
    </default>
    <default class="grip">
      <geom contype="3" conaffinity="3" density="300" friction="1.5 0.02 0.002" condim="4"
            solref="{_f(RIGID_SOLREF)}" group="2"/>
    </default>
    <default class="object">
      <geom contype="1" conaffinity="1" friction="1.0 0.02 0.002" condim="4" solref="{_f(RIGID_SOLREF)}"/>
    </default>
  </default>
  <asset>
    <texture name="wood" type="2d" builtin="checker" rgb1="0.55 0.42 0.3" rgb2="0.5 0.38 0.27" width="64" height="64"/>
    <material name="table" texture="wood" texrepeat="6 6"/>
  </asset>
  <worldbody>
    <light name="key" pos="0.3 -0.4 1.2" dir="0 0.3 -1" diffuse="0.6 0.6 0.6" castshadow="false"/>
    <light name="fill" pos="0.6 0.5 1.0" dir="-0.3 -0.4 -1" diffuse="0.3 0.3 0.3" castshadow="false"/>
    <geom name="table" type="box" size="0.45 0.5 0.02" pos="0.3 0 -0.02" material="table" class="object"/>
    <camera name="primary" pos="0.72 -0.34 0.5" xyaxes="0.5780 0.8160 -0.0000 -0.4589 0.3250 0.8269" fovy="55"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.76" rgba="0.32 0.33 0.36 1" contype="0" conaffinity="0"/>
    <geom name="wall" type="box" size="0.02 2 1" pos="-0.6 0 0.2" rgba="0.78 0.78 0.74 1" contype="0" conaffinity="0"/>
{_arm_xml()}
{objects}
  </worldbody>
  <actuator>
{_actuators_xml()}
  </actuator>
  <sensor>
    <accelerometer name="imu_acc" site="imu_site"/>
    <gyro name="imu_gyro" site="imu_site"/>
    <magnetometer name="imu_mag" site="imu_site"/>
  </sensor>
</mujoco>
"""


def _actuators_xml() -> str:
    kp = (80.0, 100.0, 80.0, 35.0, 35.0, 30.0)
    lines = []
    for name, k in zip(JOINT_NAMES, kp):
        lines.append(f'    <position name="{name}_act" joint="{name}" kp="{k}" dampratio="1" '
                     f'forcerange="-20 20"/>')
    for side in ('left', 'right'):
        lines.append(f'    <position name="{side}_finger_act" joint="{side}_finger" kp="800" dampratio="1" '
                     f'forcerange="-6 6" ctrlrange="{FINGER_MIN} {FINGER_MAX}"/>')
    return '\n'.join(lines)


def build_model(spec: SceneSpec, timestep: float = 0.0025, render_size: Tuple[int, int] = (640, 480)):
    """Compile the workcell into a mujoco.MjModel (mujoco is imported here, not at import time)."""
    import mujoco

    return mujoco.MjModel.from_xml_string(scene_xml(spec, timestep, render_size))
