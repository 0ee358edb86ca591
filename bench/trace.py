"""Where the end-to-end time goes: follow a bench run's topics and time each hop of a track update.

    .venv/bin/python bench/trace.py --label e2elowlatency --seconds 60 &
    .venv/bin/python bench/e2e.py --settings low-latency --no-write

Started before bench/e2e.py, it waits for the run's fresh ``tracks`` topic (prefix ``bench<label>``),
then reads ``sensor.events`` and ``tracks`` (read uncommitted, and read committed) and, for every
track message whose ``last_update`` is the sensor time T of a detection it saw, prints the
percentiles of, from T:

- ``ingest``: the detection's record timestamp (ingest's producer; includes the gateway batching),
- ``events seen``: when this process fetched the detection (the broker has it),
- ``produced``: the track record's timestamp (the correlator appending it to its transaction),
- ``uncommitted``: when this process fetched the track record read-uncommitted,
- ``committed``: ... read-committed (the transaction's commit is done: what the alerts service
  can see).

Also: transactions per second on ``tracks`` partitions as seen by gaps in the uncommitted stream is
not attempted; use the correlator's /metrics (commit seconds, state bytes) for that.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._pipeline import _seconds


async def topics(bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


async def follow(bootstrap: str, topic: str, isolation: str, until: float, sink: Any) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        while time.time() < until:
            batches = await consumer.getmany(timeout_ms=50, max_records=20_000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    sink(record, now)
    finally:
        await consumer.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9292")
    parser.add_argument("--label", default="e2elowlatency")
    parser.add_argument("--skip", type=float, default=40.0, help="seconds after the topic appears to ignore")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured after --skip")
    args = parser.parse_args()
    before = await topics(args.bootstrap)
    prefix = None
    while prefix is None:
        await asyncio.sleep(0.5)
        for name in (await topics(args.bootstrap)) - before:
            if name.startswith(f"bench{args.label}") and name.endswith(".tracks"):
                prefix = name[: -len("tracks")]
    print(f"following {prefix}*", flush=True)
    start = time.time() + args.skip
    until = start + args.seconds
    events: dict[float, tuple[float, float]] = {}
    """sensor time -> (ingest record timestamp, seen)"""
    produced: dict[tuple[str, float], tuple[float, float]] = {}
    """(track, last_update) -> (record timestamp, seen uncommitted)"""
    rows: list[tuple[float, float, float, float, float, float]] = []

    def on_event(record: Any, now: float) -> None:
        value = orjson.loads(record.value)
        if "event" in value:  # not a gateway's promise (GatewayProgressRecord)
            events.setdefault(_seconds(value["event"]["time"]), (record.timestamp / 1000, now))

    def on_track_uncommitted(record: Any, now: float) -> None:
        if record.value is None:
            return
        value = orjson.loads(record.value)
        produced.setdefault(
            (value["track_id"], _seconds(value["last_update"])), (record.timestamp / 1000, now)
        )

    def on_track_committed(record: Any, now: float) -> None:
        if record.value is None or now < start:
            return
        value = orjson.loads(record.value)
        update = _seconds(value["last_update"])
        event = events.get(update)
        made = produced.get((value["track_id"], update))
        if event is None or made is None:
            return
        rows.append((update, event[0], event[1], made[0], made[1], now))

    await asyncio.gather(
        follow(args.bootstrap, f"{prefix}sensor.events", "read_uncommitted", until, on_event),
        follow(args.bootstrap, f"{prefix}tracks", "read_uncommitted", until, on_track_uncommitted),
        follow(args.bootstrap, f"{prefix}tracks", "read_committed", until, on_track_committed),
    )
    table = np.array(rows)
    if not len(table):
        print("no track message matched")
        return 1
    names = ["ingest", "events seen", "produced", "uncommitted", "committed"]
    print(f"{len(table):,} track messages matched; ms from the detection's sensor time (p50 / p90 / p99)")
    for i, name in enumerate(names, start=1):
        values = (table[:, i] - table[:, 0]) * 1000
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        print(f"  {name:12} {p50:8.0f} {p90:8.0f} {p99:8.0f}")
    steps = [("ingest→seen", 1, 2), ("seen→produced", 2, 3), ("produced→committed", 3, 5)]
    print("hops, ms (p50 / p90 / p99)")
    for name, a, b in steps:
        values = (table[:, b] - table[:, a]) * 1000
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        print(f"  {name:20} {p50:8.0f} {p90:8.0f} {p99:8.0f}")
    total = table[:, 5] - table[:, 0]
    tail = table[total >= np.percentile(total, 99)]
    print(f"the slowest 1% ({len(tail):,} messages): median of each hop, ms")
    for name, a, b in [("sensor→ingest", 0, 1), *steps]:
        print(f"  {name:20} {np.median(tail[:, b] - tail[:, a]) * 1000:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
