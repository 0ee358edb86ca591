"""Kafka goes away and comes back: ingest answers 503 meanwhile; no acknowledged event is lost or doubled,
and the simulator's gateways, retrying through the outage, deliver everything once the broker returns."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from schemas.topics import SENSOR_EVENTS, SENSOR_STATUS
from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.simulator.client import GatewayPoster, PosterSettings
from services.simulator.domain import simulate
from tests.conftest import EventFactory
from tests.integration.conftest import (
    IngestFactory,
    KafkaFactory,
    RunningIngest,
    cluster_in,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.kafka


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


@pytest.mark.timeout(240)
async def test_broker_outage_and_recovery(
    tmp_path: Path,
    start_ingest: IngestFactory,
    make_kafka: KafkaFactory,
    demo_keys: dict[str, str],
    demo_config: LinderoConfig,
    make_event: EventFactory,
) -> None:
    """Down at start, up, killed under load, back: 503 + Retry-After while down; every accepted
    event and every event of the simulator's retrying gateways once in Kafka."""
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

    # 3. The broker is killed under load: requests keep being answered quickly, with 503. Meanwhile
    #    the simulator's gateways post a scenario (60 s at 6x) through the outage, retrying.
    assert demo_config.geography_path is not None
    sim = simulate(
        demo_config,
        Geography.load(demo_config.geography_path),
        "co-ve-cucuta",
        seed=31,
        start=dt.datetime.now(dt.UTC).replace(microsecond=0),
        duration_s=60.0,
    )
    poster = GatewayPoster(
        PosterSettings(base_url=ingest.url, speed=6.0, batch_size=20, max_delay_s=0.5, keep_ids=True),
        demo_keys,
    )
    gateways = asyncio.create_task(poster.post(sim.events))
    load = asyncio.create_task(_load(posted, send, make_event, seconds=6.0))
    await asyncio.sleep(1.0)
    assert poster.stats.accepted > 0, "the simulator's gateways got nothing in before the outage"
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

    # 6. The simulator's gateways, retrying on 503 as Retry-After says, got everything taken.
    stats = await asyncio.wait_for(gateways, 90)
    assert stats.responses["503"] > 0, "the gateways never met the outage"
    assert stats.retries > 0
    assert stats.rejected == 0, stats.rejected_reasons
    assert (stats.unsent, stats.unconfirmed) == (0, 0)
    assert stats.balanced
    assert stats.accepted_ids | stats.duplicate_ids == {e.event_id for e in sim.events}

    # 7. Kafka holds every posted event exactly once: the direct posts and the gateways' events.
    records = await read_topic(kafka, kafka.topics(SENSOR_EVENTS), timeout_s=60)
    counts = Counter(orjson.loads(r.value)["event"]["event_id"] for r in records)
    status = await read_topic(kafka, kafka.topics(SENSOR_STATUS), timeout_s=60)
    counts.update(orjson.loads(r.value)["status"]["event_id"] for r in status)
    expected = {e["event_id"] for e in posted} | {e.event_id for e in sim.events}
    assert set(counts) == expected, (
        f"{len(expected - set(counts))} events lost, {len(set(counts) - expected)} unknown ones written"
    )
    assert max(counts.values()) == 1, f"{sum(1 for c in counts.values() if c > 1)} events written twice"
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
