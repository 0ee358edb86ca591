"""The polar radar record's fast path: what pydantic and from_record make of it, or nothing."""

from __future__ import annotations

import copy
import functools
import json
import math
from typing import Any

import numpy as np
import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from schemas.events import SensorEventRecord
from schemas.topics import SENSOR_EVENTS
from services.core.config import LinderoConfig, load_config
from services.core.kafka import KafkaSettings
from services.correlator.domain.detections import Detection, from_record
from services.correlator.domain.frames import LocalFrame
from services.correlator.domain.records import polar_detection
from services.correlator.metrics import CorrelatorMetrics
from services.correlator.runner import Correlator, CorrelatorTask
from services.correlator.settings import CorrelatorSettings
from tests.conftest import DEMO_CONFIG
from tests.unit.correlator.worlds import context_of

POLAR: dict[str, Any] = {
    "schema_version": 1,
    "received_at": "2026-03-01T02:00:00Z",
    "region": "co-ve-cucuta",
    "owner": {"country": "CO", "agency": "ejercito"},
    "gateway_id": "gw-co-ejercito-cuc",
    "sensor_site": {"lat": 7.98124, "lon": -72.476, "alt_m": 12.0},
    "event": {
        "schema_version": 1,
        "event_id": "18f4c155-f8a3-5eca-a1f5-2481283ad26e",
        "sensor_id": "co-cuc-rdr-1",
        "sensor_type": "radar",
        "time": "2026-03-01T02:00:00.250Z",
        "range_m": 3517.48,
        "bearing_deg": 314.27,
        "radial_velocity_mps": 0.07,
        "range_sigma_m": 15.0,
        "bearing_sigma_deg": 0.6,
        "radial_velocity_sigma_mps": 0.5,
    },
}
"""A polar radar record as ingest writes it."""


@functools.cache
def _demo() -> tuple[LinderoConfig, dict[str, LocalFrame]]:
    config = load_config(DEMO_CONFIG)
    return config, {region.id: context_of(config, region.id).frame for region in config.regions}


@pytest.fixture
def frames() -> dict[str, LocalFrame]:
    """The demo regions' frames, by region."""
    return _demo()[1]


def _slow(value: bytes, frames: dict[str, LocalFrame], config: LinderoConfig) -> Detection | None:
    """What the correlator made of a record before the fast path (None: a dead letter)."""
    try:
        record = SensorEventRecord.model_validate_json(value)
    except ValidationError:
        return None
    frame = frames.get(record.region)
    if frame is None:
        return None
    try:
        return from_record(record, frame, config.sensors_by_id)
    except (ValueError, TypeError):
        return None


def _same(fast: Detection, slow: Detection) -> None:
    """Field by field, arrays bit for bit, and of the same types."""
    assert fast.__dict__.keys() == slow.__dict__.keys()
    for name, value in fast.__dict__.items():
        other = slow.__dict__[name]
        if isinstance(value, np.ndarray):
            assert (value.dtype, value.shape, value.tobytes()) == (other.dtype, other.shape, other.tobytes())
        else:
            assert (name, value, type(value)) == (name, other, type(other))


def _decide(record: Any, frames: dict[str, LocalFrame], config: LinderoConfig) -> Detection | None:
    value = json.dumps(record).encode()  # not orjson: integers beyond 64 bits too
    fast = polar_detection(value, frames, config.sensors_by_id)
    slow = _slow(value, frames, config)
    if fast is not None:
        assert slow is not None, f"the fast path took a record pydantic refuses: {value!r}"
        _same(fast, slow)
    return fast


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """POLAR with one field (``path`` into it) set to ``value``, or removed if ``value`` is DROP."""
    record = copy.deepcopy(POLAR)
    where = record
    for key in path[:-1]:
        where = where[key]
    if value is DROP:
        where.pop(path[-1], None)
    else:
        where[path[-1]] = value
    return record


DROP = object()


def test_a_polar_record_is_read_as_pydantic_and_from_record_read_it(
    frames: dict[str, LocalFrame], demo_config: LinderoConfig
) -> None:
    """The record ingest writes, and its variants (elevation, class, its own site, no optional
    sigma), take the fast path and come out as the slow path makes them."""
    variants = [
        POLAR,
        _with(("event", "elevation_deg"), 2.5),
        _with(("event", "class"), "vehicle"),
        {
            **_with(("event", "class"), "person"),
            "event": {**POLAR["event"], "class": "person", "confidence": 1},
        },
        _with(("event", "site"), {"lat": 7.99, "lon": -72.47}),
        {**POLAR, "event": {k: v for k, v in POLAR["event"].items() if not k.startswith("radial")}},
        _with(("event", "range_m"), 3000),
        _with(("sensor_site", "alt_m"), DROP),
        _with(("event", "radial_velocity_sigma_mps"), DROP),
        _with(("event", "time"), "2026-03-01T02:00:00Z"),
        _with(("event", "schema_version"), DROP),
        _with(("event", "unknown_field"), [1, 2]),
    ]
    for variant in variants:
        assert _decide(variant, frames, demo_config) is not None, variant


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("event", "range_m"), -0.001),
        (("event", "range_m"), 200_000.5),
        (("event", "bearing_deg"), 360),
        (("event", "bearing_deg"), math.nextafter(360.0, 0.0)),  # valid: the fast path may take it
        (("event", "bearing_deg"), True),
        (("event", "bearing_deg"), "12.5"),
        (("event", "range_sigma_m"), 0),
        (("event", "bearing_sigma_deg"), 45.0001),
        (("event", "elevation_sigma_deg"), 1.0),  # without elevation_deg
        (("event", "radial_velocity_mps"), None),  # its sigma stays: refused
        (("event", "confidence"), 0.5),  # without a class
        (("event", "class"), "dragon"),
        (("event", "class"), ["person"]),
        (("event", "target_class"), "person"),
        (("event", "plot"), {"lat": 7.9, "lon": -72.4, "sigma_m": 20.0}),
        (("event", "event_id"), "18F4C155-F8A3-5ECA-A1F5-2481283AD26E"),
        (("event", "event_id"), "18f4c155f8a35ecaa1f52481283ad26e"),
        (("event", "event_id"), "not-a-uuid"),
        (("event", "time"), "2026-03-01T02:00:00+00:00"),
        (("event", "time"), "2026-03-01T02:00:00+01:00"),
        (("event", "time"), "2026-02-29T02:00:00Z"),
        (("event", "time"), "2026-03-01T02:00:00.1234567Z"),
        (("event", "time"), 1772330400),
        (("event", "sensor_id"), "-starts-with-a-dash"),
        (("event", "sensor_id"), "x" * 65),
        (("event", "sensor_id"), "rdr\n"),
        (("event", "sensor_type"), "drone"),
        (("event", "schema_version"), 1001),
        (("event", "schema_version"), 1.0),
        (("event", "radar_track_id"), ""),
        (("event", "site"), {"lat": 91.0, "lon": 0.0}),
        (("event",), "not an object"),
        (("sensor_site",), None),  # polar data without a site: from_record refuses it
        (("sensor_site", "lat"), -90.5),
        (("sensor_site", "alt_m"), 20_001),
        (("received_at",), "2026-03-01 02:00:00Z"),
        (("received_at",), DROP),
        (("region",), "nowhere"),
        (("region",), ["co-ve-cucuta"]),
        (("owner", "country"), "co"),
        (("owner", "agency"), DROP),
        (("gateway_id",), 7),
        (("schema_version",), 0),
        (("schema_version",), False),
    ],
)
def test_a_record_the_fast_path_cannot_decide_goes_the_slow_way(
    frames: dict[str, LocalFrame], demo_config: LinderoConfig, path: tuple[str, ...], value: Any
) -> None:
    """A broken or unusual record is never taken by the fast path unless pydantic takes it too
    (and then as the slow path reads it); the broken ones are left to pydantic."""
    record = _with(path, value)
    fast = _decide(record, frames, demo_config)
    if _slow(json.dumps(record).encode(), frames, demo_config) is None:
        assert fast is None


def test_json_that_is_not_a_record_goes_the_slow_way(
    frames: dict[str, LocalFrame], demo_config: LinderoConfig
) -> None:
    for value in (b"", b"[]", b"null", b'{"event": {"sensor_type": "radar"}}', b"\xff", b'{"a": NaN}'):
        assert polar_detection(value, frames, demo_config.sensors_by_id) is None


ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=4,
)
NEAR_VALID = (
    st.sampled_from([0, 1, -1, 1.5, 45, 45.0000001, 90, 359.9999, 360, 200_000, 1000, 1001, -90.0, 7.98124])
    | st.sampled_from(["", "person", "CO", "co-cuc-rdr-1", "2026-03-01T02:00:00Z", "2026-03-01T02:00:00.5Z"])
    | st.sampled_from(["18f4c155-f8a3-5eca-a1f5-2481283ad26e", "co-ve-cucuta", "ve-ta-rdr-9", None])
    | st.floats(-1e6, 1e6)
)
PATHS = st.sampled_from(
    [
        ("event", name)
        for name in (*POLAR["event"], "elevation_deg", "elevation_sigma_deg", "rcs_dbsm", "site")
    ]
    + [("event", name) for name in ("class", "confidence", "radar_track_id", "plot", "target_class")]
    + [(name,) for name in POLAR]
    + [("owner", "country"), ("owner", "agency"), ("sensor_site", "lat"), ("sensor_site", "alt_m")]
)


@given(st.lists(st.tuples(PATHS, NEAR_VALID | ANY_JSON | st.just(DROP)), min_size=1, max_size=4))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_fast_path_never_takes_what_pydantic_refuses(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    """Records with up to four fields changed or dropped: whatever the fast path takes, pydantic
    takes too, and from_record makes the same detection of it."""
    config, frames = _demo()
    record = copy.deepcopy(POLAR)
    for path, value in changes:
        where: Any = record
        for key in path[:-1]:
            where = where.get(key) if isinstance(where, dict) else None
        if isinstance(where, dict):
            if value is DROP:
                where.pop(path[-1], None)
            else:
                where[path[-1]] = value
    _decide(record, frames, config)


def test_a_broken_record_is_a_dead_letter_with_pydantic_s_reason() -> None:
    """Through the correlator's task: the fast path changes nothing about dead letters."""
    settings = CorrelatorSettings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:1", topic_prefix="p."), config=DEMO_CONFIG
    )
    registry = CollectorRegistry()
    runner = Correlator(settings, load_config(DEMO_CONFIG), CorrelatorMetrics(registry))
    tp = TopicPartition(runner.names(SENSOR_EVENTS), 0)
    task = CorrelatorTask(runner, [tp])
    broken = _with(("event", "bearing_deg"), 360)
    values = [orjson.dumps(POLAR), orjson.dumps(broken)]
    task.consume(
        [
            ConsumerRecord(tp.topic, 0, n, 0, 0, b"co-ve-cucuta", v, None, 12, len(v), ())
            for n, v in enumerate(values)
        ]
    )
    [letter] = task.dead_letters
    error = dict(letter.headers)["lindero-error"].decode()
    try:
        SensorEventRecord.model_validate_json(values[1])
    except ValidationError as exc:
        expected = f"invalid: {str(exc)[:500]}"
    assert error == expected[:2000]
    assert len(task.engines["co-ve-cucuta"].buffer) == 1
