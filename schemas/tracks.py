"""Tracks: what the correlator believes is out there, one message per update (topic ``tracks``).

The ``tracks`` topic is compacted and keyed by ``track_id``: its latest message is the track's
current state; a track that ends is published once with status ``lost`` and then deleted with
a tombstone (a null value).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from schemas.common import (
    SCHEMA_VERSION,
    AltitudeM,
    CountryCode,
    Identifier,
    Latitude,
    Longitude,
    Owner,
    TargetClass,
    UtcDateTime,
    WireModel,
)


class TrackStatus(StrEnum):
    """Where a track is in its life."""

    TENTATIVE = "tentative"
    """Started from few detections; not shown to operators by default."""
    CONFIRMED = "confirmed"
    """Enough detections (M of N) to be trusted."""
    COASTING = "coasting"
    """Confirmed, but not updated for a while: the position is a prediction."""
    LOST = "lost"
    """Not updated for too long; the track ends (a tombstone follows)."""


class ClassProbability(WireModel):
    """The probability of one class."""

    target_class: TargetClass = Field(alias="class")
    probability: float = Field(ge=0.0, le=1.0)


class Track(WireModel):
    """One track's state at ``time`` (event time of its latest update or prediction)."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    track_id: Identifier = Field(description="stable id, e.g. co-ve-cucuta.T000042")
    region: Identifier
    time: UtcDateTime = Field(description="the state's time (sensor time of the latest update)")
    lat: Latitude
    lon: Longitude
    alt_m: AltitudeM | None = Field(default=None, description="when a sensor measured altitude")
    velocity_east_mps: float = Field(ge=-1_000, le=1_000)
    velocity_north_mps: float = Field(ge=-1_000, le=1_000)
    speed_mps: float = Field(ge=0, le=1_500)
    heading_deg: float = Field(ge=0, lt=360, description="course over ground, from true north")
    position_sigma_m: float = Field(ge=0, description="one-sigma horizontal uncertainty (circular)")
    covariance_en_m2: tuple[float, float, float] = Field(
        description="position covariance in the local frame: (east-east, east-north, north-north), m²"
    )
    status: TrackStatus
    target_class: TargetClass = Field(alias="class", description="the most probable class")
    class_probabilities: list[ClassProbability] = Field(max_length=6)
    sensor_ids: list[Identifier] = Field(max_length=64, description="sensors that contributed")
    owners: list[Owner] = Field(max_length=16, description="whose sensors contributed")
    jurisdiction: CountryCode | None = Field(
        default=None, description="the country the track is in (None: outside every outline)"
    )
    border_distance_m: float | None = Field(
        default=None, ge=0, description="distance to the nearest watched border line, metres"
    )
    update_count: int = Field(ge=0, description="detections associated so far")
    first_seen: UtcDateTime
    last_update: UtcDateTime = Field(description="sensor time of the latest associated detection")
