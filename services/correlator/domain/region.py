"""One region's world in its local frame: countries, borders, zones and sensor sites (metres).

Built once from the configuration and the geography file; afterwards every question a rule
asks (which country is this point in, how far is the border, is it inside a zone) is answered
in the local east-north-up frame with vectorised shapely calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from services.core.config import DroneSensor, GroundSensor, LinderoConfig, RadarSensor
from services.core.geography import Geography
from services.core.ruleconfig import RulesConfig, TrackingConfig
from services.correlator.domain.frames import LocalFrame

Array = NDArray[np.float64]


@dataclass(frozen=True)
class SensorSite:
    """A sensor as the rules see it."""

    sensor_id: str
    sensor_type: str
    owner: tuple[str, str]
    east_m: float | None
    north_m: float | None
    heartbeat_interval_s: float
    coverage_m: float
    """Radar: maximum range; drone: camera footprint radius; ground: detection radius."""
    scan_period_s: float | None = None
    """Radar: seconds per revolution of the beam; None for other sensors."""


@dataclass(frozen=True)
class BorderLine:
    border_id: str
    name: str
    countries: tuple[str, str]
    line: BaseGeometry


@dataclass(frozen=True)
class ZoneArea:
    zone_id: str
    name: str
    severity: str
    area: BaseGeometry


@dataclass(frozen=True)
class RegionContext:
    """Everything about one region that the correlator's pure core needs."""

    region: str
    frame: LocalFrame
    ground_alt_m: float
    countries: tuple[tuple[str, BaseGeometry], ...]
    borders: tuple[BorderLine, ...]
    zones: tuple[ZoneArea, ...]
    sensors: dict[str, SensorSite]
    tracking: TrackingConfig
    rules: RulesConfig
    gateways: frozenset[str] = frozenset()
    """The gateways that may post for this region's sensors (whose promises release it)."""

    @classmethod
    def build(cls, config: LinderoConfig, geography: Geography | None, region_id: str) -> RegionContext:
        region = config.regions_by_id[region_id]
        origin = region.frame_origin
        frame = LocalFrame(origin.lat, origin.lon, origin.alt_m or 0.0)

        def local(geometry: BaseGeometry) -> BaseGeometry:
            def convert(coords: NDArray[np.float64]) -> NDArray[np.float64]:
                east, north, _ = frame.to_enu(coords[:, 1], coords[:, 0])
                return np.column_stack([east, north])

            out = shapely.transform(geometry, convert)
            shapely.prepare(out)
            return out

        here = geography.in_region(region_id) if geography is not None else Geography([], [])
        countries = tuple((c.code, local(c.area)) for c in here.countries)
        borders = tuple(BorderLine(b.border_id, b.name, b.countries, local(b.line)) for b in here.borders)
        zones = tuple(
            ZoneArea(z.id, z.name, z.severity, local(shapely.Polygon(z.area)))
            for z in config.zones_in(region_id)
        )
        sensors: dict[str, SensorSite] = {}
        for sensor in config.sensors:
            if sensor.region != region_id:
                continue
            site = sensor.base if isinstance(sensor, DroneSensor) else sensor.position
            east, north, _ = frame.to_enu(site.lat, site.lon)
            period = None
            if isinstance(sensor, RadarSensor):
                coverage = sensor.radar.max_range_m
                period = sensor.radar.scan_period_s
            elif isinstance(sensor, DroneSensor):
                coverage = sensor.drone.footprint_radius_m
            elif isinstance(sensor, GroundSensor):
                coverage = sensor.ground.detection_radius_m
            else:  # pragma: no cover - the configuration knows three sensor types
                raise TypeError(f"unknown sensor type {sensor.type}")
            fixed = not isinstance(sensor, DroneSensor)
            sensors[sensor.id] = SensorSite(
                sensor_id=sensor.id,
                sensor_type=str(sensor.type),
                owner=(sensor.owner.country, sensor.owner.agency),
                east_m=float(east) if fixed else None,
                north_m=float(north) if fixed else None,
                heartbeat_interval_s=sensor.heartbeat_interval_s,
                coverage_m=coverage,
                scan_period_s=period,
            )
        return cls(
            region=region_id,
            frame=frame,
            ground_alt_m=origin.alt_m or 0.0,
            countries=countries,
            borders=borders,
            zones=zones,
            sensors=sensors,
            tracking=config.tracking_for(region_id),
            rules=config.rules_for(region_id),
            gateways=frozenset(g.id for g in config.gateways if any(s in sensors for s in g.sensors)),
        )

    def jurisdiction(self, east_m: Array, north_m: Array) -> list[str | None]:
        """The country each point is in (None outside every outline)."""
        out: list[str | None] = [None] * len(east_m)
        for code, area in self.countries:
            inside = shapely.contains_xy(area, east_m, north_m)
            for i in np.flatnonzero(inside):
                if out[i] is None:
                    out[i] = code
        return out

    def border_distance(self, east_m: Array, north_m: Array) -> Array:
        """Distance to the nearest border line, m (inf when the region has none)."""
        if not self.borders:
            return np.full(len(east_m), np.inf)
        points = shapely.points(east_m, north_m)
        return np.asarray(
            np.min([shapely.distance(b.line, points) for b in self.borders], axis=0), dtype=np.float64
        )

    def nearest_border(self, east_m: float, north_m: float) -> BorderLine | None:
        if not self.borders:
            return None
        point = shapely.Point(east_m, north_m)
        return min(self.borders, key=lambda b: float(shapely.distance(b.line, point)))

    def border_between(self, a: str, b: str) -> BorderLine | None:
        for border in self.borders:
            if set(border.countries) == {a, b}:
                return border
        return None

    def zones_containing(self, east_m: Array, north_m: Array) -> list[list[ZoneArea]]:
        out: list[list[ZoneArea]] = [[] for _ in range(len(east_m))]
        for zone in self.zones:
            for i in np.flatnonzero(shapely.contains_xy(zone.area, east_m, north_m)):
                out[i].append(zone)
        return out

    def to_wgs84(self, east_m: float, north_m: float, up_m: float = 0.0) -> tuple[float, float, float]:
        lat, lon, alt = self.frame.to_wgs84(east_m, north_m, up_m)
        return float(lat), float(lon), float(alt)
