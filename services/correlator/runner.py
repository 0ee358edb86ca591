"""The correlator's Kafka loop: consume, correlate, and commit outputs, state and offsets together.

One consumer (group ``lindero-correlator``) reads ``sensor.events`` (key: region, so one region
lives on one partition) and ``sensor.status`` (key: sensor). Each assigned input partition gets
a :class:`PartitionWorker` with its own transactional producer, ``transactional.id`` derived from
the partition: when a partition moves to another instance, the new owner's
``init_transactions`` fences the old one, so a zombie can never commit for it (exactly-once
after Kafka's original design, which aiokafka supports).

Every ``commit_interval_s`` (when something changed) a worker commits one transaction holding:
the track updates and alerts its regions produced, its records for the dead-letter topic, its
snapshot (``correlator.state``, compacted, key = input partition) and its input offset. The
offset committed is the smallest one still waiting in a reorder buffer, so after a crash the
new owner restores the snapshot, re-reads from that offset, and skips what the snapshot already
contains (each region remembers up to which event time it has processed). Downstream consumers
read committed only, so an alert is seen exactly once or not at all.

If a commit fails, the transaction is aborted and the worker rolls back: it reloads its last
committed snapshot and rewinds the consumer to the committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.partitioner import murmur2
from pydantic import ValidationError

from schemas.events import SensorEventRecord, SensorStatusRecord
from schemas.topics import (
    ALERTS,
    CORRELATOR_STATE,
    REGISTRY,
    SENSOR_DEAD_LETTERS,
    SENSOR_EVENTS,
    SENSOR_STATUS,
    TRACKS,
)
from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.core.kafka import ensure_topics, topic_partitions
from services.correlator.domain.alertbook import AlertBook
from services.correlator.domain.detections import from_record
from services.correlator.domain.engine import Output, RegionEngine
from services.correlator.domain.health import SensorHealth
from services.correlator.domain.region import RegionContext
from services.correlator.metrics import CorrelatorMetrics
from services.correlator.settings import CorrelatorSettings

log = logging.getLogger(__name__)

STATE_VERSION = 1


class CorrelatorError(Exception):
    """Base of the correlator's own errors."""


class PoisonRecord(CorrelatorError):
    """A record that cannot be processed; it goes to the dead-letter topic with the reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class PartitionWorker:
    """The state and the transactional producer of one input partition."""

    def __init__(self, runner: Correlator, tp: TopicPartition, producer: AIOKafkaProducer) -> None:
        self.runner = runner
        self.tp = tp
        self.kind = "events" if tp.topic == runner.names(SENSOR_EVENTS) else "status"
        self.producer = producer
        self.key = f"{(SENSOR_EVENTS if self.kind == 'events' else SENSOR_STATUS).name}-{tp.partition}"
        self.engines: dict[str, RegionEngine] = {}
        self.health = SensorHealth(runner.contexts, runner.sensors_on_status_partition(tp.partition))
        self.books: dict[str, AlertBook] = {region: AlertBook(ctx) for region, ctx in runner.contexts.items()}
        self.status_time_s = 0.0
        self.position: int | None = None
        """The next input offset (after the last record consumed)."""
        self.committed: int | None = None
        self.findings: list[tuple[str, Any]] = []
        self.dead_letters: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self.last_commit = 0.0
        self.last_input_wall = time.time()
        """Wall-clock time of the latest input: while idle, event time moves on with the wall clock."""

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "partition": self.key,
            "regions": {region: engine.export_state() for region, engine in self.engines.items()},
            "health": self.health.state(),
            "books": {
                region: book.state() for region, book in self.books.items() if book.open or book.episodes
            },
            "status_time_s": self.status_time_s,
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        self.engines = {}
        self.health = SensorHealth(
            self.runner.contexts, self.runner.sensors_on_status_partition(self.tp.partition)
        )
        self.books = {region: AlertBook(ctx) for region, ctx in self.runner.contexts.items()}
        if state is None:
            return
        for region, engine_state in state.get("regions", {}).items():
            context = self.runner.contexts.get(region)
            if context is not None:
                self.engines[region] = RegionEngine.restore(context, engine_state)
        self.health.restore(state.get("health", {}))
        for region, book_state in state.get("books", {}).items():
            if region in self.books:
                self.books[region].restore(book_state)
        self.status_time_s = float(state.get("status_time_s", 0.0))

    # -- input -------------------------------------------------------------------------------

    def consume(self, records: Iterable[Any]) -> None:
        self.last_input_wall = time.time()
        for record in records:
            self.position = record.offset + 1
            try:
                if self.kind == "events":
                    self._event(record)
                else:
                    self._status(record)
            except PoisonRecord as poison:
                self._dead_letter(record, poison)

    def _event(self, record: Any) -> None:
        if record.value is None:
            raise PoisonRecord("empty", "no value")
        try:
            parsed = SensorEventRecord.model_validate_json(record.value)
        except ValidationError as exc:
            raise PoisonRecord("invalid", str(exc)[:500]) from exc
        context = self.runner.contexts.get(parsed.region)
        if context is None:
            raise PoisonRecord("unknown_region", parsed.region)
        try:
            detection = from_record(parsed, context.frame, self.runner.config.sensors_by_id)
        except (ValueError, TypeError) as exc:
            raise PoisonRecord("unusable", str(exc)) from exc
        engine = self.engines.get(parsed.region)
        if engine is None:
            engine = self.engines[parsed.region] = RegionEngine(context)
        before_late = engine.late_total
        if engine.add(detection, record.offset):
            return
        if engine.late_total > before_late:
            self.runner.metrics.late.inc()
        else:
            self.runner.metrics.duplicates.inc()

    def _status(self, record: Any) -> None:
        if record.value is None:
            raise PoisonRecord("empty", "no value")
        try:
            parsed = SensorStatusRecord.model_validate_json(record.value)
        except ValidationError as exc:
            raise PoisonRecord("invalid", str(exc)[:500]) from exc
        self.status_time_s = max(self.status_time_s, parsed.status.time.timestamp())
        self.findings.extend(self.health.status(parsed))

    def _dead_letter(self, record: Any, poison: PoisonRecord) -> None:
        self.runner.metrics.dead_letters.labels(poison.reason).inc()
        log.warning(
            "dead letter: %s",
            poison,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        headers = [
            ("lindero-error", f"{poison.reason}: {poison.detail}".encode()[:2000]),
            ("lindero-source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        self.dead_letters.append((record.key, record.value, headers))

    # -- output ------------------------------------------------------------------------------

    def step(self, caught_up: bool, wall_s: float) -> Output:
        """Run the pure core for this partition: track, rules, alerts.

        Event time drives everything. When the partition is caught up and quiet, event time
        moves on by the wall time elapsed since the last input (so a quiet region still coasts
        and loses its tracks, and silent sensors are noticed), and never jumps to the wall
        clock itself (replaying old data must behave as it did live).
        """
        out = Output()
        started = time.perf_counter()
        idle_s = max(0.0, wall_s - self.last_input_wall) if caught_up else 0.0
        if self.kind == "events":
            for engine in self.engines.values():
                result = engine.step(engine.watermark_s + idle_s if idle_s > 0 else None)
                out.tracks.extend(result.tracks)
                out.alerts.extend(result.alerts)
                out.processed += result.processed
                out.rule_errors.extend(result.rule_errors)
        else:
            clock = self.status_time_s + idle_s if self.status_time_s else 0.0
            findings = self.findings
            if clock:
                findings = findings + self.health.tick(clock)
            self.findings = []
            for region, finding in findings:
                alert = self.books[region].apply(finding)
                if alert is not None:
                    out.alerts.append(alert)
        self.runner.metrics.step_seconds.observe(time.perf_counter() - started)
        return out

    def commit_offset(self) -> int | None:
        """The offset to commit: the next one to read, or the oldest still in a reorder buffer."""
        if self.position is None:
            return None
        buffered = [o for o in (e.min_buffered_offset() for e in self.engines.values()) if o is not None]
        return min([self.position, *buffered])


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: Correlator) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.runner.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.runner.take(assigned)


class Correlator:
    """The correlator process's Kafka side."""

    def __init__(
        self,
        settings: CorrelatorSettings,
        config: LinderoConfig,
        metrics: CorrelatorMetrics,
        geography: Geography | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics
        if geography is None and config.geography_path is not None:
            geography = Geography.load(config.geography_path)
        self.contexts = {r.id: RegionContext.build(config, geography, r.id) for r in config.regions}
        self.names = settings.kafka.topics
        self.group_id = f"{settings.kafka.topic_prefix}{settings.group_id}"
        self.workers: dict[TopicPartition, PartitionWorker] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.status_partitions = 0
        self.ready = False
        self.stopping = False

    def sensors_on_status_partition(self, partition: int) -> list[str]:
        """Sensor ids whose status reports land on ``partition`` of sensor.status."""
        if not self.status_partitions:
            return []
        return [
            s.id
            for s in self.config.sensors
            if (murmur2(s.id.encode()) & 0x7FFFFFFF) % self.status_partitions == partition
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def _consumer(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            raise CorrelatorError("the correlator is not started")
        return self.consumer

    async def start(self) -> None:
        kafka = self.settings.kafka
        if self.settings.create_topics:
            await ensure_topics(kafka, list(REGISTRY))
        found = await topic_partitions(kafka, [self.names(SENSOR_STATUS)])
        self.status_partitions = len(found.get(self.names(SENSOR_STATUS), []))
        self.consumer = AIOKafkaConsumer(
            client_id=f"{kafka.client_id}-correlator",
            group_id=self.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_interval_ms=300_000,
            **kafka.client_options(),
        )
        await self.consumer.start()
        self.consumer.subscribe(
            [self.names(SENSOR_EVENTS), self.names(SENSOR_STATUS)], listener=_Listener(self)
        )
        self.ready = True
        log.info("correlator started", extra={"group": self.group_id})

    async def stop(self) -> None:
        self.stopping = True
        if self.consumer is not None:
            await self.release(list(self.workers))
            await self.consumer.stop()
        self.ready = False

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, correlate and commit until ``stop`` is set."""
        consumer = self._consumer()
        poll_ms = max(10, int(self.settings.commit_interval_s * 500))
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=poll_ms, max_records=self.settings.max_batch)
            for tp, records in batches.items():
                worker = self.workers.get(tp)
                if worker is None:  # never skip input: read these again once a worker exists
                    consumer.seek(tp, records[0].offset)
                    continue
                self.metrics.records.labels(tp.topic).inc(len(records))
                worker.consume(records)
            now = time.monotonic()
            for worker in list(self.workers.values()):
                if now - worker.last_commit >= self.settings.commit_interval_s:
                    await self.commit(worker)
            self._gauges()

    def _gauges(self) -> None:
        consumer = self._consumer()
        counts = {"tentative": 0, "confirmed": 0, "coasting": 0}
        lags = {"events": 0, "status": 0}
        for tp, worker in self.workers.items():
            for engine in worker.engines.values():
                for status, count in engine.tracker.counts().items():
                    counts[status] += count
            end = consumer.highwater(tp)
            if end is not None and worker.position is not None:
                lags[worker.kind] += max(0, end - worker.position)
        for status, count in counts.items():
            self.metrics.tracks.labels(status).set(count)
        for kind, lag in lags.items():
            self.metrics.lag.labels(self.names(SENSOR_EVENTS if kind == "events" else SENSOR_STATUS)).set(lag)
        self.metrics.partitions.set(len(self.workers))

    # -- partitions --------------------------------------------------------------------------

    async def take(self, assigned: Iterable[TopicPartition]) -> None:
        """New partitions: fence their previous owner, restore their state, position the consumer.

        The partitions stay paused until their worker is ready, so no record is fetched for a
        partition nobody can process yet.
        """
        fresh = [tp for tp in assigned if tp not in self.workers]
        if fresh:
            self._consumer().pause(*fresh)
        await asyncio.gather(*(self._open_and_resume(tp) for tp in fresh))

    async def _open_and_resume(self, tp: TopicPartition) -> None:
        worker = await self._open(tp)
        self.workers[tp] = worker
        self._consumer().resume(tp)
        log.info(
            "took partition",
            extra={"topic": tp.topic, "partition": tp.partition, "position": worker.committed},
        )

    async def _open(self, tp: TopicPartition) -> PartitionWorker:
        producer = AIOKafkaProducer(
            client_id=f"{self.settings.kafka.client_id}-correlator",
            transactional_id=f"{self.group_id}.{tp.topic}.{tp.partition}",
            max_request_size=32 * 1024 * 1024,
            **self.settings.kafka.client_options(),
        )
        await producer.start()  # init_transactions: fences any zombie with this transactional id
        worker = PartitionWorker(self, tp, producer)
        try:
            await self._load(worker)
        except BaseException:
            await producer.stop()
            raise
        return worker

    async def release(self, revoked: Iterable[TopicPartition]) -> None:
        """Partitions going away: commit what they have, then drop their state."""
        for tp in list(revoked):
            worker = self.workers.pop(tp, None)
            if worker is None:
                continue
            try:
                await self.commit(worker, final=True)
            except KafkaError as exc:
                log.warning("final commit of %s failed: %s", worker.key, exc)
            finally:
                with contextlib.suppress(KafkaError):
                    await worker.producer.stop()
            log.info("released partition", extra={"topic": tp.topic, "partition": tp.partition})

    async def _load(self, worker: PartitionWorker) -> None:
        """Restore the worker from its last committed snapshot and rewind to its committed offset."""
        consumer = self._consumer()
        state = await self._read_state(worker.key)
        worker.restore(state)
        committed = await consumer.committed(worker.tp)
        worker.committed = committed
        worker.position = committed
        if committed is not None:
            consumer.seek(worker.tp, committed)
        else:
            await consumer.seek_to_beginning(worker.tp)

    async def _read_state(self, key: str) -> dict[str, Any] | None:
        kafka = self.settings.kafka
        topic = self.names(CORRELATOR_STATE)
        partitions = (await topic_partitions(kafka, [topic])).get(topic, [])
        if not partitions:
            return None
        tp = TopicPartition(topic, (murmur2(key.encode()) & 0x7FFFFFFF) % len(partitions))
        reader = AIOKafkaConsumer(
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=64 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **kafka.client_options(),
        )
        await reader.start()
        latest: bytes | None = None
        try:
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.key == key.encode():
                        latest = record.value
        finally:
            await reader.stop()
        if latest is None:
            return None
        state: dict[str, Any] = orjson.loads(latest)
        return state

    # -- commits -----------------------------------------------------------------------------

    async def commit(self, worker: PartitionWorker, final: bool = False) -> None:
        """One transaction: outputs, dead letters, snapshot and offset of one partition."""
        worker.last_commit = time.monotonic()
        end = self._consumer().highwater(worker.tp)
        caught_up = end is None or worker.position is None or end - worker.position <= self.settings.idle_lag
        output = worker.step(caught_up and not final, time.time())
        offset = worker.commit_offset()
        for name, error in output.rule_errors:
            self.metrics.rule_errors.labels(name).inc()
            log.error("rule %s failed: %s", name, error, extra={"partition": worker.key})
        nothing_new = not output.tracks and not output.alerts and not worker.dead_letters
        if nothing_new and offset == worker.committed and not final:
            return
        started = time.perf_counter()
        snapshot = orjson.dumps(worker.export_state())
        producer = worker.producer
        try:
            async with producer.transaction():
                for track_id, track in output.tracks:
                    value = None if track is None else track.model_dump_json().encode()
                    await producer.send(self.names(TRACKS), value=value, key=track_id.encode())
                for alert in output.alerts:
                    await producer.send(
                        self.names(ALERTS),
                        value=alert.model_dump_json().encode(),
                        key=alert.alert_id.encode(),
                    )
                for key, value, headers in worker.dead_letters:
                    await producer.send(
                        self.names(SENSOR_DEAD_LETTERS), value=value, key=key, headers=headers
                    )
                await producer.send(self.names(CORRELATOR_STATE), value=snapshot, key=worker.key.encode())
                if offset is not None:
                    await producer.send_offsets_to_transaction({worker.tp: offset}, self.group_id)
        except ProducerFenced:
            log.warning("fenced: another instance owns %s now", worker.key)
            self.workers.pop(worker.tp, None)
            return
        except KafkaError as exc:
            self.metrics.aborts.inc()
            log.error("transaction for %s failed (%s); rolling back to the last commit", worker.key, exc)
            worker.dead_letters = []
            await self._load(worker)
            return
        worker.dead_letters = []
        worker.committed = offset
        log.debug(
            "committed %s tracks, %s alerts, %s detections",
            len(output.tracks),
            len(output.alerts),
            output.processed,
            extra={
                "partition": worker.key,
                "offset": offset,
                "seconds": round(time.perf_counter() - started, 4),
            },
        )
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        self.metrics.state_bytes.observe(len(snapshot))
        self.metrics.detections.inc(output.processed)
        self.metrics.track_updates.inc(len(output.tracks))
        for alert in output.alerts:
            self.metrics.alerts.labels(alert.kind.value).inc()
            log.info(
                "alert %s rev %s: %s",
                alert.alert_id,
                alert.revision,
                alert.summary,
                extra={"kind": alert.kind.value, "region": alert.region, "severity": alert.severity.value},
            )
