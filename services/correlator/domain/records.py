"""The commonest sensor event record, a polar radar detection, read without pydantic.

Nearly every record on ``sensor.events`` is a radar's range and bearing in the form ingest
writes it. Validating it with :class:`schemas.events.SensorEventRecord` and converting it with
:func:`~services.correlator.domain.detections.from_record` built ~10 Python objects per record
and cost ~20 µs of the correlator's ~130 µs per detection. :func:`polar_detection` reads such a
record with orjson, checks it, and builds the detection directly (~13 µs, ~2.5 of them orjson's).

It is a fast path, not a second definition of the wire format: the bounds and patterns it checks
are read from the models' JSON Schema (``schemas/``); only the rules of ``RadarEvent``'s model
validator are repeated here (a change there must come here too). It takes only records it can decide
for certain (a polar radar event, numbers as JSON numbers, UTC times as ``...Z``, the event id
in its canonical form, no measurement given without the value it qualifies). For anything
else, including every record pydantic would refuse, it returns None and the caller validates the
record with pydantic as before, with pydantic's reasons for its dead letter. What it returns is
what ``from_record(SensorEventRecord.model_validate_json(value), ...)`` returns
(tests/unit/correlator/test_records.py compares the two on valid and broken records).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.common import Owner, Position, TargetClass
from schemas.events import IngestStamp, RadarEvent, SensorType
from services.core.config import RadarSensor
from services.correlator.domain.detections import (
    Detection,
    MeasurementKind,
    SensorRegistry,
    polar_measurement,
)
from services.correlator.domain.frames import LocalFrame

Check = Callable[[Any], bool]


def _property(model: type[BaseModel], name: str) -> dict[str, Any]:
    """A property's JSON Schema (validation mode, by alias); the non-null branch of an optional."""
    schema = model.model_json_schema(mode="validation")["properties"][name]
    branches: list[dict[str, Any]] = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    if len(branches) != 1:
        raise TypeError(f"{model.__name__}.{name}: not a single type")
    return branches[0]


def _bounds(model: type[BaseModel], name: str) -> tuple[float, float]:
    """The property's bounds as a closed interval ``low <= x <= high`` (an exclusive bound moved
    to the next float inward: for a float or an integer x, ``x > b`` is ``x >= nextafter(b, inf)``)."""
    schema = _property(model, name)
    if schema.get("type") != "number":
        raise TypeError(f"{model.__name__}.{name}: not a number")
    low = float(schema.get("minimum", -math.inf))
    high = float(schema.get("maximum", math.inf))
    if "exclusiveMinimum" in schema:
        low = math.nextafter(float(schema["exclusiveMinimum"]), math.inf)
    if "exclusiveMaximum" in schema:
        high = math.nextafter(float(schema["exclusiveMaximum"]), -math.inf)
    return low, high


def _number(value: Any, bounds: tuple[float, float]) -> bool:
    """A JSON number (an int or a float, not a boolean) within ``bounds``."""
    return (type(value) is float or type(value) is int) and bounds[0] <= value <= bounds[1]


def _pattern(model: type[BaseModel], name: str) -> Check:
    """A JSON string matching the property's pattern (whole string, as pydantic's regex does)."""
    pattern = _property(model, name)["pattern"]
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise TypeError(f"{model.__name__}.{name}: unanchored pattern {pattern}")
    compiled = re.compile(pattern[1:-1], re.ASCII)
    known: set[str] = set()

    def check(value: Any) -> bool:
        if type(value) is not str:
            return False
        if value in known:  # ids repeat from record to record
            return True
        if compiled.fullmatch(value) is None:
            return False
        if len(known) < _KNOWN:
            known.add(value)
        return True

    return check


_KNOWN = 10_000
"""Valid strings (and times) remembered per check."""

_OPTIONAL_NUMBERS = (
    "elevation_deg",
    "radial_velocity_mps",
    "rcs_dbsm",
    "range_sigma_m",
    "bearing_sigma_deg",
    "elevation_sigma_deg",
    "radial_velocity_sigma_mps",
    "confidence",
)
_OPTIONAL = {name: _bounds(RadarEvent, name) for name in _OPTIONAL_NUMBERS}
_OPTIONAL_SET = frozenset(_OPTIONAL_NUMBERS)
_RANGE, _BEARING = _bounds(RadarEvent, "range_m"), _bounds(RadarEvent, "bearing_deg")
_RADAR_ID = _pattern(RadarEvent, "radar_track_id")
_SENSOR_ID = _pattern(RadarEvent, "sensor_id")
_REGION = _pattern(IngestStamp, "region")
_GATEWAY = _pattern(IngestStamp, "gateway_id")
_COUNTRY = _pattern(Owner, "country")
_AGENCY = _pattern(Owner, "agency")
_LAT, _LON, _ALT = (_bounds(Position, name) for name in ("lat", "lon", "alt_m"))
_CLASSES = frozenset(c.value for c in TargetClass)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
"""The canonical form of a UUID (what ``str(uuid.UUID(...))`` gives back unchanged)."""
_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z", re.ASCII)
"""An RFC 3339 UTC time as ingest writes it; other forms pydantic takes go the slow way."""
_times: dict[str, float] = {}
_RADAR_TYPE = SensorType.RADAR.value


def _utc_s(value: Any) -> float | None:
    """POSIX seconds of an RFC 3339 UTC time in the ``...Z`` form (None: not in that form, or
    not a real date)."""
    found = _times.get(value) if type(value) is str else None
    if found is not None:
        return found
    if type(value) is not str or _UTC.fullmatch(value) is None:
        return None
    try:
        found = dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
    if len(_times) >= _KNOWN:
        _times.clear()
    _times[value] = found
    return found


def _version(fields: dict[str, Any], bounds: tuple[int, int | None]) -> bool:
    """``schema_version`` absent (its default) or a JSON integer within ``bounds``."""
    if "schema_version" not in fields:
        return True
    version = fields["schema_version"]
    return type(version) is int and version >= bounds[0] and (bounds[1] is None or version <= bounds[1])


def _integer_bounds(model: type[BaseModel], name: str) -> tuple[int, int | None]:
    schema = _property(model, name)
    if schema.get("type") != "integer" or "exclusiveMinimum" in schema or "exclusiveMaximum" in schema:
        raise TypeError(f"{model.__name__}.{name}: not an integer with inclusive bounds")
    high = schema.get("maximum")
    return int(schema["minimum"]), None if high is None else int(high)


_EVENT_VERSION = _integer_bounds(RadarEvent, "schema_version")
_STAMP_VERSION = _integer_bounds(IngestStamp, "schema_version")


def _position(value: Any) -> tuple[float, float, float | None] | None:
    """A valid :class:`schemas.common.Position` as (lat, lon, alt_m), else None."""
    if type(value) is not dict:
        return None
    lat: Any = value.get("lat")
    lon: Any = value.get("lon")
    alt_m: Any = value.get("alt_m")
    if not (_number(lat, _LAT) and _number(lon, _LON) and (alt_m is None or _number(alt_m, _ALT))):
        return None
    return float(lat), float(lon), None if alt_m is None else float(alt_m)


def polar_detection(
    value: bytes, frames: Mapping[str, LocalFrame], sensors: SensorRegistry
) -> Detection | None:
    """The detection of a polar radar record of a region in ``frames``, or None: not such a
    record, or not one this fast path can decide (see the module's docstring)."""
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(record) is not dict:
        return None
    event = record.get("event")
    if type(event) is not dict or event.get("sensor_type") != _RADAR_TYPE:
        return None
    region, owner = record.get("region"), record.get("owner")
    if type(region) is not str or type(owner) is not dict:
        return None
    frame = frames.get(region)
    if frame is None:
        return None
    country, agency = owner.get("country"), owner.get("agency")
    if not (
        _version(record, _STAMP_VERSION)
        and _REGION(region)
        and _GATEWAY(record.get("gateway_id"))
        and _COUNTRY(country)
        and _AGENCY(agency)
        and _utc_s(record.get("received_at")) is not None
        and _version(event, _EVENT_VERSION)
        and _SENSOR_ID(event.get("sensor_id"))
    ):
        return None
    stamp_site = record.get("sensor_site")
    if stamp_site is not None and (stamp_site := _position(stamp_site)) is None:
        return None
    event_id, time_s = event.get("event_id"), _utc_s(event.get("time"))
    if time_s is None or type(event_id) is not str or _UUID.fullmatch(event_id) is None:
        return None
    # A polar measurement alone: a plot, or a class under its field name, goes the slow way.
    if event.get("plot") is not None or "target_class" in event:
        return None
    range_m: Any = event.get("range_m")
    bearing_deg: Any = event.get("bearing_deg")
    if not (_number(range_m, _RANGE) and _number(bearing_deg, _BEARING)):
        return None
    numbers: dict[str, Any] = dict.fromkeys(_OPTIONAL_NUMBERS)
    for name in _OPTIONAL_SET.intersection(event):
        number = event[name]
        if number is not None:
            low, high = _OPTIONAL[name]
            if (type(number) is not float and type(number) is not int) or not low <= number <= high:
                return None
            numbers[name] = number
    target_class = event.get("class")
    radar_track_id = event.get("radar_track_id")
    if (
        (target_class is not None and (type(target_class) is not str or target_class not in _CLASSES))
        or (radar_track_id is not None and not _RADAR_ID(radar_track_id))
        or (numbers["elevation_sigma_deg"] is not None and numbers["elevation_deg"] is None)
        or (numbers["radial_velocity_sigma_mps"] is not None and numbers["radial_velocity_mps"] is None)
        or (numbers["confidence"] is not None and target_class is None)
    ):
        return None
    site = event.get("site")
    if site is not None and (site := _position(site)) is None:
        return None
    if site is None:
        site = stamp_site
        if site is None:
            return None  # from_record refuses it: the slow way gives the reason
    sensor_id = event["sensor_id"]
    config = sensors.get(sensor_id)
    params = config.radar if isinstance(config, RadarSensor) else None
    site_alt_m = site[2] or 0.0
    site_e, site_n = frame.site_en(site[0], site[1], site_alt_m)
    z, covariance, alt_m, alt_sigma_m = polar_measurement(
        float(range_m),
        bearing_deg,
        site_alt_m,
        params,
        range_sigma_m=numbers["range_sigma_m"],
        bearing_sigma_deg=numbers["bearing_sigma_deg"],
        elevation_deg=numbers["elevation_deg"],
        elevation_sigma_deg=numbers["elevation_sigma_deg"],
        radial_velocity_mps=numbers["radial_velocity_mps"],
        radial_velocity_sigma_mps=numbers["radial_velocity_sigma_mps"],
    )
    confidence = numbers["confidence"]
    return Detection._of(
        {
            "event_id": event_id,
            "time_s": time_s,
            "region": region,
            "sensor_id": sensor_id,
            "sensor_type": _RADAR_TYPE,
            "owner": (country, agency),
            "kind": MeasurementKind.POLAR,
            "z": z,
            "covariance": covariance,
            "sensor_en": (site_e, site_n),
            "target_class": target_class,
            "confidence": None if confidence is None else float(confidence),
            "alt_m": alt_m,
            "alt_sigma_m": alt_sigma_m,
        }
    )
