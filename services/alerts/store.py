"""What the gateway knows: alert states, tracks, dispatches and recent audit, followed from Kafka.

Every alerts instance reads ``alert.state``, ``tracks``, ``dispatches`` and ``audit`` from the
beginning (compacted topics give the current state quickly) and then follows them, read
committed. Positions in those topics are the same on every instance, which makes them the
resume token of a websocket stream: a client that reconnects to any instance with the
positions it last saw receives the current state of everything that changed after them.

For that, the store keeps, per input partition, the recent ``(offset, key)`` changes (a bounded
window); a cursor older than the window gets a full snapshot instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas.lifecycle import AlertState, AuditRecord, Dispatch
from schemas.topics import ALERT_STATE, AUDIT, DISPATCHES, TRACKS
from schemas.tracks import Track
from services.alerts.lifecycle import TeamBoard
from services.core.kafka import KafkaSettings, KafkaSetupError, topic_partitions

log = logging.getLogger(__name__)

Cursor = dict[str, int]
"""Next offset per ``"<topic>/<partition>"`` (topic without the deployment prefix)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One record the store applied."""

    kind: Kind
    key: str
    value: Any
    """The new AlertState / Track / Dispatch / AuditRecord, or None for a deleted track."""
    partition: str
    offset: int


Listener = Callable[[Change], None]


class Kind(StrEnum):
    """What a change is about."""

    ALERT = "alert"
    TRACK = "track"
    DISPATCH = "dispatch"
    AUDIT = "audit-record"


class Store:
    """The gateway's view of the world, kept current from Kafka."""

    def __init__(
        self,
        kafka: KafkaSettings,
        board: TeamBoard,
        *,
        window: int = 50_000,
        audit_kept: int = 50_000,
        fetch_max_wait_ms: int = 20,
    ) -> None:
        self.kafka = kafka
        self.board = board
        self.alerts: dict[str, AlertState] = {}
        self.tracks: dict[str, Track] = {}
        self.audit: deque[AuditRecord] = deque(maxlen=audit_kept)
        self.cursor: Cursor = {}
        self.changes: dict[str, deque[tuple[int, Kind, str]]] = {}
        self.floor: dict[str, int] = {}
        """Per partition: the window knows every change from this offset on."""
        self.window = window
        self.listeners: list[Listener] = []
        self.ready = asyncio.Event()
        self.topics = {
            kafka.topics(ALERT_STATE): (Kind.ALERT, ALERT_STATE.name),
            kafka.topics(TRACKS): (Kind.TRACK, TRACKS.name),
            kafka.topics(DISPATCHES): (Kind.DISPATCH, DISPATCHES.name),
            kafka.topics(AUDIT): (Kind.AUDIT, AUDIT.name),
        }
        self.last_record_wall = 0.0
        self.fetch_max_wait_ms = fetch_max_wait_ms

    # -- resuming ----------------------------------------------------------------------------

    def changed_since(self, cursor: Cursor) -> list[tuple[Kind, str]] | None:
        """(kind, key) of everything changed after ``cursor``, oldest first; None when the
        cursor is older than what the window remembers (the client needs a full snapshot)."""
        found: list[tuple[int, Kind, str]] = []
        for partition, position in self.cursor.items():
            since = cursor.get(partition, 0)
            if since >= position:
                continue
            if since < self.floor.get(partition, 0):
                return None
            found.extend(entry for entry in self.changes.get(partition, ()) if entry[0] >= since)
        latest: dict[tuple[Kind, str], int] = {}
        for offset, kind, key in found:
            latest[(kind, key)] = max(offset, latest.get((kind, key), -1))
        return [item for item, _ in sorted(latest.items(), key=lambda entry: entry[1])]

    # -- following ---------------------------------------------------------------------------

    def _apply(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Change | None:
        kind, base = self.topics[topic]
        name = f"{base}/{partition}"
        self.cursor[name] = offset + 1
        text_key = key.decode() if key else ""
        try:
            if kind is Kind.ALERT:
                if value is None:
                    self.alerts.pop(text_key, None)
                    parsed: Any = None
                else:
                    parsed = AlertState.model_validate_json(value)
                    self.alerts[parsed.alert.alert_id] = parsed
            elif kind is Kind.TRACK:
                if value is None:
                    self.tracks.pop(text_key, None)
                    parsed = None
                else:
                    parsed = Track.model_validate_json(value)
                    self.tracks[parsed.track_id] = parsed
            elif kind is Kind.DISPATCH:
                parsed = Dispatch.model_validate_json(value or b"")
                self.board.apply(parsed)
                text_key = parsed.dispatch_id
            else:
                parsed = AuditRecord.model_validate_json(value or b"")
                self.audit.append(parsed)
        except ValidationError as exc:
            log.error(
                "skipped an unreadable record: %s", str(exc)[:300], extra={"topic": topic, "offset": offset}
            )
            return None
        if kind is not Kind.AUDIT:
            window = self.changes.setdefault(name, deque(maxlen=self.window))
            if len(window) == self.window:
                self.floor[name] = window[0][0] + 1
            window.append((offset, kind, text_key))
        return Change(kind, text_key, parsed, name, offset)

    async def follow(self, stop: asyncio.Event) -> None:
        """Read every topic from the beginning, then follow; sets ``ready`` once caught up."""
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            **self.kafka.client_options(),
        )
        await consumer.start()
        try:
            found = await topic_partitions(self.kafka, list(self.topics))
            missing = sorted(set(self.topics) - {topic for topic, numbers in found.items() if numbers})
            if missing:
                raise KafkaSetupError(f"topics not available yet: {', '.join(missing)}")
            partitions = [TopicPartition(topic, p) for topic, numbers in found.items() for p in numbers]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                self.cursor.setdefault(f"{self.topics[tp.topic][1]}/{tp.partition}", 0)
            pending = {tp for tp in partitions if ends[tp] > 0}
            if not pending:
                self.ready.set()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
                for tp, records in batch.items():
                    for record in records:
                        change = self._apply(tp.topic, tp.partition, record.offset, record.key, record.value)
                        if change is not None and self.ready.is_set():
                            self.last_record_wall = time.time()
                            for listener in self.listeners:
                                listener(change)
                if pending:
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
                    if not pending:
                        log.info(
                            "store caught up", extra={"alerts": len(self.alerts), "tracks": len(self.tracks)}
                        )
                        self.ready.set()
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()
