"""What the sensor models share: the observation record and the class confusion model.

A sensor model turns ground truth into :class:`Observation` records: a time, a sensor, a
stream and the body of the wire message (without ``event_id``, ``sensor_id`` and ``time``,
which the simulation adds once the events are in time order).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from services.correlator.domain.frames import LocalFrame

Stream = Literal["events", "status"]

CLUTTER = "clutter"
"""The "true class" of something that is not there (clutter, false alarms)."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One message a sensor would send: when, which sensor, which stream, its body, its cause."""

    time_ms: int
    """Simulation time in whole milliseconds since the scenario start."""
    sensor_id: str
    stream: Stream
    body: dict[str, Any]
    origin: str | None
    """The truth id that caused it; ``None`` for clutter, false alarms and status reports."""


@dataclass(frozen=True)
class ClassConfusion:
    """P(reported class | true class), and how confident the sensor says it is.

    ``rows`` maps a true class (or :data:`CLUTTER`) to reported-class probabilities. A correct
    guess comes with a confidence drawn from ``right_confidence`` (low, high), a wrong one from
    ``wrong_confidence``; ``unknown`` gets ``unknown_confidence``.
    """

    rows: Mapping[str, Mapping[str, float]]
    right_confidence: tuple[float, float] = (0.6, 0.95)
    wrong_confidence: tuple[float, float] = (0.3, 0.65)
    unknown_confidence: tuple[float, float] = (0.1, 0.4)
    _table: dict[str, tuple[list[str], list[float]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table: dict[str, tuple[list[str], list[float]]] = {}
        for true_class, row in self.rows.items():
            total = sum(row.values())
            cumulative = list(itertools.accumulate(p / total for p in row.values()))
            cumulative[-1] = 1.0
            table[true_class] = (list(row), cumulative)
        object.__setattr__(self, "_table", table)

    def guess(self, true_class: str, rng: np.random.Generator) -> tuple[str, float]:
        """A reported class and confidence (rounded to 0.01) for something of ``true_class``."""
        classes, cumulative = self._table.get(true_class) or self._table[CLUTTER]
        u, v = rng.random(2).tolist()
        reported = classes[min(bisect.bisect_right(cumulative, u), len(classes) - 1)]
        if reported == "unknown":
            span = self.unknown_confidence
        elif reported == true_class:
            span = self.right_confidence
        else:
            span = self.wrong_confidence
        return reported, round(span[0] + (span[1] - span[0]) * v, 2)


def bearing_deg(dx_m: float, dy_m: float) -> float:
    """Bearing of the vector (east, north), degrees clockwise from north in [0, 360)."""
    return math.degrees(math.atan2(dx_m, dy_m)) % 360.0


def wire_bearing(value_deg: float, decimals: int = 3) -> float:
    """A bearing rounded for the wire and kept in [0, 360) (359.9999 must not become 360.0)."""
    rounded = round(value_deg % 360.0, decimals)
    return 0.0 if rounded >= 360.0 else rounded


def latlon(frame: LocalFrame, x_m: float, y_m: float) -> tuple[float, float]:
    """WGS84 latitude and longitude (degrees, 7 decimals: about 1 cm) of a local point."""
    lat, lon, _ = frame.to_wgs84(x_m, y_m, 0.0)
    return round(float(lat), 7), round(float(lon), 7)
