"""The alert lifecycle processor: alerts and actions in, state, dispatches and audit out, exactly once.

A :class:`~services.core.processor.Processor` over the co-partitioned topics ``alerts`` (the
correlator's revisions) and ``alert.actions`` (people's and teams' requests, webhook reports),
both keyed by alert id: partition *p* of both belongs to one task, so every input about an alert
is applied by one instance, one at a time, in order. The task's state is the latest
``alert.state`` record of each of its alerts (the compacted topic is the changelog: on
assignment the task reads partition *p* of it to the end). Each commit writes, in one
transaction, the new states, the dispatch records, the audit records and the input offsets.

Dispatch offers expire on the wall clock: each commit also applies the expirations that are due
(escalating to the next team). Which teams are busy is read from ``dispatches`` by a
:class:`TeamBoard` shared with the gateway (advisory across partitions: two alerts on different
partitions could offer the same team at the same instant; the team declines one).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from schemas.alerts import Alert
from schemas.lifecycle import AlertAction, AlertState, AuditRecord, Dispatch
from schemas.topics import ALERT_ACTIONS, ALERT_STATE, ALERTS, AUDIT, DISPATCHES, REGISTRY
from services.alerts.domain.lifecycle import Decision, Lifecycle
from services.alerts.metrics import AlertsMetrics
from services.core.config import LinderoConfig
from services.core.kafka import KafkaSettings, KafkaSetupError, ensure_topics, topic_partitions
from services.core.processor import Batch, PartitionTask, Processor, ProcessorHooks, json_record, read_latest

log = logging.getLogger(__name__)


class TeamBoard:
    """The latest state of every dispatch, by team: who is busy right now."""

    def __init__(self) -> None:
        self.dispatches: dict[str, Dispatch] = {}
        self.listeners: list[Callable[[Dispatch], None]] = []

    def apply(self, dispatch: Dispatch) -> None:
        known = self.dispatches.get(dispatch.dispatch_id)
        if known is not None and known.updated_at > dispatch.updated_at:
            return
        self.dispatches[dispatch.dispatch_id] = dispatch
        for listener in self.listeners:
            listener(dispatch)

    def busy(self) -> set[str]:
        """Teams with an active dispatch (offered, accepted or on scene)."""
        return {d.team_id for d in self.dispatches.values() if d.status.active}

    def of_team(self, team_id: str) -> list[Dispatch]:
        return sorted(
            (d for d in self.dispatches.values() if d.team_id == team_id), key=lambda d: d.updated_at
        )

    async def follow(
        self, kafka: KafkaSettings, stop: asyncio.Event, ready: asyncio.Event | None = None
    ) -> None:
        """Read ``dispatches`` from the beginning, then follow it (all partitions, read committed)."""
        topic = kafka.topics(DISPATCHES)
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False, isolation_level="read_committed", **kafka.client_options()
        )
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p) for p in (await topic_partitions(kafka, [topic])).get(topic, [])
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            caught_up = not any(ends.values())
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        with contextlib.suppress(ValidationError):
                            self.apply(Dispatch.model_validate_json(record.value))
                if not caught_up:
                    positions = [await consumer.position(tp) for tp in partitions]
                    caught_up = all(pos >= ends[tp] for pos, tp in zip(positions, partitions, strict=True))
                    if caught_up and ready is not None:
                        ready.set()
            if ready is not None:
                ready.set()
        finally:
            await consumer.stop()


class LifecycleTask(PartitionTask):
    """Partition *p* of ``alerts`` and ``alert.actions``: the alerts whose id hashes to *p*."""

    def __init__(self, runner: LifecycleProcessor, tps: list[TopicPartition]) -> None:
        super().__init__(tps)
        self.runner = runner
        self.partition = self.tp.partition
        self.states: dict[str, AlertState] = {}
        self.pending: list[Alert | AlertAction] = []
        self.pending_times: list[int] = []
        """Kafka timestamps (ms) of the records consumed since the last step."""

    async def restore(self, processor: Processor) -> None:
        runner = self.runner
        found = await read_latest(runner.kafka, runner.names(ALERT_STATE), self.partition)
        self.states = {}
        for key, value in found.items():
            if value is None:
                continue
            try:
                state = AlertState.model_validate_json(value)
            except ValidationError as exc:
                log.error("unreadable alert state %s: %s", key.decode(errors="replace"), exc)
                continue
            self.states[state.alert.alert_id] = state
        self.pending = []
        self.pending_times = []

    def consume(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        names = self.runner.names
        self.pending_times.extend(record.timestamp for record in records)
        for record in records:
            try:
                if record.topic == names(ALERTS):
                    self.pending.append(Alert.model_validate_json(record.value))
                else:
                    self.pending.append(AlertAction.model_validate_json(record.value))
            except ValidationError as exc:
                log.error(
                    "dropped an unreadable record: %s",
                    str(exc)[:300],
                    extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
                )

    def step(self, caught_up: bool, wall_s: float, final: bool) -> Batch:
        runner = self.runner
        now = dt.datetime.fromtimestamp(wall_s, dt.UTC)
        busy = runner.board.busy()
        changed: dict[str, AlertState] = {}
        dispatches: list[Dispatch] = []
        audits: list[AuditRecord] = []
        decisions: list[tuple[Alert | AlertAction, Decision]] = []

        def apply(item: Alert | AlertAction, decision: Decision) -> None:
            decisions.append((item, decision))
            if decision.state is not None:
                self.states[decision.state.alert.alert_id] = decision.state
                changed[decision.state.alert.alert_id] = decision.state
            dispatches.extend(decision.dispatches)
            audits.extend(decision.audits)
            for dispatch in decision.dispatches:
                busy.discard(dispatch.team_id)
                if dispatch.status.active:
                    busy.add(dispatch.team_id)

        for item in self.pending:
            if isinstance(item, Alert):
                apply(item, runner.lifecycle.on_alert(self.states.get(item.alert_id), item, now, busy))
            else:
                apply(item, runner.lifecycle.on_action(self.states.get(item.alert_id), item, now, busy))
        self.pending = []
        times, self.pending_times = self.pending_times, []
        if not final:
            for action in runner.lifecycle.expired(self.states, now):
                apply(action, runner.lifecycle.on_action(self.states.get(action.alert_id), action, now, busy))
        names = runner.names
        records = [json_record(names(ALERT_STATE), alert_id, state) for alert_id, state in changed.items()]
        records += [json_record(names(DISPATCHES), d.team_id, d) for d in dispatches]
        records += [json_record(names(AUDIT), a.subject, a) for a in audits]
        return Batch(records=records, after_commit=[lambda: runner.applied(decisions, dispatches, times)])


class LifecycleProcessor:
    """The lifecycle side of an alerts-service instance."""

    def __init__(
        self,
        kafka: KafkaSettings,
        config: LinderoConfig,
        board: TeamBoard,
        *,
        group_id: str = "lindero-alerts-lifecycle",
        commit_interval_s: float = 0.05,
        create_topics: bool = True,
        on_applied: Callable[[Sequence[tuple[Any, Decision]]], None] | None = None,
        metrics: AlertsMetrics | None = None,
    ) -> None:
        self.kafka = kafka
        self.names = kafka.topics
        self.lifecycle = Lifecycle(config)
        self.board = board
        self.create_topics = create_topics
        self.on_applied = on_applied
        self.metrics = metrics
        self.processor = Processor(
            kafka,
            group_id,
            [self.names(ALERTS), self.names(ALERT_ACTIONS)],
            lambda tps: LifecycleTask(self, tps),
            name="alerts-lifecycle",
            commit_interval_s=commit_interval_s,
            copartitioned=True,
            commit_on_input=True,
            hooks=ProcessorHooks(committed=self._committed),
            before_start=self._prepare,
        )

    def _committed(self, task: PartitionTask, seconds: float, state_bytes: int) -> None:
        if self.metrics is not None:
            self.metrics.lifecycle_commit.observe(seconds)

    async def _prepare(self) -> None:
        if self.create_topics:
            await ensure_topics(self.kafka, list(REGISTRY))
        names = [self.names(ALERTS), self.names(ALERT_ACTIONS), self.names(ALERT_STATE)]
        counts = {name: len(p) for name, p in (await topic_partitions(self.kafka, names)).items()}
        missing = [name for name in names if not counts.get(name)]
        if missing:
            # Joining the group before the broker describes the inputs leaves the task without
            # partitions until the consumer's next metadata refresh (5 minutes): start again.
            raise KafkaSetupError(f"topics not available yet: {', '.join(missing)}")
        if len(set(counts.values())) > 1:
            raise KafkaError(
                f"alerts, alert.actions and alert.state must have equal partition counts: {counts}"
            )

    def applied(
        self,
        decisions: Sequence[tuple[Any, Decision]],
        dispatches: Sequence[Dispatch],
        record_times_ms: Sequence[int] = (),
    ) -> None:
        if self.metrics is not None and record_times_ms:
            now_ms = time.time() * 1000
            for stamp in record_times_ms:
                self.metrics.lifecycle_latency.observe(max(0.0, now_ms - stamp) / 1000)
        for dispatch in dispatches:
            self.board.apply(dispatch)
        for item, decision in decisions:
            if decision.refused is not None and isinstance(item, AlertAction):
                log.info(
                    "refused %s on %s: %s",
                    item.action.value,
                    item.alert_id,
                    decision.refused.reason,
                    extra={"actor": item.actor.subject, "role": item.actor.role.value},
                )
        if self.on_applied is not None:
            self.on_applied(decisions)

    async def start(self) -> None:
        await self.processor.start()

    async def run(self, stop: asyncio.Event) -> None:
        await self.processor.run(stop)

    async def stop(self) -> None:
        await self.processor.stop()


def action_record(names: Any, action: AlertAction) -> tuple[str, bytes, bytes]:
    """Topic, key and value of an action (for the gateway's producer)."""
    return (
        names(ALERT_ACTIONS),
        action.alert_id.encode(),
        orjson.dumps(action.model_dump(mode="json", by_alias=True)),
    )
