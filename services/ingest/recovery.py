"""Rebuild the duplicate index from Kafka at start-up: the log is the database.

Reads the ``lindero-event-id`` and ``lindero-digest`` headers of every record written in the
last ``window_s`` seconds (found by timestamp), so a gateway retry that arrives after an ingest
restart is still recognised as a duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.core.kafka import KafkaSettings, topic_partitions
from services.ingest.domain.admission import HEADER_DIGEST, HEADER_EVENT_ID
from services.ingest.domain.dedup import DedupIndex

log = logging.getLogger(__name__)


async def rebuild(kafka: KafkaSettings, topics: Iterable[str], index: DedupIndex, now_s: float) -> int:
    """Fill ``index`` from the records of the last ``index.window_s`` seconds; returns the count."""
    found = await topic_partitions(kafka, topics)
    partitions = [TopicPartition(topic, p) for topic, numbers in found.items() for p in numbers]
    if not partitions:
        return 0
    consumer = AIOKafkaConsumer(
        client_id=f"{kafka.client_id}-ingest-recovery",
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **kafka.client_options(),
    )
    await consumer.start()
    started = time.monotonic()
    count = 0
    try:
        consumer.assign(partitions)
        since_ms = int((now_s - index.window_s) * 1000)
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        ends = await consumer.end_offsets(partitions)
        remaining = {}
        for tp in partitions:
            start = starts.get(tp)
            if start is None or start.offset >= ends[tp]:
                continue
            consumer.seek(tp, start.offset)
            remaining[tp] = ends[tp]
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    headers = dict(record.headers or ())
                    event_id = headers.get(HEADER_EVENT_ID)
                    digest = headers.get(HEADER_DIGEST)
                    if event_id is not None and digest is not None:
                        index.remember(event_id, int.from_bytes(digest, "big"), record.timestamp / 1000)
                        count += 1
                if records and records[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    remaining.pop(tp)
    finally:
        await consumer.stop()
    log.info(
        "rebuilt the duplicate index: %s event ids in %.2f s",
        count,
        time.monotonic() - started,
        extra={"window_s": index.window_s},
    )
    return count
