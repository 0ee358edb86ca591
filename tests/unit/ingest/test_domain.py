"""Ingest's pure logic: token buckets, the duplicate index, parsing and admission."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import examples
from schemas.events import SensorEventRecord, SensorStatusRecord
from services.core.config import LinderoConfig
from services.ingest.domain.admission import (
    HEADER_DIGEST,
    HEADER_EVENT_ID,
    Admitted,
    Directory,
    Reason,
    Rejection,
    TimeLimits,
    admit,
    render_time,
)
from services.ingest.domain.dedup import DedupIndex, Seen
from services.ingest.domain.parsing import BodyError
from services.ingest.domain.ratelimit import RateLimiter, TokenBucket
from services.ingest.service import EVENTS, STATUS

NOW = dt.datetime(2026, 11, 22, 3, 15, tzinfo=dt.UTC)
LIMITS = TimeLimits(max_age_s=3600, max_future_s=30)


def event(kind: str = "radar", **changes: Any) -> dict[str, Any]:
    base = examples.STATUS if kind == "status" else examples.SENSOR_EVENTS[kind]
    data = {**base, "event_id": str(uuid.uuid4()), "time": "2026-11-22T03:14:59Z", **changes}
    return {k: v for k, v in data.items() if v is not ...}


# -- rate limiting ------------------------------------------------------------------------------


def test_bucket_grants_burst_then_refills() -> None:
    """A full bucket grants its burst, then one token per 1/rate seconds."""
    bucket = TokenBucket.full(rate_per_s=10, burst=20, now_s=0)
    assert bucket.take(20, 0) == 0
    assert bucket.take(1, 0) == pytest.approx(0.1)
    assert bucket.take(5, 0.5) == 0
    assert bucket.take(1, 0.5) > 0


def test_bucket_refuses_more_than_burst_forever() -> None:
    """A request larger than the burst can never pass: the answer is infinite."""
    assert math.isinf(TokenBucket.full(10, 20, 0).take(21, 100))


def test_limiter_keeps_gateways_apart() -> None:
    """One gateway's flood does not spend another's tokens; per-gateway limits override the default."""
    limiter = RateLimiter({"fast": (1000, 1000)}, default=(1, 5))
    assert limiter.take("a", 5, 0) == 0
    assert limiter.take("a", 1, 0) > 0
    assert limiter.take("b", 5, 0) == 0
    assert limiter.take("fast", 1000, 0) == 0


@given(costs=st.lists(st.integers(1, 50), min_size=1, max_size=40), step=st.floats(0, 2))
def test_bucket_never_grants_more_than_rate_allows(costs: list[int], step: float) -> None:
    """Over any sequence, granted tokens never exceed burst + rate x elapsed time."""
    bucket = TokenBucket.full(rate_per_s=10, burst=30, now_s=0)
    granted, now = 0, 0.0
    for cost in costs:
        now += step
        if bucket.take(cost, now) == 0:
            granted += cost
    assert granted <= 30 + 10 * now + 1e-9


# -- duplicate index ----------------------------------------------------------------------------


def test_dedup_tells_retry_from_reuse() -> None:
    """The same id with the same digest is a duplicate; with another digest a conflict."""
    index = DedupIndex(window_s=60, max_entries=1000)
    key = uuid.uuid4().bytes
    assert index.check(key, 7) is Seen.NEW
    index.remember(key, 7, now_s=100)
    assert index.check(key, 7) is Seen.DUPLICATE
    assert index.check(key, 8) is Seen.CONFLICT


def test_dedup_window_expires_old_ids() -> None:
    """Ids older than the window are forgotten; younger ones stay."""
    index = DedupIndex(window_s=60, max_entries=1000)
    old, young = uuid.uuid4().bytes, uuid.uuid4().bytes
    index.remember(old, 1, now_s=100)
    index.remember(young, 2, now_s=150)
    assert index.expire(now_s=170) == 1
    assert index.check(old, 1) is Seen.NEW
    assert index.check(young, 2) is Seen.DUPLICATE


def test_dedup_is_bounded() -> None:
    """Beyond max_entries the oldest ids go first."""
    index = DedupIndex(window_s=3600, max_entries=1000)
    keys = [uuid.uuid4().bytes for _ in range(1500)]
    for i, key in enumerate(keys):
        index.remember(key, i, now_s=i / 100)
    assert len(index) == 1000
    assert index.check(keys[0], 0) is Seen.NEW
    assert index.check(keys[-1], 1499) is Seen.DUPLICATE
    assert index.expire(now_s=10_000) == 1000
    assert len(index) == 0


# -- parsing ------------------------------------------------------------------------------------


def test_single_event_parses_to_canonical_bytes() -> None:
    """Whitespace and key order do not change the canonical bytes that get validated and written."""
    data = event("drone")
    compact = EVENTS.parser.single(orjson.dumps(data))
    spaced = EVENTS.parser.single(json.dumps(dict(reversed(list(data.items()))), indent=2).encode())
    assert compact.model is not None
    assert compact.canonical == spaced.canonical
    assert orjson.loads(compact.canonical) == data


def test_repeated_key_keeps_the_value_that_is_validated() -> None:
    """With a key given twice, the value written is the value validated (the last one)."""
    raw = orjson.dumps(event("radar"))[:-1] + b',"bearing_deg":400.0}'
    parsed = EVENTS.parser.single(raw)
    assert parsed.model is None
    assert parsed.errors[0].path == "bearing_deg"


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"", 400), (b"{", 400), (b"\xff\xfe{}", 400), (b"[1, 2]", 422), (b'"text"', 422), (b"{}" * 2, 400)],
)
def test_single_body_errors(body: bytes, status: int) -> None:
    """Bodies that are not one JSON object are refused as a whole."""
    with pytest.raises(BodyError) as caught:
        EVENTS.parser.single(body)
    assert caught.value.status == status


def test_deeply_nested_body_is_malformed() -> None:
    """A pathologically nested body is refused cleanly, not with a crash."""
    with pytest.raises(BodyError):
        EVENTS.parser.single(b"[" * 5000 + b"]" * 5000)


def test_batch_reports_each_bad_item_by_index() -> None:
    """Good items pass; each bad one keeps its index, event id and field paths."""
    bad = event("radar", bearing_deg=720.0)
    items = [event("radar"), bad, 42, event("ground"), event("drone", confidence=2)]
    parsed = EVENTS.parser.array(orjson.dumps(items), max_events=10)
    assert [p.position for p in parsed] == [0, 1, 2, 3, 4]
    assert [p.model is not None for p in parsed] == [True, False, False, True, False]
    assert parsed[1].event_id == bad["event_id"]
    assert parsed[1].errors[0].path == "bearing_deg"
    assert parsed[2].errors[0].message == "each event must be a JSON object"
    assert parsed[4].errors[0].path == "confidence"


def test_ndjson_batch_with_broken_line() -> None:
    """NDJSON lines are items; a line that is not JSON is one bad item, not a bad body."""
    lines = [orjson.dumps(event("ground")), b"{not json", b"", orjson.dumps(event("radar_plot"))]
    parsed = EVENTS.parser.ndjson(b"\n".join(lines), max_events=10)
    assert [p.model is not None for p in parsed] == [True, False, True]
    assert "not valid JSON" in parsed[1].errors[0].message


@pytest.mark.parametrize(("body", "status"), [(b"[]", 422), (b"{}", 422), (b"[" + b"{}," * 10 + b"{}]", 413)])
def test_batch_body_errors(body: bytes, status: int) -> None:
    """Empty batches, objects instead of arrays and too many events are refused as a whole."""
    with pytest.raises(BodyError) as caught:
        EVENTS.parser.array(body, max_events=10)
    assert caught.value.status == status


def test_paths_drop_the_union_tag() -> None:
    """Errors inside a radar body are reported as `plot.sigma_m`, not `radar.plot.sigma_m`."""
    data = event("radar_plot", plot={"lat": 7.9, "lon": -72.4, "sigma_m": -3})
    [error] = EVENTS.parser.single(orjson.dumps(data)).errors
    assert error.path == "plot.sigma_m"
    missing = EVENTS.parser.single(orjson.dumps(event("ground", sensor_type=...)))
    assert [(e.path, e.message) for e in missing.errors] == [("sensor_type", "sensor_type is required")]


# -- admission ----------------------------------------------------------------------------------


def decide(
    config: LinderoConfig, gateway: str, data: dict[str, Any], now: dt.datetime = NOW
) -> Admitted | Rejection:
    directory = Directory.from_config(config)
    stream = STATUS if "sensor_type" not in data else EVENTS
    parsed = stream.parser.single(orjson.dumps(data))
    assert parsed.model is not None, parsed.errors
    return admit(
        0,
        parsed.model,
        parsed.canonical,
        directory.gateways[gateway],
        directory,
        now,
        render_time(now),
        LIMITS,
    )


def test_admitted_record_is_a_valid_record(demo_config: LinderoConfig) -> None:
    """The bytes ingest writes parse as a SensorEventRecord with the right stamp and key."""
    data = event("radar")
    decision = decide(demo_config, "gw-co-ejercito-cuc", data)
    assert isinstance(decision, Admitted)
    record = SensorEventRecord.model_validate_json(decision.value)
    assert decision.key == b"co-ve-cucuta"
    assert record.region == "co-ve-cucuta"
    assert (record.owner.country, record.owner.agency) == ("CO", "ejercito")
    assert record.gateway_id == "gw-co-ejercito-cuc"
    assert record.received_at == NOW
    assert record.sensor_site is not None
    assert str(record.event.event_id) == data["event_id"]
    assert dict(decision.headers)[HEADER_EVENT_ID] == uuid.UUID(data["event_id"]).bytes
    assert int.from_bytes(dict(decision.headers)[HEADER_DIGEST], "big") == decision.digest


def test_status_goes_to_its_own_key(demo_config: LinderoConfig) -> None:
    """A status report is keyed by sensor id and parses as a SensorStatusRecord."""
    decision = decide(demo_config, "gw-co-ejercito-cuc", event("status"))
    assert isinstance(decision, Admitted)
    assert decision.key == b"co-cuc-ugs-03"
    assert SensorStatusRecord.model_validate_json(decision.value).status.battery_pct == 71.5


def test_drone_records_have_no_fixed_site(demo_config: LinderoConfig) -> None:
    """Drones are mobile: their records carry no registry site."""
    decision = decide(demo_config, "gw-co-ejercito-cuc", event("drone"))
    assert isinstance(decision, Admitted)
    assert SensorEventRecord.model_validate_json(decision.value).sensor_site is None


@pytest.mark.parametrize(
    ("gateway", "changes", "status", "reason", "path"),
    [
        ("gw-ve-fanb-tac", {}, 403, Reason.FORBIDDEN, "sensor_id"),
        ("gw-co-policia-cuc", {}, 403, Reason.FORBIDDEN, "sensor_id"),
        ("gw-co-ejercito-cuc", {"sensor_id": "nope-1"}, 403, Reason.FORBIDDEN, "sensor_id"),
        ("gw-co-ejercito-cuc", {"sensor_id": "co-cuc-uav-1"}, 422, Reason.TYPE_MISMATCH, "sensor_type"),
        ("gw-co-ejercito-cuc", {"time": "2026-11-22T03:16:00Z"}, 422, Reason.TOO_NEW, "time"),
        ("gw-co-ejercito-cuc", {"time": "2026-11-22T01:00:00Z"}, 422, Reason.TOO_OLD, "time"),
        ("gw-co-ejercito-cuc", {"schema_version": 2}, 422, Reason.UNSUPPORTED_VERSION, "schema_version"),
    ],
)
def test_rejections(
    demo_config: LinderoConfig, gateway: str, changes: dict[str, Any], status: int, reason: Reason, path: str
) -> None:
    """Ownership, registered type, time window and version are each refused with their reason."""
    decision = decide(demo_config, gateway, event("radar", **changes))
    assert isinstance(decision, Rejection)
    assert (decision.status, decision.reason, decision.errors[0].path) == (status, reason, path)


def test_time_window_edges_are_inclusive(demo_config: LinderoConfig) -> None:
    """Exactly max_future_s ahead and max_age_s behind are still accepted."""
    ahead = NOW + dt.timedelta(seconds=30)
    behind = NOW - dt.timedelta(seconds=3600)
    for moment in (ahead, behind):
        stamp = moment.isoformat().replace("+00:00", "Z")
        assert isinstance(decide(demo_config, "gw-co-ejercito-cuc", event("radar", time=stamp)), Admitted)


def test_digest_ignores_layout_but_not_content(demo_config: LinderoConfig) -> None:
    """Same event, different key order: same digest; a changed value: different digest."""
    data = event("radar")
    first = decide(demo_config, "gw-co-ejercito-cuc", data)
    again = decide(demo_config, "gw-co-ejercito-cuc", dict(reversed(list(data.items()))))
    changed = decide(demo_config, "gw-co-ejercito-cuc", {**data, "range_m": 2141.0})
    assert isinstance(first, Admitted)
    assert isinstance(again, Admitted)
    assert isinstance(changed, Admitted)
    assert first.digest == again.digest != changed.digest
