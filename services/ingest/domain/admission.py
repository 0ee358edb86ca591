"""Admission: may this gateway post this event now, and what exactly goes to Kafka?

Given validated events, the posting gateway, the sensor directory and the time, decide per
event: rejected (with the HTTP status and the reason) or admitted (with the Kafka key, the
record bytes, the headers and a content digest for duplicate detection).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import orjson

from schemas.common import SCHEMA_VERSION, Owner, Position
from schemas.events import SensorEvent, SensorStatus, SensorType
from services.core.config import DroneSensor, LinderoConfig
from services.ingest.domain.parsing import FieldError

HEADER_EVENT_ID = "lindero-event-id"
HEADER_DIGEST = "lindero-digest"
HEADER_SENSOR_TYPE = "lindero-sensor-type"
HEADER_SCHEMA_VERSION = "lindero-schema-version"

_SCHEMA_VERSION = str(SCHEMA_VERSION).encode()


class Reason(StrEnum):
    """Why an event was refused (a metric label and a machine-readable field of the answer)."""

    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    TYPE_MISMATCH = "type_mismatch"
    TOO_OLD = "too_old"
    TOO_NEW = "too_new"
    UNSUPPORTED_VERSION = "unsupported_version"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAUTHENTICATED = "unauthenticated"


class Rejection(NamedTuple):
    """An event that will not be written: HTTP status, reason, and which fields are wrong."""

    position: int
    """Index of the event in its request (0 for single-event requests)."""
    event_id: str | None
    status: int
    reason: Reason
    errors: tuple[FieldError, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "index": self.position,
            "event_id": self.event_id,
            "status": self.status,
            "reason": self.reason.value,
            "errors": [error.as_json() for error in self.errors],
        }


class Admitted(NamedTuple):
    """An event cleared for Kafka: key, value and headers exactly as they will be written."""

    position: int
    event_id: uuid.UUID
    event_id_text: str
    event_key: bytes
    """``event_id`` as 16 bytes: the key of the duplicate index."""
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    digest: int
    sensor_type: str


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What ingest needs to know about a registered sensor."""

    sensor_id: str
    sensor_type: SensorType
    region: str
    owner: Owner
    site: Position | None

    @property
    def region_key(self) -> bytes:
        """The Kafka key of this sensor's detections."""
        return self.region.encode()


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """A gateway and the sensors it may post for."""

    gateway_id: str
    owner: Owner
    sensors: frozenset[str]


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """How far an event's sensor time may lie behind or ahead of ingest's clock."""

    max_age_s: float
    max_future_s: float


class Directory:
    """Sensors and gateways from the configuration, with each stamp's fixed part pre-rendered."""

    def __init__(self, sensors: Mapping[str, SensorInfo], gateways: Mapping[str, GatewayInfo]) -> None:
        self.sensors = dict(sensors)
        self.gateways = dict(gateways)
        self._fixed: dict[tuple[str, str], bytes] = {}
        self._region_keys = {sensor_id: info.region_key for sensor_id, info in self.sensors.items()}

    def region_key(self, sensor: SensorInfo) -> bytes:
        """The Kafka key (region id) of a sensor's detections, encoded once."""
        return self._region_keys.get(sensor.sensor_id) or sensor.region_key

    @classmethod
    def from_config(cls, config: LinderoConfig) -> Directory:
        sensors = {
            s.id: SensorInfo(
                sensor_id=s.id,
                sensor_type=SensorType(s.type),
                region=s.region,
                owner=s.owner,
                site=None if isinstance(s, DroneSensor) else s.position,
            )
            for s in config.sensors
        }
        gateways = {
            g.id: GatewayInfo(gateway_id=g.id, owner=g.owner, sensors=frozenset(g.sensors))
            for g in config.gateways
        }
        return cls(sensors, gateways)

    def fixed_stamp(self, gateway_id: str, sensor: SensorInfo) -> bytes:
        """The JSON members of the stamp that never change for this gateway and sensor."""
        key = (gateway_id, sensor.sensor_id)
        cached = self._fixed.get(key)
        if cached is None:
            members = {
                "region": sensor.region,
                "owner": sensor.owner.model_dump(mode="json"),
                "gateway_id": gateway_id,
                "sensor_site": sensor.site.model_dump(mode="json") if sensor.site else None,
            }
            cached = self._fixed[key] = orjson.dumps(members)[1:-1]
        return cached


def render_time(value: dt.datetime) -> bytes:
    """A UTC timestamp exactly as pydantic writes it (``...T..:..:..[.ffffff]Z``)."""
    text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    return (text + "Z").encode()


def _digest(canonical: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "big")


def time_problem(
    when: dt.datetime,
    now: dt.datetime,
    limits: TimeLimits,
    subject: str = "sensor time",
    clock: str = "the sensor's clock",
) -> tuple[Reason, FieldError] | None:
    """Why ``when`` (an event's sensor time, or a gateway's promise) lies outside ``limits``
    around ingest's clock, or None."""
    delta_s = (when - now).total_seconds()
    if delta_s > limits.max_future_s:
        return Reason.TOO_NEW, FieldError(
            "time",
            f"{subject} is {delta_s:.0f} s ahead of ingest's clock "
            f"(at most {limits.max_future_s:.0f} s allowed; check {clock})",
        )
    if -delta_s > limits.max_age_s:
        return Reason.TOO_OLD, FieldError(
            "time",
            f"{subject} is {-delta_s:.0f} s behind ingest's clock "
            f"(events older than {limits.max_age_s:.0f} s are refused)",
        )
    return None


def admit(
    index: int,
    event: SensorEvent | SensorStatus,
    canonical: bytes,
    gateway: GatewayInfo,
    directory: Directory,
    now: dt.datetime,
    received_at: bytes,
    limits: TimeLimits,
) -> Admitted | Rejection:
    """Decide one validated event.

    ``canonical`` is the event's canonical JSON (the bytes that were validated; they go to Kafka
    as they are); ``received_at`` is ``render_time(now)``, rendered once per request.
    """
    event_id = str(event.event_id)
    sensor = directory.sensors.get(event.sensor_id)
    if sensor is None or event.sensor_id not in gateway.sensors:
        message = f"gateway {gateway.gateway_id!r} may not post for sensor {event.sensor_id!r}"
        return Rejection(index, event_id, 403, Reason.FORBIDDEN, (FieldError("sensor_id", message),))
    if event.schema_version > SCHEMA_VERSION:
        message = f"version {event.schema_version} is newer than this ingest supports ({SCHEMA_VERSION})"
        return Rejection(
            index, event_id, 422, Reason.UNSUPPORTED_VERSION, (FieldError("schema_version", message),)
        )
    if isinstance(event, SensorStatus):
        body_key, key, sensor_type = b"status", event.sensor_id.encode(), "status"
    else:
        if event.sensor_type != sensor.sensor_type:
            message = (
                f"sensor {sensor.sensor_id!r} is registered as {sensor.sensor_type.value}, "
                f"not {event.sensor_type.value}"
            )
            return Rejection(
                index, event_id, 422, Reason.TYPE_MISMATCH, (FieldError("sensor_type", message),)
            )
        body_key, key, sensor_type = b"event", directory.region_key(sensor), sensor.sensor_type.value
    problem = time_problem(event.time, now, limits)
    if problem is not None:
        reason, error = problem
        return Rejection(index, event_id, 422, reason, (error,))

    value = b"".join(
        (
            b'{"schema_version":',
            _SCHEMA_VERSION,
            b',"received_at":"',
            received_at,
            b'",',
            directory.fixed_stamp(gateway.gateway_id, sensor),
            b',"',
            body_key,
            b'":',
            canonical,
            b"}",
        )
    )
    digest = _digest(canonical)
    event_key = event.event_id.bytes
    headers = [
        (HEADER_EVENT_ID, event_key),
        (HEADER_DIGEST, digest.to_bytes(8, "big")),
        (HEADER_SENSOR_TYPE, sensor_type.encode()),
        (HEADER_SCHEMA_VERSION, _SCHEMA_VERSION),
    ]
    return Admitted(index, event.event_id, event_id, event_key, key, value, headers, digest, sensor_type)
