"""MuJoCo digital twin of the WidowX 250s workcell (ROS-free)."""

import os as _os

# Off-screen rendering through EGL unless the caller chose another backend; MuJoCo reads this
# when it is first imported, so it is set before any fuse_sim module imports mujoco.
_os.environ.setdefault('MUJOCO_GL', 'egl')
_os.environ.setdefault('PYOPENGL_PLATFORM', _os.environ['MUJOCO_GL'])
