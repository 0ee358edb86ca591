"""A rotating ground-surveillance radar: polar detections of the truth, plus clutter.

Per scan (every ``scan_period_s``, from a per-radar phase) the beam sweeps clockwise from
north; a target at bearing ``b`` is seen when the beam gets there, at
``t_scan + b / 360 * scan_period_s`` (a target slipping past north during a scan is seen at
the start of the next one: at most one plot per target and revolution). Each truth within
``max_range_m`` (ground range) is detected with probability
``detection_probability * PD_FACTOR[class]`` and reported as:

- ``range_m = r + N(0, range_sigma_m)`` where ``r`` is the ground range
  ``sqrt(de^2 + dn^2)``, or for airborne targets the slant range ``sqrt(de^2 + dn^2 + du^2)``
  reported with ``elevation_deg = atan2(du, ground range) + N(0, ELEVATION_SIGMA_DEG)``
  (so ground = slant cos(elevation));
- ``bearing_deg = atan2(de, dn) + N(0, bearing_sigma_deg)``, clockwise from true north;
- ``radial_velocity_mps = (d . v) / r + N(0, RADIAL_VELOCITY_SIGMA_MPS)``, positive receding;
- ``rcs_dbsm`` by class with noise, and with probability ``CLASS_REPORT_PROBABILITY`` a class
  guess (micro-Doppler: people and animals are confused) with its confidence.

Clutter: ``Poisson(clutter_per_scan)`` false plots per scan, uniform over the covered disc.
Geometry is in the region's local frame (e, n, u), the same the correlator uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.core.config import RadarParams
from services.simulator.domain.sensing import CLUTTER, ClassConfusion, Observation, wire_bearing
from services.simulator.domain.truth import TruthTable

MIN_RANGE_M = 50.0
"""Closer than this the radar sees nothing (blind zone), metres."""
AIRBORNE_M = 20.0
"""Targets higher than this above the radar's ground get an elevation and a slant range, metres."""
ELEVATION_SIGMA_DEG = 1.0
RADIAL_VELOCITY_SIGMA_MPS = 0.5
RCS_SIGMA_DB = 2.0
CLASS_REPORT_PROBABILITY = 0.6
PD_FACTOR = {"person": 1.0, "vehicle": 1.0, "aircraft": 0.9, "animal": 0.6}
"""Detection probability relative to the configured one: small, slow targets are harder."""
RCS_DBSM = {"person": 0.0, "vehicle": 10.0, "aircraft": 3.0, "animal": -3.0}

CONFUSION = ClassConfusion(
    {
        "person": {"person": 0.72, "animal": 0.15, "vehicle": 0.05, "unknown": 0.08},
        "vehicle": {"vehicle": 0.85, "person": 0.04, "unknown": 0.11},
        "animal": {"animal": 0.55, "person": 0.30, "unknown": 0.15},
        "aircraft": {"aircraft": 0.80, "vehicle": 0.05, "unknown": 0.15},
        CLUTTER: {"unknown": 0.50, "animal": 0.25, "person": 0.15, "vehicle": 0.10},
    }
)


@dataclass(frozen=True)
class RadarModel:
    """One radar at a site (local metres; ``site_alt_m`` above the ground) with its parameters."""

    sensor_id: str
    site_x_m: float
    site_y_m: float
    site_alt_m: float
    params: RadarParams
    phase_s: float
    """Time of the first scan's start, seconds (a scan starts every ``scan_period_s``)."""

    def observe(self, truth: TruthTable, rng: np.random.Generator, until_s: float) -> list[Observation]:
        """Every detection (truth and clutter) of the scans before ``until_s``."""
        out: list[Observation] = []
        period = self.params.scan_period_s
        scan_s = self.phase_s
        while scan_s < until_s:
            self._scan(truth, rng, scan_s, until_s, out)
            self._clutter(rng, scan_s, until_s, out)
            scan_s += period
        return out

    def _scan(
        self,
        truth: TruthTable,
        rng: np.random.Generator,
        scan_s: float,
        until_s: float,
        out: list[Observation],
    ) -> None:
        params = self.params
        period = params.scan_period_s
        first = math.floor(scan_s / truth.step_s)
        last = math.ceil((scan_s + period) / truth.step_s)
        entity = np.flatnonzero((truth.first_step <= last) & (truth.last_step_of >= first))
        if len(entity) == 0:
            return
        # When does the beam reach each target? Solve beam(t) = bearing(t) with two fixed-point
        # steps from the scan start. A target that slips clockwise past north during the scan
        # (bearing 359.9 at the start, 0.1 when the beam gets there) is not met in this scan:
        # the next scan sees it at its very start.
        first_guess = self._bearings(truth, entity, np.full(len(entity), scan_s))
        refined = self._bearings(truth, entity, scan_s + first_guess / 360.0 * period)
        slipped = (first_guess > 270.0) & (refined < 90.0)
        seen_s = scan_s + refined / 360.0 * period
        now, alive = truth.at_times(entity, seen_s)
        alive &= ~slipped
        dx, dy = now.x_m - self.site_x_m, now.y_m - self.site_y_m
        dz = now.z_m - self.site_alt_m
        ground_m = np.hypot(dx, dy)
        covered = alive & (ground_m <= params.max_range_m) & (ground_m >= MIN_RANGE_M) & (seen_s < until_s)
        count = len(entity)
        pd = np.asarray(
            [params.detection_probability * PD_FACTOR.get(truth.classes[j], 1.0) for j in entity.tolist()]
        )
        detected = covered & (rng.random(count) < pd)
        noise = rng.standard_normal((count, 5)).tolist()
        rows = zip(
            entity.tolist(),
            dx.tolist(),
            dy.tolist(),
            dz.tolist(),
            ground_m.tolist(),
            now.vx_mps.tolist(),
            now.vy_mps.tolist(),
            seen_s.tolist(),
            detected.tolist(),
            noise,
            strict=True,
        )
        for j, de, dn, du, ground, ve, vn, when_s, hit, (n_r, n_b, n_v, n_rcs, n_el) in rows:
            if not hit:
                continue
            target_class = truth.classes[j]
            airborne = du + self.site_alt_m > AIRBORNE_M
            true_range = math.hypot(ground, du) if airborne else ground
            radial = (de * ve + dn * vn) / true_range
            body: dict[str, Any] = {
                "sensor_type": "radar",
                "range_m": round(max(0.0, true_range + params.range_sigma_m * n_r), 2),
                "bearing_deg": wire_bearing(
                    math.degrees(math.atan2(de, dn)) + params.bearing_sigma_deg * n_b
                ),
                "range_sigma_m": params.range_sigma_m,
                "bearing_sigma_deg": params.bearing_sigma_deg,
                "radial_velocity_mps": round(radial + RADIAL_VELOCITY_SIGMA_MPS * n_v, 2),
                "radial_velocity_sigma_mps": RADIAL_VELOCITY_SIGMA_MPS,
                "rcs_dbsm": round(RCS_DBSM.get(target_class, 0.0) + RCS_SIGMA_DB * n_rcs, 1),
            }
            if airborne:
                elevation = math.degrees(math.atan2(du, ground)) + ELEVATION_SIGMA_DEG * n_el
                body["elevation_deg"] = round(min(90.0, max(-90.0, elevation)), 3)
                body["elevation_sigma_deg"] = ELEVATION_SIGMA_DEG
            _add_class(body, target_class, rng)
            out.append(Observation(round(when_s * 1000.0), self.sensor_id, "events", body, truth.ids[j]))

    def _bearings(
        self, truth: TruthTable, entity: NDArray[np.int64], time_s: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Bearings (degrees in [0, 360)) of the entities from the site at the given times."""
        where, _ = truth.at_times(entity, time_s)
        return np.degrees(np.arctan2(where.x_m - self.site_x_m, where.y_m - self.site_y_m)) % 360.0

    def _clutter(
        self, rng: np.random.Generator, scan_s: float, until_s: float, out: list[Observation]
    ) -> None:
        params = self.params
        count = int(rng.poisson(params.clutter_per_scan))
        if count == 0:
            return
        inner, outer = MIN_RANGE_M, max(params.max_range_m, MIN_RANGE_M + 1.0)
        ranges = np.sqrt(rng.uniform(inner**2, outer**2, count))
        bearings = rng.uniform(0.0, 360.0, count)
        radial = rng.normal(0.0, 1.0, count)
        rcs = rng.uniform(-15.0, 5.0, count)
        for r, b, v, s in zip(ranges.tolist(), bearings.tolist(), radial.tolist(), rcs.tolist(), strict=True):
            seen_s = scan_s + b / 360.0 * params.scan_period_s
            if seen_s >= until_s:
                continue
            body: dict[str, Any] = {
                "sensor_type": "radar",
                "range_m": round(r, 2),
                "bearing_deg": wire_bearing(b),
                "range_sigma_m": params.range_sigma_m,
                "bearing_sigma_deg": params.bearing_sigma_deg,
                "radial_velocity_mps": round(v, 2),
                "radial_velocity_sigma_mps": RADIAL_VELOCITY_SIGMA_MPS,
                "rcs_dbsm": round(s, 1),
            }
            _add_class(body, CLUTTER, rng)
            out.append(Observation(round(seen_s * 1000.0), self.sensor_id, "events", body, None))


def _add_class(body: dict[str, Any], true_class: str, rng: np.random.Generator) -> None:
    """Sometimes a class guess: ``class`` and ``confidence`` (never a bare ``unknown``)."""
    if rng.random() >= CLASS_REPORT_PROBABILITY:
        return
    reported, confidence = CONFUSION.guess(true_class, rng)
    if reported != "unknown":
        body["class"] = reported
        body["confidence"] = confidence
