"""Starting the alerts service on topics that are not there yet, and what it says when its Kafka
parts die."""

from __future__ import annotations

import asyncio

import pytest

from schemas.topics import REGISTRY
from services.alerts.lifecycle import TeamBoard
from services.alerts.store import Store
from services.core.kafka import KafkaSetupError, ensure_topics
from tests.conftest import KafkaFactory
from tests.integration.alerts_fixtures import AlertsFactory, start_alerts  # noqa: F401

pytestmark = pytest.mark.kafka


async def test_the_store_names_missing_topics_then_reads_them_once_created(make_kafka: KafkaFactory) -> None:
    """Without its topics the store refuses with their names (its supervisor retries); once they
    exist it reads them and is ready."""
    kafka = make_kafka()
    store = Store(kafka, TeamBoard())
    stop = asyncio.Event()
    with pytest.raises(KafkaSetupError, match=r"topics not available yet: .*alert\.state"):
        await store.follow(stop)
    await ensure_topics(kafka, list(REGISTRY))
    following = asyncio.create_task(store.follow(stop))
    try:
        await asyncio.wait_for(store.ready.wait(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(following, 30)


async def test_healthz_fails_when_the_kafka_parts_die(start_alerts: AlertsFactory) -> None:  # noqa: F811
    """An unexpected error that ends the service's Kafka parts turns /healthz to 503 with the reason."""
    alerts = await start_alerts()
    assert (await alerts.client.get("/healthz")).status_code == 200

    async def broken() -> None:
        raise AssertionError("No partitions are currently assigned")

    task = asyncio.create_task(broken())
    await asyncio.wait([task])
    alerts.service.report_failure(task)
    answer = await alerts.client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "failed",
        "reason": "AssertionError: No partitions are currently assigned",
    }
