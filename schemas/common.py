"""Shared building blocks of the wire contract: strict base models, bounded types, positions.

Conventions (STYLE.md):
- units are in field names (``range_m``, ``bearing_deg``); angles are degrees on the wire;
- every float is finite (NaN and Infinity are refused);
- every timestamp is RFC 3339 in UTC;
- strings and lists are bounded.

Producers validate with ``extra="forbid"``; consumers validate with the model default,
``extra="ignore"``, so that a newer producer adding a field never breaks an older consumer.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, GetPydanticSchema, StringConstraints
from pydantic_core import core_schema

SCHEMA_VERSION = 1
"""The wire version every message of this release carries in ``schema_version``."""


class WireModel(BaseModel):
    """Base of every message: immutable, finite floats, aliases on the wire, unknown fields ignored."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        allow_inf_nan=False,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        ser_json_inf_nan="constants",
        use_enum_values=False,
    )


UtcDateTime = Annotated[
    dt.datetime,
    GetPydanticSchema(lambda _type, _handler: core_schema.datetime_schema(tz_constraint=0)),
]
"""An RFC 3339 timestamp in UTC (``Z`` or ``+00:00``); naive timestamps and other offsets are
refused. Checked inside pydantic-core (no Python call per value): this is on ingest's hot path."""

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"),
]
"""An identifier: 1-64 characters, letters, digits and ``. _ : -``, starting alphanumeric."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""An ISO 3166-1 alpha-2 country code, e.g. ``CO``."""

Latitude = Annotated[float, Field(ge=-90.0, le=90.0, description="WGS84 latitude, degrees")]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, description="WGS84 longitude, degrees")]
AltitudeM = Annotated[
    float, Field(ge=-500.0, le=20_000.0, description="altitude above the WGS84 ellipsoid, metres")
]
BearingDeg = Annotated[
    float, Field(ge=0.0, lt=360.0, description="bearing clockwise from true north, degrees")
]
HeadingDeg = BearingDeg
Confidence = Annotated[float, Field(ge=0.0, le=1.0, description="probability in [0, 1]")]
SigmaM = Annotated[float, Field(gt=0.0, le=50_000.0, description="one standard deviation, metres")]
ShortText = Annotated[str, StringConstraints(max_length=256)]


class TargetClass(StrEnum):
    """What a detection or a track is believed to be."""

    PERSON = "person"
    VEHICLE = "vehicle"
    AIRCRAFT = "aircraft"
    VESSEL = "vessel"
    ANIMAL = "animal"
    UNKNOWN = "unknown"


class Position(WireModel):
    """A WGS84 position with an optional altitude."""

    lat: Latitude
    lon: Longitude
    alt_m: AltitudeM | None = None


class GeoPoint(WireModel):
    """A geolocated point with its horizontal uncertainty (one sigma, circular)."""

    lat: Latitude
    lon: Longitude
    sigma_m: SigmaM
    alt_m: AltitudeM | None = None


class Owner(WireModel):
    """Whose sensor it is: a country and one of its agencies."""

    country: CountryCode
    agency: Identifier
