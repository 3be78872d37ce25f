"""Keyboard teleop from a terminal (plain or tmux): keys held (auto-repeat) move, release holds."""

from __future__ import annotations

import os
import time
from typing import Dict, Optional, Tuple

from fuse_core.errors import DeviceError
from fuse_core.teleop.base import TeleopInput, TeleopSource

#: key -> (axis index 0..5, sign): w/s x, a/d y, r/f z, u/o roll, i/k pitch, j/l yaw.
MOTION_KEYS: Dict[str, Tuple[int, float]] = {
    'w': (0, 1.0), 's': (0, -1.0), 'a': (1, 1.0), 'd': (1, -1.0), 'r': (2, 1.0), 'f': (2, -1.0),
    'u': (3, 1.0), 'o': (3, -1.0), 'i': (4, 1.0), 'k': (4, -1.0), 'j': (5, 1.0), 'l': (5, -1.0),
}
#: key -> button.
BUTTON_KEYS = {' ': 'gripper_toggle', '+': 'speed_up', '=': 'speed_up', '-': 'speed_down',
               '1': 'success', '2': 'failure', '3': 'discard', '0': 'reset', 'x': 'abort'}
HELP = ('w/s x  a/d y  r/f z  u/o roll  i/k pitch  j/l yaw (hold the key)  space gripper  '
        '+/- speed  1 success  2 failure  3 discard  0 reset  x abort')


class KeyboardSource(TeleopSource):
    """Reads key bytes from a file descriptor (the terminal; a pipe in tests), never blocking.

    A terminal sends a held key again and again (auto-repeat), so a motion key counts as held for
    `hold_s` after its last byte; after that, no input: the dead-man holds the arm.
    """

    name = 'keyboard'

    def __init__(self, fd: Optional[int] = None, hold_s: float = 0.6,
                 clock=time.monotonic) -> None:
        self._fd_arg, self.hold_s, self._clock = fd, hold_s, clock
        self._fd: Optional[int] = None
        self._saved = None
        self._last: Dict[str, float] = {}

    def connect(self) -> None:
        fd = self._fd_arg if self._fd_arg is not None else 0
        try:
            os.set_blocking(fd, False)
        except OSError as exc:
            raise DeviceError(f'keyboard: cannot read fd {fd}: {exc}') from exc
        if os.isatty(fd):
            import termios
            import tty
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # keys arrive one by one, Ctrl-C still works
        elif self._fd_arg is None:
            raise DeviceError('keyboard: standard input is not a terminal (run the teleop in one)')
        self._fd = fd

    def read(self) -> TeleopInput:
        if self._fd is None:
            raise DeviceError('keyboard: not connected')
        pressed = set()
        while True:
            try:
                data = os.read(self._fd, 256)
            except BlockingIOError:
                break
            except OSError as exc:
                raise DeviceError(f'keyboard: input lost: {exc}') from exc
            if not data:
                raise DeviceError('keyboard: input closed (terminal gone)')
            now = self._clock()
            for ch in data.decode(errors='ignore').lower():
                if ch in MOTION_KEYS:
                    self._last[ch] = now
                elif ch in BUTTON_KEYS:
                    pressed.add(BUTTON_KEYS[ch])
        now = self._clock()
        axes = [0.0] * 6
        held = False
        for key, t in list(self._last.items()):
            if now - t > self.hold_s:
                del self._last[key]
                continue
            i, sign = MOTION_KEYS[key]
            axes[i] += sign
            held = True
        return TeleopInput(axes[:3], axes[3:], deadman=held, pressed=frozenset(pressed), stamp_s=now)

    def close(self) -> None:
        if self._fd is not None and self._saved is not None:
            import termios
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd, self._saved = None, None
