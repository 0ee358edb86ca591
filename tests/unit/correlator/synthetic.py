"""Small synthetic scenarios with ground truth, for the tracker's unit tests (seeded, pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from services.correlator.domain.detections import Detection, MeasurementKind
from services.correlator.domain.tracker import Coverage, Scan

RADAR_EN = (0.0, 0.0)


@dataclass
class Target:
    """A constant-velocity truth (optionally turning once)."""

    east_m: float
    north_m: float
    velocity_east_mps: float
    velocity_north_mps: float
    target_class: str = "person"
    turn_at_s: float | None = None
    turn_velocity: tuple[float, float] = (0.0, 0.0)

    def state(self, t: float) -> np.ndarray:
        if self.turn_at_s is None or t <= self.turn_at_s:
            return np.array(
                [
                    self.east_m + self.velocity_east_mps * t,
                    self.north_m + self.velocity_north_mps * t,
                    self.velocity_east_mps,
                    self.velocity_north_mps,
                ]
            )
        at = self.turn_at_s
        e = self.east_m + self.velocity_east_mps * at + self.turn_velocity[0] * (t - at)
        n = self.north_m + self.velocity_north_mps * at + self.turn_velocity[1] * (t - at)
        return np.array([e, n, *self.turn_velocity])


@dataclass
class Scenario:
    targets: list[Target]
    range_sigma_m: float = 15.0
    bearing_sigma_deg: float = 0.6
    velocity_sigma_mps: float = 0.5
    detection_probability: float = 0.9
    clutter_per_scan: float = 0.0
    max_range_m: float = 8_000.0
    scan_period_s: float = 2.0
    radial_velocity: bool = True
    seed: int = 1
    truth_of: dict[str, int] = field(default_factory=dict)

    def scans(self, duration_s: float, start_s: float = 1_800_000_000.0) -> list[Scan]:
        """Radar scans of the targets, with noise, misses and clutter."""
        rng = np.random.default_rng(self.seed)
        out = []
        counter = 0
        for step in range(int(duration_s / self.scan_period_s)):
            t = step * self.scan_period_s
            detections = []
            for index, target in enumerate(self.targets):
                if rng.random() > self.detection_probability:
                    continue
                e, n, ve, vn = target.state(t)
                r = math.hypot(e - RADAR_EN[0], n - RADAR_EN[1])
                if r > self.max_range_m:
                    continue
                b = math.atan2(e - RADAR_EN[0], n - RADAR_EN[1])
                rv = ((e - RADAR_EN[0]) * ve + (n - RADAR_EN[1]) * vn) / r
                counter += 1
                event_id = f"ev{counter}"
                self.truth_of[event_id] = index
                detections.append(self._polar(event_id, start_s + t, r, b, rv, rng, target.target_class))
            for _ in range(rng.poisson(self.clutter_per_scan)):
                counter += 1
                r = self.max_range_m * math.sqrt(rng.random())
                b = rng.uniform(-math.pi, math.pi)
                detections.append(
                    self._polar(f"ev{counter}", start_s + t, r, b, rng.normal(0, 1), rng, "unknown")
                )
            out.append(Scan("radar-1", start_s + t, detections, Coverage(RADAR_EN, self.max_range_m)))
        return out

    def _polar(
        self, event_id: str, time_s: float, r: float, b: float, rv: float, rng: np.random.Generator, cls: str
    ) -> Detection:
        sb = math.radians(self.bearing_sigma_deg)
        if self.radial_velocity:
            z = np.array(
                [
                    r + rng.normal(0, self.range_sigma_m),
                    b + rng.normal(0, sb),
                    rv + rng.normal(0, self.velocity_sigma_mps),
                ]
            )
            covariance = np.diag([self.range_sigma_m**2, sb**2, self.velocity_sigma_mps**2])
        else:
            z = np.array([r + rng.normal(0, self.range_sigma_m), b + rng.normal(0, sb)])
            covariance = np.diag([self.range_sigma_m**2, sb**2])
        return Detection(
            event_id=event_id,
            time_s=time_s,
            region="test",
            sensor_id="radar-1",
            sensor_type="radar",
            owner=("CO", "ejercito"),
            kind=MeasurementKind.POLAR,
            z=z,
            covariance=covariance,
            sensor_en=RADAR_EN,
            target_class=cls if cls != "unknown" else None,
            confidence=0.6 if cls != "unknown" else None,
        )
