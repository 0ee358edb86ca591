"""Ingest's core around the pure domain: authenticate, admit, de-duplicate, publish, report.

HTTP details stay in :mod:`services.ingest.api`; Kafka details in :mod:`publisher`. This module
owns the request-independent state: the duplicate index, the in-flight table (an event id being
written right now, so a retry waits for that write instead of starting a second one) and the
per-gateway rate limits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.events import (
    PROGRESS_KIND,
    RECORD_KIND_HEADER,
    GatewayProgressRecord,
    SensorEvent,
    SensorStatus,
)
from schemas.topics import SENSOR_EVENTS, SENSOR_STATUS, Topic
from services.core.apikeys import KeyRing
from services.core.config import LinderoConfig
from services.ingest.domain.admission import (
    Admitted,
    Directory,
    GatewayInfo,
    Reason,
    Rejection,
    TimeLimits,
    admit,
    render_time,
    time_problem,
)
from services.ingest.domain.dedup import DedupIndex, Seen
from services.ingest.domain.parsing import EventParser, FieldError, Parsed
from services.ingest.domain.ratelimit import RateLimiter
from services.ingest.errors import KafkaUnavailable
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Delivery, Publisher, Record, Ticket
from services.ingest.settings import IngestSettings


@dataclass(frozen=True)
class Stream:
    """One kind of message ingest takes: its parser and its topic."""

    name: str
    topic: Topic
    parser: EventParser[Any]


EVENTS = Stream("events", SENSOR_EVENTS, EventParser[SensorEvent](SensorEvent, tagged=True))
STATUS = Stream("status", SENSOR_STATUS, EventParser[SensorStatus](SensorStatus, tagged=False))

_REUSED = FieldError("event_id", "this event_id was already used for a different event")


@dataclass
class Outcome:
    """What happened to each event of one request."""

    accepted: list[tuple[int, str, Delivery, str]] = field(default_factory=list)
    """(index, event id, where it landed, sensor type)"""
    duplicates: list[tuple[int, str, str]] = field(default_factory=list)
    """(index, event id, sensor type)"""
    rejected: list[Rejection] = field(default_factory=list)
    unavailable: str | None = None
    """Set when Kafka could not take (all of) the request: the answer is 503."""
    promise_failure: str | None = None
    """Why the request's promise (``Lindero-Complete-Through``) was not written: the answer is 503."""


Clock = Callable[[], float]


class IngestCore:
    """The request-independent state of one ingest instance."""

    def __init__(
        self,
        settings: IngestSettings,
        config: LinderoConfig,
        publisher: Publisher,
        metrics: IngestMetrics,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.metrics = metrics
        self.clock = clock
        self.directory = Directory.from_config(config)
        self.keys = KeyRing(
            (key.id, key.sha256, gateway.id) for gateway in config.gateways for key in gateway.api_keys
        )
        self.limits = TimeLimits(settings.max_event_age_s, settings.max_future_s)
        self.rate = RateLimiter(
            {
                g.id: (g.rate_limit.events_per_s, float(g.rate_limit.burst))
                for g in config.gateways
                if g.rate_limit is not None
            },
            (settings.rate_events_per_s, float(settings.rate_burst)),
        )
        self.dedup = DedupIndex(settings.dedup_window_s, settings.dedup_max_entries)
        names = settings.kafka.topics
        self._topics = {EVENTS.name: names(EVENTS.topic), STATUS.name: names(STATUS.topic)}
        self._stamp_ms = -1
        self._stamp_cached = (dt.datetime.fromtimestamp(0, dt.UTC), b"")
        self.ready = False
        self._inflight: dict[bytes, tuple[int, Ticket, int]] = {}
        """Event ids being written right now: their digest, ticket and position in it."""
        self._regions = {
            gateway_id: sorted(
                {self.directory.sensors[s].region for s in g.sensors if s in self.directory.sensors}
            )
            for gateway_id, g in self.directory.gateways.items()
        }
        """Per gateway, the regions of its sensors (where its promises go)."""

    def authenticate(self, token: str | None) -> GatewayInfo | None:
        """The gateway a presented API key belongs to, or ``None``.

        Every request is checked against the stored digests in constant time (about 4 us); no
        presented key is kept in memory beyond its request.
        """
        if not token:
            return None
        gateway_id = self.keys.principal(token)
        return self.directory.gateways.get(gateway_id) if gateway_id else None

    def throttle(self, gateway: GatewayInfo, events: int) -> float:
        """0 when the gateway may post ``events`` now, else the seconds to wait."""
        return self.rate.take(gateway.gateway_id, events, time.monotonic())

    def expire(self) -> None:
        """Forget event ids that left the duplicate window (called periodically)."""
        self.dedup.expire(self.clock())
        self.metrics.dedup_entries.set(len(self.dedup))

    def _stamp(self, now_s: float) -> tuple[dt.datetime, bytes]:
        """The request's time and its rendering, computed once per millisecond."""
        millis = int(now_s * 1000)
        if millis != self._stamp_ms:
            now = dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
            self._stamp_ms, self._stamp_cached = millis, (now, render_time(now))
        return self._stamp_cached

    def _settled_late(self, fresh: Sequence[Admitted], ticket: Ticket) -> None:
        """A ticket its request stopped waiting for is settled: record what landed after all."""
        now_s = self.clock()
        for position, candidate in enumerate(fresh):
            event_id = candidate.event_key
            if self._inflight.get(event_id, (0, None, 0))[1] is not ticket:
                continue
            del self._inflight[event_id]
            if ticket.deliveries[position] is not None:
                self.dedup.remember(event_id, candidate.digest, now_s)

    async def accept(
        self,
        stream: Stream,
        gateway: GatewayInfo,
        items: Sequence[Parsed[Any]],
        promise: dt.datetime | None = None,
    ) -> Outcome:
        """Admit, de-duplicate and publish the parsed items of one request, then the gateway's
        ``promise`` if it made one: in the same Kafka batch, behind the request's fresh events
        (one round trip), or on its own once every event of the request is written."""
        outcome = Outcome()
        topic = self._topics[stream.name]
        if self.ready:
            # The only wait before the write: from here to registering the fresh events as in
            # flight nothing yields, so two requests carrying the same event never both write it.
            with contextlib.suppress(KafkaUnavailable):  # submit() says so below, if it matters
                await self.publisher.prepare(topic)
        now, received_at = self._stamp(self.clock())
        fresh: list[Admitted] = []
        joined: list[tuple[Admitted, Ticket, int]] = []
        in_request: dict[bytes, int] = {}
        inflight = self._inflight
        for item in items:
            if item.model is None:
                outcome.rejected.append(
                    Rejection(item.position, item.event_id, 422, Reason.INVALID, item.errors)
                )
                continue
            decision = admit(
                item.position,
                item.model,
                item.canonical,
                gateway,
                self.directory,
                now,
                received_at,
                self.limits,
            )
            if isinstance(decision, Rejection):
                outcome.rejected.append(decision)
                continue
            event_id = decision.event_key
            running = inflight.get(event_id)
            first = in_request.get(event_id)
            if first is not None:
                seen = Seen.DUPLICATE if first == decision.digest else Seen.CONFLICT
            elif running is not None:
                seen = Seen.DUPLICATE if running[0] == decision.digest else Seen.CONFLICT
            else:
                seen = self.dedup.check(event_id, decision.digest)
                in_request[event_id] = decision.digest
            if seen is Seen.NEW:
                fresh.append(decision)
            elif seen is Seen.CONFLICT:
                outcome.rejected.append(
                    Rejection(decision.position, decision.event_id_text, 409, Reason.CONFLICT, (_REUSED,))
                )
            elif running is not None and first is None:
                joined.append((decision, running[1], running[2]))
            else:
                outcome.duplicates.append((decision.position, decision.event_id_text, decision.sensor_type))

        if fresh:
            if not self.ready:
                outcome.unavailable = (
                    "ingest is starting up (connecting to Kafka, rebuilding its duplicate index)"
                )
                self._count(outcome)
                return outcome
            # Events of this request another one is writing (joined) may land later: then the
            # promise waits for them and goes on its own.
            behind = self._promise_records(gateway, promise) if promise is not None and not joined else []
            try:
                ticket = self.publisher.submit(topic, [(a.key, a.value, a.headers) for a in fresh] + behind)
            except KafkaUnavailable as exc:
                outcome.unavailable = str(exc)
                self._count(outcome)
                return outcome
            for position, candidate in enumerate(fresh):
                inflight[candidate.event_key] = (candidate.digest, ticket, position)
            self._settle_fresh(outcome, fresh, ticket, await ticket.wait(self.settings.produce_timeout_s))
            if behind:
                promise = None  # written with the events, or failed with them
                if outcome.unavailable is None and all(
                    d is not None for d in ticket.deliveries[len(fresh) :]
                ):
                    self.metrics.promises.inc(len(behind))
                else:
                    outcome.promise_failure = ticket.error or "Kafka did not acknowledge it"
        late = 0
        for candidate, other, position in joined:
            if not other.done:
                await other.wait(self.settings.produce_timeout_s)
            if other.deliveries[position] is not None:
                outcome.duplicates.append(
                    (candidate.position, candidate.event_id_text, candidate.sensor_type)
                )
            else:
                late += 1
        if late:
            outcome.unavailable = (
                f"{late} event(s) are still being written by an earlier request; retry shortly"
            )
        self._count(outcome)
        if promise is not None and outcome.unavailable is None:
            outcome.promise_failure = await self.promise(gateway, promise)
        return outcome

    def check_promise(self, through: dt.datetime) -> tuple[Reason, str] | None:
        """Why a gateway's promise (``complete_through``) is refused, or None: it must lie where
        an event's sensor time may (further ahead it would make the gateway's next events late;
        further back it promises nothing ingest would still take)."""
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        problem = time_problem(through, now, self.limits, "the promised time", "the gateway's clock")
        return None if problem is None else (problem[0], problem[1].message)

    async def promise(self, gateway: GatewayInfo, through: dt.datetime) -> str | None:
        """Write the gateway's promise on its own (once the request's events are written, so
        that it lands after them). The reason it was not written, or None."""
        records = self._promise_records(gateway, through)
        if not records:
            return None
        topic = self._topics[EVENTS.name]
        try:
            await self.publisher.prepare(topic)
            ticket = self.publisher.submit(topic, records)
        except KafkaUnavailable as exc:
            return str(exc)
        if not await ticket.wait(self.settings.produce_timeout_s) or any(
            d is None for d in ticket.deliveries
        ):
            ticket.withdraw()
            return ticket.error or f"Kafka did not acknowledge in {self.settings.produce_timeout_s:g} s"
        self.metrics.promises.inc(len(records))
        return None

    def _promise_records(self, gateway: GatewayInfo, through: dt.datetime) -> list[Record]:
        """The gateway's promise as records of ``sensor.events``, one per region of its sensors."""
        regions = self._regions.get(gateway.gateway_id, [])
        received_at = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        return [
            (
                region.encode(),
                GatewayProgressRecord(
                    received_at=received_at,
                    region=region,
                    gateway_id=gateway.gateway_id,
                    complete_through=through,
                )
                .model_dump_json()
                .encode(),
                [(RECORD_KIND_HEADER, PROGRESS_KIND)],
            )
            for region in regions
        ]

    def _settle_fresh(self, outcome: Outcome, fresh: Sequence[Admitted], ticket: Ticket, done: bool) -> None:
        inflight = self._inflight
        now_s = self.clock()
        if not done:
            ticket.withdraw()
        lingering = False
        missing = 0
        for position, candidate in enumerate(fresh):
            delivery = ticket.deliveries[position]
            if delivery is not None:
                self.dedup.remember(candidate.event_key, candidate.digest, now_s)
                outcome.accepted.append(
                    (candidate.position, candidate.event_id_text, delivery, candidate.sensor_type)
                )
            else:
                missing += 1
                if ticket.may_still_land(position):
                    # With the producer already: it may still land. Keep it in flight until it
                    # settles, so that a retry joins this write instead of starting a second one.
                    lingering = True
                    continue
            inflight.pop(candidate.event_key, None)
        if lingering:
            ticket.future.add_done_callback(lambda _: self._settled_late(fresh, ticket))
        if missing:
            reason = ticket.error or f"Kafka did not acknowledge in {self.settings.produce_timeout_s:g} s"
            outcome.unavailable = f"{reason} ({missing} event(s) not written)"

    def _count(self, outcome: Outcome) -> None:
        metrics = self.metrics
        if len(outcome.accepted) == 1 and not outcome.duplicates and not outcome.rejected:
            metrics.accepted[outcome.accepted[0][3]].inc()
            return
        for kind, count in Counter(entry[3] for entry in outcome.accepted).items():
            metrics.accepted[kind].inc(count)
        for kind, count in Counter(entry[2] for entry in outcome.duplicates).items():
            metrics.duplicates[kind].inc(count)
        for reason, count in Counter(r.reason.value for r in outcome.rejected).items():
            metrics.rejected.labels(reason).inc(count)
