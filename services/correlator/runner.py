"""The correlator's Kafka loop: consume, correlate, and commit outputs, state and offsets together.

A :class:`~services.core.processor.Processor` (consumer group ``lindero-correlator``) reads
``sensor.events`` (key: region, so one region lives on one partition) and ``sensor.status``
(key: sensor). Each assigned input partition is a :class:`CorrelatorTask` with its own
transactional producer (see :mod:`services.core.processor` for the fencing and the order of a
commit). Every ``commit_interval_s``, when something changed, one transaction holds: the track
updates and alerts the partition's regions produced, its records for the dead-letter topic, its
state changes (``correlator.state``, compacted, see below) and its input offset.

The state is a changelog, so that a commit's cost follows what changed, not how many tracks
live (a full snapshot of 2,800 tracks was 2 MB a commit). Keys, for input partition ``<p>``
(``sensor.events-1``):

- ``<p>``: the header: the partition's own state (sensors' health, status alert books), and per
  region the engine's cursors, radar beams and tracker counters, and the changelog's
  ``generation``; written in every transaction;
- ``<p>/rules/<region>``: the region's rules and alert book, written when they changed (every
  second of event time, and when a per-track rule's look at a changed track moved them);
- ``<p>/track/<region>/<track id>``: one track (filter state, metadata, publishing state),
  written when it changed; a tombstone when the track ends.

All of them go to the partition of the topic where the default partitioner puts ``<p>``, so a
restore reads that partition only.

Every record of a changelog carries its generation: a partition starting afresh or from a
version-1 snapshot (the whole state in one record at ``<p>``, as earlier versions wrote it) starts
a new one, and records of another generation are stale (deleted at the next commit). A previous
version reading a header of version 2 finds no regions in it and starts the partition's tracks
afresh.

The offset committed is the smallest one still waiting in a reorder buffer, so after a crash
the new owner restores the state, re-reads from that offset, and skips what the state already
contains (each region remembers up to which event time it has processed). Downstream consumers
read committed only, so an alert is seen exactly once or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from schemas.events import (
    PROGRESS_KIND,
    RECORD_KIND_HEADER,
    GatewayProgressRecord,
    SensorEventRecord,
    SensorStatusRecord,
)
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
from services.core.kafka import KafkaSetupError, ensure_topics, topic_partitions
from services.core.processor import (
    Batch,
    OutRecord,
    PartitionTask,
    Processor,
    ProcessorHooks,
    json_record,
    partition_of,
    read_latest,
)
from services.correlator.domain.alertbook import AlertBook
from services.correlator.domain.detections import from_record
from services.correlator.domain.engine import EngineChanges, Output, RegionEngine
from services.correlator.domain.health import SensorHealth
from services.correlator.domain.records import polar_detection
from services.correlator.domain.region import RegionContext
from services.correlator.metrics import CorrelatorMetrics, observe_all
from services.correlator.settings import CorrelatorSettings

log = logging.getLogger(__name__)

STATE_VERSION = 2
"""1: a full snapshot in one record; 2: a changelog (see the module's docstring)."""
REFUSED_VALUE_BYTES = 256 * 1024
"""A refused output's value goes into its dead letter up to this size."""


class CorrelatorError(Exception):
    """Base of the correlator's own errors."""


class PoisonRecord(CorrelatorError):
    """A record that cannot be processed; it goes to the dead-letter topic with the reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CorrelatorTask(PartitionTask):
    """The regions (or the sensors' health) of one input partition."""

    def __init__(self, runner: Correlator, tps: list[TopicPartition]) -> None:
        super().__init__(tps)
        tp = self.tp
        self.runner = runner
        self.kind = "events" if tp.topic == runner.names(SENSOR_EVENTS) else "status"
        self.key = f"{(SENSOR_EVENTS if self.kind == 'events' else SENSOR_STATUS).name}-{tp.partition}"
        self.engines: dict[str, RegionEngine] = {}
        self.health = SensorHealth(runner.contexts, runner.sensors_on_status_partition(tp.partition))
        self.books: dict[str, AlertBook] = {region: AlertBook(ctx) for region, ctx in runner.contexts.items()}
        self.status_time_s = 0.0
        self.findings: list[tuple[str, Any]] = []
        self.dead_letters: list[OutRecord] = []
        self.last_detection_wall = time.time()
        """When the last record other than a gateway's promise came in (a quiet region's event
        time moves on from there; promises alone do not make it busy)."""
        self.generation = uuid.uuid4().hex
        """The changelog's generation (see the module's docstring)."""
        self.stale: set[bytes] = set()
        """Keys of changelog records of another generation, deleted with the next commit."""
        self.state_partition: int | None = None
        """The partition of ``correlator.state`` that holds this partition's header and changelog
        (where the default partitioner puts the header's key), so a restore reads one partition."""

    # -- state -------------------------------------------------------------------------------

    def track_key(self, region: str, track_id: str) -> bytes:
        return f"{self.key}/track/{region}/{track_id}".encode()

    def rules_key(self, region: str) -> bytes:
        return f"{self.key}/rules/{region}".encode()

    def header(self, regions: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "partition": self.key,
            "generation": self.generation,
            "regions": {},  # where version 1 kept the regions' state: a previous version finds none
            "changelog": regions,
            "health": self.health.state(),
            "books": {
                region: book.state() for region, book in self.books.items() if book.open or book.episodes
            },
            "status_time_s": self.status_time_s,
        }

    def changelog(self, changes: dict[str, EngineChanges]) -> list[OutRecord]:
        """The state records of one commit: header, changed rules and tracks, tombstones."""
        topic = self.runner.names(CORRELATOR_STATE)
        generation = self.generation
        at = self.state_partition

        def record(key: bytes, value: bytes | None) -> OutRecord:
            return OutRecord(topic, key, value, partition=at)

        records = [record(key, None) for key in sorted(self.stale)]
        for region, change in changes.items():
            if change.rules is not None:
                records.append(
                    record(self.rules_key(region), orjson.dumps({"generation": generation, **change.rules}))
                )
            for track_id, track in change.tracks:
                value = {"generation": generation, **track}
                records.append(record(self.track_key(region, track_id), orjson.dumps(value)))
            records += [record(self.track_key(region, t), None) for t in change.removed]
        header = self.header({region: change.header for region, change in changes.items()})
        records.append(record(self.key.encode(), orjson.dumps(header)))
        return records

    async def restore(self, processor: Processor) -> None:
        """The last committed state of this partition (nothing: a fresh start)."""
        started = time.perf_counter()
        runner = self.runner
        kafka = runner.settings.kafka
        topic = runner.names(CORRELATOR_STATE)
        partitions = (await topic_partitions(kafka, [topic])).get(topic, [])
        state = None
        records: dict[bytes, bytes] = {}
        if partitions:
            key = self.key.encode()
            self.state_partition = partition_of(key, len(partitions))
            found = await read_latest(kafka, topic, self.state_partition)
            value = found.get(key)
            state = orjson.loads(value) if value else None
            if state is not None and state.get("version") == STATE_VERSION and state.get("changelog"):
                prefix = key + b"/"  # the changelog lives in its header's partition
                records = {k: v for k, v in found.items() if v is not None and k.startswith(prefix)}
        self.load(state, records)
        self.dead_letters = []
        self.findings = []
        seconds = time.perf_counter() - started
        runner.metrics.restore_seconds.observe(seconds)
        log.info(
            "restored %s: %d tracks from %d changelog records (%d bytes) in %.2f s",
            self.key,
            sum(len(engine.tracker) for engine in self.engines.values()),
            len(records),
            sum(len(v) for v in records.values()),
            seconds,
        )

    def load(self, state: dict[str, Any] | None, records: dict[bytes, bytes] | None = None) -> None:
        """Rebuild from a header (or a version-1 snapshot) and the changelog records of this
        partition (by key)."""
        self.engines = {}
        self.health = SensorHealth(
            self.runner.contexts, self.runner.sensors_on_status_partition(self.tp.partition)
        )
        self.books = {region: AlertBook(ctx) for region, ctx in self.runner.contexts.items()}
        self.generation = uuid.uuid4().hex
        self.stale = set()
        if state is None:
            return
        if state.get("version") == STATE_VERSION:
            self._load_changelog(state, records or {})
        else:
            for region, engine_state in state.get("regions", {}).items():
                context = self.runner.contexts.get(region)
                if context is not None:
                    self.engines[region] = RegionEngine.restore(context, engine_state)
        self.health.restore(state.get("health", {}))
        for region, book_state in state.get("books", {}).items():
            if region in self.books:
                self.books[region].restore(book_state)
        self.status_time_s = float(state.get("status_time_s", 0.0))

    def _load_changelog(self, state: dict[str, Any], records: dict[bytes, bytes]) -> None:
        generation = str(state["generation"])
        self.generation = generation
        rules: dict[str, dict[str, Any]] = {}
        tracks: dict[str, list[dict[str, Any]]] = {}
        tracks_prefix = f"{self.key}/track/".encode()
        for key, value in records.items():
            record = orjson.loads(value)
            if record.get("generation") != generation:
                self.stale.add(key)
            elif key.startswith(tracks_prefix):
                region = key[len(tracks_prefix) :].decode().split("/", 1)[0]
                tracks.setdefault(region, []).append(record)
            else:
                rules[key.decode().rsplit("/", 1)[1]] = record
        for region, header in state.get("changelog", {}).items():
            context = self.runner.contexts.get(region)
            if context is None:  # no longer configured: its records go with the next commit
                self.stale.update(
                    self.track_key(region, t["track"]["track_id"]) for t in tracks.get(region, [])
                )
                self.stale.add(self.rules_key(region))
                continue
            found = tracks.get(region, [])
            expected = header["tracker"]["count"]
            if len(found) != expected or region not in rules:
                raise CorrelatorError(
                    f"the changelog of {self.key} region {region} is incomplete: {len(found)} of "
                    f"{expected} tracks, rules {'found' if region in rules else 'missing'}"
                )
            self.engines[region] = RegionEngine.from_changelog(context, header, rules[region], found)

    # -- input -------------------------------------------------------------------------------

    def consume(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        self.runner.metrics.records.labels(self.tp.topic).inc(len(records))
        for record in records:
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
        for name, kind in record.headers or ():
            if name == RECORD_KIND_HEADER:
                if kind != PROGRESS_KIND:
                    raise PoisonRecord("unknown_record", f"{RECORD_KIND_HEADER}: {kind[:50]!r}")
                self._progress(record.value)
                return
        self.last_detection_wall = time.time()
        runner = self.runner
        # Most records are polar radar detections, read without pydantic; every other record
        # (and any the fast path cannot decide) is validated by the schema as always.
        detection = polar_detection(record.value, runner.frames, runner.config.sensors_by_id)
        if detection is None:
            try:
                parsed = SensorEventRecord.model_validate_json(record.value)
            except ValidationError as exc:
                raise PoisonRecord("invalid", str(exc)[:500]) from exc
            context = runner.contexts.get(parsed.region)
            if context is None:
                raise PoisonRecord("unknown_region", parsed.region)
            try:
                detection = from_record(parsed, context.frame, runner.config.sensors_by_id)
            except (ValueError, TypeError) as exc:
                raise PoisonRecord("unusable", str(exc)) from exc
        engine = self._engine(runner.contexts[detection.region])
        before_late = engine.late_total
        if engine.add(detection, record.offset):
            return
        if engine.late_total > before_late:
            runner.metrics.late.inc()
        else:
            runner.metrics.duplicates.inc()

    def _engine(self, context: RegionContext) -> RegionEngine:
        """The engine of a region of this partition (a new one for its first record)."""
        engine = self.engines.get(context.region)
        if engine is None:
            engine = self.engines[context.region] = RegionEngine(context)
        return engine

    def _progress(self, value: bytes) -> None:
        """A gateway's promise about a region (see schemas/events.py)."""
        try:
            promise = GatewayProgressRecord.model_validate_json(value)
        except ValidationError as exc:
            raise PoisonRecord("invalid", str(exc)[:500]) from exc
        context = self.runner.contexts.get(promise.region)
        if context is None:
            raise PoisonRecord("unknown_region", promise.region)
        if self._engine(context).promise(promise.gateway_id, promise.complete_through.timestamp()):
            self.runner.metrics.promises.inc()

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
        headers = (
            ("lindero-error", f"{poison.reason}: {poison.detail}".encode()[:2000]),
            ("lindero-source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        )
        self.dead_letters.append(
            OutRecord(self.runner.names(SENSOR_DEAD_LETTERS), record.key, record.value, headers)
        )

    # -- output ------------------------------------------------------------------------------

    def step(self, caught_up: bool, wall_s: float, final: bool) -> Batch:
        """Run the pure core for this partition (track, rules, alerts) and pack the commit.

        Event time drives everything. When the partition is caught up and quiet, event time
        moves on by the wall time elapsed since the last input (so a quiet region still coasts
        and loses its tracks, and silent sensors are noticed), and never jumps to the wall
        clock itself (replaying old data must behave as it did live).
        """
        out = Output()
        started = time.perf_counter()
        last_input = self.last_detection_wall if self.kind == "events" else self.last_input_wall
        idle_s = max(0.0, wall_s - last_input) if caught_up else 0.0
        if self.kind == "events":
            behind = self.runner.metrics.promise_behind
            for region, engine in self.engines.items():
                result = engine.step(engine.watermark_s + idle_s if idle_s > 0 else None)
                for gateway, through_s in engine.promises.items():
                    behind.labels(region, gateway).observe(max(0.0, engine.front_s - through_s))
                out.tracks.extend(result.tracks)
                out.alerts.extend(result.alerts)
                out.processed += result.processed
                out.held_s.extend(result.held_s)
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
        metrics = self.runner.metrics
        metrics.step_seconds.observe(time.perf_counter() - started)
        for name, error in out.rule_errors:
            metrics.rule_errors.labels(name).inc()
            log.error("rule %s failed: %s", name, error, extra={"partition": self.key})
        names = self.runner.names
        tracks = names(TRACKS)
        records = [OutRecord(tracks, track_id.encode(), message) for track_id, message in out.tracks]
        records += [json_record(names(ALERTS), alert.alert_id, alert) for alert in out.alerts]
        records += self.dead_letters
        self.dead_letters = []
        # The state goes with every commit that writes or moves anything: the header, and what
        # changed since the last commit (also when nothing else is written: a track coasting).
        changes = {region: engine.changes() for region, engine in self.engines.items()}
        offsets = self.commit_offsets()
        moved = any(self.committed.get(tp) != offset for tp, offset in offsets.items())
        changed = any(c.tracks or c.removed or c.rules is not None for c in changes.values())
        state: list[OutRecord] = []
        if records or moved or changed or final or self.stale:
            state = self.changelog(changes)
        stale = set(self.stale)

        pairs = [(self.engines[region], change) for region, change in changes.items()]

        def committed() -> None:
            for engine, change in pairs:
                engine.committed(change)
            self.stale -= stale
            self.runner.published(self, out, sum(len(r.key or b"") + len(r.value or b"") for r in state))

        return Batch(records=records + state, after_commit=[committed])

    def commit_offsets(self) -> dict[TopicPartition, int]:
        """The offset to commit: the next one to read, or the oldest still in a reorder buffer."""
        if self.position is None:
            return {}
        buffered = [o for o in (e.min_buffered_offset() for e in self.engines.values()) if o is not None]
        return {self.tp: min([self.position, *buffered])}


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
        self.frames = {region: context.frame for region, context in self.contexts.items()}
        self.names = settings.kafka.topics
        self.status_partitions = 0
        self.processor = Processor(
            settings.kafka,
            settings.group_id,
            [self.names(SENSOR_EVENTS), self.names(SENSOR_STATUS)],
            lambda tps: CorrelatorTask(self, tps),
            name="correlator",
            commit_interval_s=settings.commit_interval_s,
            max_batch=settings.max_batch,
            idle_lag=settings.idle_lag,
            hooks=ProcessorHooks(
                committed=self._committed, aborted=lambda *_: metrics.aborts.inc(), set_aside=self._set_aside
            ),
            before_start=self._prepare,
        )

    @property
    def ready(self) -> bool:
        return self.processor.ready

    @property
    def tasks(self) -> list[CorrelatorTask]:
        return [t for t in self.processor.tasks.values() if isinstance(t, CorrelatorTask)]

    def sensors_on_status_partition(self, partition: int) -> list[str]:
        """Sensor ids whose status reports land on ``partition`` of sensor.status."""
        if not self.status_partitions:
            return []
        return [
            s.id
            for s in self.config.sensors
            if partition_of(s.id.encode(), self.status_partitions) == partition
        ]

    async def _prepare(self) -> None:
        kafka = self.settings.kafka
        if self.settings.create_topics:
            await ensure_topics(kafka, list(REGISTRY))
        inputs = [self.names(SENSOR_EVENTS), self.names(SENSOR_STATUS)]
        found = await topic_partitions(kafka, inputs)
        missing = [name for name in inputs if not found.get(name)]
        if missing:
            # Joining the group before the broker describes the inputs leaves the tasks without
            # partitions until the consumer's next metadata refresh (minutes): start again.
            raise KafkaSetupError(f"topics not available yet: {', '.join(missing)}")
        self.status_partitions = len(found[self.names(SENSOR_STATUS)])

    async def start(self) -> None:
        await self.processor.start()

    async def stop(self) -> None:
        await self.processor.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, correlate and commit until ``stop`` is set (gauges refreshed as it goes)."""
        watcher = asyncio.create_task(self._gauges_forever(stop))
        try:
            await self.processor.run(stop)
        finally:
            watcher.cancel()

    async def _gauges_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            self._gauges()

    def _gauges(self) -> None:
        counts = {"tentative": 0, "confirmed": 0, "coasting": 0}
        lags = {"events": 0, "status": 0}
        for task in self.tasks:
            for region, engine in task.engines.items():
                for status, count in engine.tracker.counts().items():
                    counts[status] += count
                self.metrics.reorder_window.labels(region).set(engine.window.seconds)
            lag = self.processor.lag(task) if self.processor.consumer is not None else None
            lags[task.kind] += lag or 0
        for status, count in counts.items():
            self.metrics.tracks.labels(status).set(count)
        for kind, lag in lags.items():
            self.metrics.lag.labels(self.names(SENSOR_EVENTS if kind == "events" else SENSOR_STATUS)).set(lag)
        self.metrics.partitions.set(len(self.processor.tasks))

    def _set_aside(self, record: OutRecord, error: Exception) -> OutRecord:
        """A dead letter for an output record the broker refused (the value only if it is small
        enough to go: a refusal for size keeps the key and the reason)."""
        self.metrics.dead_letters.labels("refused-output").inc()
        size = len(record.value or b"")
        headers = (
            ("lindero-error", f"refused-output: {size} bytes for {record.topic}: {error!r}".encode()[:2000]),
            ("lindero-source", f"output/{record.topic}".encode()),
            *record.headers,
        )
        value = record.value if size <= REFUSED_VALUE_BYTES else None
        return OutRecord(self.names(SENSOR_DEAD_LETTERS), record.key, value, headers)

    def _committed(self, task: PartitionTask, seconds: float, state_bytes: int) -> None:
        self.metrics.commit_seconds.observe(seconds)

    def published(self, task: CorrelatorTask, output: Output, state_bytes: int) -> None:
        """Once a transaction committed: count and log what it published."""
        self.metrics.state_bytes.observe(state_bytes)
        self.metrics.detections.inc(output.processed)
        self.metrics.track_updates.inc(len(output.tracks))
        observe_all(self.metrics.held, output.held_s)
        log.debug(
            "committed %s tracks, %s alerts, %s detections",
            len(output.tracks),
            len(output.alerts),
            output.processed,
            extra={"partition": task.key, "offsets": {str(tp): o for tp, o in task.commit_offsets().items()}},
        )
        for alert in output.alerts:
            self.metrics.alerts.labels(alert.kind.value).inc()
            log.info(
                "alert %s rev %s: %s",
                alert.alert_id,
                alert.revision,
                alert.summary,
                extra={"kind": alert.kind.value, "region": alert.region, "severity": alert.severity.value},
            )
