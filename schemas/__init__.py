"""Lindero's wire contract: pydantic models, the topics registry and the JSON Schema export.

Nothing here does I/O. Every producer validates strictly against these models and every
consumer parses with them, so a wire format is defined in exactly one place.
"""

from schemas.alerts import Alert, AlertKind, AlertStatus, Severity
from schemas.common import SCHEMA_VERSION, GeoPoint, Owner, Position, TargetClass, WireModel
from schemas.events import (
    DroneEvent,
    GroundEvent,
    RadarEvent,
    SensorEvent,
    SensorEventRecord,
    SensorStatus,
    SensorStatusRecord,
    SensorType,
)
from schemas.tracks import Track, TrackStatus

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AlertKind",
    "AlertStatus",
    "DroneEvent",
    "GeoPoint",
    "GroundEvent",
    "Owner",
    "Position",
    "RadarEvent",
    "SensorEvent",
    "SensorEventRecord",
    "SensorStatus",
    "SensorStatusRecord",
    "SensorType",
    "Severity",
    "TargetClass",
    "Track",
    "TrackStatus",
    "WireModel",
]
