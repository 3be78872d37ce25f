"""Command gate of the arm: one commander, the newest command per control tick, bounded work."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

#: Longest publisher name or reason copied into logs and status.
MAX_REASON_CHARS = 200
#: How often an endpoint the ROS graph does not name yet is looked up again.
RESOLVE_RETRY_NS = 100_000_000
#: Endpoints remembered (names and lookups); past it the memory starts over.
MAX_TRACKED_ENDPOINTS = 256


def bounded(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """`text` cut to `limit` characters (a 10 kB hold reason is not copied into every status)."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f'{text[:limit]}... ({len(text)} chars)'


@dataclass
class GateCounters:
    offered: int = 0          # messages that reached the gate
    superseded: int = 0       # replaced by a newer one before a control tick took them
    foreign: int = 0          # from a publisher that is not the commander
    unknown: int = 0          # from a publisher the graph did not name (yet)
    last_foreign: str = ''    # node name of the last foreign publisher
    restarts: int = 0         # the commander came back with a new endpoint (restarted node)


class CommandGate:
    """Between the command subscription and the control loop.

    The subscription callback only offers the message (no IK, no backend call); each control
    tick takes the newest one, so the filter runs at most once per tick however fast commands
    arrive, and the rest are counted as superseded. Only the configured commander node may
    command: a message from any other publisher is refused and counted, and the arm holds for
    `foreign_hold_s` naming it (two publishers fighting over the arm is itself a fault).
    Publishers are identified by their DDS endpoint gid, resolved to a node name through the
    ROS graph (`resolve`). Without SROS2 a node name can be forged; see README (Safety).
    """

    def __init__(self, commander: str, resolve: Callable[[bytes], Optional[str]],
                 foreign_hold_s: float = 0.5) -> None:
        self.commander = commander
        self._resolve = resolve
        self.foreign_hold_s = float(foreign_hold_s)
        self.counters = GateCounters()
        self._names: Dict[bytes, str] = {}
        self._tried: Dict[bytes, int] = {}
        self._pending: Optional[Tuple[Any, int]] = None
        self._foreign_ns: Optional[int] = None
        self._commander_gid: Optional[bytes] = None
        self._commander_ns: Optional[int] = None
        self.restarted = False
        self._lock = threading.Lock()

    def publisher_name(self, gid: bytes, now_ns: int = 0) -> Optional[str]:
        """The node name behind endpoint `gid`, or None while the graph does not name it.

        An unnamed endpoint is looked up in the ROS graph at most every RESOLVE_RETRY_NS, so a
        flood from a publisher whose node name is not yet discovered costs a dict lookup per
        message, not a graph query."""
        name = self._names.get(gid)
        if name is not None:
            return name
        last = self._tried.get(gid)
        if last is not None and 0 <= now_ns - last < RESOLVE_RETRY_NS:
            return None
        if len(self._tried) >= MAX_TRACKED_ENDPOINTS:
            self._tried.clear()
        self._tried[gid] = now_ns
        name = self._resolve(gid)
        if name is not None:
            if len(self._names) >= MAX_TRACKED_ENDPOINTS:
                self._names.clear()
            self._names[gid] = name
            self._tried.pop(gid, None)
        return name

    def offer(self, msg: Any, gid: bytes, now_ns: int) -> str:
        """Take one message from publisher `gid`; returns '' or why it was refused."""
        name = self.publisher_name(bytes(gid), now_ns)
        with self._lock:
            self.counters.offered += 1
            if name is None:
                self.counters.unknown += 1
                return 'command from a publisher the ROS graph does not list (yet); ignored'
            gid = bytes(gid)
            if name == self.commander and gid != self._commander_gid and self._commander_gid is not None:
                quiet = (now_ns - (self._commander_ns or 0)) / 1e9 > self.foreign_hold_s
                if quiet:
                    # The commander restarted (a new endpoint, the old one silent): a new stream.
                    self.counters.restarts += 1
                    self.restarted = True
                else:
                    name = f'a second publisher named {name}'
            if name != self.commander:
                self.counters.foreign += 1
                self.counters.last_foreign = bounded(name, 100)
                self._foreign_ns = now_ns
                return (f'command from {self.counters.last_foreign}, not the commander {self.commander}; '
                        'refused, and the arm holds')
            self._commander_gid, self._commander_ns = gid, now_ns
            if self._pending is not None:
                self.counters.superseded += 1
            self._pending = (msg, now_ns)
            return ''

    def take(self) -> Optional[Tuple[Any, int, bool]]:
        """The newest commander message since the last tick, when it arrived, and whether the
        commander restarted since the previous take (its tick_index may start over); or None."""
        with self._lock:
            out, self._pending = self._pending, None
            if out is None:
                return None
            restarted, self.restarted = self.restarted, False
            return out[0], out[1], restarted

    def foreign_active(self, now_ns: int) -> str:
        """Why the arm must hold because of a foreign publisher ('' when none published lately)."""
        with self._lock:
            if self._foreign_ns is None or (now_ns - self._foreign_ns) / 1e9 > self.foreign_hold_s:
                return ''
            return (f'foreign publisher {self.counters.last_foreign} on the command topic '
                    f'(commander is {self.commander}): holding')

    def forget(self, gid: bytes) -> None:
        self._names.pop(bytes(gid), None)
        self._tried.pop(bytes(gid), None)
