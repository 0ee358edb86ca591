"""The pinned Kafka the project provisions works with aiokafka's idempotent and transactional producers."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.core import localkafka
from services.core.kafka import KafkaSettings
from tests.integration.conftest import KafkaFactory, read_topic


async def create_topic(kafka: KafkaSettings, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def test_cluster_reports_kraft_controller(kafka_bootstrap: str) -> None:
    """The broker answers metadata and has an active KRaft controller."""
    assert await localkafka.cluster_answers(kafka_bootstrap, 1)


async def test_idempotent_producer_writes_each_record_once_in_order(make_kafka: KafkaFactory) -> None:
    """acks=all + idempotence: 500 sends land exactly once, in order, on one partition."""
    kafka = make_kafka()
    topic = f"{kafka.topic_prefix}idempotent"
    await create_topic(kafka, topic)
    producer = AIOKafkaProducer(enable_idempotence=True, acks="all", **kafka.client_options())
    await producer.start()
    try:
        futures = [await producer.send(topic, str(i).encode(), key=b"k") for i in range(500)]
        offsets = [(await future).offset for future in futures]
    finally:
        await producer.stop()
    assert offsets == list(range(500))
    records = await read_topic(kafka, topic)
    assert [int(r.value) for r in records] == list(range(500))


async def test_transactional_consume_transform_produce(make_kafka: KafkaFactory) -> None:
    """A committed transaction publishes output and offsets together; an aborted one publishes neither."""
    kafka = make_kafka()
    source, sink, group = f"{kafka.topic_prefix}in", f"{kafka.topic_prefix}out", f"g-{uuid.uuid4().hex}"
    await create_topic(kafka, source)
    await create_topic(kafka, sink)
    plain = AIOKafkaProducer(acks="all", enable_idempotence=True, **kafka.client_options())
    await plain.start()
    for i in range(4):
        await plain.send_and_wait(source, f"m{i}".encode())
    await plain.stop()

    consumer = AIOKafkaConsumer(
        source,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **kafka.client_options(),
    )
    producer = AIOKafkaProducer(transactional_id=f"tx-{uuid.uuid4().hex}", **kafka.client_options())
    await consumer.start()
    await producer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
        records = [r for chunk in batch.values() for r in chunk]
        while len(records) < 4:
            batch = await consumer.getmany(timeout_ms=5_000)
            records += [r for chunk in batch.values() for r in chunk]
        tp = TopicPartition(source, 0)
        async with producer.transaction():
            for record in records[:2]:
                await producer.send(sink, record.value.upper())
            await producer.send_offsets_to_transaction({tp: records[1].offset + 1}, group)
        try:
            async with producer.transaction():
                for record in records[2:]:
                    await producer.send(sink, record.value.upper())
                await producer.send_offsets_to_transaction({tp: records[3].offset + 1}, group)
                raise RuntimeError("simulated crash before commit")
        except RuntimeError:
            pass
        committed = await consumer.committed(tp)
    finally:
        await producer.stop()
        await consumer.stop()

    assert committed == 2
    assert [r.value for r in await read_topic(kafka, sink)] == [b"M0", b"M1"]
    uncommitted = AIOKafkaConsumer(isolation_level="read_uncommitted", **kafka.client_options())
    await uncommitted.start()
    try:
        sink_tp = TopicPartition(sink, 0)
        uncommitted.assign([sink_tp])
        await uncommitted.seek_to_beginning(sink_tp)
        seen = await uncommitted.getmany(sink_tp, timeout_ms=5_000)
    finally:
        await uncommitted.stop()
    assert b"M2" in [r.value for r in seen.get(sink_tp, [])], (
        "the aborted records exist, but only uncommitted"
    )
