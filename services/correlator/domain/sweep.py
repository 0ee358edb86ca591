"""The sector a rotating radar's beam swept during a scan: where the scan could have missed a track.

A surveillance radar's beam turns clockwise from north once every ``scan_period_s`` (T); a
target at bearing ``b`` is detected when the beam passes it, so the detections of one radar
arrive spread over the revolution. The engine cuts that stream into short scans
(``scan_window_s``, a fraction of T), and a short scan only looked at the sector its beam swept:
a track elsewhere in the radar's disc had no chance to be detected by it, and the scan must not
count a miss against it (M-of-N confirmation would drop tentative tracks of real targets).

The beam's bearing is known whenever it produced a detection (the detection's bearing from the
site, noise σ ≈ 0.6°). :class:`BeamFollower` remembers the last such position ``(t_0, b_0)`` of
each radar and, for a scan with detections at times ``t_1 <= ... <= t_n`` and bearings
``b_1 ... b_n``, unwraps the bearings along the sweep::

    u_0 = b_0,   u_i = u_{i-1} + s_i + wrap(b_i - b_{i-1} - s_i),   s_i = 2π (t_i - t_{i-1}) / T

(each step is the bearing change closest to what the beam turned in that time; ``wrap`` maps to
(-π, π]). The swept sector runs from ``min u`` to ``max u``; it is the whole disc when its extent
reaches 2π or when ``t_n - t_0 >= T``. Consecutive scans of one radar thus tile the disc, one
opportunity per track per revolution. Without a previous position (the radar's first scan) the
sector starts at the scan's first detection. :class:`~services.correlator.domain.tracker.Coverage`
applies the margins at the sector's edges (a target right at an edge may belong to the
neighbouring scan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.correlator.domain.detections import Detection
from services.correlator.domain.tracker import Coverage

TWO_PI = 2.0 * math.pi


def _wrap(angle: float) -> float:
    """An angle to (-π, π]."""
    return math.pi - (math.pi - angle) % TWO_PI


@dataclass
class BeamFollower:
    """Where each radar's beam was last seen, and the sector each new scan swept."""

    margin_rad: float = math.radians(2.0)
    margin_m: float = 50.0
    last: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per radar (key): (time_s, bearing_rad) of the beam at its latest detection."""

    def coverage(
        self,
        key: str,
        site_en: tuple[float, float],
        radius_m: float,
        scan_period_s: float | None,
        detections: Sequence[Detection],
    ) -> Coverage | None:
        """The area ``detections`` (one radar's scan, in time order) swept; remembers the beam.

        ``scan_period_s`` None (unknown rotation): the sector spanned by the scan's own bearings.
        None when the scan has no detections.
        """
        if not detections:
            return None
        times = np.array([d.time_s for d in detections])
        positions = np.array([d.position_en() for d in detections])
        bearings = np.arctan2(positions[:, 0] - site_en[0], positions[:, 1] - site_en[1])
        rate = TWO_PI / scan_period_s if scan_period_s else 0.0
        previous = self.last.get(key) if rate else None
        if previous is not None and times[0] < previous[0]:
            previous = None  # scans come in time order; should time go backwards, start afresh
        if previous is not None:
            t_prev, u = previous
        else:
            t_prev, u = float(times[0]), float(bearings[0])
        # The unwrapping above, for all detections at once: np.remainder is Python's %, and a
        # cumulative sum adds in the same order as the loop did (the same floats, bit for bit).
        expected = rate * np.maximum(0.0, np.diff(times, prepend=t_prev))
        turned = bearings - np.concatenate(([u], bearings[:-1])) - expected
        steps = expected + (math.pi - np.remainder(math.pi - turned, TWO_PI))
        unwrapped = np.cumsum(np.concatenate(([u], steps)))
        low, high = float(unwrapped.min()), float(unwrapped.max())
        times_end, bearing_end = float(times[-1]), float(bearings[-1])
        self.last[key] = (times_end, _wrap(bearing_end))
        if high - low >= TWO_PI or (previous is not None and rate * (times_end - previous[0]) >= TWO_PI):
            return Coverage(site_en, radius_m)
        return Coverage(
            site_en,
            radius_m,
            start_rad=_wrap(low) % TWO_PI,
            extent_rad=high - low,
            margin_rad=self.margin_rad,
            margin_m=self.margin_m,
        )

    def state(self) -> list[list[Any]]:
        return [[key, t, b] for key, (t, b) in sorted(self.last.items())]

    def restore(self, state: Sequence[Sequence[Any]]) -> None:
        self.last = {str(key): (float(t), float(b)) for key, t, b in state}
