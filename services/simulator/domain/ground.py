"""Unattended ground sensors: trips when something is near, false alarms otherwise.

Once per second the sensor checks every truth within ``detection_radius_m`` (3-D distance:
an aircraft overhead is out of reach); it trips with probability ``TRIP[modality][class]``, then
ignores that target for a hold-off of 5-10 s (at most one event per ~5-10 s per target). Each
trip carries a class guess (person | vehicle | animal | unknown) with a confidence, and,
depending on the modality, a bearing (PIR, acoustic) or a range (seismic) estimate.
False alarms arrive as a Poisson process of ``false_alarms_per_hour``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.events import GroundModality
from services.core.config import GroundParams
from services.simulator.domain.sensing import CLUTTER, ClassConfusion, Observation, bearing_deg, wire_bearing
from services.simulator.domain.truth import TruthTable

CHECK_PERIOD_S = 1.0
HOLD_OFF_S = (5.0, 10.0)
TRIP: dict[GroundModality, dict[str, float]] = {
    GroundModality.SEISMIC: {"person": 0.5, "vehicle": 0.8, "animal": 0.35},
    GroundModality.ACOUSTIC: {"person": 0.35, "vehicle": 0.8, "animal": 0.3},
    GroundModality.PIR: {"person": 0.7, "vehicle": 0.6, "animal": 0.7},
    GroundModality.MAGNETIC: {"person": 0.25, "vehicle": 0.85, "animal": 0.02},
    GroundModality.FIBER: {"person": 0.6, "vehicle": 0.8, "animal": 0.4},
}
"""Probability of a trip per check (1 s) while a target of the class is within reach."""
BEARING_SIGMA_DEG = {GroundModality.PIR: 15.0, GroundModality.ACOUSTIC: 25.0}
RANGE_SIGMA_M = {GroundModality.SEISMIC: 8.0}

CONFUSION = ClassConfusion(
    {
        "person": {"person": 0.65, "animal": 0.15, "vehicle": 0.05, "unknown": 0.15},
        "vehicle": {"vehicle": 0.80, "person": 0.05, "unknown": 0.15},
        "animal": {"animal": 0.55, "person": 0.25, "unknown": 0.20},
        "aircraft": {"unknown": 0.7, "vehicle": 0.3},
        CLUTTER: {"unknown": 0.55, "animal": 0.30, "person": 0.15},
    },
    right_confidence=(0.5, 0.85),
    wrong_confidence=(0.3, 0.6),
    unknown_confidence=(0.1, 0.35),
)


@dataclass(frozen=True)
class GroundModel:
    """One unattended ground sensor at a site (local metres)."""

    sensor_id: str
    site_x_m: float
    site_y_m: float
    params: GroundParams

    def observe(self, truth: TruthTable, rng: np.random.Generator, until_s: float) -> list[Observation]:
        """Trips and false alarms before ``until_s``, in time order."""
        out = self._trips(truth, rng, until_s)
        out += self._false_alarms(rng, until_s)
        out.sort(key=lambda o: o.time_ms)
        return out

    def _trips(self, truth: TruthTable, rng: np.random.Generator, until_s: float) -> list[Observation]:
        stride = max(1, round(CHECK_PERIOD_S / truth.step_s))
        dx, dy = truth.x_m - self.site_x_m, truth.y_m - self.site_y_m
        reach = np.sqrt(dx * dx + dy * dy + truth.z_m * truth.z_m) <= self.params.detection_radius_m
        candidates = np.flatnonzero(reach & (truth.step_index % stride == 0))
        candidates = candidates[np.lexsort((truth.entity_index[candidates], truth.step_index[candidates]))]
        modality = self.params.modality
        trip = TRIP[modality]
        quiet_until: dict[int, float] = {}
        out: list[Observation] = []
        for flat in candidates.tolist():
            time_s = float(truth.step_index[flat]) * truth.step_s
            if time_s >= until_s:
                break
            entity = int(truth.entity_index[flat])
            if time_s < quiet_until.get(entity, -math.inf):
                continue
            target_class = truth.classes[entity]
            if rng.random() >= trip.get(target_class, 0.0):
                continue
            quiet_until[entity] = time_s + float(rng.uniform(*HOLD_OFF_S))
            when_s = time_s + float(rng.uniform(0.0, 0.9 * CHECK_PERIOD_S))
            if when_s >= until_s:
                continue
            de, dn = float(dx[flat]), float(dy[flat])
            geometry = (bearing_deg(de, dn), math.hypot(de, dn, float(truth.z_m[flat])))
            body = self._body(target_class, rng, geometry)
            out.append(Observation(round(when_s * 1000.0), self.sensor_id, "events", body, truth.ids[entity]))
        return out

    def _false_alarms(self, rng: np.random.Generator, until_s: float) -> list[Observation]:
        count = int(rng.poisson(self.params.false_alarms_per_hour * until_s / 3600.0))
        out = []
        for when_s in np.sort(rng.uniform(0.0, until_s, count)).tolist():
            body = self._body(CLUTTER, rng, None)
            out.append(Observation(round(when_s * 1000.0), self.sensor_id, "events", body, None))
        return out

    def _body(
        self, true_class: str, rng: np.random.Generator, geometry: tuple[float, float] | None
    ) -> dict[str, Any]:
        """An event body; ``geometry`` (bearing deg, distance m) feeds the bearing/range estimate."""
        modality = self.params.modality
        reported, confidence = CONFUSION.guess(true_class, rng)
        body: dict[str, Any] = {
            "sensor_type": "ground",
            "modality": modality.value,
            "class": reported,
            "confidence": confidence,
        }
        if geometry is None:
            return body
        bearing, distance_m = geometry
        bearing_sigma = BEARING_SIGMA_DEG.get(modality)
        if bearing_sigma is not None:
            body["bearing_deg"] = wire_bearing(bearing + bearing_sigma * float(rng.standard_normal()), 1)
            body["bearing_sigma_deg"] = bearing_sigma
        range_sigma = RANGE_SIGMA_M.get(modality)
        if range_sigma is not None:
            noisy = distance_m + range_sigma * float(rng.standard_normal())
            body["range_m"] = round(min(5_000.0, max(0.0, noisy)), 1)
            body["range_sigma_m"] = range_sigma
        return body
