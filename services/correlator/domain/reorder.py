"""How long a region's detections wait for late ones (pure).

A detection is released to the tracker once event time has moved the *reorder window* past it;
one that arrives after that is late and dropped. A fixed window must cover the slowest path any
sensor's events take (a gateway's batching, a slow link), and every detection waits that long,
also where sensors deliver within a fraction of it.

The adaptive window learns what this region's detections needed: for each one, how far the
front of event time (the newest event time seen, or the caller's clock when it is caught up) was
ahead of it when it arrived. The window is the largest such lateness of the last
``HISTORY_S`` of event time, times ``HEADROOM`` plus ``MARGIN_S``, between ``FLOOR_S`` and the
configured ``reorder_window_s``, which stays the maximum. With no history (a new or restored
engine) it is the maximum. A delay larger than any seen in the history is dropped as late once,
and widens the window from then on.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

HISTORY_S = 300.0
"""How long (event time) a lateness keeps the window wide."""
BUCKET_S = 10.0
"""The history keeps one maximum per this much event time."""
HEADROOM = 1.25
MARGIN_S = 0.1
FLOOR_S = 0.2
"""The shortest adaptive window, s: scans of a sensor are not cut finer than this."""


class ReorderWindow:
    """The reorder window of one region: fixed (``adaptive`` False) or learnt, at most ``max_s``."""

    def __init__(self, max_s: float, adaptive: bool) -> None:
        self.max_s = max_s
        self.adaptive = adaptive
        self.buckets: deque[list[float]] = deque()
        """[bucket start (event time of the front), largest lateness in it], oldest first."""

    def observe(self, front_s: float, time_s: float) -> None:
        """A detection of event time ``time_s`` arrived while the front was at ``front_s``."""
        if not self.adaptive or not math.isfinite(front_s):
            return
        lateness = max(0.0, front_s - time_s)
        start = math.floor(front_s / BUCKET_S) * BUCKET_S
        if self.buckets and self.buckets[-1][0] >= start:
            last = self.buckets[-1]
            last[1] = max(last[1], lateness)
        else:
            self.buckets.append([start, lateness])
        while self.buckets and self.buckets[0][0] < start - HISTORY_S:
            self.buckets.popleft()

    @property
    def seconds(self) -> float:
        """The window now, s."""
        if not self.adaptive or not self.buckets:
            return self.max_s
        needed = max(lateness for _, lateness in self.buckets)
        return min(self.max_s, max(FLOOR_S, needed * HEADROOM + MARGIN_S))

    def state(self) -> list[list[float]]:
        return [list(bucket) for bucket in self.buckets]

    def restore(self, state: Any) -> None:
        self.buckets = deque([float(start), float(lateness)] for start, lateness in state or [])
