"""Sensor event records turned into measurements in a region's local frame.

Three kinds of measurement reach the tracker:

- **polar**: a radar's range and bearing (and radial velocity when given) from its site; the
  measurement model is non-linear, ``h(x) = [sqrt(de^2 + dn^2), atan2(de, dn), (de ve + dn vn)/r]``;
- **point**: a geolocated position (drone detection, radar plot) with its covariance;
- **presence**: an unattended ground sensor saw something within its detection radius; a point
  at the sensor site (offset by the bearing/range estimate when given) with a covariance as wide
  as that radius: it confirms and classifies tracks, it barely locates them.

Angles are radians inside this module's outputs; the records carry degrees.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from schemas.events import DroneEvent, GroundEvent, RadarEvent, SensorEventRecord, SensorType
from services.core.config import DroneSensor, GroundSensor, RadarParams, RadarSensor
from services.correlator.domain.frames import LocalFrame

Array = NDArray[np.float64]
_Frozen = TypeVar("_Frozen")

DEFAULT_POINT_SIGMA_M = 15.0
"""Geolocation sigma when a point gives none (never happens with valid records; kept as a floor)."""


class MeasurementKind(StrEnum):
    POLAR = "polar"
    POINT = "point"
    PRESENCE = "presence"


_ELEVATION_SIGMA_DEG = 1.0
"""A radar's elevation noise when neither the event nor the sensor says."""


def of_fields(cls: type[_Frozen], fields: dict[str, Any]) -> _Frozen:
    """An instance of a frozen dataclass (without slots) from all its fields by name: what
    ``cls(**fields)`` gives, several times faster (the dict becomes the instance's ``__dict__``;
    the caller hands it over). For the records built per detection and per track."""
    instance = object.__new__(cls)
    object.__setattr__(instance, "__dict__", fields)
    return instance


@dataclass(frozen=True)
class Detection:
    """One measurement of one sensor at one time, in the region's local frame.

    Immutable (``z`` and ``covariance`` too when :func:`from_record` made them: arrays shared
    between detections are read-only). :func:`from_record` builds them through :meth:`_of`, not
    ``__init__`` (a frozen dataclass sets each of its 14 fields with an ``object.__setattr__``
    call: a fifth of the cost of converting a record); no ``__slots__``, so that ``_of`` can hand
    over all fields in one dict.
    """

    event_id: str
    time_s: float
    """Sensor time, POSIX seconds."""
    region: str
    sensor_id: str
    sensor_type: str
    owner: tuple[str, str]
    """(country, agency) owning the sensor."""
    kind: MeasurementKind
    z: Array
    """POLAR: [range_m, bearing_rad] or [range_m, bearing_rad, radial_velocity_mps];
    POINT and PRESENCE: [east_m, north_m]."""
    covariance: Array
    """Measurement covariance R in the units of ``z``."""
    sensor_en: tuple[float, float] | None = None
    """POLAR: the radar site (east_m, north_m)."""
    target_class: str | None = None
    confidence: float | None = None
    alt_m: float | None = None
    """Target altitude above the ellipsoid, when the sensor measured it."""
    alt_sigma_m: float | None = None
    """One sigma of ``alt_m`` (a radar's elevation noise grows with range: ~175 m at 10 km for 1 deg)."""

    @classmethod
    def _of(cls, fields: dict[str, Any]) -> Detection:
        return of_fields(cls, fields)

    def position_en(self) -> tuple[float, float]:
        """A point estimate of where the target is (for rules and initiation)."""
        if self.kind is MeasurementKind.POLAR and self.sensor_en is not None:
            r, b = float(self.z[0]), float(self.z[1])
            return self.sensor_en[0] + r * math.sin(b), self.sensor_en[1] + r * math.cos(b)
        return float(self.z[0]), float(self.z[1])


_SENSOR_TYPES = {kind: kind.value for kind in SensorType}

SensorRegistry = Mapping[str, RadarSensor | DroneSensor | GroundSensor]


@functools.lru_cache(maxsize=1 << 12)
def _diag(*sigmas: float) -> Array:
    """diag(sigma_i^2), read-only: a sensor's sigmas repeat from event to event, so detections
    share their covariance."""
    covariance = np.zeros((len(sigmas), len(sigmas)))
    for i, sigma in enumerate(sigmas):
        covariance[i, i] = sigma * sigma
    covariance.flags.writeable = False
    return covariance


def from_record(record: SensorEventRecord, frame: LocalFrame, sensors: SensorRegistry) -> Detection:
    """The measurement a record carries, with sigmas from the event or else the sensor's parameters."""
    event = record.event
    config = sensors.get(event.sensor_id)
    if isinstance(event, RadarEvent):
        return _radar(record, event, frame, config.radar if isinstance(config, RadarSensor) else None)
    if isinstance(event, DroneEvent):
        east, north, _ = frame.point_to_enu(event.detection.lat, event.detection.lon)
        sigma = event.detection.sigma_m
        return _detection(
            record,
            MeasurementKind.POINT,
            np.array([float(east), float(north)]),
            _diag(sigma, sigma),
            target_class=event.target_class.value,
            confidence=event.confidence,
            alt_m=event.detection.alt_m,
            alt_sigma_m=sigma,
        )
    return _ground(
        record, event, frame, config.ground.detection_radius_m if isinstance(config, GroundSensor) else 40.0
    )


def _detection(
    record: SensorEventRecord,
    kind: MeasurementKind,
    z: Array,
    covariance: Array,
    *,
    sensor_en: tuple[float, float] | None = None,
    target_class: str | None = None,
    confidence: float | None = None,
    alt_m: float | None = None,
    alt_sigma_m: float | None = None,
) -> Detection:
    event = record.event
    owner = record.owner
    return Detection._of(
        {
            "event_id": str(event.event_id),
            "time_s": event.time.timestamp(),
            "region": record.region,
            "sensor_id": event.sensor_id,
            "sensor_type": _SENSOR_TYPES[event.sensor_type],
            "owner": (owner.country, owner.agency),
            "kind": kind,
            "z": z,
            "covariance": covariance,
            "sensor_en": sensor_en,
            "target_class": target_class,
            "confidence": confidence,
            "alt_m": alt_m,
            "alt_sigma_m": alt_sigma_m,
        }
    )


def polar_measurement(
    range_m: float,
    bearing_deg: float,
    site_alt_m: float,
    params: RadarParams | None,
    *,
    range_sigma_m: float | None = None,
    bearing_sigma_deg: float | None = None,
    elevation_deg: float | None = None,
    elevation_sigma_deg: float | None = None,
    radial_velocity_mps: float | None = None,
    radial_velocity_sigma_mps: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float | None, float | None]:
    """A radar's range and bearing (and elevation, radial velocity when given) as the tracker's
    polar measurement: (z, covariance, altitude, altitude sigma). Sigmas not given come from the
    radar's configuration, else the defaults. Used by :func:`from_record` and by the fast path
    of records.py."""
    range_sigma = float(range_sigma_m or (params.range_sigma_m if params else 15.0))
    bearing_sigma = math.radians(bearing_sigma_deg or (params.bearing_sigma_deg if params else 0.6))
    alt_m = alt_sigma_m = None
    ground_range = float(range_m)
    if elevation_deg is not None:
        elevation = math.radians(elevation_deg)
        elevation_sigma = math.radians(elevation_sigma_deg or _ELEVATION_SIGMA_DEG)
        ground_range = range_m * math.cos(elevation)
        alt_m = site_alt_m + range_m * math.sin(elevation)
        alt_sigma_m = math.hypot(ground_range * elevation_sigma, math.sin(elevation) * range_sigma)
    if radial_velocity_mps is not None:
        velocity_sigma = float(radial_velocity_sigma_mps or 1.0)
        z = np.array([ground_range, math.radians(bearing_deg), radial_velocity_mps], dtype=np.float64)
        covariance = _diag(range_sigma, bearing_sigma, velocity_sigma)
    else:
        z = np.array([ground_range, math.radians(bearing_deg)], dtype=np.float64)
        covariance = _diag(range_sigma, bearing_sigma)
    return z, covariance, alt_m, alt_sigma_m


def _radar(
    record: SensorEventRecord, event: RadarEvent, frame: LocalFrame, params: RadarParams | None
) -> Detection:
    target_class = event.target_class.value if event.target_class else None
    if event.plot is not None:
        east, north, _ = frame.point_to_enu(event.plot.lat, event.plot.lon)
        sigma = event.plot.sigma_m
        return _detection(
            record,
            MeasurementKind.POINT,
            np.array([float(east), float(north)]),
            _diag(sigma, sigma),
            target_class=target_class,
            confidence=event.confidence,
            alt_m=event.plot.alt_m,
            alt_sigma_m=sigma,
        )
    site = event.site or record.sensor_site
    if site is None:
        raise ValueError(f"radar {event.sensor_id} reported polar data without a known site")
    if event.range_m is None or event.bearing_deg is None:
        raise ValueError(f"radar event {event.event_id} has neither a plot nor range and bearing")
    site_e, site_n = frame.site_en(site.lat, site.lon, site.alt_m or 0.0)
    z, covariance, alt_m, alt_sigma_m = polar_measurement(
        event.range_m,
        event.bearing_deg,
        site.alt_m or 0.0,
        params,
        range_sigma_m=event.range_sigma_m,
        bearing_sigma_deg=event.bearing_sigma_deg,
        elevation_deg=event.elevation_deg,
        elevation_sigma_deg=event.elevation_sigma_deg,
        radial_velocity_mps=event.radial_velocity_mps,
        radial_velocity_sigma_mps=event.radial_velocity_sigma_mps,
    )
    return _detection(
        record,
        MeasurementKind.POLAR,
        z,
        covariance,
        sensor_en=(site_e, site_n),
        target_class=target_class,
        confidence=event.confidence,
        alt_m=alt_m,
        alt_sigma_m=alt_sigma_m,
    )


def _ground(
    record: SensorEventRecord, event: RadarEvent | GroundEvent, frame: LocalFrame, radius: float
) -> Detection:
    if not isinstance(event, GroundEvent):
        raise TypeError(f"not a ground event: {event.sensor_type}")
    site = record.sensor_site
    if site is None:
        raise ValueError(f"ground sensor {event.sensor_id} has no registered site")
    site_e, site_n, _ = frame.point_to_enu(site.lat, site.lon)
    east, north = float(site_e), float(site_n)
    sigma = radius
    if event.bearing_deg is not None and event.range_m is not None:
        bearing = math.radians(event.bearing_deg)
        east += event.range_m * math.sin(bearing)
        north += event.range_m * math.cos(bearing)
        sigma = max(event.range_sigma_m or radius / 2, radius / 4)
    return _detection(
        record,
        MeasurementKind.PRESENCE,
        np.array([east, north]),
        _diag(sigma, sigma),
        target_class=event.target_class.value,
        confidence=event.confidence,
    )
