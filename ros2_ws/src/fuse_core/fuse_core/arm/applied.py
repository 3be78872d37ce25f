"""The delta the safety filter actually applied (the training action), from its decision."""

from __future__ import annotations

from typing import Optional

import numpy as np

from fuse_core.arm.kinematics import rotation_to_rpy
from fuse_core.arm.safety import FilterDecision


def applied_delta(previous_target: np.ndarray, target: np.ndarray) -> np.ndarray:
    """6 values (dx, dy, dz, droll, dpitch, dyaw) taking `previous_target` to `target`.

    The inverse of the filter's step: translation in world axes, rotation about the end-effector
    point in world axes (target R = rpy_to_rotation(d) @ previous R), so a command the filter
    passes unchanged comes back as itself and a clipped one as what was executed.
    """
    prev = np.asarray(previous_target, dtype=float)
    tgt = np.asarray(target, dtype=float)
    if prev.shape != (4, 4) or tgt.shape != (4, 4):
        raise ValueError(f'targets must be 4x4 transforms, got {prev.shape} and {tgt.shape}')
    out = np.empty(6)
    out[:3] = tgt[:3, 3] - prev[:3, 3]
    out[3:] = rotation_to_rpy(tgt[:3, :3] @ prev[:3, :3].T)
    return out


def applied_action(decision: FilterDecision) -> Optional[np.ndarray]:
    """The 7-D applied action [dx, dy, dz, droll, dpitch, dyaw, gripper] of an APPLY decision.

    None for a hold or a rejection (nothing moved: the recorded action is an explicit hold).
    """
    if not decision.applied or decision.target is None or decision.step_from is None:
        return None
    out = np.empty(7)
    out[:6] = applied_delta(decision.step_from, decision.target)
    out[6] = float(decision.gripper)
    return out
