"""Sensor events as gateways post them, and the records ingest writes to Kafka.

A gateway posts a :data:`SensorEvent` (radar, drone or ground body, chosen by ``sensor_type``)
or a :class:`SensorStatus` (heartbeat, battery, tamper, self-test). Ingest validates it, stamps
it and writes a :class:`SensorEventRecord` to ``sensor.events`` (key: region id) or a
:class:`SensorStatusRecord` to ``sensor.status`` (key: sensor id).

A gateway that posts its events in time order may also promise, with the header
``Lindero-Complete-Through`` on a batch (an empty one is a heartbeat), that every event it posts
from then on is newer than that time. Ingest writes the promise, once the request's events are
in Kafka, as a :class:`GatewayProgressRecord` to ``sensor.events`` for each region of the
gateway's sensors (header ``lindero-record: progress``). A region whose gateways all keep
promising is released by the correlator as soon as they have all promised past a detection,
instead of after the reorder window.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from schemas.common import (
    SCHEMA_VERSION,
    AltitudeM,
    BearingDeg,
    Confidence,
    GeoPoint,
    HeadingDeg,
    Identifier,
    Latitude,
    Longitude,
    Owner,
    Position,
    ShortText,
    SigmaM,
    TargetClass,
    UtcDateTime,
    WireModel,
)

RangeM = Annotated[float, Field(ge=0.0, le=200_000.0, description="slant range, metres")]
AngleSigmaDeg = Annotated[float, Field(gt=0.0, le=45.0, description="one standard deviation, deg")]


class SensorType(StrEnum):
    """The three kinds of sensor Lindero fuses."""

    RADAR = "radar"
    DRONE = "drone"
    GROUND = "ground"


class GroundModality(StrEnum):
    """How an unattended ground sensor senses."""

    SEISMIC = "seismic"
    ACOUSTIC = "acoustic"
    PIR = "pir"
    MAGNETIC = "magnetic"
    FIBER = "fiber"


class GroundClass(StrEnum):
    """The class guesses an unattended ground sensor can make."""

    PERSON = "person"
    VEHICLE = "vehicle"
    ANIMAL = "animal"
    UNKNOWN = "unknown"


class SelfTest(StrEnum):
    """Outcome of a sensor's built-in self-test."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


class EventEnvelope(WireModel):
    """Fields every sensor event carries, whatever its body."""

    schema_version: int = Field(
        default=SCHEMA_VERSION, ge=1, le=1000, description="wire version of this message"
    )
    event_id: uuid.UUID = Field(description="unique id chosen by the gateway; the idempotency key")
    sensor_id: Identifier = Field(description="the sensor's id in the sensor registry")
    time: UtcDateTime = Field(description="when the sensor observed it (sensor time, UTC)")


class RadarEvent(EventEnvelope):
    """A ground-surveillance radar detection: polar (range/bearing) or a geolocated plot.

    Exactly one of the polar measurement (``range_m`` with ``bearing_deg``) and ``plot``
    must be present. Sigmas describe one standard deviation of the matching measurement.
    """

    sensor_type: Literal[SensorType.RADAR] = Field(description="body selector")
    site: Position | None = Field(
        default=None, description="radar site as the radar reports it (else the registry's)"
    )
    range_m: RangeM | None = None
    bearing_deg: BearingDeg | None = None
    elevation_deg: float | None = Field(default=None, ge=-90.0, le=90.0)
    radial_velocity_mps: float | None = Field(
        default=None, ge=-1_000.0, le=1_000.0, description="positive when receding, m/s"
    )
    rcs_dbsm: float | None = Field(default=None, ge=-80.0, le=80.0, description="radar cross section")
    range_sigma_m: SigmaM | None = None
    bearing_sigma_deg: AngleSigmaDeg | None = None
    elevation_sigma_deg: AngleSigmaDeg | None = None
    radial_velocity_sigma_mps: float | None = Field(default=None, gt=0.0, le=100.0)
    plot: GeoPoint | None = Field(default=None, description="a geolocated plot instead of polar")
    target_class: TargetClass | None = Field(default=None, alias="class")
    confidence: Confidence | None = None
    radar_track_id: Identifier | None = Field(
        default=None, description="the radar's own track number, a hint for association"
    )

    @model_validator(mode="after")
    def _one_measurement(self) -> Self:
        # Straight-line checks: this runs for every radar event ingest takes.
        range_m, bearing_deg = self.range_m, self.bearing_deg
        if self.plot is None:
            if range_m is None or bearing_deg is None:
                if range_m is None and bearing_deg is None:
                    raise ValueError("a radar event needs range_m and bearing_deg, or a plot")
                raise ValueError("range_m and bearing_deg must be given together")
        elif range_m is not None or bearing_deg is not None:
            raise ValueError("give either range_m/bearing_deg or plot, not both")
        if self.range_sigma_m is not None and range_m is None:
            raise ValueError("range_sigma_m given without range_m")
        if self.bearing_sigma_deg is not None and bearing_deg is None:
            raise ValueError("bearing_sigma_deg given without bearing_deg")
        if self.elevation_sigma_deg is not None and self.elevation_deg is None:
            raise ValueError("elevation_sigma_deg given without elevation_deg")
        if self.radial_velocity_sigma_mps is not None and self.radial_velocity_mps is None:
            raise ValueError("radial_velocity_sigma_mps given without radial_velocity_mps")
        if self.confidence is not None and self.target_class is None:
            raise ValueError("confidence given without class")
        return self


class DronePose(WireModel):
    """Where the drone itself was when it saw the target."""

    lat: Latitude
    lon: Longitude
    alt_m: AltitudeM
    heading_deg: HeadingDeg | None = None


class DroneEvent(EventEnvelope):
    """A detection geolocated by a drone's camera (and its onboard classifier)."""

    sensor_type: Literal[SensorType.DRONE] = Field(description="body selector")
    drone: DronePose
    detection: GeoPoint
    target_class: TargetClass = Field(alias="class")
    confidence: Confidence
    media_ref: str | None = Field(
        default=None, max_length=512, description="reference to a still or clip, e.g. an URI"
    )


class GroundEvent(EventEnvelope):
    """An unattended ground sensor trip: presence evidence at the sensor's registered site."""

    sensor_type: Literal[SensorType.GROUND] = Field(description="body selector")
    modality: GroundModality
    target_class: GroundClass = Field(alias="class")
    confidence: Confidence
    bearing_deg: BearingDeg | None = None
    bearing_sigma_deg: AngleSigmaDeg | None = None
    range_m: float | None = Field(default=None, ge=0.0, le=5_000.0, description="metres")
    range_sigma_m: SigmaM | None = None

    @model_validator(mode="after")
    def _sigmas_need_values(self) -> Self:
        if self.bearing_sigma_deg is not None and self.bearing_deg is None:
            raise ValueError("bearing_sigma_deg given without bearing_deg")
        if self.range_sigma_m is not None and self.range_m is None:
            raise ValueError("range_sigma_m given without range_m")
        return self


SensorEvent = Annotated[RadarEvent | DroneEvent | GroundEvent, Field(discriminator="sensor_type")]
"""One sensor event; the body is chosen by ``sensor_type``."""


class SensorStatus(WireModel):
    """A heartbeat or status report: battery, tamper switch, self-test."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=1000)
    event_id: uuid.UUID
    sensor_id: Identifier
    time: UtcDateTime
    battery_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    tamper: bool = Field(default=False, description="the tamper switch is open")
    self_test: SelfTest | None = None
    temperature_c: float | None = Field(default=None, ge=-80.0, le=150.0)
    message: ShortText | None = None


class IngestStamp(WireModel):
    """What ingest adds to every accepted message."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    received_at: UtcDateTime = Field(description="when ingest accepted it (ingest clock)")
    region: Identifier = Field(description="the sensor's region; the Kafka key of sensor.events")
    owner: Owner = Field(description="the country and agency that own the sensor")
    gateway_id: Identifier = Field(description="the gateway that posted it")
    sensor_site: Position | None = Field(
        default=None, description="the sensor's registered position, when it has a fixed one"
    )


class SensorEventRecord(IngestStamp):
    """A sensor event as written to ``sensor.events``."""

    event: SensorEvent


class SensorStatusRecord(IngestStamp):
    """A status report as written to ``sensor.status``."""

    status: SensorStatus


COMPLETE_THROUGH_HEADER = "lindero-complete-through"
"""The HTTP header of a gateway's promise (an RFC 3339 UTC time), on ``/v1/events/batch``."""
RECORD_KIND_HEADER = "lindero-record"
"""The Kafka header that marks a record of ``sensor.events`` that is not a sensor event."""
PROGRESS_KIND = b"progress"
"""Its value on a :class:`GatewayProgressRecord`."""


class GatewayProgressRecord(WireModel):
    """A gateway's promise about one region, written to ``sensor.events`` (key: region id, header
    ``lindero-record: progress``) after the events posted with it."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    received_at: UtcDateTime = Field(description="when ingest accepted it (ingest clock)")
    region: Identifier = Field(description="a region of the gateway's sensors; the Kafka key")
    gateway_id: Identifier = Field(description="the gateway that promises")
    complete_through: UtcDateTime = Field(
        description="every event of this region the gateway posts from now on has a later time"
    )
