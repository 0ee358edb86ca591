"""A real Apache Kafka for the whole session, and factories for ingest servers and topic readers.

The broker is the project's own local KRaft node (``services.core.localkafka``), started once
per session in a temporary folder; ``LINDERO_KAFKA_BOOTSTRAP`` points the suite at an existing
cluster instead. Every test gets its own topic prefix, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from services.core import localkafka
from services.core.config import load_config
from services.core.kafka import KafkaSettings, topic_partitions
from services.ingest.app import IngestApp, create_app
from services.ingest.settings import IngestSettings
from tests.conftest import DEMO_CONFIG, KafkaFactory

log = logging.getLogger(__name__)


@dataclass
class RunningIngest:
    """An ingest service listening on a real port, with an HTTP client pointed at it."""

    app: IngestApp
    server: uvicorn.Server
    task: asyncio.Task[None]
    client: httpx.AsyncClient
    settings: IngestSettings

    @property
    def url(self) -> str:
        return str(self.client.base_url)

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 30)
        await self.client.aclose()


IngestFactory = Callable[..., Awaitable[RunningIngest]]


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it is true, failing the test after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def start_ingest(make_kafka: KafkaFactory) -> AsyncIterator[IngestFactory]:
    """Start ingest servers on free ports (stopped after the test)."""
    running: list[RunningIngest] = []

    async def start(kafka: KafkaSettings | None = None, ready: bool = True, **changes: Any) -> RunningIngest:
        settings = IngestSettings(kafka=kafka or make_kafka(), port=0, config=DEMO_CONFIG, **changes)
        app = create_app(settings, load_config(settings.config))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_config=None, access_log=False)
        )
        task = asyncio.create_task(server.serve())
        await wait_until(lambda: asyncio.sleep(0, server.started), 20, "the server to listen")
        port = server.servers[0].sockets[0].getsockname()[1]
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        instance = RunningIngest(app, server, task, client, settings)
        running.append(instance)
        if ready:

            async def is_ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await wait_until(is_ready, 60, "ingest to be ready")
        return instance

    yield start
    for instance in running:
        await instance.stop()


async def read_topic(
    kafka: KafkaSettings, topic: str, timeout_s: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every committed record of ``topic`` from the beginning to its current end."""
    found = await topic_partitions(kafka, [topic])
    partitions = [TopicPartition(topic, p) for p in found.get(topic, [])]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, isolation_level="read_committed", **kafka.client_options()
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(timeout_s):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=500)
                for chunk in batch.values():
                    records.extend(chunk)
        return records
    finally:
        await consumer.stop()


def cluster_in(path: Path, name: str) -> localkafka.LocalCluster:
    """A private single-node cluster (for tests that stop and restart their broker)."""
    return localkafka.LocalCluster(name=name, root=path / name)
