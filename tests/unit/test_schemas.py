"""The wire contract: every bound, the UTC rule, strictness for producers, tolerance for consumers."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas import examples, export
from schemas.events import (
    DroneEvent,
    GroundEvent,
    RadarEvent,
    SensorEvent,
    SensorEventRecord,
    SensorStatus,
)

EVENT = TypeAdapter[Any](SensorEvent)


def strict(data: dict[str, Any]) -> Any:
    """Validate as ingest does: strict types, unknown fields refused."""
    return EVENT.validate_json(json.dumps(data), strict=True, extra="forbid")


def errors_of(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        strict(data)
    return [(tuple(e["loc"]), e["type"]) for e in caught.value.errors()]


@pytest.mark.parametrize("name", sorted(examples.SENSOR_EVENTS))
def test_every_example_validates(name: str) -> None:
    """Each documented example is a valid event of its type."""
    event = strict(examples.SENSOR_EVENTS[name])
    assert event.sensor_type.value == examples.SENSOR_EVENTS[name]["sensor_type"]


def test_status_example_validates() -> None:
    """The status example is a valid SensorStatus."""
    status = SensorStatus.model_validate_json(json.dumps(examples.STATUS), strict=True, extra="forbid")
    assert status.battery_pct == 71.5


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("bearing_deg", 360.0, "less_than"),
        ("bearing_deg", -0.1, "greater_than_equal"),
        ("range_m", -1.0, "greater_than_equal"),
        ("range_m", "2140", "float_type"),
        ("confidence", 1.01, "less_than_equal"),
        ("sensor_id", "bad id with spaces", "string_pattern_mismatch"),
        ("sensor_id", "x" * 65, "string_pattern_mismatch"),
        ("event_id", "not-a-uuid", "uuid_parsing"),
        ("class", "dragon", "enum"),
    ],
)
def test_radar_bounds(field: str, value: Any, error: str) -> None:
    """Out-of-range or mistyped radar fields are refused with the field's path."""
    found = errors_of({**examples.RADAR_POLAR, field: value})
    assert (("radar", field), error) in found


@pytest.mark.parametrize(
    ("path", "value"),
    [(("lat",), 90.5), (("lat",), -91.0), (("lon",), 180.01), (("sigma_m",), 0.0)],
)
def test_drone_detection_bounds(path: tuple[str, ...], value: float) -> None:
    """Latitude, longitude and sigma of a drone detection are bounded."""
    detection = {**examples.DRONE["detection"], path[0]: value}
    found = errors_of({**examples.DRONE, "detection": detection})
    assert any(loc == ("drone", "detection", *path) for loc, _ in found)


def test_non_finite_numbers_are_refused() -> None:
    """NaN and infinities never pass, even where the range would allow them."""
    with pytest.raises(ValidationError) as caught:
        EVENT.validate_json(
            '{"event_id": "0b9a8f2e-4c61-4d3a-9f1e-6a2b7c8d9e01", "sensor_id": "r", "sensor_type": '
            '"radar", "time": "2026-11-22T03:14:07Z", "range_m": NaN, "bearing_deg": Infinity}',
            strict=True,
        )
    kinds = {(tuple(e["loc"]), e["type"]) for e in caught.value.errors()}
    assert (("radar", "range_m"), "finite_number") in kinds
    assert (("radar", "bearing_deg"), "finite_number") in kinds


@pytest.mark.parametrize(
    ("stamp", "error"),
    [
        ("2026-11-22T03:14:07", "timezone_aware"),
        ("2026-11-22T03:14:07+01:00", "timezone_offset"),
        ("2026-11-22T03:14:07-05:00", "timezone_offset"),
        ("yesterday", "datetime_parsing"),
    ],
)
def test_timestamps_must_be_utc(stamp: str, error: str) -> None:
    """Naive timestamps and other offsets are refused; Z and +00:00 are UTC."""
    assert (("radar", "time"), error) in errors_of({**examples.RADAR_POLAR, "time": stamp})
    assert (
        strict({**examples.RADAR_POLAR, "time": "2026-11-22T03:14:07+00:00"}).time.utcoffset().total_seconds()
        == 0
    )


def test_unknown_fields_refused_for_producers_ignored_for_consumers() -> None:
    """Ingest refuses unknown fields; a consumer reading a newer message ignores them."""
    data = {**examples.DRONE, "future_field": 1}
    assert (("drone", "future_field"), "extra_forbidden") in errors_of(data)
    assert isinstance(EVENT.validate_python(data), DroneEvent)


@pytest.mark.parametrize(
    "changes",
    [
        {"range_m": ..., "bearing_deg": ...},
        {"plot": {"lat": 7.9, "lon": -72.4, "sigma_m": 20.0}},
        {"bearing_deg": ...},
        {
            "range_m": ...,
            "range_sigma_m": 10.0,
            "plot": {"lat": 7.9, "lon": -72.4, "sigma_m": 20.0},
            "bearing_deg": ...,
        },
        {"elevation_sigma_deg": 1.0},
        {"class": ..., "confidence": 0.5},
    ],
)
def test_radar_measurement_rules(changes: dict[str, Any]) -> None:
    """A radar event carries exactly one measurement form, and sigmas only with their values."""
    data = {**examples.RADAR_POLAR, **changes}
    data = {k: v for k, v in data.items() if v is not ...}
    with pytest.raises(ValidationError):
        strict(data)


def test_ground_sigma_needs_value() -> None:
    """A ground sensor's range sigma without a range is refused."""
    with pytest.raises(ValidationError):
        strict({**examples.GROUND, "range_sigma_m": 5.0})
    assert isinstance(strict(examples.GROUND), GroundEvent)


def test_strings_and_status_fields_are_bounded() -> None:
    """Free text and numbers in status reports have limits."""
    with pytest.raises(ValidationError):
        SensorStatus.model_validate({**examples.STATUS, "message": "x" * 257})
    with pytest.raises(ValidationError):
        SensorStatus.model_validate({**examples.STATUS, "battery_pct": 101})
    with pytest.raises(ValidationError):
        strict({**examples.DRONE, "media_ref": "m" * 513})


def test_discriminator_picks_the_body() -> None:
    """sensor_type selects the model; an unknown type names the valid ones."""
    assert isinstance(strict(examples.RADAR_PLOT), RadarEvent)
    found = errors_of({**examples.GROUND, "sensor_type": "sonar"})
    assert any(kind == "union_tag_invalid" for _, kind in found)


def test_record_round_trip() -> None:
    """An ingest record carries the event and the stamp, and reads back equal."""
    record = SensorEventRecord.model_validate(
        {
            "received_at": "2026-11-22T03:14:08Z",
            "region": "co-ve-cucuta",
            "owner": {"country": "CO", "agency": "ejercito"},
            "gateway_id": "gw-co-ejercito-cuc",
            "event": examples.RADAR_POLAR,
        }
    )
    again = SensorEventRecord.model_validate_json(record.model_dump_json())
    assert again == record
    assert isinstance(again.event, RadarEvent)


def test_exported_schemas_are_fresh() -> None:
    """schemas/json matches the models (run `lindero schemas export` after a change)."""
    assert export.stale() == []


@pytest.mark.parametrize("name", sorted(examples.SENSOR_EVENTS))
def test_exported_schema_accepts_examples_and_refuses_extras(name: str) -> None:
    """The checked-in JSON Schema agrees with the models on the examples and on extra fields."""
    schema = json.loads((export.JSON_DIR / "SensorEvent.schema.json").read_text())
    jsonschema.validate(examples.SENSOR_EVENTS[name], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**examples.SENSOR_EVENTS[name], "extra": 1}, schema)


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    sigma=st.floats(0.01, 50_000),
    confidence=st.floats(0, 1),
)
def test_any_in_range_drone_event_round_trips(
    lat: float, lon: float, sigma: float, confidence: float
) -> None:
    """Any in-range drone detection validates and survives a JSON round trip unchanged."""
    data = {
        **examples.DRONE,
        "detection": {"lat": lat, "lon": lon, "sigma_m": sigma},
        "confidence": confidence,
    }
    event = strict(data)
    assert EVENT.validate_json(EVENT.dump_json(event), strict=True) == event


@given(value=finite.filter(lambda v: not 0 <= v < 360))
def test_any_out_of_range_bearing_is_refused(value: float) -> None:
    """Every bearing outside [0, 360) is refused."""
    with pytest.raises(ValidationError):
        strict({**examples.RADAR_POLAR, "bearing_deg": value})
    assert not math.isnan(value)
