"""Terminal front end of the episode manager (plain terminal or tmux): one key per step."""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from typing import Callable, Dict, Optional

import rclpy
from fuse_interfaces.msg import EpisodeState
from fuse_interfaces.srv import EndEpisode, ResetTask, SetInstruction
from rclpy.node import Node
from std_srvs.srv import Trigger

from fuse_nodes.common import STATE_QOS

HELP = ('[r] reset  [i] instruction  [enter] start  [1] success  [2] failure  [3] discard  '
        '[n] note for the next end  [x] abort  [q] quit')


class EpisodeKeys(Node):
    def __init__(self) -> None:
        super().__init__('episode_keys')
        self.state: Optional[EpisodeState] = None
        self.note = ''
        self.notes: Dict[str, str] = {}   # episode id -> the note sent with its end
        self.create_subscription(EpisodeState, '/episodes/state', self._on_state, STATE_QOS)
        self.reset = self.create_client(ResetTask, '/episodes/reset')
        self.instr = self.create_client(SetInstruction, '/episodes/set_instruction')
        self.start = self.create_client(Trigger, '/episodes/start')
        self.abort = self.create_client(Trigger, '/episodes/abort')
        self.end = self.create_client(EndEpisode, '/episodes/end')
        self._line = ''

    def _on_state(self, msg: EpisodeState) -> None:
        self.state = msg
        ep = msg.episode_id or msg.last_episode_id
        line = (f'{msg.state:<9} {ep} task {msg.task or "-"} seed {msg.seed} '
                f'"{msg.instruction}" {msg.elapsed_s:5.1f} s | {msg.episodes_recorded} done, last '
                f'{msg.last_outcome or "-"} | {msg.message}')
        if line != self._line:
            self._line = line
            sys.stdout.write('\r\x1b[2K' + line[:200])
            sys.stdout.flush()

    def missing_services(self, timeout_s: float) -> list:
        """The episode manager's services not discovered within `timeout_s` (each waited for in turn).

        Its state topic can be matched before its services: a key pressed in between would find
        no service."""
        deadline = time.monotonic() + timeout_s
        return [c.srv_name for c in (self.reset, self.instr, self.start, self.abort, self.end)
                if not c.wait_for_service(timeout_sec=max(0.1, deadline - time.monotonic()))]

    def call(self, client, request) -> str:
        return self._call(client, request)[0]

    def _call(self, client, request):
        if not client.wait_for_service(timeout_sec=2.0):
            return f'{client.srv_name} not available', None
        fut = client.call_async(request)
        rclpy.spin_until_future_complete(self, fut, timeout_sec=5.0)
        res = fut.result()
        return (res.message if res is not None else 'no answer'), res

    def ask(self, prompt: str, fd: int, saved) -> str:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        try:
            return input(f'\n{prompt}: ').strip()
        finally:
            tty.setcbreak(fd)

    def on_key(self, ch: str, fd: int, saved) -> bool:
        msg = ''
        if ch == 'q':
            return False
        if ch == 'r':
            msg = self.call(self.reset, ResetTask.Request(task='', seed=-1))
        elif ch == 'i':
            msg = self.call(self.instr, SetInstruction.Request(instruction=self.ask('instruction', fd, saved)))
        elif ch in ('\n', '\r'):
            msg = self.call(self.start, Trigger.Request())
        elif ch in ('1', '2', '3'):
            outcome = {'1': 'success', '2': 'failure', '3': 'discard'}[ch]
            msg, res = self._call(self.end, EndEpisode.Request(outcome=outcome, note=self.note))
            if res is not None and res.success:
                self.notes[res.episode_id] = self.note
            self.note = ''
        elif ch == 'n':
            self.note = self.ask('note', fd, saved)
            msg = f'note kept for the next end: {self.note!r}'
        elif ch == 'x':
            msg = self.call(self.abort, Trigger.Request())
        elif ch in ('h', '?'):
            msg = HELP
        if msg:
            self.say(msg)
        return True


    def say(self, text: str) -> None:
        """A line of its own above the status line (which is drawn again at the next state)."""
        sys.stdout.write('\r\x1b[2K' + text + '\n')
        sys.stdout.flush()
        self._line = ''


def read_keys(node: EpisodeKeys, fd: int, tick: Optional[Callable[[], bool]] = None) -> str:
    """Single keys from the terminal `fd` until [q], Ctrl-C or `tick()` (called between keys) returns
    False; the terminal's mode is restored. Returns why it stopped: 'quit', 'interrupted' or 'tick'."""
    saved = termios.tcgetattr(fd)
    print(HELP)
    why = 'interrupted'
    try:
        tty.setcbreak(fd)
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.05)
            if tick is not None and not tick():
                why = 'tick'
                break
            if select.select([fd], [], [], 0)[0]:
                ch = os.read(fd, 1).decode(errors='ignore').lower()
                if not node.on_key(ch, fd, saved):
                    why = 'quit'
                    break
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        print()
    return why


def main(args=None) -> int:
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        print('episode_keys needs a terminal (it reads single keys)', file=sys.stderr)
        return 2
    rclpy.init(args=args if args is not None else sys.argv)
    node = EpisodeKeys()
    try:
        read_keys(node, fd)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
