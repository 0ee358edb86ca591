"""Kafka goes away and comes back: ingest answers 503 meanwhile; no acknowledged event is lost or doubled."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

from schemas.topics import SENSOR_EVENTS
from tests.conftest import EventFactory
from tests.integration.conftest import (
    IngestFactory,
    KafkaFactory,
    RunningIngest,
    cluster_in,
    read_topic,
    wait_until,
)


async def post(ingest: RunningIngest, key: str, event: dict[str, Any]) -> httpx.Response:
    started = time.monotonic()
    response = await ingest.client.post("/v1/events", json=event, headers={"Authorization": f"Bearer {key}"})
    elapsed = time.monotonic() - started
    assert response.status_code in {200, 202, 503}, response.text
    assert elapsed < ingest.settings.produce_timeout_s + 3, f"a request hung for {elapsed:.1f} s"
    if response.status_code == 503:
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["content-type"] == "application/problem+json"
    return response


async def test_broker_outage_and_recovery(
    tmp_path: Path,
    start_ingest: IngestFactory,
    make_kafka: KafkaFactory,
    demo_keys: dict[str, str],
    make_event: EventFactory,
) -> None:
    """Down at start, up, killed, back: 503 + Retry-After while down; every accepted event once in Kafka."""
    cluster = cluster_in(tmp_path, "outage")
    kafka = make_kafka(bootstrap=cluster.bootstrap)
    key = demo_keys["gw-co-ejercito-cuc"]
    ingest = await start_ingest(
        kafka=kafka, ready=False, produce_timeout_s=2.0, kafka_stall_s=1.0, retry_after_s=1
    )
    posted: list[dict[str, Any]] = []
    answers: dict[str, list[int]] = {}

    async def send(event: dict[str, Any]) -> int:
        code = (await post(ingest, key, event)).status_code
        answers.setdefault(event["event_id"], []).append(code)
        return code

    # 1. No broker yet: ingest runs, is not ready, and refuses with 503.
    assert (await ingest.client.get("/readyz")).status_code == 503
    early = make_event("radar")
    posted.append(early)
    assert await send(early) == 503

    # 2. The broker starts: ingest becomes ready on its own, events are accepted.
    await asyncio.to_thread(cluster.start)
    await wait_until(lambda: _ready(ingest), 60, "ingest to notice the broker")
    for _ in range(30):
        event = make_event("radar")
        posted.append(event)
        assert await send(event) == 202

    # 3. The broker is killed under load: requests keep being answered quickly, with 503.
    load = asyncio.create_task(_load(posted, send, make_event, seconds=6.0))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(cluster.stop_node, cluster.nodes[0], 30.0, True)
    await asyncio.sleep(3.0)
    assert (await ingest.client.get("/readyz")).status_code == 503
    codes_while_down = await load
    assert 503 in codes_while_down

    # 4. The broker returns (same storage): ingest recovers by itself.
    await asyncio.to_thread(cluster.start)
    await wait_until(lambda: _ready(ingest), 60, "ingest to recover")

    # 5. A gateway retries everything that was not acknowledged, until it is.
    for event in posted:
        deadline = time.monotonic() + 60
        while answers[event["event_id"]][-1] == 503:
            assert time.monotonic() < deadline, "a retried event was never accepted"
            await asyncio.sleep(0.2)
            await send(event)

    # 6. Kafka holds every posted event exactly once.
    records = await read_topic(kafka, kafka.topics(SENSOR_EVENTS), timeout_s=60)
    counts = Counter(orjson.loads(r.value)["event"]["event_id"] for r in records)
    assert set(counts) == {e["event_id"] for e in posted}
    assert max(counts.values()) == 1
    accepted_first_time = sum(1 for codes in answers.values() if codes[0] == 202)
    assert accepted_first_time >= 30
    await asyncio.to_thread(cluster.stop)


async def _ready(ingest: RunningIngest) -> bool:
    return (await ingest.client.get("/readyz")).status_code == 200


async def _load(
    posted: list[dict[str, Any]], send: Any, make_event: EventFactory, seconds: float
) -> list[int]:
    codes = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        event = make_event("ground")
        posted.append(event)
        codes.append(await send(event))
        await asyncio.sleep(0.05)
    return codes
