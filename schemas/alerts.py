"""Alerts: anomalies the correlator raises (topic ``alerts``), and their lifecycle state.

The correlator publishes an :class:`Alert` when a rule fires and publishes it again, with the
same ``alert_id`` and a higher ``revision``, when the same condition develops (a loiterer still
loitering, a crossing with more evidence). The alerts service owns the lifecycle (``status``
with who and when) and publishes the current state of every alert to ``alert.state``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.common import (
    SCHEMA_VERSION,
    CountryCode,
    Identifier,
    Latitude,
    Longitude,
    Owner,
    UtcDateTime,
    WireModel,
)


class AlertKind(StrEnum):
    """What the rule saw."""

    BORDER_CROSSING = "border_crossing"
    RESTRICTED_ZONE = "restricted_zone"
    LOITERING = "loitering"
    RENDEZVOUS = "rendezvous"
    LOW_SLOW_FLYER = "low_slow_flyer"
    IMPLAUSIBLE_SPEED = "implausible_speed"
    ACTIVITY_SURGE = "activity_surge"
    SILENT_SENSOR = "silent_sensor"
    SENSOR_TAMPER = "sensor_tamper"
    SENSOR_LOW_BATTERY = "sensor_low_battery"
    SENSOR_FAULT = "sensor_fault"
    UNCORROBORATED_TRIP = "uncorroborated_trip"
    """A ground sensor tripped and no track came near it."""


class Severity(StrEnum):
    """How urgent, in increasing order."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


class AlertStatus(StrEnum):
    """The lifecycle of an alert (owned by the alerts service)."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"


class Alert(WireModel):
    """One anomaly, as the correlator saw it (revision ``revision``)."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    alert_id: Identifier = Field(description="stable for one condition; updates reuse it")
    revision: int = Field(ge=1, description="1 when raised, +1 at every update")
    kind: AlertKind
    severity: Severity
    time: UtcDateTime = Field(description="sensor time when the condition was first seen")
    updated_at: UtcDateTime = Field(description="sensor time of this revision")
    lat: Latitude
    lon: Longitude
    region: Identifier
    jurisdiction: CountryCode | None = Field(description="the country where it happened")
    owner: Owner = Field(description="whose sensors saw it first")
    contributors: list[Owner] = Field(max_length=16, description="every owner whose sensors saw it")
    track_ids: list[Identifier] = Field(default_factory=list, max_length=16)
    sensor_ids: list[Identifier] = Field(default_factory=list, max_length=64)
    border_distance_m: float | None = Field(default=None, ge=0)
    summary: str = Field(max_length=300, description="one line for a human")
    evidence: list[str] = Field(
        default_factory=list, max_length=50, description="event ids of the latest supporting events"
    )
    details: dict[str, Any] = Field(default_factory=dict, description="rule-specific facts")
    status: AlertStatus = Field(default=AlertStatus.NEW)
