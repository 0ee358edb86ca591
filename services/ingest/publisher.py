"""Writes records to Kafka and tells each caller exactly which of its records were acknowledged.

Records are queued per topic-partition and handed to aiokafka as whole batches
(``create_batch`` / ``send_batch``): while one batch is on the wire the next one fills, which is
what lets one Python process keep up with thousands of small HTTP requests. The producer is
idempotent with ``acks=all``, so a batch the broker acknowledged is on every in-sync replica,
and a retried batch is never written twice.

A caller submits its records together and gets one :class:`Ticket`: a record of the ticket is
*queued*, then *handed over* to the producer, then *delivered* (with its offset) or *dropped*
(withdrawn before hand-over, or refused by Kafka). A caller that stops waiting withdraws its
ticket: what is still queued is dropped, what was handed over may still land and is reported
when it does. Nothing acknowledged is ever lost, nothing is written behind a caller's back
without the ticket saying so.

Availability is explicit: the publisher is *unavailable* until the producer has connected, and
again whenever a record waits longer than ``stall_s`` for its acknowledgement or the periodic
metadata probe fails. Callers refuse new work (HTTP 503) while unavailable instead of piling
up requests that would hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from services.core.kafka import KafkaSettings
from services.ingest.errors import KafkaUnavailable

log = logging.getLogger(__name__)

BatchObserver = Callable[[int, float], None]
"""Called with (records in the batch, seconds from hand-over to acknowledgement)."""

QUEUED, HANDED_OVER, DELIVERED, DROPPED = 0, 1, 2, 3
"""The states of one record of a :class:`Ticket`."""

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""``(key, value, headers)`` as written to Kafka (aiokafka wants the headers as a list)."""


class Delivery(NamedTuple):
    """Where an acknowledged record landed."""

    topic: str
    partition: int
    offset: int


class Ticket:
    """The records one caller submitted together, and what became of each of them."""

    __slots__ = ("deliveries", "error", "future", "queued_at", "remaining", "states", "withdrawn")

    def __init__(self, count: int, future: asyncio.Future[None], queued_at: float) -> None:
        self.deliveries: list[Delivery | None] = [None] * count
        self.states = bytearray(count)
        self.remaining = count
        self.future = future
        self.queued_at = queued_at
        self.withdrawn = False
        self.error: str | None = None

    @property
    def done(self) -> bool:
        """Every record is delivered or dropped."""
        return self.remaining == 0

    def _settle(self, position: int, delivery: Delivery | None) -> None:
        if self.states[position] >= DELIVERED:
            return
        self.states[position] = DELIVERED if delivery is not None else DROPPED
        self.deliveries[position] = delivery
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(None)

    def may_still_land(self, position: int) -> bool:
        """The record is with the producer and not settled yet."""
        return self.states[position] == HANDED_OVER

    def withdraw(self) -> None:
        """Stop waiting: records not yet handed to the producer are dropped when reached."""
        self.withdrawn = True

    async def wait(self, timeout_s: float) -> bool:
        """Wait until every record is settled or ``timeout_s`` passed; True when all settled."""
        if self.remaining == 0:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def release(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        self.future.add_done_callback(release)
        timer = loop.call_later(timeout_s, release)
        try:
            await waiter
        finally:
            timer.cancel()
            self.future.remove_done_callback(release)
        return self.remaining == 0


class _Entry(NamedTuple):
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    ticket: Ticket
    position: int


@dataclass(slots=True, eq=False)
class _Partition:
    queue: deque[_Entry] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Publisher:
    """Batching, acknowledged writes to Kafka with visible availability."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        max_pending: int = 100_000,
        stall_s: float = 2.0,
        probe_interval_s: float = 2.0,
        max_batch_bytes: int = 1_000_000,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._kafka = kafka
        self._max_pending = max_pending
        self._stall_s = stall_s
        self._probe_interval_s = probe_interval_s
        self._max_batch_bytes = max_batch_bytes
        self._on_batch = on_batch
        self._producer: Any = None
        self._connected = False
        self._probe_ok = True
        self._stopping = False
        self._pending = 0
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._partition_counts: dict[str, int] = {}
        self._key_partition: dict[tuple[str, bytes], int] = {}
        self._in_flight_batches: dict[int, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._drained: asyncio.Event | None = None
        self.last_error: str | None = "not connected yet"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting in the background; returns at once (see :attr:`available`)."""
        self._tasks.append(asyncio.create_task(self._connect(), name="publisher-connect"))

    async def _connect(self) -> None:
        backoff_s = 0.25
        while not self._stopping:
            producer = AIOKafkaProducer(
                client_id=f"{self._kafka.client_id}-ingest",
                acks="all",
                enable_idempotence=True,
                linger_ms=0,
                max_batch_size=self._max_batch_bytes,
                max_request_size=self._max_batch_bytes + 65_536,
                request_timeout_ms=30_000,
                retry_backoff_ms=200,
                **self._kafka.client_options(),
            )
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                self.last_error = f"cannot connect to Kafka at {self._kafka.bootstrap}: {exc}"
                log.warning("%s; retrying in %.1f s", self.last_error, backoff_s)
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
                continue
            self._producer = producer
            self._connected = True
            self.last_error = None
            log.info("connected to Kafka", extra={"bootstrap": self._kafka.bootstrap})
            self._tasks.append(asyncio.create_task(self._probe(), name="publisher-probe"))
            return

    async def _probe(self) -> None:
        """Ask the cluster for metadata now and then, so an idle publisher notices an outage."""
        while not self._stopping:
            await asyncio.sleep(self._probe_interval_s)
            try:
                async with asyncio.timeout(max(1.0, self._probe_interval_s)):
                    await self._producer.client.fetch_all_metadata()
            except (KafkaError, OSError, TimeoutError) as exc:
                if self._probe_ok:
                    log.warning("Kafka metadata probe failed: %s", exc)
                self._probe_ok = False
                self.last_error = f"Kafka does not answer: {exc or type(exc).__name__}"
            else:
                if not self._probe_ok:
                    log.info("Kafka answers again")
                self._probe_ok = True

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Flush what is queued (up to ``drain_timeout_s``), then close the producer."""
        if self._pending and self.available:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout_s):
                    await self._drained.wait()
        self._stopping = True
        tasks = [*self._tasks, *(s.task for s in self._partitions.values() if s.task)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                async with asyncio.timeout(drain_timeout_s):
                    await self._producer.stop()
        for state in self._partitions.values():
            while state.queue:
                entry = state.queue.popleft()
                entry.ticket.error = "ingest is shutting down"
                self._drop(entry)

    # -- state -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def pending(self) -> int:
        """Records submitted and not yet delivered or dropped."""
        return self._pending

    def stalled_for(self) -> float:
        """Seconds the oldest unacknowledged record has waited (0 when nothing waits)."""
        now = time.monotonic()
        oldest = now
        if self._in_flight_batches:
            oldest = min(self._in_flight_batches.values())
        for state in self._partitions.values():
            if state.queue:
                oldest = min(oldest, state.queue[0].ticket.queued_at)
        return now - oldest

    @property
    def available(self) -> bool:
        """True when new records can be expected to be acknowledged promptly."""
        return self._connected and self._probe_ok and self.stalled_for() < self._stall_s

    def unavailable_reason(self) -> str:
        if not self._connected:
            return self.last_error or "not connected to Kafka"
        if not self._probe_ok:
            return self.last_error or "Kafka does not answer"
        stalled = self.stalled_for()
        if stalled >= self._stall_s:
            return f"Kafka has not acknowledged writes for {stalled:.1f} s"
        return "available"

    # -- writing -----------------------------------------------------------------------------

    async def prepare(self, topic: str) -> None:
        """Learn ``topic``'s partition count (once), so that :meth:`submit` never has to wait."""
        if topic in self._partition_counts:
            return
        try:
            async with asyncio.timeout(self._stall_s):
                partitions = await self._producer.partitions_for(topic)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(f"no metadata for topic {topic}: {exc}") from exc
        self._partition_counts[topic] = len(partitions)

    def _partition_for(self, topic: str, key: bytes) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            raise KafkaUnavailable(f"no metadata for topic {topic} yet")
        # Same rule as Kafka's default partitioner, so every client agrees on key -> partition.
        partition: int = (murmur2(key) & 0x7FFFFFFF) % count
        self._key_partition[(topic, key)] = partition
        return partition

    def submit(self, topic: str, records: Sequence[Record]) -> Ticket:
        """Queue records for ``topic``; raises :class:`KafkaUnavailable` instead when it must.

        It never waits (call :meth:`prepare` first), so a caller can check for duplicates and
        record what it submitted without another request slipping in between.
        """
        if not self.available:
            raise KafkaUnavailable(self.unavailable_reason())
        if self._pending + len(records) > self._max_pending:
            raise KafkaUnavailable(
                f"{self._pending} events are already waiting for Kafka (limit {self._max_pending})"
            )
        known = self._key_partition
        partitions: list[int] = []
        for key, _, _ in records:
            partition = known.get((topic, key))
            partitions.append(partition if partition is not None else self._partition_for(topic, key))
        ticket = Ticket(len(records), asyncio.get_running_loop().create_future(), time.monotonic())
        woken: set[_Partition] = set()
        for position, ((key, value, headers), partition) in enumerate(zip(records, partitions, strict=True)):
            state = self._partitions.get((topic, partition))
            if state is None:
                state = self._partitions[(topic, partition)] = _Partition()
                state.task = asyncio.create_task(
                    self._drain(topic, partition, state), name=f"publish-{topic}-{partition}"
                )
            state.queue.append(_Entry(key, value, headers, ticket, position))
            woken.add(state)
        self._pending += len(records)
        for state in woken:
            state.wake.set()
        return ticket

    def _drop(self, entry: _Entry) -> None:
        self._pending -= 1
        entry.ticket._settle(entry.position, None)
        if self._drained is not None and not self._pending:
            self._drained.set()

    async def _drain(self, topic: str, partition: int, state: _Partition) -> None:
        while True:
            await state.wake.wait()
            state.wake.clear()
            try:
                await self._drain_queue(topic, partition, state.queue)
            except Exception:
                # A bug here must not silently stall the partition: fail what is queued (the
                # callers answer 503 and retry) and keep serving.
                log.exception("publishing to %s/%s failed", topic, partition)
                while state.queue:
                    entry = state.queue.popleft()
                    entry.ticket.error = "internal error while publishing"
                    self._drop(entry)

    async def _drain_queue(self, topic: str, partition: int, queue: deque[_Entry]) -> None:
        """Hand everything queued to the producer, batch by batch."""
        while queue:
            batch = self._producer.create_batch()
            taken: list[_Entry] = []
            while queue:
                entry = queue[0]
                if entry.ticket.withdrawn:
                    self._drop(queue.popleft())
                    continue
                if (
                    batch.append(key=entry.key, value=entry.value, timestamp=None, headers=entry.headers)
                    is None
                ):
                    break
                entry.ticket.states[entry.position] = HANDED_OVER
                taken.append(queue.popleft())
            if not taken:
                if queue:  # a single record larger than a whole batch
                    entry = queue.popleft()
                    entry.ticket.error = "record larger than the maximum batch size"
                    self._drop(entry)
                continue
            batch.close()
            started = time.monotonic()
            delivered = await self._hand_over(batch, taken, topic, partition)
            if delivered is None:
                continue
            key = id(delivered)
            self._in_flight_batches[key] = started
            delivered.add_done_callback(partial(self._acknowledged, taken, key, started, topic, partition))

    async def _hand_over(
        self, batch: Any, taken: list[_Entry], topic: str, partition: int
    ) -> asyncio.Future[Any] | None:
        """Give a closed batch to the producer; ``None`` when it refused it for good."""
        while True:
            try:
                delivered: asyncio.Future[Any] = await self._producer.send_batch(
                    batch, topic, partition=partition
                )
                return delivered
            except KafkaError as exc:
                if not exc.retriable:
                    log.error(
                        "the producer refused a batch: %s",
                        exc,
                        extra={"topic": topic, "partition": partition},
                    )
                    for entry in taken:
                        entry.ticket.error = f"Kafka refused the write: {exc}"
                        self._drop(entry)
                    return None
                # Not queued (e.g. the partition queue stayed full while the broker was away):
                # the records are still ours, so keep offering the same batch.
                log.warning(
                    "handing a batch to the producer timed out, retrying: %s",
                    exc,
                    extra={"topic": topic, "partition": partition},
                )
                await asyncio.sleep(0.5)

    def _acknowledged(
        self,
        taken: list[_Entry],
        key: int,
        started: float,
        topic: str,
        partition: int,
        fut: asyncio.Future[Any],
    ) -> None:
        self._in_flight_batches.pop(key, None)
        error = KafkaUnavailable("the write was cancelled") if fut.cancelled() else fut.exception()
        if error is not None:
            log.error(
                "Kafka refused a batch of %s records: %s",
                len(taken),
                error,
                extra={"topic": topic, "partition": partition},
            )
            for entry in taken:
                entry.ticket.error = f"Kafka refused the write: {error}"
                self._drop(entry)
            return
        base = fut.result().offset
        self._pending -= len(taken)
        for i, entry in enumerate(taken):
            entry.ticket._settle(entry.position, Delivery(topic, partition, base + i))
        if self._on_batch is not None:
            self._on_batch(len(taken), time.monotonic() - started)
        if self._drained is not None and not self._pending:
            self._drained.set()
