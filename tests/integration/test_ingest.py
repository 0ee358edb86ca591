"""The ingest service against a real broker: what is acknowledged is in Kafka, exactly, once."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import uuid
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2
from pydantic import TypeAdapter

from schemas.events import (
    COMPLETE_THROUGH_HEADER,
    PROGRESS_KIND,
    RECORD_KIND_HEADER,
    GatewayProgressRecord,
    SensorEvent,
    SensorEventRecord,
    SensorStatus,
    SensorStatusRecord,
)
from schemas.topics import SENSOR_EVENTS, SENSOR_STATUS
from services.core.kafka import KafkaSettings
from services.ingest.domain.admission import HEADER_DIGEST, HEADER_EVENT_ID, HEADER_SENSOR_TYPE
from tests.conftest import EventFactory
from tests.integration.conftest import IngestFactory, KafkaFactory, RunningIngest, read_topic

EVENT = TypeAdapter[Any](SensorEvent)


def auth(demo_keys: dict[str, str], gateway: str = "gw-co-ejercito-cuc") -> dict[str, str]:
    return {"Authorization": f"Bearer {demo_keys[gateway]}"}


async def events_in_kafka(ingest: RunningIngest) -> list[Any]:
    kafka = ingest.settings.kafka
    return await read_topic(kafka, kafka.topics(SENSOR_EVENTS))


@pytest.fixture
async def ingest(start_ingest: IngestFactory) -> RunningIngest:
    """One ready ingest server on fresh topics."""
    return await start_ingest()


# -- the happy path, field by field -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["radar", "radar_plot", "drone", "ground"])
async def test_posted_event_lands_in_kafka_field_for_field(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory, kind: str
) -> None:
    """202 means: in sensor.events, keyed by region, on the key's partition, every field intact."""
    event = make_event(kind)
    response = await ingest.client.post("/v1/events", json=event, headers=auth(demo_keys))
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "accepted"
    assert answer["event_id"] == event["event_id"]

    [record] = await events_in_kafka(ingest)
    assert record.key == b"co-ve-cucuta"
    assert (record.partition, record.offset) == (answer["partition"], answer["offset"])
    assert record.partition == (murmur2(b"co-ve-cucuta") & 0x7FFFFFFF) % 3
    stored = SensorEventRecord.model_validate_json(record.value)
    assert stored.event == EVENT.validate_python(event)
    assert orjson.loads(record.value)["event"] == event
    assert stored.region == "co-ve-cucuta"
    assert (stored.owner.country, stored.owner.agency, stored.gateway_id) == (
        "CO",
        "ejercito",
        "gw-co-ejercito-cuc",
    )
    assert abs((stored.received_at - stored.event.time).total_seconds()) < 5
    headers = dict(record.headers)
    assert headers[HEADER_EVENT_ID] == uuid.UUID(event["event_id"]).bytes
    assert headers[HEADER_SENSOR_TYPE] == event["sensor_type"].encode()
    assert len(headers[HEADER_DIGEST]) == 8


async def test_status_lands_in_sensor_status_keyed_by_sensor(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Heartbeats go to sensor.status, keyed by sensor id, never to sensor.events."""
    status = make_event("status", tamper=True, battery_pct=12.5)
    response = await ingest.client.post("/v1/status", json=status, headers=auth(demo_keys))
    assert response.status_code == 202, response.text
    kafka = ingest.settings.kafka
    [record] = await read_topic(kafka, kafka.topics(SENSOR_STATUS))
    assert record.key == b"co-cuc-ugs-03"
    stored = SensorStatusRecord.model_validate_json(record.value)
    assert stored.status == SensorStatus.model_validate(status)
    assert stored.status.tamper is True
    assert await events_in_kafka(ingest) == []


# -- batches ------------------------------------------------------------------------------------


async def test_clean_batch_is_written_whole(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """A batch of 300 good events: 202, all 300 in Kafka once, in posting order per partition."""
    events = [make_event(("radar", "drone", "ground")[i % 3]) for i in range(300)]
    response = await ingest.client.post("/v1/events/batch", json=events, headers=auth(demo_keys))
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 300,
        "duplicates": 0,
        "rejected": 0,
        "rejected_events": [],
        "duplicate_events": [],
    }
    records = await events_in_kafka(ingest)
    assert [orjson.loads(r.value)["event"]["event_id"] for r in records] == [e["event_id"] for e in events]


async def test_a_promise_lands_after_the_events_it_covers_once_per_region(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Lindero-Complete-Through on a batch: the events, then one GatewayProgressRecord per region
    of the gateway's sensors, behind them on the region's partition; an empty batch is a heartbeat."""
    events = [make_event("radar") for _ in range(5)]
    moment = dt.datetime.now(dt.UTC).replace(microsecond=250_000) - dt.timedelta(seconds=2)
    through = moment.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()  # any zone will do
    headers = {**auth(demo_keys), COMPLETE_THROUGH_HEADER: through}
    response = await ingest.client.post("/v1/events/batch", json=events, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 5
    assert response.json()["promise_written"] is True
    heartbeat = await ingest.client.post("/v1/events/batch", json=[], headers=headers)
    assert heartbeat.status_code == 202, heartbeat.text
    assert heartbeat.json()["accepted"] == 0
    records = await events_in_kafka(ingest)
    kinds = [dict(r.headers).get(RECORD_KIND_HEADER) for r in records]
    assert kinds == [None] * 5 + [PROGRESS_KIND] * 2
    for record in records[5:]:
        assert record.key == b"co-ve-cucuta"  # the ejercito gateway's sensors are all in Cúcuta
        assert record.partition == records[0].partition
        promise = GatewayProgressRecord.model_validate_json(record.value)
        assert (promise.region, promise.gateway_id) == ("co-ve-cucuta", "gw-co-ejercito-cuc")
        assert promise.complete_through == moment  # in UTC, as every time on the wire


@pytest.mark.parametrize(
    ("value", "status", "reason", "says"),
    [
        ("yesterday", 400, "malformed", "RFC 3339"),
        ("2026-11-22T10:00:00", 400, "malformed", "with a zone"),
        ("2099-01-01T00:00:00Z", 422, "too_new", "ahead of ingest's clock"),
        ("0034-07-26T03:33:34.534550+20:01", 422, "too_old", "behind ingest's clock"),
        ("0001-01-01T00:00:00+20:00", 400, "malformed", "RFC 3339"),  # no UTC time before year 1
    ],
)
async def test_a_bad_promise_is_refused_and_nothing_is_written(
    ingest: RunningIngest,
    demo_keys: dict[str, str],
    make_event: EventFactory,
    value: str,
    status: int,
    reason: str,
    says: str,
) -> None:
    headers = {**auth(demo_keys), COMPLETE_THROUGH_HEADER: value}
    response = await ingest.client.post("/v1/events/batch", json=[make_event("radar")], headers=headers)
    assert (response.status_code, response.json()["reason"]) == (status, reason)
    assert says in response.json()["detail"]
    assert "Lindero-Complete-Through" in response.json()["detail"]
    single = await ingest.client.post("/v1/status/batch", json=[make_event("status")], headers=headers)
    assert single.status_code == 400
    assert await events_in_kafka(ingest) == []


async def test_mixed_batch_accepts_good_and_names_bad_by_index(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """207: good events written, each bad one listed with its index, event id, status and field."""
    good = [make_event("radar"), make_event("ground")]
    invalid = make_event("drone", confidence=3.0)
    foreign = make_event("radar", sensor_id="ve-tac-rdr-1")
    batch = [good[0], invalid, foreign, good[1]]
    response = await ingest.client.post("/v1/events/batch", json=batch, headers=auth(demo_keys))
    assert response.status_code == 207, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert body["rejected_events"] == [
        {
            "index": 1,
            "event_id": invalid["event_id"],
            "status": 422,
            "reason": "invalid",
            "errors": [
                {"path": "confidence", "message": "Input should be less than or equal to 1 (got 3.0)"}
            ],
        },
        {
            "index": 2,
            "event_id": foreign["event_id"],
            "status": 403,
            "reason": "forbidden",
            "errors": [
                {
                    "path": "sensor_id",
                    "message": "gateway 'gw-co-ejercito-cuc' may not post for sensor 've-tac-rdr-1'",
                }
            ],
        },
    ]
    written = {orjson.loads(r.value)["event"]["event_id"] for r in await events_in_kafka(ingest)}
    assert written == {good[0]["event_id"], good[1]["event_id"]}


async def test_ndjson_batch(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """NDJSON works like an array; a broken line is one rejected event."""
    events = [make_event("ground") for _ in range(5)]
    body = b"\n".join(orjson.dumps(e) for e in events[:3]) + b"\n{oops\n" + orjson.dumps(events[3]) + b"\n"
    response = await ingest.client.post(
        "/v1/events/batch",
        content=body,
        headers={**auth(demo_keys), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 207
    assert response.json()["rejected_events"][0]["index"] == 3
    assert len(await events_in_kafka(ingest)) == 4


async def test_batch_all_invalid_is_422_and_writes_nothing(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """A batch where every event is invalid gets 422 and nothing reaches Kafka."""
    batch = [make_event("radar", bearing_deg=400.0), make_event("radar", range_m=-5.0)]
    response = await ingest.client.post("/v1/events/batch", json=batch, headers=auth(demo_keys))
    assert response.status_code == 422
    assert [e["index"] for e in response.json()["rejected_events"]] == [0, 1]
    assert await events_in_kafka(ingest) == []


# -- duplicates ---------------------------------------------------------------------------------


async def test_retry_is_a_duplicate_and_reuse_is_a_conflict(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Same event again: 200 duplicate; same id, other content: 409; Kafka holds it once."""
    event = make_event("drone")
    first = await ingest.client.post("/v1/events", json=event, headers=auth(demo_keys))
    again = await ingest.client.post(
        "/v1/events", json=dict(reversed(list(event.items()))), headers=auth(demo_keys)
    )
    reused = await ingest.client.post(
        "/v1/events", json={**event, "confidence": 0.1}, headers=auth(demo_keys)
    )
    assert (first.status_code, again.status_code, reused.status_code) == (202, 200, 409)
    assert again.json() == {"status": "duplicate", "event_id": event["event_id"]}
    assert reused.json()["reason"] == "conflict"
    assert len(await events_in_kafka(ingest)) == 1


async def test_concurrent_retries_write_once(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Fifty simultaneous posts of one event: exactly one 202, the rest duplicates, one record."""
    event = make_event("radar")
    responses = await asyncio.gather(
        *(ingest.client.post("/v1/events", json=event, headers=auth(demo_keys)) for _ in range(50))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 49 + [202]
    assert len(await events_in_kafka(ingest)) == 1


async def test_duplicates_inside_and_across_batches(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """An event twice in one batch is written once; resending the batch writes nothing new."""
    events = [make_event("ground") for _ in range(3)]
    batch = [*events, events[0]]
    first = await ingest.client.post("/v1/events/batch", json=batch, headers=auth(demo_keys))
    assert first.status_code == 202
    assert (first.json()["accepted"], first.json()["duplicates"]) == (3, 1)
    again = await ingest.client.post("/v1/events/batch", json=batch, headers=auth(demo_keys))
    assert again.status_code == 200
    assert again.json()["duplicates"] == 4
    assert len(await events_in_kafka(ingest)) == 3


async def test_duplicate_window_survives_a_restart(
    start_ingest: IngestFactory, make_kafka: KafkaFactory, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """A new instance rebuilds its duplicate index from the log: a retry after a restart is a duplicate."""
    kafka: KafkaSettings = make_kafka()
    first = await start_ingest(kafka=kafka)
    events = [make_event("radar") for _ in range(20)]
    assert (
        await first.client.post("/v1/events/batch", json=events, headers=auth(demo_keys))
    ).status_code == 202
    await first.stop()
    second = await start_ingest(kafka=kafka)
    retry = await second.client.post("/v1/events", json=events[7], headers=auth(demo_keys))
    assert retry.status_code == 200, retry.text
    conflict = await second.client.post(
        "/v1/events", json={**events[8], "range_m": 1.0}, headers=auth(demo_keys)
    )
    assert conflict.status_code == 409
    assert len(await events_in_kafka(second)) == 20


# -- authentication and ownership ---------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer lnd_gw-co-ejercito-cuc-k1_notTheRightSecretAtAll000000000000"},
        {"X-API-Key": "garbage"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
async def test_missing_or_bad_key_is_401(
    ingest: RunningIngest, make_event: EventFactory, headers: dict[str, str]
) -> None:
    """No key, a wrong key or another scheme: 401 with a WWW-Authenticate challenge, nothing written."""
    response = await ingest.client.post("/v1/events", json=make_event("radar"), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert await events_in_kafka(ingest) == []


async def test_gateway_cannot_post_for_another_agencys_sensor(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """The Colombian police gateway may not post for an army sensor in the same city: 403."""
    response = await ingest.client.post(
        "/v1/events",
        json=make_event("ground", sensor_id="co-cuc-ugs-01"),
        headers=auth(demo_keys, "gw-co-policia-cuc"),
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["path"] == "sensor_id"
    assert await events_in_kafka(ingest) == []


async def test_whoami_and_x_api_key(ingest: RunningIngest, demo_keys: dict[str, str]) -> None:
    """X-API-Key works as well as Bearer; /v1/whoami tells a gateway what it may post for."""
    response = await ingest.client.get("/v1/whoami", headers={"X-API-Key": demo_keys["gw-gt-pnc-tec"]})
    assert response.status_code == 200
    body = response.json()
    assert body["gateway_id"] == "gw-gt-pnc-tec"
    assert body["owner"] == {"country": "GT", "agency": "pnc"}
    assert (await ingest.client.get("/v1/whoami")).status_code == 401


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "malformed"),
        (b"\xff\xfe\x00{}", "application/json", 400, "malformed"),
        (b'{"range_m": NaN}', "application/json", 400, "malformed"),
        (b"[" * 3000 + b"]" * 3000, "application/json", 400, "malformed"),
        (b"", "application/json", 400, "malformed"),
        (b"[]", "application/json", 422, "malformed"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b"{}", "application/x-ndjson", 415, "unsupported_media_type"),
        (b"{}", "", 415, "unsupported_media_type"),
    ],
)
async def test_malformed_bodies(
    ingest: RunningIngest,
    demo_keys: dict[str, str],
    content: bytes,
    content_type: str,
    status: int,
    reason: str,
) -> None:
    """Unreadable bodies and wrong content types get a precise 4xx problem, never a 500."""
    headers = {**auth(demo_keys), "Content-Type": content_type}
    response = await ingest.client.post("/v1/events", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"urn:lindero:problem:{reason}"


async def test_invalid_event_names_every_field(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """A 422 lists each wrong field with its path and the value given."""
    event = make_event("radar", bearing_deg=361.0, range_m="far", extra_field=True)
    response = await ingest.client.post("/v1/events", json=event, headers=auth(demo_keys))
    assert response.status_code == 422
    body = response.json()
    assert body["event_id"] == event["event_id"]
    assert {e["path"] for e in body["errors"]} == {"bearing_deg", "range_m", "extra_field"}


async def test_oversized_bodies_are_413(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Too many bytes (declared, streamed or inflated) or too many events: 413."""
    big = orjson.dumps({**make_event("drone"), "media_ref": "x" * 70_000})
    declared = await ingest.client.post(
        "/v1/events", content=big, headers={**auth(demo_keys), "Content-Type": "application/json"}
    )
    assert declared.status_code == 413

    async def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1024

    streamed = await ingest.client.post(
        "/v1/events", content=chunks(), headers={**auth(demo_keys), "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413

    bomb = gzip.compress(b" " * (9 * 1024 * 1024))
    inflated = await ingest.client.post(
        "/v1/events/batch",
        content=bomb,
        headers={**auth(demo_keys), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert inflated.status_code == 413

    many = [make_event("ground") for _ in range(ingest.settings.max_batch_events + 1)]
    counted = await ingest.client.post("/v1/events/batch", json=many, headers=auth(demo_keys))
    assert counted.status_code == 413
    assert "at most 5000" in counted.json()["detail"]
    assert await events_in_kafka(ingest) == []


async def test_gzip_bodies_are_accepted(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Gateways on thin links may gzip their batches."""
    events = [make_event("radar") for _ in range(10)]
    response = await ingest.client.post(
        "/v1/events/batch",
        content=gzip.compress(orjson.dumps(events)),
        headers={**auth(demo_keys), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 202
    corrupt = await ingest.client.post(
        "/v1/events/batch",
        content=b"\x1f\x8b garbage",
        headers={**auth(demo_keys), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert corrupt.status_code == 400
    brotli = await ingest.client.post(
        "/v1/events/batch",
        content=b"[]",
        headers={**auth(demo_keys), "Content-Type": "application/json", "Content-Encoding": "br"},
    )
    assert brotli.status_code == 415


async def test_events_out_of_time_window(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Events from the far past or the future are refused with the reason and the limit."""
    future = await ingest.client.post(
        "/v1/events", json=make_event("radar", time="2099-01-01T00:00:00Z"), headers=auth(demo_keys)
    )
    past = await ingest.client.post(
        "/v1/events", json=make_event("radar", time="2020-01-01T00:00:00Z"), headers=auth(demo_keys)
    )
    assert (future.status_code, future.json()["reason"]) == (422, "too_new")
    assert (past.status_code, past.json()["reason"]) == (422, "too_old")
    assert "check the sensor's clock" in future.json()["detail"]


async def test_wrong_method_is_405(ingest: RunningIngest, demo_keys: dict[str, str]) -> None:
    """GET on an event endpoint: 405 with Allow."""
    response = await ingest.client.get("/v1/events", headers=auth(demo_keys))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_rate_limit_is_per_gateway(
    start_ingest: IngestFactory, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Beyond its burst a gateway gets 429 with Retry-After; another gateway is unaffected."""
    ingest = await start_ingest(rate_events_per_s=1.0, rate_burst=5)
    ok = await ingest.client.post(
        "/v1/events/batch", json=[make_event("radar") for _ in range(5)], headers=auth(demo_keys)
    )
    assert ok.status_code == 202
    limited = await ingest.client.post("/v1/events", json=make_event("radar"), headers=auth(demo_keys))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    other = await ingest.client.post(
        "/v1/events",
        json=make_event("ground", sensor_id="co-cuc-ugs-05"),
        headers=auth(demo_keys, "gw-co-policia-cuc"),
    )
    assert other.status_code == 202
    too_big = await ingest.client.post(
        "/v1/events/batch",
        json=[make_event("ground", sensor_id="co-cuc-ugs-05") for _ in range(6)],
        headers=auth(demo_keys, "gw-co-policia-cuc"),
    )
    assert too_big.status_code == 429
    assert "burst" in too_big.json()["detail"]
    assert len(await events_in_kafka(ingest)) == 6
    heartbeat = {**auth(demo_keys), COMPLETE_THROUGH_HEADER: dt.datetime.now(dt.UTC).isoformat()}
    spent = await ingest.client.post("/v1/events/batch", json=[], headers=heartbeat)
    assert spent.status_code == 429  # a heartbeat costs one event's worth: promises cannot flood Kafka
    assert len(await events_in_kafka(ingest)) == 6


# -- operations ---------------------------------------------------------------------------------


async def test_health_readiness_and_metrics(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Health and metrics need no credentials; metrics count what happened."""
    await ingest.client.post("/v1/events", json=make_event("radar"), headers=auth(demo_keys))
    await ingest.client.post("/v1/events", json=make_event("radar", bearing_deg=999), headers=auth(demo_keys))
    assert (await ingest.client.get("/healthz")).json() == {"status": "ok"}
    ready = (await ingest.client.get("/readyz")).json()
    assert ready["ready"] is True
    assert ready["kafka"] == "available"
    text = (await ingest.client.get("/metrics")).text
    assert 'lindero_ingest_events_total{outcome="accepted",sensor_type="radar"} 1.0' in text
    assert 'lindero_ingest_rejected_events_total{reason="invalid"} 1.0' in text
    assert 'lindero_ingest_requests_total{code="202",endpoint="/v1/events"} 1.0' in text
    assert "lindero_ingest_produce_seconds_bucket" in text
    assert "lindero_ingest_kafka_available 1.0" in text
    assert "co-cuc-rdr-1" not in text, "sensor ids never become metric labels"


async def test_openapi_documents_every_endpoint_with_examples(ingest: RunningIngest) -> None:
    """The OpenAPI document describes the event endpoints, their errors and one example per sensor type."""
    document = (await ingest.client.get("/openapi.json")).json()
    for path in ("/v1/events", "/v1/events/batch", "/v1/status", "/v1/status/batch"):
        assert path in document["paths"]
    single = document["paths"]["/v1/events"]["post"]
    assert set(single["requestBody"]["content"]["application/json"]["examples"]) == {
        "radar",
        "radar_plot",
        "drone",
        "ground",
    }
    assert {"202", "200", "400", "401", "403", "409", "413", "415", "422", "429", "503"} <= set(
        single["responses"]
    )
    assert "SensorEvent" in document["components"]["schemas"]
    assert (await ingest.client.get("/docs")).status_code == 200
