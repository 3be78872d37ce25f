"""World and expert nodes in their own processes: bad configuration is a clear start-up error."""

from __future__ import annotations

import pytest

pytest.importorskip('mujoco')


def test_world_refuses_an_unknown_task_listing_the_tasks(launch_node):
    proc = launch_node('fuse_nodes.world_node', 'world', params={'task': 'juggle', 'render': False})
    assert proc.proc.wait(60) == 2
    log = proc.log()
    assert 'juggle' in log and 'pick_cube' in log and 'press_beep' in log, log


def test_expert_refuses_an_unknown_task(launch_node):
    proc = launch_node('fuse_nodes.expert_node', 'expert', params={'task': 'juggle'})
    assert proc.proc.wait(60) == 2
    assert 'juggle' in proc.log() and 'pick_soft' in proc.log()


def test_world_without_egl_exits_naming_the_packages(ros_env, tmp_path):
    from support.ros_harness import NodeProcess
    # No EGL vendor library: MuJoCo cannot create a context, as on a machine without Mesa's EGL.
    env = dict(ros_env, __EGL_VENDOR_LIBRARY_FILENAMES='/nonexistent/egl_vendor.json', MUJOCO_GL='egl')
    proc = NodeProcess('fuse_nodes.world_node', 'world', env, tmp_path,
                       params={'camera_width': 64, 'camera_height': 48})
    try:
        assert proc.proc.wait(90) == 2
    finally:
        proc.stop()
    assert 'libegl1 libegl-mesa0 libgl1-mesa-dri' in proc.log(), proc.log()
