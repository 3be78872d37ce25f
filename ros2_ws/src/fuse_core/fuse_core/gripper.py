"""The one gripper rule: a continuous gripper value at or above the threshold (0.5) means open.

Every place that turns a gripper value into open / closed uses it (the policy's binariser, the
safety filter, the arm backends' callers, teleoperation, the replay check, training), so a
value of exactly 0.5 is open everywhere (the safety filter's rule, which most places used;
the policy's binariser and the trainer used to call it closed). It works elementwise on numpy
arrays too.
"""

from __future__ import annotations

from typing import Any

#: Gripper values at or above this are open (1.0), the rest closed (0.0).
GRIPPER_THRESHOLD = 0.5


def gripper_open(value: Any, threshold: float = GRIPPER_THRESHOLD) -> Any:
    """True where `value` means an open gripper (elementwise for arrays)."""
    return value >= threshold


def binarised_gripper(value: float, threshold: float = GRIPPER_THRESHOLD) -> float:
    """1.0 (open) or 0.0 (closed)."""
    return 1.0 if gripper_open(value, threshold) else 0.0
