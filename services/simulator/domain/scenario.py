"""The scenario script: who does what, where and when in one region, from a seed.

Behaviours (counts scale with the duration and ``density``; see :class:`ScenarioParams`):

- **crossers**: people on foot (1.0-1.6 m/s) crossing the border at several points, a few
  in each direction, their crossings spread over the scenario (the first ones near the
  drones' patrol orbits, the rest preferably where a radar reaches);
- **vehicles** off-road (5-15 m/s): every other one crosses at a ford, the others drive a
  track to a point 200-400 m from the border, stop briefly and leave;
- **loiterer** (scenarios of 11 min and more): a person walks to a point 60-140 m from the
  border, stays within 30 m of it for 8.5-9.5 minutes, then leaves;
- **rendezvous** (5 min and more): two people, one from each side, meet at the border
  (12 m apart, each within 2 m of their spot) for 160-200 s, then go back;
- **aircraft**: a low, slow flyer (20-35 m/s, 60-240 m above ground) across the border;
- **road traffic**: legitimate vehicles on a road parallel to the border on one side;
- **animals**: random walks (0.3-2 m/s) around some ground sensors, on the sensor's side;
- **faults**: a ground sensor falls silent, one reports tamper, one runs low on battery;
- **drones** patrol a circle (800-1500 m) next to the border point nearest their base.

Everything is placed in the region's local frame from distances and offsets relative to the
border line, on the right country's land, inside the region's area. Each behaviour draws from
its own random stream, so the script is a pure function of (scene, sensors, params, seed,
duration).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString

from services.core.config import DroneSensor, GroundSensor, RadarSensor
from services.simulator.domain.drone import Orbit
from services.simulator.domain.motion import AltitudeProfile, Go, Leg, MotionNoise, Wander
from services.simulator.domain.randomness import stream_rng
from services.simulator.domain.scene import XY, BorderStation, RegionScene

SensorConfig = RadarSensor | DroneSensor | GroundSensor

PERSON = MotionNoise(heading_sigma_deg=6.0, speed_sigma=0.06, speed_range_mps=(1.0, 1.6))
VEHICLE = MotionNoise(heading_sigma_deg=4.0, speed_sigma=0.08, speed_range_mps=(5.0, 15.0))
ROAD_VEHICLE = MotionNoise(heading_sigma_deg=1.5, speed_sigma=0.05, speed_range_mps=(8.0, 22.0), tau_s=30.0)
AIRCRAFT = MotionNoise(heading_sigma_deg=2.0, speed_sigma=0.04, speed_range_mps=(20.0, 35.0), tau_s=30.0)
ANIMAL = MotionNoise(heading_sigma_deg=10.0, speed_sigma=0.1, speed_range_mps=(0.3, 2.0))

QUARTER_HOUR_S = 900.0
BORDER_STEP_M = 15.0
"""Crossers pass the line between points this far on each side of it, metres."""
ATTEMPTS = 80


@dataclass(frozen=True)
class ScenarioParams:
    """Knobs of a scenario. Rates are per 15 minutes of scenario at ``density`` 1."""

    density: float = 1.0
    """Scales every count (crossers, vehicles, road traffic, animals, loiterers...)."""
    step_s: float = 0.5
    """Integration step of the ground truth, seconds (1 s must be a multiple of it)."""
    crossers_per_quarter_hour: float = 6.0
    vehicles_per_quarter_hour: float = 3.0
    road_vehicles_per_min: float = 0.25
    """Per direction."""
    animal_groups: float = 3.0
    loiter_dwell_s: tuple[float, float] = (510.0, 570.0)
    loiter_radius_m: float = 30.0
    rendezvous_dwell_s: tuple[float, float] = (160.0, 200.0)
    rendezvous_offset_m: float = 6.0
    """Each party waits this far from the line on its own side, metres."""
    faults: bool = True
    """Script the silent, tampered and low-battery sensors."""

    def __post_init__(self) -> None:
        if not 0.0 < self.density <= 100.0:
            raise ValueError(f"density must be in (0, 100], not {self.density}")
        per_second = 1.0 / self.step_s
        if self.step_s <= 0 or abs(per_second - round(per_second)) > 1e-9:
            raise ValueError(f"step_s must divide one second, not {self.step_s}")


@dataclass(frozen=True)
class Actor:
    """One ground-truth entity and its plan."""

    truth_id: str
    target_class: str
    """person | vehicle | aircraft | animal"""
    role: str
    start: XY
    start_s: float
    legs: tuple[Leg, ...]
    noise: MotionNoise
    altitude: AltitudeProfile | None = None


@dataclass(frozen=True)
class Loiter:
    """A scripted loiterer: where it waits (local metres) and within what radius."""

    truth_id: str
    centre: XY
    radius_m: float


@dataclass(frozen=True)
class Meeting:
    """A scripted rendezvous: the two parties and the border point they meet at."""

    truth_ids: tuple[str, str]
    point: XY


@dataclass(frozen=True)
class Faults:
    """Scripted sensor faults: sensor id -> simulation time (s)."""

    silent: dict[str, float] = field(default_factory=dict)
    tamper: dict[str, float] = field(default_factory=dict)
    low_battery: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Script:
    """Everything scripted in one region."""

    actors: tuple[Actor, ...]
    loiters: tuple[Loiter, ...]
    meetings: tuple[Meeting, ...]
    faults: Faults
    orbits: dict[str, Orbit]
    """Drone id -> patrol orbit."""


def _distance(a: XY, b: XY) -> float:
    return math.hypot(b[0] - a[0], b[1] - a[1])


def _along(route: Sequence[XY], distance_m: float) -> tuple[XY, list[XY]]:
    """The point ``distance_m`` along a polyline and the waypoints still ahead of it."""
    for index in range(1, len(route)):
        leg_m = _distance(route[index - 1], route[index])
        if distance_m <= leg_m:
            (x0, y0), (x1, y1) = route[index - 1], route[index]
            share = distance_m / leg_m if leg_m > 0 else 0.0
            return (x0 + share * (x1 - x0), y0 + share * (y1 - y0)), list(route[index:])
        distance_m -= leg_m
    return route[-1], []


def _stratified(index: int, count: int, low: float, high: float, rng: np.random.Generator) -> float:
    """A time in the ``index``-th of ``count`` equal slices of [low, high] (spreads events out)."""
    width = (high - low) / count
    return low + width * (index + float(rng.uniform(0.2, 0.8)))


class ScriptWriter:
    """Writes the :class:`Script` of one region (see the module docstring)."""

    def __init__(
        self,
        scene: RegionScene,
        sensors: Sequence[SensorConfig],
        params: ScenarioParams,
        seed: int,
        duration_s: float,
    ) -> None:
        self.scene = scene
        self.sensors = list(sensors)
        self.params = params
        self.seed = seed
        self.duration_s = duration_s
        self.scale = params.density * duration_s / QUARTER_HOUR_S
        self.radars: list[tuple[XY, float]] = []
        for sensor in self.sensors:
            if isinstance(sensor, RadarSensor):
                self.radars.append((self.site(sensor), sensor.radar.max_range_m))
        self.used_m: list[float] = []
        self.hotspots: list[float] = []
        self.actors: list[Actor] = []
        self.counters: dict[str, int] = {}

    def rng(self, *labels: str | int) -> np.random.Generator:
        return stream_rng(self.seed, self.scene.region_id, "script", *labels)

    def site(self, sensor: RadarSensor | GroundSensor) -> XY:
        position = sensor.position
        x, y, _ = self.scene.frame.to_enu(position.lat, position.lon, 0.0)
        return float(x), float(y)

    def new_id(self, role: str) -> str:
        number = self.counters.get(role, 0) + 1
        self.counters[role] = number
        return f"{self.scene.region_id}:{role}-{number:03d}"

    def write(self) -> Script:
        orbits = self._orbits()
        self._crossers()
        self._vehicles()
        loiters = self._loiterers()
        meetings = self._rendezvous()
        self._aircraft()
        self._road_traffic()
        self._animals()
        faults = self._faults() if self.params.faults else Faults()
        return Script(tuple(self.actors), tuple(loiters), tuple(meetings), faults, orbits)

    # -- placement helpers ----------------------------------------------------------------------

    def _fraction(self, rng: np.random.Generator, attempt: int, near: float | None) -> float:
        """A border position (fraction of its length) away from those used, in radar reach."""
        length = self.scene.border.length
        relaxed = attempt > ATTEMPTS // 2
        for trial in range(40):
            if near is not None and trial < 20:
                fraction = near + float(rng.normal(0.0, 250.0)) / length
            else:
                fraction = float(rng.uniform(0.04, 0.96))
            fraction = min(0.96, max(0.04, fraction))
            along_m = fraction * length
            if not relaxed and any(abs(along_m - used) < 500.0 for used in self.used_m):
                continue
            if not relaxed and near is None and self.radars:
                point = self.scene.border.interpolate(along_m)
                if not any(_distance((point.x, point.y), xy) < 0.85 * reach for xy, reach in self.radars):
                    continue
            return fraction
        return float(rng.uniform(0.04, 0.96))

    def _place(
        self,
        rng: np.random.Generator,
        build: Callable[[BorderStation], list[XY] | None],
        near: float | None = None,
    ) -> list[XY] | None:
        """Try border stations until ``build(station)`` returns a path; remember where it went."""
        for attempt in range(ATTEMPTS):
            fraction = self._fraction(rng, attempt, near)
            path = build(self.scene.station(fraction))
            if path is not None:
                self.used_m.append(fraction * self.scene.border.length)
                return path
        return None

    def _crossing(
        self, station: BorderStation, rng: np.random.Generator, from_code: str, depth_m: tuple[float, float]
    ) -> list[XY] | None:
        """start -> just before the line -> just after it -> end, crossing exactly once, on land."""
        scene = self.scene
        to_code = scene.other(from_code)
        depth_in, depth_out = rng.uniform(*depth_m, 2).tolist()
        slant_in, slant_out = rng.uniform(-0.3, 0.3, 2).tolist()
        start = station.offset(from_code, depth_in, slant_in * depth_in)
        near_a = station.offset(from_code, BORDER_STEP_M)
        near_b = station.offset(to_code, BORDER_STEP_M)
        end = station.offset(to_code, depth_out, slant_out * depth_out)
        path = [start, near_a, near_b, end]
        if not (scene.placeable(start, from_code) and scene.placeable(end, to_code)):
            return None
        if scene.country_at(*near_a) != from_code or scene.country_at(*near_b) != to_code:
            return None
        if scene.crosses(path) != 1 or not scene.on_land(path):
            return None
        return path

    def _one_side(self, path: list[XY], side: str) -> list[XY] | None:
        """``path`` if it stays on ``side``'s land without touching the border, else ``None``."""
        if not all(self.scene.placeable(p, side) for p in path):
            return None
        if self.scene.crosses(path) != 0 or not self.scene.on_land(path):
            return None
        return path

    # -- behaviours -----------------------------------------------------------------------------

    def _orbits(self) -> dict[str, Orbit]:
        orbits: dict[str, Orbit] = {}
        for sensor in self.sensors:
            if not isinstance(sensor, DroneSensor):
                continue
            rng = self.rng("orbit", sensor.id)
            bx, by, _ = self.scene.frame.to_enu(sensor.base.lat, sensor.base.lon, 0.0)
            base = (float(bx), float(by))
            own = sensor.owner.country
            if own not in self.scene.codes:
                own = self.scene.country_at(*base) or self.scene.codes[0]
            fraction = self.scene.nearest_fraction(base)
            station = self.scene.station(fraction)
            radius = float(rng.uniform(800.0, 1500.0))
            orbits[sensor.id] = Orbit(
                centre=station.offset(own, 0.8 * radius),
                radius_m=radius,
                speed_mps=float(rng.uniform(15.0, 22.0)),
                clockwise=bool(rng.random() < 0.5),
                phase_rad=float(rng.uniform(0.0, 2.0 * math.pi)),
                alt_m=sensor.drone.cruise_alt_m,
            )
            self.hotspots.append(fraction)
        return orbits

    def _crossers(self) -> None:
        count = max(2, round(self.params.crossers_per_quarter_hour * self.scale))
        first = int(self.rng("crossers").integers(2))
        for index in range(count):
            self._crosser(index, count, self.scene.codes[(first + index) % 2])

    def _crosser(self, index: int, count: int, from_code: str) -> None:
        rng = self.rng("crosser", index)
        near = self.hotspots[index] if index < len(self.hotspots) else None
        cross_s = _stratified(index, count, 0.1 * self.duration_s, 0.9 * self.duration_s, rng)
        speed = float(rng.uniform(1.1, 1.5))
        path = self._place(rng, lambda station: self._crossing(station, rng, from_code, (250.0, 900.0)), near)
        if path is None:
            return
        lead_m = _distance(path[0], path[1]) + BORDER_STEP_M
        legs = tuple(Go(p, speed) for p in path[1:])
        truth_id = self.new_id("crosser")
        self.actors.append(
            Actor(truth_id, "person", "crosser", path[0], cross_s - lead_m / speed, legs, PERSON)
        )

    def _vehicles(self) -> None:
        count = max(1, round(self.params.vehicles_per_quarter_hour * self.scale))
        for index in range(count):
            self._vehicle(index, count)

    def _vehicle(self, index: int, count: int) -> None:
        rng = self.rng("vehicle", index)
        side = self.scene.codes[int(rng.integers(2))]
        key_s = _stratified(index, count, 0.1 * self.duration_s, 0.9 * self.duration_s, rng)
        speed = float(rng.uniform(6.0, 12.0))
        legs: tuple[Leg, ...]
        if index % 2 == 0:
            path = self._place(rng, lambda station: self._crossing(station, rng, side, (800.0, 2500.0)))
            if path is None:
                return
            lead_m = _distance(path[0], path[1]) + BORDER_STEP_M
            legs = tuple(Go(p, speed) for p in path[1:])
        else:

            def track(station: BorderStation) -> list[XY] | None:
                far_in, far_out = rng.uniform(1500.0, 3000.0, 2).tolist()
                close = float(rng.uniform(200.0, 400.0))
                along = rng.uniform(-800.0, 800.0, 3).tolist()
                waypoints = [
                    station.offset(side, far_in, along[0]),
                    station.offset(side, close, along[1] / 4.0),
                    station.offset(side, far_out, along[2]),
                ]
                return self._one_side(waypoints, side)

            path = self._place(rng, track)
            if path is None:
                return
            lead_m = _distance(path[0], path[1])
            until_s = key_s + float(rng.uniform(20.0, 60.0))
            legs = (Go(path[1], speed), Wander(path[1], 8.0, until_s, (0.0, 0.3)), Go(path[2], speed))
        truth_id = self.new_id("vehicle")
        self.actors.append(
            Actor(truth_id, "vehicle", "vehicle", path[0], key_s - lead_m / speed, legs, VEHICLE)
        )

    def _slots(self, per_half_hour: float, needed_s: float) -> int:
        """How many of a long behaviour fit: about ``per_half_hour``, each needing ``needed_s``."""
        fits = math.floor(self.duration_s / needed_s)
        wanted = max(1, round(per_half_hour * self.params.density * self.duration_s / (2 * QUARTER_HOUR_S)))
        return min(fits, wanted)

    def _loiterers(self) -> list[Loiter]:
        params = self.params
        count = self._slots(1.0, params.loiter_dwell_s[1] + 120.0)
        found = []
        for index in range(count):
            loiter = self._loiterer(index, count)
            if loiter is not None:
                found.append(loiter)
        return found

    def _loiterer(self, index: int, count: int) -> Loiter | None:
        params = self.params
        rng = self.rng("loiterer", index)
        slot_s = self.duration_s / count
        dwell_s = float(rng.uniform(*params.loiter_dwell_s))
        dwell_s = min(dwell_s, slot_s - 100.0)
        begin_s = index * slot_s + float(rng.uniform(30.0, max(31.0, slot_s - dwell_s - 60.0)))
        side = self.scene.codes[int(rng.integers(2))]
        radius = params.loiter_radius_m

        def plan(station: BorderStation) -> list[XY] | None:
            depth = float(rng.uniform(60.0, 140.0))
            centre = station.offset(side, depth)
            distance = float(self.scene.border_distance_m(*centre))
            if not radius + 25.0 <= distance <= 150.0:
                return None
            come, go = rng.uniform(250.0, 450.0, 2).tolist()
            along_in, along_out = rng.uniform(-300.0, 300.0, 2).tolist()
            waypoints = [
                station.offset(side, depth + come, along_in),
                centre,
                station.offset(side, depth + go, along_out),
            ]
            return self._one_side(waypoints, side)

        path = self._place(rng, plan)
        if path is None:
            return None
        speed = float(rng.uniform(1.1, 1.4))
        truth_id = self.new_id("loiterer")
        legs = (
            Go(path[1], speed),
            Wander(path[1], radius, begin_s + dwell_s, (0.1, 0.5), mark="dwell"),
            Go(path[2], speed),
        )
        start_s = begin_s - _distance(path[0], path[1]) / speed
        self.actors.append(Actor(truth_id, "person", "loiterer", path[0], start_s, legs, PERSON))
        return Loiter(truth_id, path[1], radius)

    def _rendezvous(self) -> list[Meeting]:
        count = self._slots(1.0, self.params.rendezvous_dwell_s[1] + 100.0)
        found = []
        for index in range(count):
            meeting = self._meeting(index, count)
            if meeting is not None:
                found.append(meeting)
        return found

    def _meeting(self, index: int, count: int) -> Meeting | None:
        params = self.params
        rng = self.rng("rendezvous", index)
        slot_s = self.duration_s / count
        dwell_s = min(float(rng.uniform(*params.rendezvous_dwell_s)), slot_s - 60.0)
        meet_s = index * slot_s + float(rng.uniform(30.0, max(31.0, slot_s - dwell_s - 30.0)))
        a, b = self.scene.codes
        offset = params.rendezvous_offset_m
        wait_radius = 2.0
        found: dict[str, list[XY]] = {}

        def plan(station: BorderStation) -> list[XY] | None:
            found.clear()
            for side in (a, b):
                spot = station.offset(side, offset)
                if self.scene.country_at(*spot) != side:
                    return None
                if float(self.scene.border_distance_m(*spot)) < offset - wait_radius - 0.5:
                    return None
                come, go = rng.uniform(200.0, 450.0, 2).tolist()
                along_in, along_out = rng.uniform(-200.0, 200.0, 2).tolist()
                start = station.offset(side, offset + come, along_in)
                end = station.offset(side, offset + go, along_out)
                if not (self.scene.placeable(start, side) and self.scene.placeable(end, side)):
                    return None
                if not self.scene.land.contains(LineString([start, spot, end])):
                    return None
                if self.scene.crosses([start, spot, end]) != 0:
                    return None
                found[side] = [start, spot, end]
            return [station.point]

        point = self._place(rng, plan)
        if point is None:
            return None
        ids: list[str] = []
        for side in (a, b):
            start, spot, end = found[side]
            speed = float(rng.uniform(1.1, 1.5))
            truth_id = self.new_id("rendezvous")
            legs = (
                Go(spot, speed),
                Wander(spot, wait_radius, meet_s + dwell_s, (0.05, 0.3), mark="meet"),
                Go(end, speed),
            )
            start_s = meet_s - _distance(start, spot) / speed
            self.actors.append(Actor(truth_id, "person", "rendezvous", start, start_s, legs, PERSON))
            ids.append(truth_id)
        return Meeting((ids[0], ids[1]), point[0])

    def _aircraft(self) -> None:
        count = max(1, round(self.params.density * self.duration_s / (2 * QUARTER_HOUR_S)))
        for index in range(count):
            self._flyer(index, count)

    def _flyer(self, index: int, count: int) -> None:
        rng = self.rng("aircraft", index)
        from_code = self.scene.codes[int(rng.integers(2))]
        to_code = self.scene.other(from_code)
        low, high = (0.35, 0.65) if count == 1 else (0.1, 0.9)
        cross_s = _stratified(index, count, low * self.duration_s, high * self.duration_s, rng)
        speed = float(rng.uniform(24.0, 31.0))

        def plan(station: BorderStation) -> list[XY] | None:
            depth_in, depth_out = rng.uniform(2500.0, 5000.0, 2).tolist()
            slope = math.tan(math.radians(float(rng.uniform(-30.0, 30.0))))
            start = station.offset(from_code, depth_in, slope * depth_in)
            end = station.offset(to_code, depth_out, -slope * depth_out)
            path = [start, station.point, end]
            if self.scene.country_at(*start) != from_code or self.scene.country_at(*end) != to_code:
                return None
            if not self.scene.inner.contains(LineString(path)) or self.scene.crosses([start, end]) != 1:
                return None
            return path

        path = self._place(rng, plan)
        if path is None:
            return
        lead_m = _distance(path[0], path[1])
        altitude = AltitudeProfile(
            base_m=float(rng.uniform(110.0, 180.0)),
            amplitude_m=float(rng.uniform(20.0, 50.0)),
            period_s=float(rng.uniform(120.0, 300.0)),
            phase_rad=float(rng.uniform(0.0, 2.0 * math.pi)),
            limits_m=(60.0, 240.0),
        )
        start_s = cross_s - lead_m / speed
        legs = (Go(path[1], speed), Go(path[2], speed))
        truth_id = self.new_id("aircraft")
        self.actors.append(
            Actor(truth_id, "aircraft", "aircraft", path[0], start_s, legs, AIRCRAFT, altitude)
        )

    def _road_traffic(self) -> None:
        rng = self.rng("road")
        order = list(self.scene.codes)
        if rng.random() < 0.5:
            order.reverse()
        road: list[XY] | None = None
        for side in order:
            for offset in (float(rng.uniform(1500.0, 2500.0)), float(rng.uniform(900.0, 1500.0))):
                road = self.scene.parallel_road(side, offset, 3000.0)
                if road is not None:
                    break
            if road is not None:
                break
        if road is None:
            return
        length = LineString(road).length
        rate_per_s = self.params.road_vehicles_per_min * self.params.density / 60.0
        lead_s = length / 11.0
        for direction, route in (("forward", road), ("backward", road[::-1])):
            traffic = self.rng("road", direction)
            count = int(traffic.poisson(rate_per_s * (self.duration_s + lead_s)))
            for start_s in np.sort(traffic.uniform(-lead_s, self.duration_s, count)).tolist():
                speed = float(traffic.uniform(11.0, 18.0))
                here, ahead = _along(route, max(0.0, -start_s) * speed)
                if not ahead:
                    continue
                legs = tuple(Go(p, speed) for p in ahead)
                truth_id = self.new_id("road")
                self.actors.append(
                    Actor(truth_id, "vehicle", "road", here, max(0.0, start_s), legs, ROAD_VEHICLE)
                )

    def _animals(self) -> None:
        ground = [s for s in self.sensors if isinstance(s, GroundSensor)]
        if not ground:
            return
        rng = self.rng("animals")
        groups = min(len(ground), max(1, round(self.params.animal_groups * self.params.density)))
        for position in rng.permutation(len(ground))[:groups].tolist():
            self._herd(ground[position])

    def _herd(self, sensor: GroundSensor) -> None:
        rng = self.rng("herd", sensor.id)
        sx, sy = self.site(sensor)
        home = (sx + float(rng.uniform(-20.0, 20.0)), sy + float(rng.uniform(-20.0, 20.0)))
        radius = min(120.0, float(self.scene.border_distance_m(*home)) - 40.0)
        side = self.scene.country_at(*home)
        if radius < 25.0 or side is None:
            return
        for _ in range(int(rng.integers(1, 4))):
            angle = float(rng.uniform(0.0, 2.0 * math.pi))
            reach = radius * math.sqrt(float(rng.uniform(0.0, 0.8)))
            start = (home[0] + reach * math.sin(angle), home[1] + reach * math.cos(angle))
            legs = (Wander(home, radius, self.duration_s + 1.0, (0.3, 2.0), (5.0, 30.0)),)
            truth_id = self.new_id("animal")
            self.actors.append(Actor(truth_id, "animal", "animal", start, 0.0, legs, ANIMAL))

    def _faults(self) -> Faults:
        rng = self.rng("faults")
        ground = [s.id for s in self.sensors if isinstance(s, GroundSensor)]
        pool = ground if len(ground) >= 3 else [s.id for s in self.sensors]
        picked = [pool[i] for i in rng.permutation(len(pool))[:3].tolist()]
        duration = self.duration_s
        moments = [
            round(float(rng.uniform(0.45, 0.6)) * duration, 3),
            round(float(rng.uniform(0.25, 0.4)) * duration, 3),
            round(float(rng.uniform(0.3, 0.7)) * duration, 3),
        ]
        kinds: list[dict[str, float]] = [{}, {}, {}]
        for kind, sensor_id, moment in zip(kinds, picked, moments, strict=False):
            kind[sensor_id] = moment
        return Faults(silent=kinds[0], tamper=kinds[1], low_battery=kinds[2])


def write_script(
    scene: RegionScene,
    sensors: Sequence[SensorConfig],
    params: ScenarioParams,
    seed: int,
    duration_s: float,
) -> Script:
    """The script of one region (see the module docstring)."""
    return ScriptWriter(scene, sensors, params, seed, duration_s).write()
