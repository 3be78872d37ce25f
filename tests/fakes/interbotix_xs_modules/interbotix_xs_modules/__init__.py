"""Recording fake of interbotix_xs_modules (tests only): CALLS logs calls, STATE is the driver."""

import math

JOINTS = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate']

def _default_state():
    """A wx250s driver with the arm in its sleep pose and the gripper open."""
    return dict(
        arm_joint_names=list(JOINTS),
        js_names=JOINTS + ['gripper', 'left_finger', 'right_finger'],
        js_position=[0.0, -1.80, 1.55, 0.0, 0.8, 0.0, 0.0, 0.037, -0.037],
        js_age_s=0.0,
        ik_success=True,
        joint_limits_ok=True,      # set_joint_positions' own joint-limit check
        fail_constructor=None,
    )


CALLS = []
STATE = _default_state()


def reset():
    """Forget recorded calls and restore the default driver state."""
    CALLS.clear()
    STATE.clear()
    STATE.update(_default_state())
    from interbotix_common_modules.common_robot import robot
    robot.forget_global_node()


def record(name, *args, **kwargs):
    CALLS.append((name, args, kwargs))


def calls(name):
    return [(a, k) for n, a, k in CALLS if n == name]


def check_plain_floats(what, values):
    """rclpy float32[] fields accept only Python floats: fail the same way here."""
    for v in values:
        if type(v) is not float or not math.isfinite(v):
            raise AssertionError(f'{what}: {v!r} ({type(v).__name__}) is not a finite plain float')
