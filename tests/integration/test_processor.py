"""The transactional processor's producer side against a real broker."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import ALERTS, TRACKS
from services.core.kafka import KafkaSettings, ensure_topics, topic_partitions
from services.core.processor import KeyPartitioner, OutRecord, partition_of, send_in_batches
from tests.integration.conftest import KafkaFactory


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
    """Write ``records`` with send_in_batches in one transaction; every partition's committed
    records, in order."""
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
            await send_in_batches(producer, records, partitioner)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(isolation_level="read_committed", **kafka.client_options())
    await consumer.start()
    found: Written = {}
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(kafka.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                for message in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    found.setdefault((tp.topic, tp.partition), []).append(
                        (message.key, message.value, list(message.headers))
                    )
    finally:
        await consumer.stop()
    return found


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


async def test_a_large_record_the_broker_refuses_takes_no_record_before_it(make_kafka: KafkaFactory) -> None:
    """A record too large for its topic goes alone: the records before it in its partition stay."""
    kafka = make_kafka(partitions=1)
    tracks = kafka.topics(TRACKS)
    records = [OutRecord(tracks, f"key-{n}".encode(), f"#{n}".encode()) for n in range(20)]
    records.insert(10, OutRecord(tracks, b"huge", b"x" * 1_100_000))
    found = await _written(kafka, records)
    values = [value for _, value, _ in found.get((tracks, 0), [])]
    assert values[:10] == [f"#{n}".encode() for n in range(10)]
    assert all(len(value or b"") < 100 for value in values)
