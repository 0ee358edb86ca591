"""A patrol drone: a circular orbit near the border and a down-looking camera.

The drone is on station for the whole scenario: it flies a circle of ``radius_m`` around
``centre`` at ``speed_mps`` and ``alt_m`` (height above ground). Once per camera frame (every
second on the simulation grid) its camera sees the truths whose horizontal distance to the point
below the drone is within ``footprint_radius_m``; each is detected with probability
``PD[class]`` and reported as a geolocated point (truth + ``N(0, position_sigma_m)`` on each
horizontal axis, ``sigma_m`` in the event), a class from the confusion model with its
confidence, and the drone's own pose (position, altitude, heading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.core.config import DroneParams
from services.correlator.domain.frames import LocalFrame
from services.simulator.domain.sensing import ClassConfusion, Observation, latlon, wire_bearing
from services.simulator.domain.truth import TruthTable

PD = {"person": 0.85, "vehicle": 0.92, "animal": 0.75, "aircraft": 0.5}
"""Per-frame detection probability of a target inside the footprint."""
FRAME_PERIOD_S = 1.0

CONFUSION = ClassConfusion(
    {
        "person": {"person": 0.86, "animal": 0.06, "vehicle": 0.02, "unknown": 0.06},
        "vehicle": {"vehicle": 0.93, "person": 0.02, "unknown": 0.05},
        "animal": {"animal": 0.78, "person": 0.12, "unknown": 0.10},
        "aircraft": {"aircraft": 0.85, "unknown": 0.15},
        "clutter": {"unknown": 1.0},
    },
    right_confidence=(0.7, 0.98),
)


@dataclass(frozen=True)
class Orbit:
    """A circular patrol: centre and radius (local metres), speed, direction, phase, height."""

    centre: tuple[float, float]
    radius_m: float
    speed_mps: float
    clockwise: bool
    phase_rad: float
    """Bearing of the drone from the centre at time 0, radians clockwise from north."""
    alt_m: float

    def pose(self, time_s: float) -> tuple[float, float, float]:
        """East, north (m) and heading (degrees from north) at ``time_s``."""
        turn = 1.0 if self.clockwise else -1.0
        angle = self.phase_rad + turn * self.speed_mps / self.radius_m * time_s
        x = self.centre[0] + self.radius_m * math.sin(angle)
        y = self.centre[1] + self.radius_m * math.cos(angle)
        heading = math.degrees(angle) + turn * 90.0
        return x, y, heading % 360.0


@dataclass(frozen=True)
class DroneModel:
    """One drone on its orbit with its camera parameters."""

    sensor_id: str
    orbit: Orbit
    params: DroneParams
    frame: LocalFrame

    def observe(self, truth: TruthTable, rng: np.random.Generator, until_s: float) -> list[Observation]:
        """Every camera detection of the frames before ``until_s``."""
        out: list[Observation] = []
        stride = max(1, round(FRAME_PERIOD_S / truth.step_s))
        sigma = self.params.position_sigma_m
        footprint = self.params.footprint_radius_m
        number = 0
        for step in range(0, truth.last_step + 1, stride):
            time_s = step * truth.step_s
            if time_s >= until_s:
                break
            number += 1
            seen = truth.at_step(step)
            if len(seen) == 0:
                continue
            x, y, heading = self.orbit.pose(time_s)
            inside = np.hypot(seen.x_m - x, seen.y_m - y) <= footprint
            if not inside.any():
                continue
            pose: dict[str, Any] | None = None
            for i in np.flatnonzero(inside).tolist():
                entity = int(seen.entity[i])
                target_class = truth.classes[entity]
                if rng.random() >= PD.get(target_class, 0.8):
                    continue
                n_e, n_n = rng.standard_normal(2).tolist()
                lat, lon = latlon(
                    self.frame, float(seen.x_m[i]) + sigma * n_e, float(seen.y_m[i]) + sigma * n_n
                )
                detection: dict[str, Any] = {"lat": lat, "lon": lon, "sigma_m": sigma}
                if seen.z_m[i] > 1.0:
                    detection["alt_m"] = round(float(seen.z_m[i]), 1)
                reported, confidence = CONFUSION.guess(target_class, rng)
                if pose is None:
                    drone_lat, drone_lon = latlon(self.frame, x, y)
                    pose = {
                        "lat": drone_lat,
                        "lon": drone_lon,
                        "alt_m": self.orbit.alt_m,
                        "heading_deg": wire_bearing(heading, 1),
                    }
                body = {
                    "sensor_type": "drone",
                    "drone": dict(pose),
                    "detection": detection,
                    "class": reported,
                    "confidence": confidence,
                    "media_ref": f"urn:lindero:media:{self.sensor_id}:{number:06d}",
                }
                out.append(
                    Observation(round(time_s * 1000.0), self.sensor_id, "events", body, truth.ids[entity])
                )
        return out
