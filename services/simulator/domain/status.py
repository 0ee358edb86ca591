"""Heartbeats and status reports: battery, tamper switch, self-test, temperature.

Every sensor reports every ``heartbeat_interval_s`` from a random phase. The battery drains
linearly (``drain_pct_per_h``); the temperature wanders around a base value. Scripted faults:

- ``silent_from_s``: from then on nothing at all (no heartbeat, no detections);
- ``tamper_at_s``: an immediate report with ``tamper: true`` (the enclosure was opened), and
  every later heartbeat keeps ``tamper: true``;
- ``low_battery_at_s``: the battery crosses :data:`LOW_BATTERY_PCT` at that time, with an
  immediate "battery low" report; before it the level is above the threshold, after it below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.simulator.domain.sensing import Observation

LOW_BATTERY_PCT = 10.0
"""Below this battery level a sensor counts as low on battery, percent."""
LOW_BATTERY_DRAIN_PCT_PER_H = 3.0


@dataclass(frozen=True)
class StatusPlan:
    """How one sensor reports its health over the scenario."""

    sensor_id: str
    interval_s: float
    phase_s: float
    battery_start_pct: float
    drain_pct_per_h: float
    temperature_c: float
    silent_from_s: float | None = None
    tamper_at_s: float | None = None
    low_battery_at_s: float | None = None

    def battery_pct(self, time_s: float) -> float:
        """Battery level (percent, 2 decimals) at ``time_s``."""
        if self.low_battery_at_s is not None:
            rate = LOW_BATTERY_DRAIN_PCT_PER_H / 3600.0
            if time_s < self.low_battery_at_s:
                level = LOW_BATTERY_PCT + 0.01 + (self.low_battery_at_s - time_s) * rate
            else:
                level = LOW_BATTERY_PCT - 0.1 - (time_s - self.low_battery_at_s) * rate
        else:
            level = self.battery_start_pct - self.drain_pct_per_h * time_s / 3600.0
        return round(min(100.0, max(1.0, level)), 2)

    def observe(self, rng: np.random.Generator, until_s: float) -> list[Observation]:
        """The status reports before ``until_s`` (and before the sensor falls silent)."""
        end_s = until_s if self.silent_from_s is None else min(until_s, self.silent_from_s)
        times: list[tuple[float, str | None]] = [
            (t, None) for t in _ticks(self.phase_s, self.interval_s, end_s)
        ]
        if self.tamper_at_s is not None and self.tamper_at_s < end_s:
            times.append((self.tamper_at_s, "tamper switch opened"))
        if self.low_battery_at_s is not None and self.low_battery_at_s < end_s:
            times.append((self.low_battery_at_s, "battery low"))
        times.sort(key=lambda item: item[0])
        wobble = rng.uniform(0.0, 2.0 * math.pi)
        out = []
        for time_s, message in times:
            tampered = self.tamper_at_s is not None and time_s >= self.tamper_at_s
            temperature = (
                self.temperature_c
                + 1.5 * math.sin(2.0 * math.pi * time_s / 3600.0 + wobble)
                + 0.15 * float(rng.standard_normal())
            )
            body: dict[str, Any] = {
                "battery_pct": self.battery_pct(time_s),
                "tamper": tampered,
                "self_test": "degraded" if tampered else "ok",
                "temperature_c": round(temperature, 1),
            }
            if message is not None:
                body["message"] = message
            out.append(Observation(round(time_s * 1000.0), self.sensor_id, "status", body, None))
        return out


def _ticks(phase_s: float, interval_s: float, end_s: float) -> list[float]:
    count = max(0, math.ceil((end_s - phase_s) / interval_s))
    return [phase_s + k * interval_s for k in range(count) if phase_s + k * interval_s < end_s]
