"""Per-gateway token buckets. Time comes in as an argument (seconds on any monotonic clock)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_s`` tokens refill every second up to ``burst``; one event costs one token."""

    rate_per_s: float
    burst: float
    tokens: float
    updated_s: float

    @classmethod
    def full(cls, rate_per_s: float, burst: float, now_s: float) -> TokenBucket:
        return cls(rate_per_s=rate_per_s, burst=burst, tokens=burst, updated_s=now_s)

    def take(self, cost: float, now_s: float) -> float:
        """Take ``cost`` tokens; returns 0 when granted, else the seconds to wait before retrying.

        A refused request takes nothing. A cost above the burst can never be granted: the
        answer is then ``math.inf``.
        """
        elapsed = max(0.0, now_s - self.updated_s)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_s)
        self.updated_s = max(self.updated_s, now_s)
        if cost <= self.tokens:
            self.tokens -= cost
            return 0.0
        if cost > self.burst:
            return math.inf
        return (cost - self.tokens) / self.rate_per_s


class RateLimiter:
    """One token bucket per principal, created on first use."""

    def __init__(self, limits: dict[str, tuple[float, float]], default: tuple[float, float]) -> None:
        """``limits``: principal -> (events per second, burst); ``default`` for the others."""
        self._limits = limits
        self._default = default
        self._buckets: dict[str, TokenBucket] = {}

    def limit(self, principal: str) -> tuple[float, float]:
        return self._limits.get(principal, self._default)

    def take(self, principal: str, cost: float, now_s: float) -> float:
        """See :meth:`TokenBucket.take`."""
        bucket = self._buckets.get(principal)
        if bucket is None:
            rate, burst = self.limit(principal)
            bucket = self._buckets[principal] = TokenBucket.full(rate, burst, now_s)
        return bucket.take(cost, now_s)
