"""A fixed-capacity buffer of samples ordered by header stamp, with at-or-before look-up."""

from __future__ import annotations

import bisect
import threading
from typing import Generic, List, Optional, Tuple, TypeVar

T = TypeVar('T')


class StampedRingBuffer(Generic[T]):
    """Keeps the newest items ordered by stamp (integer nanoseconds).

    At most `capacity` items are kept, and none stamped more than `span_ns` before the
    newest (a time horizon such as 2 s, whatever the stream's rate; capacity bounds memory).

    Insertion tolerates out-of-order stamps (DDS may deliver a late sample after a newer
    one): the item is placed by stamp. A sample with the same stamp as a stored one
    replaces it, so a re-sent message does not appear twice. When full, the OLDEST stamp is
    evicted, never the newest, because the window builder only ever needs the recent past.
    Thread-safe: subscription callbacks insert while the tick timer reads.
    """

    def __init__(self, capacity: int, span_ns: Optional[int] = None) -> None:
        if int(capacity) < 1:
            raise ValueError(f'ring buffer capacity must be >= 1, got {capacity}')
        if span_ns is not None and int(span_ns) < 0:
            raise ValueError(f'ring buffer span must be >= 0 ns, got {span_ns}')
        self.capacity = int(capacity)
        #: Items stamped more than span_ns before the newest one are dropped (None: no limit).
        self.span_ns = None if span_ns is None else int(span_ns)
        self._stamps: List[int] = []
        self._items: List[T] = []
        self._lock = threading.Lock()
        #: Samples older than everything kept in a full buffer (they could never be used).
        self.rejected_too_old = 0
        #: Samples inserted before the newest stored one.
        self.out_of_order = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def insert(self, stamp_ns: int, item: T) -> bool:
        """Store `item` at `stamp_ns`; returns False if it was older than a full buffer holds."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            i = bisect.bisect_left(self._stamps, stamp_ns)
            if i < len(self._stamps) and self._stamps[i] == stamp_ns:
                self._items[i] = item
                return True
            too_old = (self.span_ns is not None and self._stamps
                       and self._stamps[-1] - stamp_ns > self.span_ns)
            if too_old or (len(self._stamps) >= self.capacity and i == 0):
                self.rejected_too_old += 1
                return False
            if i < len(self._stamps):
                self.out_of_order += 1
            self._stamps.insert(i, stamp_ns)
            self._items.insert(i, item)
            drop = len(self._stamps) - self.capacity
            if self.span_ns is not None:
                limit = self._stamps[-1] - self.span_ns
                drop = max(drop, bisect.bisect_left(self._stamps, limit))
            if drop > 0:
                del self._stamps[:drop]
                del self._items[:drop]
            return True

    def latest_at_or_before(self, t_ns: int) -> Optional[Tuple[int, T]]:
        """The (stamp, item) with the greatest stamp <= t_ns, or None if there is none."""
        with self._lock:
            i = bisect.bisect_right(self._stamps, int(t_ns))
            if i == 0:
                return None
            return self._stamps[i - 1], self._items[i - 1]

    def newest(self) -> Optional[Tuple[int, T]]:
        with self._lock:
            if not self._stamps:
                return None
            return self._stamps[-1], self._items[-1]

    def stamps(self) -> List[int]:
        with self._lock:
            return list(self._stamps)

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._items.clear()
