"""Each teleop source against a fake device, and the 5 Hz mapping with its dead-man holds."""

from __future__ import annotations

import os
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from fuse_core.errors import DeviceError
from fuse_core.teleop import TeleopConfig, TeleopInput, TeleopMapper
from fuse_core.teleop import gamepad as gp
from fuse_core.teleop.gamepad import GamepadSource
from fuse_core.teleop.keyboard import KeyboardSource
from fuse_core.teleop.scripted import FakeTeleopDevice, ScriptedSource, make_source
from fuse_core.teleop.spacemouse import SpaceMouseSource


def cfg(**kw):
    return TeleopConfig(**kw)


def test_mapper_scales_holds_on_release_and_on_unplug_then_reconnects():
    dev = FakeTeleopDevice([TeleopInput((1.0, -0.5, 0.0), (0.0, 0.0, 1.0), deadman=True)])
    m = TeleopMapper(dev, cfg(max_translation=0.02, max_rotation=0.1, deadband=0.05))
    assert m.connect()
    step = m.tick()
    np.testing.assert_allclose(step.action, [0.02, -0.01, 0.0, 0.0, 0.0, 0.1, 1.0])
    dev.push(TeleopInput((1.0, 0.0, 0.0), deadman=False))
    step = m.tick()
    assert step.hold and 'dead-man released' in step.reason
    dev.push(TeleopInput((0.03, 0.0, 0.0), deadman=True))  # inside the deadband
    assert m.tick().action[0] == 0.0
    dev.unplug()
    step = m.tick()  # the very tick the device is lost: an explicit hold
    assert step.hold and 'device lost' in step.reason and step.device_lost
    assert m.tick().hold and 'not connected' in m.tick().reason
    assert not m.connect()
    dev.replug()
    assert m.connect() and m.lost_count == 1


def test_mapper_gripper_toggle_speed_and_episode_keys():
    dev = FakeTeleopDevice()
    m = TeleopMapper(dev, cfg(max_translation=0.02, speed=1.0, speed_step=0.25))
    m.connect()
    dev.push(TeleopInput((1, 0, 0), deadman=True, pressed=frozenset({'gripper_toggle', 'speed_down'})))
    step = m.tick()
    assert step.action[6] == 0.0 and step.action[0] == pytest.approx(0.015)
    dev.push(TeleopInput((1, 0, 0), deadman=True, pressed=frozenset({'success'})))
    step = m.tick()
    assert step.episode_keys == ['success'] and step.action[6] == 0.0  # toggle kept
    assert m.tick().episode_keys == []  # a button counts once
    with pytest.raises(ValueError, match='unknown teleop buttons'):
        TeleopInput(pressed=frozenset({'launch'}))
    with pytest.raises(ValueError, match='finite'):
        TeleopInput((np.nan, 0, 0))


def test_keyboard_from_a_pipe_with_key_repeat_and_release():
    r, w = os.pipe()
    now = [100.0]
    kb = KeyboardSource(fd=r, hold_s=0.6, clock=lambda: now[0])
    kb.connect()
    try:
        assert not kb.read().deadman  # no key: dead-man
        os.write(w, b'wj 1')
        inp = kb.read()
        assert inp.deadman and list(inp.translation) == [1.0, 0.0, 0.0] and inp.rotation[2] == 1.0
        assert inp.pressed == {'gripper_toggle', 'success'}
        now[0] += 0.4
        os.write(w, b'w')  # auto-repeat keeps it held
        now[0] += 0.4
        assert kb.read().translation[0] == 1.0
        now[0] += 0.7  # released
        assert not kb.read().deadman
        os.close(w)
        with pytest.raises(DeviceError, match='input closed'):
            kb.read()
    finally:
        kb.close()
        os.close(r)


class FakeHid:
    def __init__(self, reports):
        self.reports, self.fail, self.closed = list(reports), False, False

    def set_nonblocking(self, flag):
        self.nonblocking = flag

    def read(self, n):
        if self.fail:
            raise OSError('read error')
        return self.reports.pop(0) if self.reports else []

    def close(self):
        self.closed = True


def test_spacemouse_reports_axes_buttons_and_unplug():
    hid = FakeHid([list(b'\x01' + struct.pack('<hhh', 0, -350, 0)),   # push away (device -y)
                   list(b'\x02' + struct.pack('<hhh', 0, 0, -175)),   # twist
                   [3, 1]])                                           # left button down
    sm = SpaceMouseSource(device_factory=lambda: hid)
    sm.connect()
    inp = sm.read()
    assert inp.deadman and inp.translation[0] == pytest.approx(1.0) and inp.rotation[2] == pytest.approx(0.5)
    assert inp.pressed == {'gripper_toggle'}
    hid.reports = [[3, 0], list(b'\x01' + struct.pack('<hhhhhh', 0, 0, 0, 0, 0, 0))]
    inp = sm.read()
    assert not inp.deadman and not inp.pressed  # let go: hold
    hid.fail = True
    with pytest.raises(DeviceError, match='device lost'):
        sm.read()
    sm.close()
    assert hid.closed


class FakeEvdev:
    def __init__(self):
        self.events, self.lost = [], False

    def absinfo(self, code):
        return SimpleNamespace(min=-1, max=1) if code in (gp.ABS_HAT0X, gp.ABS_HAT0Y) else \
            SimpleNamespace(min=0, max=255)

    def read(self):
        if self.lost:
            raise OSError(19, 'No such device')
        if not self.events:
            raise BlockingIOError
        out, self.events = self.events, []
        return iter(out)

    def close(self):
        pass


def ev(t, code, value):
    return SimpleNamespace(type=t, code=code, value=value)


def test_gamepad_sticks_deadman_buttons_and_unplug():
    pad = FakeEvdev()
    g = GamepadSource(device_factory=lambda: pad)
    g.connect()
    pad.events = [ev(gp.EV_ABS, gp.ABS_Y, 0), ev(gp.EV_ABS, gp.ABS_X, 127.5),
                  ev(gp.EV_KEY, gp.BTN_TL, 1), ev(gp.EV_KEY, gp.BTN_SOUTH, 1)]
    inp = g.read()
    assert inp.deadman and inp.translation[0] == pytest.approx(1.0) and abs(inp.translation[1]) < 1e-9
    assert inp.pressed == {'success'}
    inp = g.read()  # nothing new: the stick stays, no new buttons
    assert inp.deadman and inp.translation[0] == pytest.approx(1.0) and not inp.pressed
    pad.events = [ev(gp.EV_KEY, gp.BTN_TL, 0)]
    assert not g.read().deadman
    pad.lost = True
    with pytest.raises(DeviceError, match='device lost'):
        g.read()


def test_scripted_actions_come_out_of_the_mapper_unchanged():
    c = cfg(max_translation=0.02, max_rotation=0.1, deadband=0.0)
    actions = np.array([[0.01, -0.02, 0.0, 0.05, 0.0, -0.1, 1.0], [0.0, 0.0, 0.015, 0.0, 0.0, 0.0, 0.0],
                        [0.0, 0.0, -0.01, 0.0, 0.0, 0.0, 1.0]])
    m = TeleopMapper(ScriptedSource(actions, c.max_translation, c.max_rotation), c)
    m.connect()
    for a in actions:
        np.testing.assert_allclose(m.tick().action, a, atol=1e-12)
    assert m.tick().hold  # script over


def test_make_source_names_the_problem():
    with pytest.raises(DeviceError, match='script_path'):
        make_source(cfg(device='scripted'))
    with pytest.raises(DeviceError, match='no script file'):
        make_source(cfg(device='scripted', script_path='/nonexistent.json'))
    assert make_source(cfg(device='fake')).synthetic
