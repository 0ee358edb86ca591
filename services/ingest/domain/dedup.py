"""Recently seen event ids, to acknowledge a gateway's retry without writing the event twice.

An entry lives for ``window_s`` seconds (and at most ``max_entries`` entries are kept, oldest
dropped first). Each entry keeps a 64-bit digest of the event's content, so that an id reused
for a *different* event is told apart from an honest retry.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from enum import Enum


class Seen(Enum):
    """What the index knows about an event id."""

    NEW = "new"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


class DedupIndex:
    """Event ids remembered for a time window, bounded in count. Time comes in as seconds."""

    def __init__(self, window_s: float, max_entries: int) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._digests: OrderedDict[bytes, int] = OrderedDict()
        self._buckets: deque[list[float]] = deque()  # [second, entries added in it]

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, event_id: bytes, digest: int) -> Seen:
        """Is this id new, a duplicate of the same content, or a reuse with other content?"""
        known = self._digests.get(event_id)
        if known is None:
            return Seen.NEW
        return Seen.DUPLICATE if known == digest else Seen.CONFLICT

    def remember(self, event_id: bytes, digest: int, now_s: float) -> None:
        """Record an id written at ``now_s`` (times must not go backwards by more than 1 s)."""
        if event_id in self._digests:
            return
        self._digests[event_id] = digest
        second = float(int(now_s))
        if self._buckets and self._buckets[-1][0] >= second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])
        if len(self._digests) > self.max_entries:
            self._drop(len(self._digests) - self.max_entries)

    def expire(self, now_s: float) -> int:
        """Forget ids older than the window; returns how many were dropped."""
        horizon = now_s - self.window_s
        dropped = 0
        while self._buckets and self._buckets[0][0] + 1.0 <= horizon:
            dropped += self._drop(int(self._buckets[0][1]))
        return dropped

    def _drop(self, count: int) -> int:
        dropped = 0
        while dropped < count and self._digests:
            self._digests.popitem(last=False)
            dropped += 1
            head = self._buckets[0]
            head[1] -= 1
            if head[1] <= 0:
                self._buckets.popleft()
        return dropped
