"""Builders for the correlator's rule, alert-book, health and engine tests (pure, seeded).

Everything is in a region's local east-north frame (metres) and in event time (POSIX
seconds): track estimates placed on a chosen side of a real border, ground-sensor trips at
real sensor sites, radar scans of walking targets, and status reports.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schemas.common import Owner, Position
from schemas.events import SelfTest, SensorStatus, SensorStatusRecord
from schemas.tracks import TrackStatus
from services.core.config import LinderoConfig, Zone
from services.core.geography import Geography
from services.core.ruleconfig import RulesConfig, TrackingConfig, merged
from services.correlator.domain.classification import CLASSES, INDEX
from services.correlator.domain.detections import Detection, MeasurementKind
from services.correlator.domain.region import RegionContext
from services.correlator.domain.rules import Finding, TrackRule, views
from services.correlator.domain.tracker import TrackEstimate

CUCUTA = "co-ve-cucuta"
TAPACHULA = "mx-gt-tapachula"
T0 = 1_800_000_000.0
"""Event time of every scenario's start (2027-01-15, UTC)."""
RADAR = "co-cuc-rdr-1"
CROSSING_AT = 0.456
"""Fraction along the Cúcuta border line of its point nearest the CO radar (2.5 km away)."""


# -- configuration and regions -------------------------------------------------------------------


@functools.cache
def _geography(path: Path) -> Geography:
    return Geography.load(path)


def context_of(config: LinderoConfig, region: str = CUCUTA) -> RegionContext:
    """The region's context from ``config`` and the demo geography."""
    assert config.geography_path is not None
    return RegionContext.build(config, _geography(config.geography_path), region)


def with_rules(config: LinderoConfig, **sections: Any) -> LinderoConfig:
    """``config`` with some rule keys changed, e.g. ``loitering={"radius_m": 80}, update_interval_s=5``."""
    rules = RulesConfig.model_validate(merged(config.rules, sections))
    return config.model_copy(update={"rules": rules})


def with_tracking(config: LinderoConfig, **changes: Any) -> LinderoConfig:
    """``config`` with some tracking parameters changed."""
    tracking = TrackingConfig.model_validate({**config.tracking.model_dump(), **changes})
    return config.model_copy(update={"tracking": tracking})


def with_zones(config: LinderoConfig, zones: Sequence[Zone]) -> LinderoConfig:
    """``config`` with these restricted zones."""
    return config.model_copy(update={"zones": list(zones)})


def square_zone(
    context: RegionContext, zone_id: str, center: tuple[float, float], half_m: float, severity: str = "high"
) -> Zone:
    """A square restricted zone (side ``2 * half_m``) around a local point."""
    east, north = center
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    ring = []
    for de, dn in corners:
        lat, lon, _ = context.to_wgs84(east + de * half_m, north + dn * half_m)
        ring.append((lon, lat))
    return Zone.model_validate(
        {
            "id": zone_id,
            "name": f"Zone {zone_id}",
            "region": context.region,
            "area": ring,
            "severity": severity,
        }
    )


# -- places --------------------------------------------------------------------------------------


def border_point(context: RegionContext, along: float = CROSSING_AT) -> tuple[float, float]:
    """The point at fraction ``along`` of the region's (first) border line."""
    line = context.borders[0].line
    point = line.interpolate(along * line.length)
    return point.x, point.y


def beside(
    context: RegionContext, country: str, distance_m: float, along: float = CROSSING_AT
) -> tuple[float, float]:
    """A point ``distance_m`` from the border, on ``country``'s side, abreast of ``border_point``.

    Checked: the point is in ``country`` and its distance to the border is ``distance_m``
    (within 20 %: the river bends).
    """
    line = context.borders[0].line
    s = along * line.length
    a, b = line.interpolate(s - 10.0), line.interpolate(s + 10.0)
    tangent = np.array([b.x - a.x, b.y - a.y])
    tangent /= np.linalg.norm(tangent)
    normal = np.array([-tangent[1], tangent[0]])
    east0, north0 = border_point(context, along)
    for sign in (1.0, -1.0):
        east = east0 + sign * distance_m * normal[0]
        north = north0 + sign * distance_m * normal[1]
        if context.jurisdiction(np.array([east]), np.array([north]))[0] == country:
            found = float(context.border_distance(np.array([east]), np.array([north]))[0])
            assert 0.8 * distance_m <= found <= distance_m * 1.001, (distance_m, found)
            return float(east), float(north)
    raise AssertionError(f"no point in {country} abreast of {along} of the border")


def offset(point: tuple[float, float], east_m: float = 0.0, north_m: float = 0.0) -> tuple[float, float]:
    return point[0] + east_m, point[1] + north_m


def country_at(context: RegionContext, point: tuple[float, float]) -> str | None:
    return context.jurisdiction(np.array([point[0]]), np.array([point[1]]))[0]


def border_distance_at(context: RegionContext, point: tuple[float, float]) -> float:
    return float(context.border_distance(np.array([point[0]]), np.array([point[1]]))[0])


# -- tracks --------------------------------------------------------------------------------------


def track_id(number: int, region: str = CUCUTA) -> str:
    return f"{region}.T{number:06d}"


def probabilities(target_class: str, probability: float) -> np.ndarray:
    """``probability`` on ``target_class``, the rest spread evenly over the other classes."""
    out = np.full(len(CLASSES), (1.0 - probability) / (len(CLASSES) - 1))
    out[INDEX[target_class]] = probability
    return out


def estimate(
    number: int,
    at: tuple[float, float],
    time_s: float = T0,
    *,
    velocity: tuple[float, float] = (0.0, 0.0),
    target_class: str = "person",
    probability: float = 0.9,
    status: TrackStatus = TrackStatus.CONFIRMED,
    position_sigma_m: float = 10.0,
    speed_sigma_mps: float = 0.3,
    alt_m: float | None = None,
    owner: tuple[str, str] = ("CO", "ejercito"),
    others: Sequence[tuple[str, str]] = (),
    sensors: Sequence[str] = (RADAR,),
    region: str = CUCUTA,
) -> TrackEstimate:
    """A track estimate as the tracker would report it (first seen at ``T0``)."""
    covariance = np.diag([position_sigma_m**2, position_sigma_m**2, speed_sigma_mps**2, speed_sigma_mps**2])
    return TrackEstimate(
        track_id=track_id(number, region),
        status=status,
        time_s=time_s,
        east_m=at[0],
        north_m=at[1],
        velocity_east_mps=velocity[0],
        velocity_north_mps=velocity[1],
        covariance=covariance,
        class_probabilities=probabilities(target_class, probability),
        target_class=target_class,
        sensor_ids=frozenset(sensors),
        owners=frozenset({owner, *others}),
        update_count=10,
        first_seen_s=T0,
        last_update_s=time_s,
        alt_m=alt_m,
        evidence=(f"ev-{number}-{time_s:.0f}",),
        primary_owner=owner,
    )


def observe(
    rule: TrackRule, context: RegionContext, *tracks: TrackEstimate, now_s: float | None = None
) -> list[Finding]:
    """One look of ``rule`` at these tracks (``now_s`` defaults to the newest track time)."""
    when = now_s if now_s is not None else max((t.time_s for t in tracks), default=T0)
    return rule.observe(views(context, list(tracks)), when)


# -- detections ----------------------------------------------------------------------------------


def trip(
    context: RegionContext,
    sensor_id: str,
    time_s: float,
    *,
    target_class: str = "person",
    confidence: float = 0.8,
    event_id: str | None = None,
) -> Detection:
    """A ground sensor's presence detection at its site."""
    site = context.sensors[sensor_id]
    assert site.east_m is not None
    assert site.north_m is not None
    return Detection(
        event_id=event_id or f"{sensor_id}@{time_s:.3f}",
        time_s=time_s,
        region=context.region,
        sensor_id=sensor_id,
        sensor_type=site.sensor_type,
        owner=site.owner,
        kind=MeasurementKind.PRESENCE,
        z=np.array([site.east_m, site.north_m]),
        covariance=np.eye(2) * site.coverage_m**2,
        target_class=target_class,
        confidence=confidence,
    )


@dataclass(frozen=True)
class Walker:
    """A target in straight-line motion between ``start_s`` and ``end_s`` (event time)."""

    start: tuple[float, float]
    velocity: tuple[float, float]
    start_s: float
    end_s: float
    target_class: str = "person"

    def at(self, time_s: float) -> tuple[float, float]:
        dt_s = time_s - self.start_s
        return self.start[0] + self.velocity[0] * dt_s, self.start[1] + self.velocity[1] * dt_s

    def visible(self, time_s: float) -> bool:
        return self.start_s <= time_s <= self.end_s


def walk_towards(
    start: tuple[float, float], end: tuple[float, float], speed_mps: float, start_s: float, **kw: Any
) -> Walker:
    """A walker from ``start`` to ``end`` at ``speed_mps``, seen until it arrives."""
    distance = math.hypot(end[0] - start[0], end[1] - start[1])
    velocity = ((end[0] - start[0]) / distance * speed_mps, (end[1] - start[1]) / distance * speed_mps)
    return Walker(start, velocity, start_s, start_s + distance / speed_mps, **kw)


def radar_scans(
    context: RegionContext,
    walkers: Sequence[Walker],
    start_s: float,
    end_s: float,
    *,
    sensor_id: str = RADAR,
    period_s: float = 2.0,
    seed: int = 1,
) -> list[Detection]:
    """Range-bearing-radial-velocity detections of the walkers by a radar, every ``period_s``.

    Every walker in view is detected in every scan (no misses, no clutter); the detections of
    one scan share its time. Noise is seeded.
    """
    rng = np.random.default_rng(seed)
    site = context.sensors[sensor_id]
    assert site.east_m is not None
    assert site.north_m is not None
    range_sigma, bearing_sigma, velocity_sigma = 15.0, math.radians(0.6), 0.5
    out = []
    time_s = start_s
    scan = 0
    while time_s <= end_s + 1e-9:
        for index, walker in enumerate(walkers):
            if not walker.visible(time_s):
                continue
            east, north = walker.at(time_s)
            de, dn = east - site.east_m, north - site.north_m
            r = math.hypot(de, dn)
            radial = (de * walker.velocity[0] + dn * walker.velocity[1]) / r
            z = np.array(
                [
                    r + rng.normal(0.0, range_sigma),
                    math.atan2(de, dn) + rng.normal(0.0, bearing_sigma),
                    radial + rng.normal(0.0, velocity_sigma),
                ]
            )
            out.append(
                Detection(
                    event_id=f"{sensor_id}-s{scan:05d}-w{index}",
                    time_s=time_s,
                    region=context.region,
                    sensor_id=sensor_id,
                    sensor_type="radar",
                    owner=site.owner,
                    kind=MeasurementKind.POLAR,
                    z=z,
                    covariance=np.diag([range_sigma**2, bearing_sigma**2, velocity_sigma**2]),
                    sensor_en=(site.east_m, site.north_m),
                    target_class=walker.target_class,
                    confidence=0.7,
                )
            )
        scan += 1
        time_s = start_s + scan * period_s
    return out


def sweeping_radar(
    context: RegionContext,
    walkers: Sequence[Walker],
    start_s: float,
    end_s: float,
    *,
    sensor_id: str = RADAR,
    period_s: float = 2.0,
    detection_probability: float = 0.9,
    clutter_per_scan: float = 1.0,
    seed: int = 1,
) -> list[Detection]:
    """What a rotating radar reports, in time order: its beam turns clockwise from north once per
    ``period_s`` (revolutions start at ``start_s``), and a walker at bearing ``b`` is detected
    (probability ``detection_probability``) when the beam passes it, at ``t + b / 2π · period_s``;
    Poisson(``clutter_per_scan``) false plots per revolution, uniform over the radar's disc, are
    timed the same way. Noise as in :func:`radar_scans`.
    """
    rng = np.random.default_rng(seed)
    site = context.sensors[sensor_id]
    assert site.east_m is not None
    assert site.north_m is not None
    range_sigma, bearing_sigma, velocity_sigma = 15.0, math.radians(0.6), 0.5
    covariance = np.diag([range_sigma**2, bearing_sigma**2, velocity_sigma**2])
    origin = (site.east_m, site.north_m)
    out = []

    def plot(name: str, time_s: float, z: list[float], target_class: str | None) -> Detection:
        return Detection(
            event_id=f"{sensor_id}-{name}",
            time_s=time_s,
            region=context.region,
            sensor_id=sensor_id,
            sensor_type="radar",
            owner=site.owner,
            kind=MeasurementKind.POLAR,
            z=np.asarray(z),
            covariance=covariance,
            sensor_en=origin,
            target_class=target_class,
            confidence=0.7 if target_class else None,
        )

    revolution = 0
    while start_s + revolution * period_s <= end_s:
        begin = start_s + revolution * period_s
        for index, walker in enumerate(walkers):
            east, north = walker.at(begin)
            bearing = math.atan2(east - site.east_m, north - site.north_m) % (2 * math.pi)
            time_s = begin + bearing / (2 * math.pi) * period_s
            if not walker.visible(time_s) or rng.random() > detection_probability:
                continue
            east, north = walker.at(time_s)
            de, dn = east - site.east_m, north - site.north_m
            r = math.hypot(de, dn)
            radial = (de * walker.velocity[0] + dn * walker.velocity[1]) / r
            z = [
                r + rng.normal(0.0, range_sigma),
                math.atan2(de, dn) + rng.normal(0.0, bearing_sigma),
                radial + rng.normal(0.0, velocity_sigma),
            ]
            out.append(plot(f"r{revolution:05d}-w{index}", time_s, z, walker.target_class))
        for k in range(int(rng.poisson(clutter_per_scan))):
            bearing = float(rng.uniform(0.0, 2 * math.pi))
            r = site.coverage_m * math.sqrt(float(rng.random()))
            time_s = begin + bearing / (2 * math.pi) * period_s
            out.append(
                plot(f"r{revolution:05d}-c{k}", time_s, [r, bearing, float(rng.normal(0.0, 1.0))], None)
            )
        revolution += 1
    return sorted(out, key=lambda d: d.time_s)


# -- status reports ------------------------------------------------------------------------------


def utc(time_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_s, dt.UTC)


def status_record(
    context: RegionContext,
    sensor_id: str,
    time_s: float,
    *,
    battery_pct: float | None = 90.0,
    tamper: bool = False,
    self_test: SelfTest | None = SelfTest.OK,
    message: str | None = None,
) -> SensorStatusRecord:
    """A status report (heartbeat) of a sensor of ``context``'s region, as ingest writes it."""
    site = context.sensors[sensor_id]
    lat, lon, _ = context.to_wgs84(site.east_m or 0.0, site.north_m or 0.0)
    return SensorStatusRecord(
        received_at=utc(time_s + 0.2),
        region=context.region,
        owner=Owner(country=site.owner[0], agency=site.owner[1]),
        gateway_id=f"gw-{site.owner[0].lower()}-{site.owner[1]}",
        sensor_site=Position(lat=lat, lon=lon),
        status=SensorStatus(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{sensor_id}/{time_s}"),
            sensor_id=sensor_id,
            time=utc(time_s),
            battery_pct=battery_pct,
            tamper=tamper,
            self_test=self_test,
            message=message,
        ),
    )
