"""Dispatch notifications to teams' webhooks, and the delivery results back into the lifecycle.

A consumer group (``lindero-alerts-webhooks``) reads ``dispatches``; every offer to a team with
a webhook whose delivery is still pending is POSTed (signed, retried with backoff: see
:mod:`services.alerts.webhooks`), and the result goes to ``alert.actions`` as a
``webhook_delivered`` / ``webhook_failed`` action, so the dispatch shows how delivery went.
Deliveries run concurrently (one team's dead webhook never delays another's), and each partition's
offset is committed up to its oldest delivery still in progress: at-least-once delivery,
de-duplicated by receivers on the ``X-Lindero-Delivery`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from schemas.lifecycle import ActionKind, AlertAction, Delivery, Dispatch, DispatchStatus
from schemas.topics import ALERT_ACTIONS, DISPATCHES
from services.alerts.domain.lifecycle import SYSTEM
from services.alerts.metrics import AlertsMetrics
from services.alerts.webhooks import DeliveryResult, WebhookSender
from services.core.config import LinderoConfig
from services.core.kafka import KafkaSettings

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("4b1f0d6e-95a2-4a4e-9d4f-0d57c3f5e9a1")


class Notifier:
    """Delivers pending dispatch offers to team webhooks."""

    def __init__(
        self,
        kafka: KafkaSettings,
        config: LinderoConfig,
        metrics: AlertsMetrics,
        *,
        group_id: str = "lindero-alerts-webhooks",
        sender: WebhookSender | None = None,
    ) -> None:
        self.kafka = kafka
        self.teams = config.teams_by_id
        self.metrics = metrics
        self.group_id = f"{kafka.topic_prefix}{group_id}"
        self.sender = sender or WebhookSender()
        self.done: set[str] = set()

    def wanted(self, dispatch: Dispatch) -> bool:
        team = self.teams.get(dispatch.team_id)
        return (
            team is not None
            and team.webhook is not None
            and dispatch.status is DispatchStatus.OFFERED
            and dispatch.delivery is Delivery.PENDING
            and dispatch.dispatch_id not in self.done
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver offers as they come, concurrently; commit each partition up to its oldest
        delivery still in progress, so a restart re-delivers only what had not finished."""
        names = self.kafka.topics
        consumer = AIOKafkaConsumer(
            names(DISPATCHES),
            group_id=self.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            **self.kafka.client_options(),
        )
        producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **self.kafka.client_options())
        await consumer.start()
        await producer.start()
        in_flight: dict[TopicPartition, dict[int, asyncio.Task[None]]] = {}
        seen: dict[TopicPartition, int] = {}
        committed: dict[TopicPartition, int] = {}
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for record in records:
                        seen[tp] = record.offset + 1
                        try:
                            dispatch = Dispatch.model_validate_json(record.value)
                        except ValidationError:
                            continue
                        if self.wanted(dispatch):
                            self.done.add(dispatch.dispatch_id)
                            task = asyncio.create_task(self._deliver_and_report(producer, dispatch))
                            in_flight.setdefault(tp, {})[record.offset] = task
                for tasks in in_flight.values():
                    for offset in [o for o, t in tasks.items() if t.done()]:
                        tasks.pop(offset).result()
                positions = {tp: min(in_flight.get(tp) or (), default=end) for tp, end in seen.items()}
                moved = {
                    tp: OffsetAndMetadata(o, "") for tp, o in positions.items() if committed.get(tp) != o
                }
                if moved:
                    await consumer.commit(moved)
                    committed.update({tp: meta.offset for tp, meta in moved.items()})
        finally:
            pending = [t for tasks in in_flight.values() for t in tasks.values()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            with contextlib.suppress(KafkaError):
                await producer.stop()
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    async def _deliver_and_report(self, producer: AIOKafkaProducer, dispatch: Dispatch) -> None:
        result = await self._deliver(dispatch)
        await self._report(producer, dispatch, result)

    async def _deliver(self, dispatch: Dispatch) -> DeliveryResult:
        team = self.teams[dispatch.team_id]
        result = await self.sender.deliver(team, dispatch)
        self.metrics.webhooks.labels("delivered" if result.delivered else "failed").inc()
        return result

    async def _report(self, producer: AIOKafkaProducer, dispatch: Dispatch, result: DeliveryResult) -> None:
        kind = ActionKind.WEBHOOK_DELIVERED if result.delivered else ActionKind.WEBHOOK_FAILED
        action = AlertAction(
            action_id=uuid.uuid5(_NAMESPACE, f"{dispatch.dispatch_id}|{kind.value}"),
            alert_id=dispatch.alert_id,
            action=kind,
            actor=SYSTEM,
            time=dt.datetime.now(dt.UTC),
            dispatch_id=dispatch.dispatch_id,
            note=result.summary[:256],
        )
        await producer.send_and_wait(
            self.kafka.topics(ALERT_ACTIONS),
            action.model_dump_json().encode(),
            key=dispatch.alert_id.encode(),
        )
