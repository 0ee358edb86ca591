"""The transactional processor's producer side against a real broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.topics import ALERTS, CORRELATOR_STATE, SENSOR_EVENTS, TRACKS, Topic
from services.core.kafka import KafkaSettings, ensure_topics, topic_partitions
from services.core.processor import (
    Batch,
    KeyPartitioner,
    OutRecord,
    PartitionTask,
    Processor,
    ProcessorHooks,
    partition_of,
    refusals,
    send_in_batches,
)
from tests.integration.conftest import KafkaFactory, wait_until


def _records(kafka: KafkaSettings) -> list[OutRecord]:
    """Keyed records on two topics (several per key, numbered), a few without a key (on alerts:
    tracks is compacted), two large."""
    names = kafka.topics
    records = []
    for n in range(400):
        key = None if n % 97 == 5 else f"key-{n % 37}".encode()
        topic = names(TRACKS) if n % 3 and key is not None else names(ALERTS)
        value = b"x" * (20_000 if n == 200 else 70_000 if n == 201 else 100) + f"#{n}".encode()
        headers = (("n", str(n).encode()),) if n % 2 else ()
        records.append(OutRecord(topic, key, value, headers))
    return records


Written = dict[tuple[str, int], list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]]
"""(topic, partition) -> its records (key, value, headers), in order."""


async def _written(kafka: KafkaSettings, records: list[OutRecord]) -> Written:
    """Write ``records`` with send_in_batches in one transaction (every batch taken); every
    partition's committed records, in order."""
    await ensure_topics(kafka, [TRACKS, ALERTS])
    topics = sorted({r.topic for r in records})
    await topic_partitions(kafka, topics)
    partitioner = KeyPartitioner()
    producer = AIOKafkaProducer(
        transactional_id=f"test-{uuid.uuid4().hex}",
        max_batch_size=4_096,
        max_request_size=32 * 1024 * 1024,
        partitioner=partitioner,
        **kafka.client_options(),
    )
    await producer.start()
    try:
        async with producer.transaction():
            assert await refusals(await send_in_batches(producer, records, partitioner)) == []
    finally:
        await producer.stop()
    return await _read(kafka, topics)


async def _read(kafka: KafkaSettings, topics: list[str]) -> Written:
    """Every partition's committed records, in order.

    A transaction's commit markers reach its partitions just after the commit returns: until
    then a read-committed consumer stops short. So this reads until each partition's position is
    past its high watermark (every record written, markers included), for up to 30 s."""
    tps = [TopicPartition(t, p) for t in topics for p in range(kafka.partitions)]
    consumer = AIOKafkaConsumer(isolation_level="read_committed", **kafka.client_options())
    await consumer.start()
    found: Written = {}
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 30
        ends = await _high_watermarks(kafka, tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp] and time.monotonic() < deadline:
                for message in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                    found.setdefault((tp.topic, tp.partition), []).append(
                        (message.key, message.value, list(message.headers))
                    )
    finally:
        await consumer.stop()
    return found


async def _high_watermarks(kafka: KafkaSettings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(isolation_level="read_uncommitted", **kafka.client_options())
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def test_batches_write_what_one_send_after_another_writes(make_kafka: KafkaFactory) -> None:
    """send_in_batches puts every keyed record where the default partitioner puts it, in order
    within each partition, and every record without a key somewhere."""
    kafka = make_kafka()
    records = _records(kafka)
    written = await _written(kafka, records)
    expected: Written = {}
    for r in records:
        if r.key is not None:
            where = (r.topic, partition_of(r.key, kafka.partitions))
            expected.setdefault(where, []).append((r.key, r.value, list(r.headers)))
    keyed = {where: [m for m in messages if m[0] is not None] for where, messages in written.items()}
    assert {where: messages for where, messages in keyed.items() if messages} == expected
    unkeyed = sorted(v for messages in written.values() for k, v, _ in messages if k is None)
    assert unkeyed == sorted(r.value for r in records if r.key is None)


class Echo(PartitionTask):
    """Writes every input record again to ``out`` (an input ``huge:*`` as a record too large for
    it), with a small state record per commit."""

    def __init__(self, tps: list[TopicPartition], out: str, state: str) -> None:
        super().__init__(tps)
        self.out = out
        self.state = state
        self.pending: list[OutRecord] = []

    def consume(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        for r in records:
            value = r.value or b""
            self.pending.append(
                OutRecord(self.out, r.key, b"x" * 1_100_000 if value.startswith(b"huge") else value)
            )

    def step(self, caught_up: bool, wall_s: float, final: bool) -> Batch:
        records, self.pending = self.pending, []
        return Batch(records=records, state=[OutRecord(self.state, b"p0", str(self.position).encode())])


async def _echo(
    kafka: KafkaSettings, waves: list[list[bytes]], out: Topic, **hooks: Any
) -> tuple[list[bytes], list[bytes]]:
    """Run a Processor of Echo tasks over ``waves`` of input values (each wave produced once the
    one before is committed): the committed output values and state values,
    in order."""
    names = kafka.topics
    await ensure_topics(kafka, [SENSOR_EVENTS, CORRELATOR_STATE, out])
    source, target, state = names(SENSOR_EVENTS), names(out), names(CORRELATOR_STATE)
    processor = Processor(
        kafka,
        f"echo-{uuid.uuid4().hex[:6]}",
        [source],
        lambda tps: Echo(tps, target, state),
        name="echo",
        commit_interval_s=0.05,
        hooks=ProcessorHooks(**hooks),
    )
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    await processor.start()
    stop = asyncio.Event()
    running = asyncio.create_task(processor.run(stop))
    tp = TopicPartition(source, 0)
    sent = 0
    try:
        for wave in waves:
            for n, value in enumerate(wave):
                await producer.send_and_wait(source, value, key=f"k{n}".encode())
            sent += len(wave)

            async def committed(total: int = sent) -> bool:
                task = processor.owner.get(tp)
                return task is not None and task.committed.get(tp) == total

            await wait_until(committed, 60, f"the processor to commit {sent} records")
    finally:
        stop.set()
        await running
        await processor.stop()
        await producer.stop()
    found = await _read(kafka, [target, state])
    return (
        [value or b"" for _, value, _ in found.get((target, 0), [])],
        [value or b"" for _, value, _ in found.get((state, 0), [])],
    )


async def test_a_refused_record_is_set_aside_and_no_other_record_is_lost(make_kafka: KafkaFactory) -> None:
    """A record the broker refuses (too large for its topic) is replaced by what ``set_aside``
    makes of it; every record after it in its partition, in this transaction and the next ones,
    is committed in order (before, aiokafka committed without them: out of order)."""
    kafka = make_kafka(partitions=1)
    waves = [
        [b"#0", b"#1", b"huge-a", b"#3", b"#4"],
        [b"#5", b"#6", b"#7"],
        [b"huge-b", b"#9"],
    ]
    refused: list[tuple[bytes | None, str]] = []
    values, states = await _echo(
        kafka,
        waves,
        TRACKS,
        set_aside=lambda record, error: OutRecord(record.topic, record.key, b"set aside"),
        refused=lambda task, record, error: refused.append((record.key, type(error).__name__)),
    )
    assert values == [b"#0", b"#1", b"set aside", b"#3", b"#4", b"#5", b"#6", b"#7", b"set aside", b"#9"]
    assert refused == [(b"k2", "MessageSizeTooLargeError"), (b"k0", "MessageSizeTooLargeError")]
    assert states[-1] == b"10"  # the state of the last commit, which covered every input


async def test_a_refused_batch_is_written_again_one_record_a_batch(make_kafka: KafkaFactory) -> None:
    """A batch larger than its topic allows, of records that fit alone, is written again record
    by record: nothing set aside, nothing lost, nothing twice."""
    kafka = make_kafka(partitions=1)
    small = Topic(
        name="small-batches",
        model=None,
        key="any",
        cleanup="delete",
        retention_ms=None,
        doc="a topic that takes at most ~3 kB a batch",
        configs=(("max.message.bytes", "3000"),),
    )
    wave = [f"#{n}:".encode() + b"x" * 900 for n in range(12)]
    refused: list[bytes | None] = []
    values, _ = await _echo(
        kafka, [wave], small, refused=lambda task, record, error: refused.append(record.key)
    )
    assert values == wave
    assert refused == []


class Counting(PartitionTask):
    """Notes how many records each poll handed over; writes nothing but its offsets."""

    def __init__(self, tps: list[TopicPartition]) -> None:
        super().__init__(tps)
        self.sizes: list[int] = []

    def consume(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        self.sizes.append(len(records))

    def step(self, caught_up: bool, wall_s: float, final: bool) -> Batch:
        return Batch()


async def test_a_backlog_is_taken_max_batch_records_a_poll(make_kafka: KafkaFactory) -> None:
    """3 MB waiting in one partition (more than aiokafka's default fetch of 1 MiB a partition):
    a poll takes ``max_batch`` records of it, so a backlog is committed in large steps."""
    kafka = make_kafka(partitions=1)
    await ensure_topics(kafka, [SENSOR_EVENTS])
    source = kafka.topics(SENSOR_EVENTS)
    await topic_partitions(kafka, [source])
    producer = AIOKafkaProducer(linger_ms=20, max_batch_size=256 * 1024, **kafka.client_options())
    await producer.start()
    try:
        sent = [await producer.send(source, b"x" * 1_000, key=b"k") for _ in range(3_000)]
        await producer.flush()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    tasks: list[Counting] = []

    def task(tps: list[TopicPartition]) -> Counting:
        tasks.append(Counting(tps))
        return tasks[-1]

    processor = Processor(
        kafka, f"count-{uuid.uuid4().hex[:6]}", [source], task, name="count", max_batch=2_500
    )
    await processor.start()
    stop = asyncio.Event()
    running = asyncio.create_task(processor.run(stop))
    tp = TopicPartition(source, 0)
    try:

        async def committed() -> bool:
            return bool(tasks) and tasks[-1].committed.get(tp) == 3_000

        await wait_until(committed, 60, "the processor to commit 3,000 records")
    finally:
        stop.set()
        await running
        await processor.stop()
    assert max(tasks[-1].sizes) == 2_500
