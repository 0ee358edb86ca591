"""Inputs of the correlator benchmarks: a simulated scenario with ground truth, and synthetic load.

- :func:`accuracy_scenario`: the simulator's seeded scenario in one region, every detection event
  turned into a ``Detection`` exactly as the correlator does it (ingest's admission code writes the
  ``SensorEventRecord`` JSON, the correlator parses it and calls ``from_record``), and the ground
  truth at 1 Hz in the region's local frame, restricted to what some sensor had just seen.
- :func:`synthetic_load`: N targets in constant-velocity motion under two radars whose every
  revolution is one scan of ~0.9 N plots (plus clutter), with a drone and a ground-sensor stream:
  the tracker's steady-state load with ~N confirmed tracks.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import orjson
from numpy.typing import NDArray

from bench._common import ROOT
from schemas.events import SensorEventRecord
from services.core.config import LinderoConfig, load_config
from services.core.geography import Geography
from services.correlator.domain.detections import Detection, MeasurementKind, from_record
from services.correlator.domain.region import RegionContext
from services.correlator.domain.tracker import Coverage, Scan
from services.ingest.domain.admission import Admitted, Directory, TimeLimits, admit, render_time
from services.ingest.service import EVENTS
from services.simulator.domain import Simulation, simulate

Array = NDArray[np.float64]
Labelled = tuple[Hashable, float, float]
"""(id, east_m, north_m)."""

DEMO_CONFIG = ROOT / "config" / "demo.yaml"
START = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


def demo() -> tuple[LinderoConfig, Geography]:
    """The demo configuration and its geography."""
    config = load_config(DEMO_CONFIG)
    if config.geography_path is None:
        raise RuntimeError("the demo configuration names no geography file")
    return config, Geography.load(config.geography_path)


class Admission:
    """Sensor events to ``SensorEventRecord`` JSON with ingest's own admission code (no clock limits)."""

    def __init__(self, config: LinderoConfig) -> None:
        self.directory = Directory.from_config(config)
        self.gateway_of = {s: g.id for g in config.gateways for s in g.sensors}

    def record(self, event: dict[str, object]) -> bytes:
        """The Kafka record value ingest writes for ``event`` (as tests/integration/correlator_fixtures)."""
        parsed = EVENTS.parser.single(orjson.dumps(event))
        if parsed.model is None:
            raise ValueError(f"the simulator wrote an invalid event: {parsed.errors}")
        gateway = self.directory.gateways[self.gateway_of[str(event["sensor_id"])]]
        now = parsed.model.time
        decision = admit(
            0,
            parsed.model,
            parsed.canonical,
            gateway,
            self.directory,
            now,
            render_time(now),
            TimeLimits(1e9, 1e9),
        )
        if not isinstance(decision, Admitted):
            raise ValueError(f"ingest would refuse a simulated event: {decision}")
        return decision.value


@dataclass(frozen=True)
class AccuracyScenario:
    """Detections, evaluation times and the truth each tracker is scored against."""

    context: RegionContext
    simulation: Simulation
    detections: list[Detection]
    """Every detection event of the simulation, in time order (stable)."""
    times_s: list[float]
    """Evaluation times, POSIX seconds, 1 Hz."""
    truth: list[list[Labelled]]
    """Per evaluation time, the truths some sensor detected within ``lookback_s`` before it."""
    truth_samples: int
    """Truth samples at the evaluation times before the detectability filter."""
    lookback_s: float
    warmup_s: float


def accuracy_scenario(
    config: LinderoConfig,
    geography: Geography,
    region: str,
    *,
    seed: int,
    duration_s: float,
    density: float,
    lookback_s: float = 10.0,
    warmup_s: float = 10.0,
) -> AccuracyScenario:
    """The simulator's scenario as the correlator sees it, with the truth in the region's frame.

    A truth counts at evaluation time ``t`` when some detection caused by it (the simulation's
    ``origin`` map) has a time in ``(t - lookback_s, t]``: targets never seen yet, or out of every
    sensor's reach for longer than ``lookback_s``, cannot be tracked by anyone and are left out.
    Evaluation starts ``warmup_s`` after the start, when the first detections have arrived.
    """
    context = RegionContext.build(config, geography, region)
    simulation = simulate(
        config, geography, region, seed=seed, start=START, duration_s=duration_s, density=density
    )
    admission = Admission(config)
    detections = []
    for event in simulation.events:
        if event.stream != "events":
            continue
        record = SensorEventRecord.model_validate_json(admission.record(event.payload))
        detections.append(from_record(record, context.frame, config.sensors_by_id))
    detections.sort(key=lambda d: d.time_s)

    start_s = START.timestamp()
    truth = simulation.truth
    east, north, _ = context.frame.to_enu(truth.lat, truth.lon)
    seen: dict[str, list[float]] = {}
    for detection in detections:
        cause = simulation.origin.get(detection.event_id)
        if cause is not None:
            seen.setdefault(cause, []).append(detection.time_s - start_s)
    seen_at = {truth_id: np.asarray(times) for truth_id, times in seen.items()}
    steps = np.arange(math.ceil(warmup_s), math.floor(duration_s) + 1)
    rows_at = {float(k): np.flatnonzero(truth.time_s == k) for k in steps}
    labelled: list[list[Labelled]] = []
    samples = 0
    for k in steps.tolist():
        rows = rows_at[float(k)]
        samples += len(rows)
        step: list[Labelled] = []
        for row in rows.tolist():
            truth_id = truth.ids[int(truth.entity[row])]
            times = seen_at.get(truth_id)
            if times is not None and np.any((times <= k) & (times > k - lookback_s)):
                step.append((truth_id, float(east[row]), float(north[row])))
        labelled.append(step)
    return AccuracyScenario(
        context=context,
        simulation=simulation,
        detections=detections,
        times_s=[start_s + float(k) for k in steps],
        truth=labelled,
        truth_samples=samples,
        lookback_s=lookback_s,
        warmup_s=warmup_s,
    )


# -- synthetic load -------------------------------------------------------------------------------


class Step(NamedTuple):
    """One call into the tracker: a scan to process, or (``scan`` None) ``advance(time_s)``."""

    time_s: float
    scan: Scan | None


@dataclass(frozen=True)
class SyntheticLoad:
    """Tracker calls in time order; the measured part starts at ``steps[measure_from]``."""

    steps: list[Step]
    measure_from: int
    targets: int
    warmup_s: float
    measure_s: float

    def detections(self, part: slice) -> int:
        return sum(len(s.scan.detections) for s in self.steps[part] if s.scan is not None)


RANGE_SIGMA_M = 15.0
BEARING_SIGMA_RAD = math.radians(0.6)
RADIAL_SIGMA_MPS = 0.5
SCAN_PERIOD_S = 2.0
DETECTION_PROBABILITY = 0.9
CLUTTER_PER_SCAN = 1.0
DRONE_SIGMA_M = 12.0
GROUND_SIGMA_M = 40.0


def _detection(
    name: str,
    time_s: float,
    sensor: str,
    sensor_type: str,
    kind: MeasurementKind,
    z: list[float],
    sigmas: list[float],
    site: tuple[float, float] | None = None,
    target_class: str | None = None,
    confidence: float | None = None,
) -> Detection:
    return Detection(
        event_id=name,
        time_s=time_s,
        region="bench",
        sensor_id=sensor,
        sensor_type=sensor_type,
        owner=("XX", "bench"),
        kind=kind,
        z=np.asarray(z, dtype=np.float64),
        covariance=np.diag(np.square(np.asarray(sigmas, dtype=np.float64))),
        sensor_en=site,
        target_class=target_class,
        confidence=confidence,
    )


def _spread(rng: np.random.Generator, count: int, centre: Array, radius_m: float, gap_m: float) -> Array:
    """``count`` points uniform in a disc, no two closer than ``gap_m`` (dart throwing on a grid)."""
    cell = gap_m / math.sqrt(2.0)
    taken: dict[tuple[int, int], Array] = {}
    out: list[Array] = []
    while len(out) < count:
        r = radius_m * math.sqrt(float(rng.random()))
        a = float(rng.uniform(0.0, 2.0 * math.pi))
        p = centre + r * np.array([math.sin(a), math.cos(a)])
        i, j = int(p[0] // cell), int(p[1] // cell)
        near = (taken.get((i + di, j + dj)) for di in range(-2, 3) for dj in range(-2, 3))
        if any(q is not None and math.dist(p, q) < gap_m for q in near):
            continue
        taken[(i, j)] = p
        out.append(p)
    return np.array(out)


def synthetic_load(
    context: RegionContext,
    targets: int,
    *,
    seed: int,
    warmup_s: float = 20.0,
    measure_s: float = 40.0,
    gap_m: float = 150.0,
) -> SyntheticLoad:
    """``targets`` targets under the region's two radars, as tracker scans, advances every second.

    Targets (70 % walking at 1-2 m/s, 30 % driving at 5-15 m/s, constant velocity plus white
    acceleration noise of 0.05 m²/s³) start at least ``gap_m`` apart, uniform in the disc of
    radius ``min(range) - separation/2 - 2 km`` around the midpoint of the radars, so every
    radar sees every target. Each radar revolution (2 s; the radars half a period apart) is one
    scan: a plot per target with probability 0.9 (range σ 15 m, bearing σ 0.6°, radial velocity
    σ 0.5 m/s) plus Poisson(1) clutter, all at the scan time, with the radar's disc as coverage.
    Every second each of two drones reports three tasked targets (point, σ 12 m, p = 0.8, new
    tasking every 30 s) and 16 ground sensors trip with probability 0.05 each (presence, σ 40 m;
    half at a target, half false alarms). ``advance`` runs once per second, as the engine's
    checkpoints do.
    """
    rng = np.random.default_rng(seed)
    radars = [s for s in context.sensors.values() if s.sensor_type == "radar"]
    if len(radars) < 2:
        raise ValueError(f"region {context.region} has fewer than two radars")
    sites = np.array([[r.east_m, r.north_m] for r in radars[:2]], dtype=np.float64)
    reach = min(r.coverage_m for r in radars[:2])
    centre = sites.mean(axis=0)
    radius = reach - float(np.linalg.norm(sites[0] - sites[1])) / 2 - 2_000.0
    position = _spread(rng, targets, centre, radius, gap_m)
    driving = rng.random(targets) < 0.3
    speed = np.where(driving, rng.uniform(5.0, 15.0, targets), rng.uniform(1.0, 2.0, targets))
    heading = rng.uniform(0.0, 2.0 * math.pi, targets)
    velocity = np.column_stack([speed * np.sin(heading), speed * np.cos(heading)])
    classes = np.where(driving, "vehicle", "person")
    t0 = START.timestamp()
    total_s = warmup_s + measure_s
    dt_s = 0.5
    steps: list[Step] = []
    measure_from = -1
    counter = 0
    tasked = [rng.choice(targets, 3, replace=False) for _ in range(2)]

    def name() -> str:
        nonlocal counter
        counter += 1
        return f"bench-{counter:09d}"

    for k in range(round(total_s / dt_s)):
        now = t0 + k * dt_s
        if measure_from < 0 and k * dt_s >= warmup_s:
            measure_from = len(steps)
        for index, site in enumerate(sites):
            phase = index * SCAN_PERIOD_S / 2
            if not math.isclose((k * dt_s - phase) % SCAN_PERIOD_S, 0.0, abs_tol=1e-9):
                continue
            seen = np.flatnonzero(rng.random(targets) < DETECTION_PROBABILITY)
            d = position[seen] - site
            r = np.hypot(d[:, 0], d[:, 1])
            z = np.column_stack(
                [
                    r + rng.normal(0.0, RANGE_SIGMA_M, len(seen)),
                    np.arctan2(d[:, 0], d[:, 1]) + rng.normal(0.0, BEARING_SIGMA_RAD, len(seen)),
                    np.einsum("kd,kd->k", d, velocity[seen]) / r
                    + rng.normal(0.0, RADIAL_SIGMA_MPS, len(seen)),
                ]
            )
            clutter = int(rng.poisson(CLUTTER_PER_SCAN))
            z_clutter = np.column_stack(
                [
                    reach * np.sqrt(rng.random(clutter)),
                    rng.uniform(-math.pi, math.pi, clutter),
                    rng.normal(0.0, 1.0, clutter),
                ]
            )
            sensor = radars[index].sensor_id
            sigmas = [RANGE_SIGMA_M, BEARING_SIGMA_RAD, RADIAL_SIGMA_MPS]
            origin = (float(site[0]), float(site[1]))
            plots = [
                _detection(name(), now, sensor, "radar", MeasurementKind.POLAR, row, sigmas, origin)
                for row in np.vstack([z, z_clutter]).tolist()
            ]
            coverage = Coverage(origin, radars[index].coverage_m)
            steps.append(Step(now, Scan(sensor, now, plots, coverage)))
        if math.isclose(now - t0, round(now - t0)):
            second = round(now - t0)
            for drone in range(2):
                if second % 30 == 0:
                    tasked[drone] = rng.choice(targets, 3, replace=False)
                points = [
                    _detection(
                        name(),
                        now,
                        f"bench-uav-{drone}",
                        "drone",
                        MeasurementKind.POINT,
                        (position[j] + rng.normal(0.0, DRONE_SIGMA_M, 2)).tolist(),
                        [DRONE_SIGMA_M, DRONE_SIGMA_M],
                        target_class=str(classes[j]),
                        confidence=0.8,
                    )
                    for j in tasked[drone].tolist()
                    if rng.random() < 0.8
                ]
                if points:
                    steps.append(Step(now, Scan(f"bench-uav-{drone}", now, points)))
            for ground in np.flatnonzero(rng.random(16) < 0.05).tolist():
                if rng.random() < 0.5:
                    j = int(rng.integers(targets))
                    where, what = position[j] + rng.normal(0.0, GROUND_SIGMA_M / 2, 2), str(classes[j])
                else:
                    where, what = centre + rng.uniform(-radius, radius, 2), "animal"
                sensor = f"bench-ugs-{ground:02d}"
                trip = _detection(
                    name(),
                    now,
                    sensor,
                    "ground",
                    MeasurementKind.PRESENCE,
                    where.tolist(),
                    [GROUND_SIGMA_M, GROUND_SIGMA_M],
                    target_class=what,
                    confidence=0.6,
                )
                steps.append(Step(now, Scan(sensor, now, [trip])))
            steps.append(Step(now, None))
        noise = rng.normal(0.0, math.sqrt(0.05 / dt_s), (targets, 2))
        position = position + velocity * dt_s
        velocity = velocity + noise * dt_s
    return SyntheticLoad(steps, measure_from, targets, warmup_s, measure_s)
