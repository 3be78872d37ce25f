"""Replay timing: bag time -> schedule and stamps for rate-scaled, looping, pausable playback.

Two time models (the player's `restamp` parameter):

* restamp=True (the simulation's choice): header stamps are rewritten to "now" on the
  wall clock, as if the sensors were capturing live; loop k is scheduled right after loop
  k-1 and its stamps keep increasing. Consumers need no use_sim_time.
* restamp=False: stamps are the bag's own, shifted by k * loop_span in loop k, and /clock
  (when published) carries the same shifted bag time, so sim time never jumps backwards
  when the bag starts over.
"""

from __future__ import annotations

from dataclasses import dataclass

from fuse_core.errors import BagError

#: Pause between the last message of one loop and the first of the next (bag time).
LOOP_GAP_NS = 50_000_000


@dataclass
class PlaybackClock:
    """Maps bag log times to monotonic due times, shifted stamps and sim-clock values.

    All arguments are nanoseconds; mono_* are time.monotonic_ns(), wall_* time.time_ns().
    """

    start_ns: int
    end_ns: int
    rate: float
    restamp: bool
    mono_anchor_ns: int
    wall_anchor_ns: int
    paused_since_ns: int = -1

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise BagError(f'playback rate must be > 0, got {self.rate}')
        if self.end_ns < self.start_ns:
            raise BagError(f'bag ends ({self.end_ns}) before it starts ({self.start_ns})')

    @property
    def loop_span_ns(self) -> int:
        """Bag time one loop takes, including the gap before the next loop."""
        return self.end_ns - self.start_ns + LOOP_GAP_NS

    def _offset(self, log_time_ns: int, loop: int) -> float:
        """Bag time since playback began, in ns (loop k adds k loop spans)."""
        return loop * self.loop_span_ns + (log_time_ns - self.start_ns)

    def due_mono_ns(self, log_time_ns: int, loop: int) -> int:
        """When (monotonic) a message recorded at log_time_ns should be published in `loop`."""
        return self.mono_anchor_ns + int(self._offset(log_time_ns, loop) / self.rate)

    def stamp_ns(self, recorded_stamp_ns: int, loop: int) -> int:
        """The header stamp to publish for a message whose recorded stamp is recorded_stamp_ns."""
        if self.restamp:
            return self.wall_anchor_ns + int(self._offset(recorded_stamp_ns, loop) / self.rate)
        return recorded_stamp_ns + loop * self.loop_span_ns

    def clock_ns(self, mono_now_ns: int) -> int:
        """Sim time (bag time, continuing across loops) at a monotonic instant."""
        if self.paused:
            mono_now_ns = self.paused_since_ns
        return self.start_ns + int(max(0, mono_now_ns - self.mono_anchor_ns) * self.rate)

    def position(self, mono_now_ns: int) -> tuple:
        """(loop index, seconds into the bag) at a monotonic instant."""
        if self.paused:
            mono_now_ns = self.paused_since_ns
        elapsed = max(0, mono_now_ns - self.mono_anchor_ns) * self.rate
        loop, into = divmod(int(elapsed), self.loop_span_ns)
        return loop, into / 1e9

    @property
    def paused(self) -> bool:
        return self.paused_since_ns >= 0

    def pause(self, mono_now_ns: int) -> None:
        if not self.paused:
            self.paused_since_ns = mono_now_ns

    def resume(self, mono_now_ns: int) -> None:
        """Continue where it paused: the schedule (and restamped stamps) shift by the pause."""
        if self.paused:
            shift = mono_now_ns - self.paused_since_ns
            self.mono_anchor_ns += shift
            self.wall_anchor_ns += shift
            self.paused_since_ns = -1
