"""Three brokers (replication factor 3, min.insync.replicas=2), one SIGKILLed under steady ingest load
and brought back: ingest keeps taking events, and every acknowledged event is in Kafka exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError

from schemas.topics import SENSOR_EVENTS
from services.core.kafka import KafkaSettings
from services.core.localkafka import LocalCluster
from tests.conftest import EventFactory
from tests.integration.conftest import IngestFactory, KafkaFactory, RunningIngest, read_topic, wait_until

pytestmark = pytest.mark.kafka

log = logging.getLogger(__name__)

WRITERS = 4
"""Concurrent gateways posting one event at a time."""
OUTAGE_S = 14.0
"""How long the killed broker stays down: longer than the controller takes to notice (below)."""
FAST_FAILOVER = {"broker.session.timeout.ms": "6000", "broker.heartbeat.interval.ms": "1000"}
"""The controller declares a silent broker dead after 6 s (Kafka's default is 9 s)."""


async def replicas(kafka: KafkaSettings, topic: str) -> dict[int, dict[str, Any]]:
    """Partition -> its leader, replicas and in-sync replicas, as the cluster describes them.

    The admin client asks a random broker, which may be the one just killed or still starting:
    it asks again, for up to 30 s."""
    deadline = time.monotonic() + 30.0
    while True:
        admin = AIOKafkaAdminClient(**kafka.client_options())
        try:
            await admin.start()
            described = await admin.describe_topics([topic])
            return {p["partition"]: p for p in described[0]["partitions"]}
        except (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError):
            if time.monotonic() > deadline:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(0.5)


class Load:
    """Gateways posting events steadily; each event is retried (as a gateway would) until it is taken."""

    def __init__(self, ingest: RunningIngest, key: str, make_event: EventFactory) -> None:
        self.ingest = ingest
        self.headers = {"Authorization": f"Bearer {key}"}
        self.make_event = make_event
        self.answers: dict[str, list[tuple[float, int]]] = {}
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._gateway(i)) for i in range(WRITERS)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 120)

    async def _gateway(self, index: int) -> None:
        kinds = ("radar", "drone", "ground")
        sent = 0
        while not self.stop.is_set():
            event = self.make_event(kinds[(index + sent) % 3])
            sent += 1
            answers = self.answers[event["event_id"]] = []
            while True:
                started = time.monotonic()
                response = await self.ingest.client.post("/v1/events", json=event, headers=self.headers)
                answers.append((started, response.status_code))
                assert response.status_code in {200, 202, 503}, response.text
                if response.status_code != 503:
                    break
                assert int(response.headers["retry-after"]) >= 1
                await asyncio.sleep(0.2)  # sooner than Retry-After says: the test is bounded in time
            await asyncio.sleep(0.02)

    def taken(self, since: float = 0.0, until: float = float("inf")) -> int:
        """Events acknowledged with 202 by a request started within [since, until)."""
        return sum(
            1
            for answers in self.answers.values()
            for t, code in answers
            if code == 202 and since <= t < until
        )


@pytest.mark.timeout(300)
async def test_a_broker_killed_under_load_loses_and_doubles_nothing(
    tmp_path: Path,
    start_ingest: IngestFactory,
    make_kafka: KafkaFactory,
    demo_keys: dict[str, str],
    make_event: EventFactory,
) -> None:
    """Kill -9 the leader of the events' partition under load, restart it: each 202 event once in Kafka."""
    cluster = LocalCluster(
        name="three", size=3, root=tmp_path / "three", heap_mb=384, broker_settings=FAST_FAILOVER
    )
    await asyncio.to_thread(cluster.start, log.info, 180.0)
    try:
        kafka = make_kafka(bootstrap=cluster.bootstrap, replication_factor=3, min_insync_replicas=2)
        ingest = await start_ingest(kafka=kafka, produce_timeout_s=5.0, kafka_stall_s=2.0, retry_after_s=1)
        topic = kafka.topics(SENSOR_EVENTS)
        layout = await replicas(kafka, topic)
        assert all(len(p["replicas"]) == 3 and len(p["isr"]) == 3 for p in layout.values()), layout

        load = Load(ingest, demo_keys["gw-co-ejercito-cuc"], make_event)
        load.start()
        await wait_until(lambda: asyncio.sleep(0, load.taken() >= 20), 30, "steady load")

        # The demo gateway's sensors are all in one region: one partition takes every event.
        records = await read_topic(kafka, topic)
        busy = Counter(r.partition for r in records).most_common(1)[0][0]
        leader = layout[busy]["leader"]
        victim = next(node for node in cluster.nodes if node.node_id == leader)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.stop_node, victim, 30.0, True)
        await asyncio.sleep(OUTAGE_S)
        back_at = time.monotonic()
        await asyncio.to_thread(cluster.start_node, victim, log.info)

        async def in_sync() -> bool:
            return all(len(p["isr"]) == 3 for p in (await replicas(kafka, topic)).values())

        await wait_until(in_sync, 120, "the restarted broker to rejoin every partition's in-sync replicas")
        resynced_at = time.monotonic()
        await wait_until(
            lambda: asyncio.sleep(0, load.taken(since=resynced_at) >= 10), 30, "load after the return"
        )
        await load.finish()
        now_layout = await replicas(kafka, topic)
        records = await read_topic(kafka, topic, timeout_s=60)
    finally:
        for node in cluster.nodes:  # its data is thrown away: no controlled shutdown needed
            await asyncio.to_thread(cluster.stop_node, node, 10.0, True)

    counts = Counter(orjson.loads(r.value)["event"]["event_id"] for r in records)
    acknowledged = {
        event_id for event_id, answers in load.answers.items() if any(code == 202 for _, code in answers)
    }
    posted = set(load.answers)
    assert load.taken(since=killed_at, until=back_at) > 0, "no event was taken while a broker was down"
    assert acknowledged, "nothing was acknowledged"
    assert acknowledged <= set(counts), f"{len(acknowledged - set(counts))} acknowledged events lost"
    assert set(counts) <= posted, "events in Kafka that nobody posted"
    doubled = [event_id for event_id, count in counts.items() if count > 1]
    assert not doubled, f"{len(doubled)} of {len(counts)} events written twice"
    # Every event was retried until taken (202, or 200 duplicate): Kafka holds exactly what was posted.
    assert set(counts) == posted, f"{len(posted - set(counts))} retried events lost"
    assert now_layout[busy]["leader"] in {node.node_id for node in cluster.nodes}
