"""Exactly-once consume–transform–produce over Kafka, one transactional producer per input partition.

Used by the correlator and by the alerts service's lifecycle. A :class:`Processor` subscribes a
consumer group to its input topics; every assigned input partition gets a :class:`PartitionTask`
(the service's own subclass) with its own transactional producer whose ``transactional.id`` is
derived from the partition. When a partition moves to another instance, the new owner's
``init_transactions`` fences the old one, so a zombie can never commit for it (Kafka's original
exactly-once design, which aiokafka supports).

The order of a commit, every ``commit_interval_s`` when something changed:

1. the task turns what it consumed into output records (pure work),
2. one transaction: the output records, the task's state records (a snapshot or changelog),
   and the input offset the task names (``send_offsets_to_transaction``),
3. wait until the broker has taken every record batch, and only then add the input offsets and
   commit (see :meth:`Processor._transaction`). A batch the broker refused is never committed
   without: the transaction is aborted and written again on a fresh producer
   (aiokafka's sequence numbers stay past a refused batch, so every later batch of that partition
   would be refused as out of order). A refused batch of several records is written again one
   record a batch; a record the broker refuses alone (too large for its topic, invalid) is *set
   aside*: replaced by what the service's ``set_aside`` makes of it (a dead letter) or dropped,
   and logged and counted either way, so one bad record never stalls the partition,
4. on any other Kafka error: abort, then roll back: the task reloads its last committed state and
   the consumer rewinds to the last committed offset; the producer is replaced before the next
   transaction.

With ``commit_on_input`` (for latency rather than batching, e.g. the alerts lifecycle) a task
steps as soon as it has input and its last transaction is ``commit_interval_s`` old, rather than
at its next ``commit_interval_s`` tick, and the poll goes on while transactions are in flight
(a slow transaction of one partition no longer holds up the input of the others); a task still
commits at most once every ``commit_interval_s``, one transaction at a time.

New partitions stay paused until their task has restored its state, so no record is ever
fetched for a partition nobody can process yet; revoked partitions commit what they have first.

With ``copartitioned=True`` the input topics share their keys and partition counts (like
``alerts`` and ``alert.actions``): partition *p* of every input belongs to one task, with one
producer, and the group uses the range assignor so that one instance owns all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownError,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import ConsumerRecord

from services.core.kafka import KafkaSettings, topic_partitions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to write in the commit's transaction (``value`` None: a tombstone)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None
    """None: where the default partitioner puts the key."""


@dataclass
class Batch:
    """What a task hands over for one commit."""

    records: list[OutRecord] = field(default_factory=list)
    state: list[OutRecord] = field(default_factory=list)
    """State records (snapshot or changelog); written only when ``records`` is not empty or the
    offset moved, in the same transaction."""
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    """Called once the transaction is committed (metrics, logs)."""


class PartitionTask:
    """The state of one input partition (or of partition *p* of co-partitioned inputs).

    Services subclass it. ``tp`` is the task's first input partition; ``positions`` and
    ``committed`` hold, per input partition, the next offset to read and the last committed one.
    """

    def __init__(self, tps: Sequence[TopicPartition]) -> None:
        self.tps = list(tps)
        self.tp = self.tps[0]
        self.positions: dict[TopicPartition, int | None] = dict.fromkeys(self.tps)
        self.committed: dict[TopicPartition, int | None] = dict.fromkeys(self.tps)
        self.last_commit = 0.0
        """Monotonic time of the latest step."""
        self.last_transaction = 0.0
        """Monotonic time of the latest step that wrote a transaction."""
        self.input_since: float | None = None
        """Monotonic time of the oldest input not handed to a step yet (None: there is none)."""
        self.last_input_wall = time.time()
        """Wall-clock time of the latest input (idle time lets event time move on)."""

    @property
    def position(self) -> int | None:
        """The next offset of the first (for single-input tasks: the only) input partition."""
        return self.positions[self.tp]

    async def restore(self, processor: Processor) -> None:
        """Load the last committed state (called on assignment and after a failed commit)."""

    def consume(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Take records in (pure work only). Records of one input partition at a time."""
        raise NotImplementedError

    def step(self, caught_up: bool, wall_s: float, final: bool) -> Batch:
        """Everything to write now (pure work only)."""
        raise NotImplementedError

    def commit_offsets(self) -> dict[TopicPartition, int]:
        """The input offsets to commit: by default the next ones to read."""
        return {tp: offset for tp, offset in self.positions.items() if offset is not None}


TaskFactory = Callable[[list[TopicPartition]], PartitionTask]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.processor.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.processor.take(assigned)


@dataclass
class ProcessorHooks:
    """Observers a service can plug in (all optional)."""

    committed: Callable[[PartitionTask, float, int], None] | None = None
    """(task, seconds the transaction took, bytes of state written)"""
    aborted: Callable[[PartitionTask, Exception], None] | None = None
    refused: Callable[[PartitionTask, OutRecord, Exception], None] | None = None
    """(task, a record the broker refused alone, why): it was set aside"""
    set_aside: Callable[[OutRecord, Exception], OutRecord | None] | None = None
    """What to write instead of a refused record (a dead letter), or None: nothing."""


class Processor:
    """A consumer group whose partitions are processed by transactional tasks."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topics: Sequence[str],
        factory: TaskFactory,
        *,
        name: str,
        commit_interval_s: float = 0.2,
        max_batch: int = 5_000,
        idle_lag: int = 50,
        hooks: ProcessorHooks | None = None,
        before_start: Callable[[], Awaitable[None]] | None = None,
        copartitioned: bool = False,
        commit_on_input: bool = False,
    ) -> None:
        self.kafka = kafka
        self.group_id = f"{kafka.topic_prefix}{group_id}"
        self.topics = list(topics)
        self.factory = factory
        self.name = name
        self.commit_interval_s = commit_interval_s
        self.max_batch = max_batch
        self.idle_lag = idle_lag
        self.hooks = hooks or ProcessorHooks()
        self.before_start = before_start
        self.copartitioned = copartitioned
        self.commit_on_input = commit_on_input
        self.tasks: dict[Any, PartitionTask] = {}
        """Tasks by key: the input partition, or its number when co-partitioned."""
        self.owner: dict[TopicPartition, PartitionTask] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.producers: dict[Any, AIOKafkaProducer] = {}
        self.transactional_ids: dict[Any, str] = {}
        self.stale: set[Any] = set()
        """Task keys whose producer must be replaced before their next transaction."""
        self.commit_locks: dict[Any, asyncio.Lock] = {}
        """One per task key: the rebalance listener (the consumer's coordinator task) and the run
        loop never use a task's producer at the same time (one transaction at a time)."""
        self.ready = False
        self.partitioner = KeyPartitioner()
        """The producers' partitioner (keyed records land where the default partitioner puts them)."""

    def _key(self, tp: TopicPartition) -> Any:
        return tp.partition if self.copartitioned else tp

    def _consumer(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            raise RuntimeError(f"the {self.name} processor is not started")
        return self.consumer

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.before_start is not None:
            await self.before_start()
        extra: dict[str, Any] = {}
        if self.copartitioned:
            extra["partition_assignment_strategy"] = (RangePartitionAssignor,)
        self.consumer = AIOKafkaConsumer(
            client_id=f"{self.kafka.client_id}-{self.name}",
            group_id=self.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_interval_ms=300_000,
            max_partition_fetch_bytes=FETCH_PARTITION_BYTES,
            **extra,
            **self.kafka.client_options(),
        )
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_Listener(self))
        self.ready = True
        log.info("%s started", self.name, extra={"group": self.group_id})

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.release(list(self.owner))
            await self.consumer.stop()
            self.consumer = None
        self.ready = False

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, process and commit until ``stop`` is set."""
        if self.commit_on_input:
            await self._run_committing_on_input(stop)
            return
        consumer = self._consumer()
        poll_ms = max(10, int(self.commit_interval_s * 500))
        while not stop.is_set():
            self._take_in(await consumer.getmany(timeout_ms=poll_ms, max_records=self.max_batch))
            now = time.monotonic()
            due = [t for t in self.tasks.values() if now - t.last_commit >= self.commit_interval_s]
            if due:
                # Each task has its own transactional producer: their transactions go to the
                # broker side by side instead of one round trip after another.
                await asyncio.gather(*(self.commit(task) for task in due))

    async def _run_committing_on_input(self, stop: asyncio.Event) -> None:
        """``run`` with ``commit_on_input``: the poll goes on while transactions are in flight,
        and a task steps as soon as it has input and its last transaction is
        ``commit_interval_s`` old (and every ``commit_interval_s`` in any case)."""
        consumer = self._consumer()
        poll_ms = max(10, int(self.commit_interval_s * 500))
        poll: asyncio.Task[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]] | None = None
        committing: dict[Any, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                if poll is None:
                    poll = asyncio.ensure_future(
                        consumer.getmany(timeout_ms=poll_ms, max_records=self.max_batch)
                    )
                await asyncio.wait(
                    {poll, *committing.values()},
                    timeout=self._wait_s(committing),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for key, running in list(committing.items()):
                    if running.done():
                        del committing[key]
                        running.result()  # a failure that is not a Kafka error ends the run, as it did
                if poll.done():
                    batches, poll = poll.result(), None
                    self._take_in(batches)
                now = time.monotonic()
                for key, task in self.tasks.items():
                    if key not in committing and self._due(task, now):
                        committing[key] = asyncio.ensure_future(self.commit(task))
        finally:
            if poll is not None:
                poll.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poll
            await asyncio.gather(*committing.values(), return_exceptions=True)

    def _take_in(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Hand polled records to their tasks."""
        now = time.monotonic()
        for tp, records in batches.items():
            task = self.owner.get(tp)
            if task is None:  # never skip input: read these again once a task exists
                self._consumer().seek(tp, records[0].offset)
                continue
            task.last_input_wall = time.time()
            task.positions[tp] = records[-1].offset + 1
            task.consume(records)
            if task.input_since is None:
                task.input_since = now

    def _due(self, task: PartitionTask, now: float) -> bool:
        """Whether ``task`` steps now (with ``commit_on_input``)."""
        if now - task.last_commit >= self.commit_interval_s:
            return True
        return task.input_since is not None and now - task.last_transaction >= self.commit_interval_s

    def _wait_s(self, committing: Container[Any]) -> float | None:
        """With ``commit_on_input``: how long until a task holding input falls due (None: no
        such task; the end of a commit, or the poll's own timeout, wakes the loop)."""
        now = time.monotonic()
        waits = [
            task.last_transaction + self.commit_interval_s - now
            for key, task in self.tasks.items()
            if task.input_since is not None and key not in committing
        ]
        return max(0.001, min(waits)) if waits else None

    def lag(self, task: PartitionTask) -> int | None:
        """Records between the task's positions and its partitions' ends, when known."""
        total = 0
        for tp, position in task.positions.items():
            end: int | None = self._consumer().highwater(tp)
            if end is None or position is None:
                return None
            total += max(0, end - position)
        return total

    # -- partitions --------------------------------------------------------------------------

    async def take(self, assigned: Iterable[TopicPartition]) -> None:
        fresh = [tp for tp in assigned if tp not in self.owner]
        if not fresh:
            return
        self._consumer().pause(*fresh)
        groups: dict[Any, list[TopicPartition]] = {}
        for tp in sorted(
            fresh, key=lambda t: (self.topics.index(t.topic) if t.topic in self.topics else 0, t.partition)
        ):
            groups.setdefault(self._key(tp), []).append(tp)
        await asyncio.gather(*(self._open(key, tps) for key, tps in groups.items()))

    async def _open(self, key: Any, tps: list[TopicPartition]) -> None:
        first = tps[0]
        name = f"p{first.partition}" if self.copartitioned else f"{first.topic}.{first.partition}"
        self.transactional_ids[key] = f"{self.group_id}.{name}"
        producer = self._producer(key)
        await producer.start()  # init_transactions: fences any zombie with this transactional id
        task = self.factory(tps)
        try:
            await self._load(task)
        except BaseException:
            await producer.stop()
            raise
        self.producers[key] = producer
        self.stale.discard(key)
        self.tasks[key] = task
        for tp in tps:
            self.owner[tp] = task
        self._consumer().resume(*tps)
        log.info("took partitions", extra={"partitions": [f"{tp.topic}/{tp.partition}" for tp in tps]})

    async def release(self, revoked: Iterable[TopicPartition]) -> None:
        for key in {self._key(tp) for tp in revoked}:
            async with self._commit_lock(key):  # after a commit in flight, never beside it
                task = self.tasks.pop(key, None)
                producer = self.producers.pop(key, None)
                if task is None or producer is None:
                    continue
                for tp in task.tps:
                    self.owner.pop(tp, None)
                try:
                    producer = await self._commit(key, task, producer, final=True)
                except KafkaError as exc:
                    log.warning("final commit of %s failed: %s", key, exc)
                finally:
                    with contextlib.suppress(KafkaError):
                        await producer.stop()
            log.info(
                "released partitions", extra={"partitions": [f"{tp.topic}/{tp.partition}" for tp in task.tps]}
            )

    def _commit_lock(self, key: Any) -> asyncio.Lock:
        lock = self.commit_locks.get(key)
        if lock is None:
            lock = self.commit_locks[key] = asyncio.Lock()
        return lock

    async def _load(self, task: PartitionTask) -> None:
        consumer = self._consumer()
        await task.restore(self)
        for tp in task.tps:
            committed = await consumer.committed(tp)
            task.committed[tp] = committed
            task.positions[tp] = committed
            if committed is not None:
                consumer.seek(tp, committed)
            else:
                await consumer.seek_to_beginning(tp)

    # -- commits -----------------------------------------------------------------------------

    async def commit(self, task: PartitionTask) -> None:
        key = self._key(task.tp)
        async with self._commit_lock(key):
            producer = self.producers.get(key)
            if producer is not None and self.tasks.get(key) is task:  # not released meanwhile
                producer = await self._commit(key, task, producer)
                if self.tasks.get(key) is task:  # not fenced meanwhile
                    self.producers[key] = producer

    def _producer(self, key: Any) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            client_id=f"{self.kafka.client_id}-{self.name}",
            transactional_id=self.transactional_ids[key],
            max_request_size=32 * 1024 * 1024,
            max_batch_size=BATCH_BYTES,
            partitioner=self.partitioner,
            **self.kafka.client_options(),
        )

    async def _renew(self, key: Any, old: AIOKafkaProducer) -> AIOKafkaProducer | None:
        """A new producer for the same transactional id: a new epoch, sequence numbers from 0
        (aiokafka never rewinds them after a refused batch). None if the broker is not reachable."""
        with contextlib.suppress(KafkaError):
            await old.stop()
        producer = self._producer(key)
        try:
            await producer.start()
        except KafkaError as exc:
            log.error("cannot renew the producer of %s: %s; trying again at the next commit", key, exc)
            with contextlib.suppress(KafkaError):
                await producer.stop()
            self.stale.add(key)
            return None
        self.stale.discard(key)
        return producer

    async def _commit(
        self, key: Any, task: PartitionTask, producer: AIOKafkaProducer, final: bool = False
    ) -> AIOKafkaProducer:
        """Write what the task has now in one transaction; returns the producer to use from now on
        (a new one after a refused batch or a failure)."""
        task.last_commit = time.monotonic()
        if key in self.stale:
            renewed = await self._renew(key, producer)
            if renewed is None:
                task.last_transaction = task.last_commit  # try again after commit_interval_s
                return producer
            producer = renewed
        lag = self.lag(task)
        caught_up = lag is None or lag <= self.idle_lag
        batch = task.step(caught_up and not final, time.time(), final)
        task.input_since = None
        offsets = task.commit_offsets()
        moved = any(task.committed.get(tp) != offset for tp, offset in offsets.items())
        if not batch.records and not moved and not final:
            return producer
        task.last_transaction = task.last_commit
        started = time.perf_counter()
        records = [*batch.records, *batch.state]
        state_ids = {id(r) for r in batch.state}
        alone: set[int] = set()
        replacements: set[int] = set()
        for _attempt in range(MAX_ATTEMPTS):
            try:
                refused = await self._transaction(producer, records, offsets, alone)
            except ProducerFenced:
                log.warning("fenced: another instance owns %s/%s now", task.tp.topic, task.tp.partition)
                self.tasks.pop(key, None)
                self.producers.pop(key, None)
                for tp in task.tps:
                    self.owner.pop(tp, None)
                return producer
            except KafkaError as exc:
                return await self._roll_back(key, task, producer, exc)
            if not refused:
                break
            renewed = await self._renew(key, producer)
            if renewed is None:
                return await self._roll_back(key, task, producer, refused[0][1])
            producer = renewed
            records = self._set_aside(task, records, refused, alone, replacements)
        else:
            error = KafkaError(f"batches still refused after {MAX_ATTEMPTS} transactions")
            return await self._roll_back(key, task, producer, error)
        task.committed.update(offsets)
        for callback in batch.after_commit:
            callback()
        if self.hooks.committed is not None:
            state_bytes = sum(len(r.value or b"") for r in records if id(r) in state_ids)
            self.hooks.committed(task, time.perf_counter() - started, state_bytes)
        return producer

    async def _transaction(
        self,
        producer: AIOKafkaProducer,
        records: Sequence[OutRecord],
        offsets: dict[TopicPartition, int],
        alone: set[int],
    ) -> list[tuple[list[OutRecord], KafkaError]]:
        """One transaction of ``records`` and ``offsets``: committed when the broker took every
        batch, else aborted, returning the refused batches (their records, and why).

        The offsets go only once the broker has taken the records, not while they are on their
        way (which would save a round trip): brokers since Kafka 3.6 ask the transaction
        coordinator whether a transactional produce belongs to an ongoing transaction (KIP-890),
        and while the coordinator is writing another change of that transaction (the
        ``AddOffsetsToTxn`` of ``send_offsets_to_transaction``) it answers CONCURRENT_TRANSACTIONS,
        which reaches aiokafka's produce version as NOT_ENOUGH_REPLICAS, retried after
        ``retry_backoff_ms`` (100 ms). In bench/fanout.py (the alerts lifecycle, 20 alerts/s) that
        made about 6% of the transactions 100-200 ms longer, and with them every partition's next
        poll.
        """
        try:
            async with producer.transaction():
                sent = await send_in_batches(producer, records, self.partitioner, alone)
                refused = await refusals(sent)
                if refused:
                    raise _Refused(refused)  # leaving the block with an error aborts
                if offsets:
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
        except _Refused as refusal:
            return refusal.batches
        return []

    def _set_aside(
        self,
        task: PartitionTask,
        records: list[OutRecord],
        refused: list[tuple[list[OutRecord], KafkaError]],
        alone: set[int],
        replacements: set[int],
    ) -> list[OutRecord]:
        """The records to write in the next try: each record of a refused batch of several goes
        in a batch of its own, and a record refused alone is replaced (or dropped).

        Records are told apart by identity (``id``): equal records may be written twice."""
        instead: dict[int, OutRecord | None] = {}
        for batch, error in refused:
            if isinstance(error, OutOfOrderSequenceNumber):
                continue  # refused for one refused before it: goes again as it was
            if len(batch) > 1:
                log.warning(
                    "the broker refused a batch of %d records (%s); writing them one by one",
                    len(batch),
                    error,
                )
                alone.update(id(r) for r in batch)
                continue
            record = batch[0]
            size = len(record.key or b"") + len(record.value or b"")
            log.error(
                "the broker refused a record for %s (%d bytes, key %r): %s; set aside",
                record.topic,
                size,
                (record.key or b"")[:100],
                error,
            )
            replacement = None
            if id(record) not in replacements and self.hooks.set_aside is not None:
                replacement = self.hooks.set_aside(record, error)
            if replacement is not None:
                replacements.add(id(replacement))
            instead[id(record)] = replacement
            if self.hooks.refused is not None:
                self.hooks.refused(task, record, error)
        kept: list[OutRecord] = []
        for record in records:
            if id(record) not in instead:
                kept.append(record)
            elif (replacement := instead[id(record)]) is not None:
                kept.append(replacement)
        return kept

    async def _roll_back(
        self, key: Any, task: PartitionTask, producer: AIOKafkaProducer, error: BaseException
    ) -> AIOKafkaProducer:
        """After a failed transaction: reload the last committed state and input offsets; the
        producer is replaced before the next one."""
        log.error("transaction for %s/%s failed (%s); rolling back", task.tp.topic, task.tp.partition, error)
        if self.hooks.aborted is not None and isinstance(error, Exception):
            self.hooks.aborted(task, error)
        self.stale.add(key)
        # With commit_on_input the run loop polls meanwhile: nothing of these partitions may reach
        # the task between its restore and the rewind (it would be consumed twice).
        consumer = self._consumer()
        consumer.pause(*task.tps)
        try:
            await self._load(task)
        finally:
            if self.owner.get(task.tp) is task:
                consumer.resume(*task.tps)
        return producer


class _Refused(Exception):
    def __init__(self, batches: list[tuple[list[OutRecord], KafkaError]]) -> None:
        super().__init__(f"{len(batches)} record batches refused")
        self.batches = batches


MAX_ATTEMPTS = 8
"""Transactions of one commit after refused batches (each try isolates or sets aside more)."""
RECORD_REFUSED = (
    CorruptRecordException,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    OutOfOrderSequenceNumber,
    UnknownError,
)
"""Produce errors that refuse the records of a batch rather than the transaction (an unknown
broker error, such as INVALID_RECORD for a record without a key on a compacted topic, counts too)."""


async def refusals(
    sent: Sequence[tuple[list[OutRecord], asyncio.Future[Any]]],
) -> list[tuple[list[OutRecord], KafkaError]]:
    """Wait for every batch's delivery: the refused ones with their error. An error that is not
    about the records (authorisation, a fenced producer) is raised."""
    outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
    refused = []
    for (records, _), outcome in zip(sent, outcomes, strict=True):
        if not isinstance(outcome, BaseException):
            continue
        if isinstance(outcome, RECORD_REFUSED):
            refused.append((records, outcome))
        else:
            raise outcome
    return refused


async def read_latest(
    kafka: KafkaSettings, topic: str, partition: int, keys: set[bytes] | None = None
) -> dict[bytes, bytes | None]:
    """The latest value of every key (or of ``keys``) in one partition of a compacted topic.

    Reads from the beginning to the current end, read-committed; a tombstone maps to None.
    The offsets are asked while the partition is paused: a fetch in flight on an empty partition
    waits on the broker for data (``fetch_max_wait_ms``), and the broker answers the offsets
    request on that connection only after it (0.5 s per empty partition).
    """
    found = (await topic_partitions(kafka, [topic])).get(topic, [])
    if partition not in found:
        return {}
    tp = TopicPartition(topic, partition)
    reader = AIOKafkaConsumer(
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=64 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **kafka.client_options(),
    )
    await reader.start()
    latest: dict[bytes, bytes | None] = {}
    try:
        reader.assign([tp])  # (assigning fetches the topic's metadata at once)
        reader.pause(tp)
        end = (await reader.end_offsets([tp]))[tp]
        if end <= (await reader.beginning_offsets([tp]))[tp]:
            return latest
        await reader.seek_to_beginning(tp)
        reader.resume(tp)
        while await reader.position(tp) < end:
            batch = await reader.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.key is not None and (keys is None or record.key in keys):
                    latest[record.key] = record.value
    finally:
        await reader.stop()
    return latest


FETCH_PARTITION_BYTES = 8 * 1024 * 1024
"""How much one fetch takes of one input partition (aiokafka's default: 1 MiB). In a backlog a
poll hands over what the fetches brought, so with 1 MiB a commit covered ~2,000 sensor events
(~0.5 kB each) however large ``max_batch``, and wrote its state (the correlator: a changelog
record per changed track, every track in a backlog) once per ~2,000 events. 8 MiB lets a poll
take ``max_batch`` records (~15,000 sensor events at most)."""
BATCH_BYTES = 512 * 1024
"""Record batches of the transactional producers: well under the brokers' default
``max.message.bytes`` (1 MiB) of the output topics; a larger single record (a snapshot) still
goes, alone in its batch."""
ALONE_BYTES = 64 * 1024
"""A record at least this large goes in a batch of its own (see :func:`send_in_batches`)."""


async def send_in_batches(
    producer: AIOKafkaProducer,
    records: Sequence[OutRecord],
    partitioner: KeyPartitioner,
    alone: Container[int] = (),
) -> list[tuple[list[OutRecord], asyncio.Future[Any]]]:
    """Hand ``records`` to the producer (inside its transaction) as record batches, one open
    batch per partition; returns each batch's records and its delivery.

    A record goes to its ``partition`` if it names one (a partition the topic has).

    The same records land in the same partitions and, within each partition, in the same order
    as with one ``send`` after another, at a fraction of the cost (aiokafka's ``send`` is ~20 us
    a record: a coroutine, a future and a metadata check per record). The partition is the one
    the producer's own ``partitioner`` gives (for a record without a key, a random available
    one, as ``send`` does). A partition's records must all go this way within a transaction:
    aiokafka numbers the sequences of batches wrongly when ``send`` and ``send_batch`` are mixed
    on one partition (the broker refuses them as out of order).

    The broker refuses a whole batch when one of its records is refused (too large for the
    topic, no key on a compacted topic), and the batches after it in that partition as out of
    order; the caller must not commit then (see :meth:`Processor._commit`). A record of
    ``ALONE_BYTES`` or more, and every record whose ``id`` is in ``alone``, goes in a batch of its
    own, so that a refusal names it alone.
    """
    cluster = producer.client.cluster
    partitions: dict[str, tuple[list[int], list[int]]] = {}
    open_batches: dict[tuple[str, int], tuple[Any, list[OutRecord]]] = {}
    sent: list[tuple[list[OutRecord], asyncio.Future[Any]]] = []

    async def hand_over(topic: str, partition: int) -> None:
        builder, inside = open_batches.pop((topic, partition))
        builder.close()
        sent.append((inside, await producer.send_batch(builder, topic, partition=partition)))

    for record in records:
        known = partitions.get(record.topic)
        if known is None:
            every = sorted(await producer.partitions_for(record.topic))
            available = list(cluster.available_partitions_for_topic(record.topic))
            known = partitions[record.topic] = (every, available)
        partition = record.partition if record.partition is not None else partitioner(record.key, *known)
        where = (record.topic, partition)
        single = id(record) in alone or len(record.key or b"") + len(record.value or b"") >= ALONE_BYTES
        if single and where in open_batches:
            await hand_over(*where)
        entry = open_batches.get(where)
        if entry is None:
            entry = open_batches[where] = (producer.create_batch(), [])
        headers = list(record.headers)
        if entry[0].append(key=record.key, value=record.value, timestamp=None, headers=headers) is None:
            await hand_over(*where)
            entry = open_batches[where] = (producer.create_batch(), [])
            entry[0].append(key=record.key, value=record.value, timestamp=None, headers=headers)
        entry[1].append(record)
        if single:
            await hand_over(*where)
    for where in list(open_batches):
        await hand_over(*where)
    return sent


class KeyPartitioner:
    """Kafka's default partitioner (aiokafka's ``DefaultPartitioner``: murmur2 of the key, modulo
    the partition count; a random partition for a record without a key), remembering each key's
    hash.

    aiokafka's murmur2 is pure Python, a few microseconds a key: with a track message per track
    and second it was ~5 % of a busy correlator. Its outputs repeat the same keys (track ids,
    alert ids, the snapshot's partition key), so the hashes are kept (up to ``limit`` keys, then
    forgotten all at once). Partitions are exactly those of the default partitioner.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.hashes: dict[bytes, int] = {}
        self.fallback = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self.fallback(key, all_partitions, available))
        hashed = self.hashes.get(key)
        if hashed is None:
            if len(self.hashes) >= self.limit:
                self.hashes.clear()
            hashed = self.hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner: murmur2 of the key, modulo the partition count."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def tombstone(topic: str, key: str) -> OutRecord:
    return OutRecord(topic, key.encode(), None)


def json_record(topic: str, key: str, model: Any) -> OutRecord:
    """A pydantic model as a record (JSON by alias)."""
    return OutRecord(topic, key.encode(), model.model_dump_json().encode())
