"""Simulation time: seconds since the scenario start, rendered as RFC 3339 UTC timestamps.

The start is given in (never read from a clock). Event times are kept as whole milliseconds
so that ``time_s`` and the rendered ``time`` of a payload always agree exactly.
"""

from __future__ import annotations

import datetime as dt


def require_utc(start: dt.datetime) -> dt.datetime:
    """``start`` as an aware UTC datetime; naive datetimes are refused (no guessing of zones)."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("the scenario start must be timezone-aware (UTC)")
    return start.astimezone(dt.UTC)


def to_ms(time_s: float) -> int:
    """Seconds to whole milliseconds (round half to even, as ``round`` does)."""
    return round(time_s * 1000.0)


def rfc3339(start: dt.datetime, time_ms: int) -> str:
    """``start + time_ms`` as RFC 3339 UTC with milliseconds and ``Z``, e.g. ``2026-01-01T00:00:01.500Z``."""
    moment = start + dt.timedelta(milliseconds=time_ms)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
