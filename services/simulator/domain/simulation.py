"""``simulate()``: a seeded scenario in one region, from the script to the wire messages.

Steps: build the region's scene (local frame, border, country land), write the script
(who does what), integrate every entity's ground truth, run every sensor of the region that a
gateway posts for over it (radars, drones, ground sensors, status reports), sort the messages
by time, give them event ids, and derive the anomalies the scenario contains.

Deterministic: the same configuration, seed, start, duration and parameters give the same
:class:`Simulation`, byte for byte once serialised, event ids included (version-4 UUIDs drawn
from a stream seeded by the seed, the region and the start). No clock, no I/O, no global RNG.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.common import SCHEMA_VERSION
from services.core.config import DroneSensor, GroundSensor, LinderoConfig, RadarSensor
from services.simulator.domain.clock import require_utc, rfc3339
from services.simulator.domain.drone import DroneModel
from services.simulator.domain.expected import ExpectedWriter
from services.simulator.domain.ground import GroundModel
from services.simulator.domain.motion import integrate
from services.simulator.domain.radar import RadarModel
from services.simulator.domain.randomness import stream_rng, uuid4s
from services.simulator.domain.scenario import ScenarioParams, Script, write_script
from services.simulator.domain.scene import RegionScene
from services.simulator.domain.sensing import Observation, Stream
from services.simulator.domain.status import StatusPlan
from services.simulator.domain.truth import TruthSamples, TruthTable

if TYPE_CHECKING:
    from services.core.geography import Geography

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One message to post: when (simulation seconds), through which gateway, on which stream."""

    time_s: float
    gateway_id: str
    stream: Stream
    """``events`` (``/v1/events/batch``) or ``status`` (``/v1/status/batch``)."""
    payload: dict[str, Any]
    """The wire message, JSON-ready; validates strictly as SensorEvent or SensorStatus."""

    @property
    def event_id(self) -> str:
        return str(self.payload["event_id"])

    @property
    def sensor_id(self) -> str:
        return str(self.payload["sensor_id"])


@dataclass(frozen=True)
class Simulation:
    """A played scenario: messages, ground truth, causes and expected anomalies."""

    regions: tuple[str, ...]
    seed: int
    start: dt.datetime
    duration_s: float
    density: float
    events: list[SimEvent]
    """Sorted by time."""
    truth: TruthSamples
    origin: dict[str, str | None]
    """event id -> the truth id that caused it, or ``None`` (clutter, false alarm, status)."""
    expected: list[dict[str, Any]]

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.duration_s)

    def counts(self) -> dict[str, Any]:
        """How much of what: events by stream and sensor type, truths by class, anomalies by kind."""
        by_type: Counter[str] = Counter()
        for event in self.events:
            by_type[str(event.payload.get("sensor_type", "status"))] += 1
        from_truth = sum(1 for cause in self.origin.values() if cause is not None)
        detections = sum(count for kind, count in by_type.items() if kind != "status")
        return {
            "events": len(self.events),
            "by_type": dict(sorted(by_type.items())),
            "detections_from_truth": from_truth,
            "false_detections": detections - from_truth,
            "truths": len(self.truth.ids),
            "truths_by_class": dict(sorted(Counter(self.truth.classes).items())),
            "truth_samples": len(self.truth),
            "expected_by_kind": dict(sorted(Counter(e["kind"] for e in self.expected).items())),
        }


def _gateway_of(config: LinderoConfig) -> dict[str, str]:
    owner: dict[str, str] = {}
    for gateway in config.gateways:
        for sensor_id in gateway.sensors:
            owner.setdefault(sensor_id, gateway.id)
    return owner


def simulate(
    config: LinderoConfig,
    geography: Geography,
    region_id: str,
    *,
    seed: int,
    start: dt.datetime,
    duration_s: float,
    density: float = 1.0,
    params: ScenarioParams | None = None,
) -> Simulation:
    """Play the scenario of ``region_id`` for ``duration_s`` seconds from ``start`` (UTC).

    ``params`` overrides every knob (its ``density`` wins over ``density``). Only sensors
    that some gateway posts for take part. Raises ``ValueError`` for an unknown region, a
    non-positive duration or a region without a border.
    """
    duration_s = float(duration_s)
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s must be positive, not {duration_s}")
    region = config.regions_by_id.get(region_id)
    if region is None:
        known = ", ".join(config.regions_by_id)
        raise ValueError(f"unknown region {region_id!r} (known: {known})")
    start = require_utc(start)
    params = params or ScenarioParams(density=density)
    scene = RegionScene.build(region, geography)
    gateway_of = _gateway_of(config)
    sensors = [s for s in config.sensors if s.region == region_id and s.id in gateway_of]
    script = write_script(scene, sensors, params, seed, duration_s)

    last_step = math.floor(duration_s / params.step_s + 1e-9)
    trajectories = [
        integrate(
            actor.start,
            actor.start_s,
            actor.legs,
            actor.noise,
            stream_rng(seed, region_id, "motion", actor.truth_id),
            params.step_s,
            last_step,
            actor.altitude,
        )
        for actor in script.actors
    ]
    truth = TruthTable(
        [a.truth_id for a in script.actors],
        [a.target_class for a in script.actors],
        trajectories,
        params.step_s,
        last_step,
    )
    detections, statuses = _observe(scene, sensors, script, truth, seed, duration_s)

    observations = sorted(
        detections + statuses, key=lambda o: (o.time_ms, o.sensor_id, o.stream, o.origin or "")
    )
    start_ms = (start - _EPOCH) // dt.timedelta(milliseconds=1)
    ids = uuid4s(stream_rng(seed, region_id, "event-ids", start_ms), len(observations))
    events: list[SimEvent] = []
    origin: dict[str, str | None] = {}
    for event_id, observation in zip(ids, observations, strict=True):
        payload: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": event_id,
            "sensor_id": observation.sensor_id,
            "time": rfc3339(start, observation.time_ms),
            **observation.body,
        }
        events.append(
            SimEvent(
                observation.time_ms / 1000.0, gateway_of[observation.sensor_id], observation.stream, payload
            )
        )
        origin[event_id] = observation.origin

    expected = ExpectedWriter(scene, start, duration_s)
    expected.crossings(truth)
    expected.scripted(
        script, truth, {a.truth_id: t.marks for a, t in zip(script.actors, trajectories, strict=True)}
    )
    expected.faults(script, statuses)
    return Simulation(
        regions=(region_id,),
        seed=seed,
        start=start,
        duration_s=duration_s,
        density=params.density,
        events=events,
        truth=truth.sample(scene.frame, 1.0),
        origin=origin,
        expected=expected.result(),
    )


def _observe(
    scene: RegionScene,
    sensors: Sequence[RadarSensor | DroneSensor | GroundSensor],
    script: Script,
    truth: TruthTable,
    seed: int,
    duration_s: float,
) -> tuple[list[Observation], list[Observation]]:
    """Every sensor's detections and status reports (silent sensors stop at their time)."""
    faults = script.faults
    detections: list[Observation] = []
    statuses: list[Observation] = []
    for sensor in sensors:
        rng = stream_rng(seed, scene.region_id, "sensor", sensor.id)
        silent_s = faults.silent.get(sensor.id)
        until_s = duration_s if silent_s is None else min(duration_s, silent_s)
        if isinstance(sensor, RadarSensor):
            x, y, _ = scene.frame.to_enu(sensor.position.lat, sensor.position.lon, 0.0)
            radar = RadarModel(
                sensor.id,
                float(x),
                float(y),
                sensor.position.alt_m or 0.0,
                sensor.radar,
                float(rng.uniform(0.0, sensor.radar.scan_period_s)),
            )
            detections += radar.observe(truth, rng, until_s)
            battery, drain = 100.0, 0.0
        elif isinstance(sensor, DroneSensor):
            drone = DroneModel(sensor.id, script.orbits[sensor.id], sensor.drone, scene.frame)
            detections += drone.observe(truth, rng, until_s)
            battery, drain = float(rng.uniform(70.0, 100.0)), float(rng.uniform(8.0, 15.0))
        else:
            x, y, _ = scene.frame.to_enu(sensor.position.lat, sensor.position.lon, 0.0)
            ground = GroundModel(sensor.id, float(x), float(y), sensor.ground)
            detections += ground.observe(truth, rng, until_s)
            battery, drain = float(rng.uniform(45.0, 100.0)), float(rng.uniform(0.2, 0.8))
        plan = StatusPlan(
            sensor_id=sensor.id,
            interval_s=sensor.heartbeat_interval_s,
            phase_s=float(rng.uniform(0.0, min(sensor.heartbeat_interval_s, duration_s))),
            battery_start_pct=round(battery, 2),
            drain_pct_per_h=drain,
            temperature_c=float(rng.uniform(22.0, 33.0)),
            silent_from_s=silent_s,
            tamper_at_s=faults.tamper.get(sensor.id),
            low_battery_at_s=faults.low_battery.get(sensor.id),
        )
        statuses += plan.observe(rng, duration_s)
    return detections, statuses


def combine(simulations: Sequence[Simulation]) -> Simulation:
    """Several regions' simulations (same seed, start and duration) as one."""
    if not simulations:
        raise ValueError("nothing to combine")
    first = simulations[0]
    for other in simulations[1:]:
        if (other.seed, other.start, other.duration_s) != (first.seed, first.start, first.duration_s):
            raise ValueError("only simulations with the same seed, start and duration combine")
    events = sorted(
        (event for sim in simulations for event in sim.events),
        key=lambda e: (e.time_s, e.sensor_id, e.stream, e.event_id),
    )
    origin = {event_id: cause for sim in simulations for event_id, cause in sim.origin.items()}
    expected = sorted(
        (entry for sim in simulations for entry in sim.expected),
        key=lambda e: (e["start_s"], e["region"], e["kind"], str(e.get("truth_ids", e.get("sensor_id")))),
    )
    return Simulation(
        regions=tuple(region for sim in simulations for region in sim.regions),
        seed=first.seed,
        start=first.start,
        duration_s=first.duration_s,
        density=first.density,
        events=events,
        truth=TruthSamples.concat([sim.truth for sim in simulations]),
        origin=origin,
        expected=expected,
    )
