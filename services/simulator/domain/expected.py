"""The anomalies a scenario contains, as an anomaly detector should find them.

Derived from what actually happened (the integrated truth, the status reports written), not
only from the plan, so that noise never makes the list lie: a crossing is listed where the
truth's country really changes, a loiter from when the loiterer really arrived.

Each entry is a JSON-ready dict with ``kind``, ``region``, ``start_s``/``end_s`` (simulation
seconds) and ``start``/``end`` (RFC 3339), plus ``truth_ids`` or ``sensor_id`` and details:

- ``border_crossing``: ``direction`` (e.g. ``CO->VE``), ``from_country``, ``to_country``,
  ``class``, ``lat``/``lon``; the window spans the last sample on the old side and the first on
  the new one (one integration step);
- ``loitering``: ``lat``/``lon`` of the spot, ``radius_m``, ``dwell_s``;
- ``rendezvous``: two truth ids, ``lat``/``lon`` of the border point, ``max_separation_m``;
- ``low_slow_flyer``: ``max_alt_m``, ``max_speed_mps`` over its time in the scenario;
- ``silent_sensor`` (with ``last_report_s``), ``sensor_tamper``, ``sensor_low_battery``
  (with ``battery_pct`` and ``threshold_pct``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from services.simulator.domain.clock import rfc3339
from services.simulator.domain.scenario import Script
from services.simulator.domain.scene import RegionScene
from services.simulator.domain.sensing import Observation, latlon
from services.simulator.domain.status import LOW_BATTERY_PCT
from services.simulator.domain.truth import TruthTable

RENDEZVOUS_SEPARATION_M = 20.0
LOITER_RADIUS_M = 40.0


class ExpectedWriter:
    """Builds the expected-anomaly list of one region."""

    def __init__(self, scene: RegionScene, start: dt.datetime, duration_s: float) -> None:
        self.scene = scene
        self.start = start
        self.duration_s = duration_s
        self.found: list[dict[str, Any]] = []

    def add(self, kind: str, start_s: float, end_s: float, **details: Any) -> None:
        entry: dict[str, Any] = {
            "kind": kind,
            "region": self.scene.region_id,
            "start_s": round(start_s, 3),
            "end_s": round(end_s, 3),
            "start": rfc3339(self.start, round(start_s * 1000.0)),
            "end": rfc3339(self.start, round(end_s * 1000.0)),
        }
        entry.update(details)
        self.found.append(entry)

    def crossings(self, truth: TruthTable) -> None:
        """Every change of country along every truth's path."""
        codes = self.scene.codes
        countries = self.scene.countries_at(truth.x_m, truth.y_m)
        for index in range(len(truth)):
            part = truth.entity_slice(index)
            flat = np.arange(part.start, part.stop)[countries[part] >= 0]
            sides = countries[flat]
            for k in np.flatnonzero(sides[1:] != sides[:-1]).tolist():
                before, after = int(flat[k]), int(flat[k + 1])
                lat, lon = latlon(
                    self.scene.frame,
                    float(truth.x_m[before] + truth.x_m[after]) / 2.0,
                    float(truth.y_m[before] + truth.y_m[after]) / 2.0,
                )
                origin, destination = codes[int(sides[k])], codes[int(sides[k + 1])]
                self.add(
                    "border_crossing",
                    float(truth.step_index[before]) * truth.step_s,
                    float(truth.step_index[after]) * truth.step_s,
                    truth_ids=[truth.ids[index]],
                    **{"class": truth.classes[index]},
                    direction=f"{origin}->{destination}",
                    from_country=origin,
                    to_country=destination,
                    lat=lat,
                    lon=lon,
                )

    def scripted(self, script: Script, truth: TruthTable, marks: Mapping[str, Mapping[str, float]]) -> None:
        """Loiterers, rendezvous and low-slow flyers, with their windows as they happened."""
        frame = self.scene.frame
        for loiter in script.loiters:
            got = marks.get(loiter.truth_id, {})
            if "dwell" in got and "dwell_end" in got:
                lat, lon = latlon(frame, *loiter.centre)
                self.add(
                    "loitering",
                    got["dwell"],
                    got["dwell_end"],
                    truth_ids=[loiter.truth_id],
                    **{"class": "person"},
                    lat=lat,
                    lon=lon,
                    radius_m=LOITER_RADIUS_M,
                    dwell_s=round(got["dwell_end"] - got["dwell"], 3),
                )
        for meeting in script.meetings:
            a, b = (marks.get(truth_id, {}) for truth_id in meeting.truth_ids)
            if all(key in m for m in (a, b) for key in ("meet", "meet_end")):
                begin_s, end_s = max(a["meet"], b["meet"]), min(a["meet_end"], b["meet_end"])
                if end_s > begin_s:
                    lat, lon = latlon(frame, *meeting.point)
                    self.add(
                        "rendezvous",
                        begin_s,
                        end_s,
                        truth_ids=list(meeting.truth_ids),
                        **{"class": "person"},
                        lat=lat,
                        lon=lon,
                        max_separation_m=RENDEZVOUS_SEPARATION_M,
                    )
        aircraft = {actor.truth_id for actor in script.actors if actor.target_class == "aircraft"}
        for index, truth_id in enumerate(truth.ids):
            part = truth.entity_slice(index)
            if truth_id not in aircraft or part.stop <= part.start:
                continue
            times = truth.times_s(index)
            speed = np.hypot(truth.vx_mps[part], truth.vy_mps[part])
            self.add(
                "low_slow_flyer",
                float(times[0]),
                float(times[-1]),
                truth_ids=[truth_id],
                **{"class": "aircraft"},
                max_alt_m=round(float(truth.z_m[part].max()), 1),
                max_speed_mps=round(float(speed.max()), 2),
            )

    def faults(self, script: Script, statuses: Sequence[Observation]) -> None:
        """The scripted sensor faults, with what the status reports said."""
        end_s = self.duration_s
        for sensor_id, silent_s in script.faults.silent.items():
            before = [o.time_ms / 1000.0 for o in statuses if o.sensor_id == sensor_id]
            last = max(before) if before else None
            self.add("silent_sensor", silent_s, end_s, sensor_id=sensor_id, last_report_s=last)
        for sensor_id, tamper_s in script.faults.tamper.items():
            if tamper_s < end_s:
                self.add("sensor_tamper", tamper_s, end_s, sensor_id=sensor_id)
        for sensor_id in script.faults.low_battery:
            low = [
                o
                for o in statuses
                if o.sensor_id == sensor_id and o.body.get("battery_pct", 100.0) < LOW_BATTERY_PCT
            ]
            if low:
                first = min(low, key=lambda o: o.time_ms)
                self.add(
                    "sensor_low_battery",
                    first.time_ms / 1000.0,
                    end_s,
                    sensor_id=sensor_id,
                    battery_pct=first.body["battery_pct"],
                    threshold_pct=LOW_BATTERY_PCT,
                )

    def result(self) -> list[dict[str, Any]]:
        """The entries in order of start time (then kind and ids)."""
        return sorted(
            self.found,
            key=lambda e: (e["start_s"], e["kind"], str(e.get("truth_ids", e.get("sensor_id")))),
        )
