"""A correlator SIGKILLed mid-stream and restarted loses no alert, repeats none and resumes its tracks;
two correlators in one group, one SIGKILLed: its region moves to the other, still exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.core.kafka import KafkaSettings
from services.core.localkafka import free_port
from services.core.processor import partition_of
from services.correlator.domain.region import RegionContext
from tests.conftest import DEMO_CONFIG
from tests.integration.conftest import KafkaFactory, wait_until
from tests.integration.correlator_fixtures import (
    Writer,
    alerts_in,
    radar_events,
    running_correlator,
    tracks_in,
)

pytestmark = pytest.mark.kafka

CHUNK_S = 120
CHUNKS = 8
KILL_AFTER = 3
"""Chunks written before the group test kills a correlator (person 0 and 1 have crossed)."""


def crossing(
    context: RegionContext, fraction: float, start_s: float, home: str = "CO"
) -> list[tuple[float, float, float]]:
    """A person walking straight across the border at ``fraction`` of its length, out of ``home``, 1.3 m/s."""
    border = context.borders[0].line
    here = border.interpolate(fraction, normalized=True)
    ahead = border.interpolate(min(1.0, fraction + 0.01), normalized=True)
    tangent = np.array([ahead.x - here.x, ahead.y - here.y])
    normal = np.array([-tangent[1], tangent[0]]) / np.linalg.norm(tangent)
    probe = np.array([here.x, here.y]) + 200.0 * normal
    if context.jurisdiction(probe[:1], probe[1:])[0] != home:
        normal = -normal  # make the normal point into the home country
    start = np.array([here.x, here.y]) + 260.0 * normal
    return [(start_s + t, *(start - 1.3 * t * normal)) for t in range(0, 420, 2)]


def scenario(
    context: RegionContext, radar: str = "co-cuc-rdr-1", home: str = "CO", people: int = 8
) -> list[dict[str, Any]]:
    """People crossing the border one after another, seen by ``radar`` (8 people: 16 minutes of events)."""
    events: list[dict[str, Any]] = []
    for person in range(people):
        path = crossing(context, 0.25 + 0.05 * person, person * 110.0, home)
        events.extend(radar_events(context, radar, [(t, float(e), float(n)) for t, e, n in path]))
    events.sort(key=lambda e: e["time"])
    return events


def chunks(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = [[] for _ in range(CHUNKS + 4)]
    t0 = dt.datetime.fromisoformat(events[0]["time"])
    for event in events:
        index = int((dt.datetime.fromisoformat(event["time"]) - t0).total_seconds() // CHUNK_S)
        out[min(index, len(out) - 1)].append(event)
    return [c for c in out if c]


def start_correlator(kafka: KafkaSettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    """A correlator process (``python -m services.correlator``) on ``kafka``, its health on ``port``."""
    env = {
        **os.environ,
        "LINDERO_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "LINDERO_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "LINDERO_KAFKA_PARTITIONS": str(kafka.partitions),
        "LINDERO_CONFIG": str(DEMO_CONFIG),
        "LINDERO_CORRELATOR_PORT": str(port),
        "LINDERO_CORRELATOR_COMMIT_INTERVAL_S": "0.1",
        "LINDERO_CORRELATOR_LOG_LEVEL": os.environ.get("LINDERO_TEST_SERVICE_LOG_LEVEL", "INFO"),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.correlator"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def owned(port: int) -> set[str]:
    """The partitions a correlator process says it owns (``sensor.events-0``...), empty when it is not up."""
    try:
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)).json()
    except (httpx.HTTPError, ValueError):
        return set()
    return set(body.get("partitions", []))


async def owns_partitions(port: int) -> bool:
    return any(p.startswith("sensor.events") for p in await owned(port))


@pytest.mark.timeout(240)
async def test_sigkill_and_restart_is_exactly_once(
    make_kafka: KafkaFactory, demo_config: LinderoConfig, tmp_path: Path
) -> None:
    """Kill -9 mid-stream: after a restart the alerts equal a clean run's, none twice, same tracks."""
    context = RegionContext.build(demo_config, Geography.load(demo_config.geography_path), "co-ve-cucuta")
    parts = chunks(scenario(context))

    reference = make_kafka()
    async with running_correlator(reference, demo_config), Writer(reference, demo_config) as writer:
        for part in parts:
            await writer.write(part)
            await asyncio.sleep(0.3)

        async def all_crossed() -> bool:
            return (
                len({a["alert_id"] for a in await alerts_in(reference) if a["kind"] == "border_crossing"})
                >= 8
            )

        await wait_until(all_crossed, 90, "the reference run's eight crossings")
        await asyncio.sleep(1.0)
    expected = {a["alert_id"]: a for a in await alerts_in(reference)}

    kafka = make_kafka()
    port = free_port()
    log = tmp_path / "correlator.log"
    process = start_correlator(kafka, port, log)
    try:
        async with Writer(kafka, demo_config) as writer:
            await wait_until(lambda: owns_partitions(port), 60, "the correlator to own its partitions")
            killed_at = None
            for index, part in enumerate(parts):
                await writer.write(part)
                await asyncio.sleep(0.3)
                if killed_at is None and index >= 3 and await alerts_in(kafka):
                    process.send_signal(signal.SIGKILL)
                    process.wait(10)
                    killed_at = index
                    process = start_correlator(kafka, port, log)
            assert killed_at is not None, "the correlator was never killed mid-stream"
            await wait_until(
                lambda: owns_partitions(port), 60, "the restarted correlator to own its partitions"
            )

            async def caught_up() -> bool:
                found = {a["alert_id"] for a in await alerts_in(kafka)}
                return set(expected) <= found

            await wait_until(caught_up, 90, "the restarted correlator to raise every expected alert")
            await asyncio.sleep(1.5)
    finally:
        process.terminate()
        process.wait(30)

    alerts = await alerts_in(kafka)
    revisions = Counter((a["alert_id"], a["revision"]) for a in alerts)
    assert max(revisions.values()) == 1, "an alert revision was published twice"
    got = {a["alert_id"]: a for a in alerts}
    assert set(got) == set(expected), "alerts lost or invented across the crash"
    for alert_id, alert in got.items():
        assert alert["track_ids"] == expected[alert_id]["track_ids"], (
            "the restarted correlator did not resume its tracks"
        )
        assert alert["details"].get("direction") == expected[alert_id]["details"].get("direction")
    crossing_tracks = {a["track_ids"][0] for a in alerts if a["kind"] == "border_crossing"}
    tracks = await tracks_in(kafka)
    numbers = sorted({int(track_id.rsplit("T", 1)[1]) for track_id, _ in tracks})
    assert crossing_tracks <= {track_id for track_id, _ in tracks}
    assert numbers == sorted({int(t.rsplit("T", 1)[1]) for t, _ in await tracks_in(reference)})
    assert "Traceback" not in log.read_text(errors="replace")


@pytest.mark.timeout(240)
async def test_two_correlators_in_a_group_one_killed_hands_its_region_over(
    make_kafka: KafkaFactory, demo_config: LinderoConfig, tmp_path: Path
) -> None:
    """Two instances, a region each; one kill -9ed: the other takes its region, alerts equal a clean run's."""
    geography = Geography.load(demo_config.geography_path)
    regions = {
        "co-ve-cucuta": ("co-cuc-rdr-1", "CO"),
        "mx-gt-tapachula": ("mx-tap-rdr-1", "MX"),
    }
    people = 3
    events: list[dict[str, Any]] = []
    for region, (radar, home) in regions.items():
        events.extend(scenario(RegionContext.build(demo_config, geography, region), radar, home, people))
    events.sort(key=lambda e: e["time"])
    parts = chunks(events)

    def crossings(alerts: list[dict[str, Any]], region: str) -> set[str]:
        return {a["alert_id"] for a in alerts if a["kind"] == "border_crossing" and a["region"] == region}

    # Two partitions: with the demo's region ids the regions hash to different ones (checked below).
    reference = make_kafka(partitions=2)
    async with running_correlator(reference, demo_config), Writer(reference, demo_config) as writer:
        for part in parts:
            await writer.write(part)
            await asyncio.sleep(0.3)

        async def all_crossed() -> bool:
            alerts = await alerts_in(reference)
            return all(len(crossings(alerts, region)) >= people for region in regions)

        await wait_until(all_crossed, 90, "the reference run's crossings in both regions")
        await asyncio.sleep(1.0)
    expected = {a["alert_id"]: a for a in await alerts_in(reference)}
    expected_revisions = {(a["alert_id"], a["revision"]) for a in await alerts_in(reference)}

    kafka = make_kafka(partitions=2)
    ports = [free_port(), free_port()]
    log = tmp_path / "correlators.log"
    processes = [start_correlator(kafka, port, log) for port in ports]
    try:
        async with Writer(kafka, demo_config) as writer:

            async def shared() -> bool:
                mine = [{p for p in await owned(port) if p.startswith("sensor.events")} for port in ports]
                return len(mine[0]) == 1 and len(mine[1]) == 1

            await wait_until(shared, 60, "the two correlators to take one events partition each")
            cucuta = partition_of(b"co-ve-cucuta", 2)
            assert partition_of(b"mx-gt-tapachula", 2) != cucuta
            victim = 0 if f"sensor.events-{cucuta}" in await owned(ports[0]) else 1
            survivor = 1 - victim
            for part in parts[:KILL_AFTER]:
                await writer.write(part)
                await asyncio.sleep(0.3)

            async def both_alerting() -> bool:
                alerts = await alerts_in(kafka)
                return all(crossings(alerts, region) for region in regions)

            await wait_until(both_alerting, 60, "a crossing alert from each correlator")
            processes[victim].send_signal(signal.SIGKILL)
            processes[victim].wait(10)
            killed_with = {a["alert_id"] for a in await alerts_in(kafka)}
            for part in parts[KILL_AFTER:]:
                await writer.write(part)
                await asyncio.sleep(0.3)

            async def moved() -> bool:
                return {"sensor.events-0", "sensor.events-1"} <= await owned(ports[survivor])

            await wait_until(moved, 60, "the survivor to take over the dead correlator's region")

            async def caught_up() -> bool:
                return set(expected) <= {a["alert_id"] for a in await alerts_in(kafka)}

            await wait_until(caught_up, 90, "the survivor to raise every expected alert")
            await asyncio.sleep(1.5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(30)

    alerts = await alerts_in(kafka)
    revisions = Counter((a["alert_id"], a["revision"]) for a in alerts)
    doubled = [key for key, count in revisions.items() if count > 1]
    assert not doubled, f"{len(doubled)} alert revisions published twice: {doubled[:5]}"
    got = {a["alert_id"]: a for a in alerts}
    assert set(got) == set(expected), (
        f"{len(set(expected) - set(got))} alerts lost, {len(set(got) - set(expected))} invented"
    )
    assert set(revisions) == expected_revisions, "alert revisions differ from the clean run's"
    for alert_id, alert in got.items():
        assert alert["track_ids"] == expected[alert_id]["track_ids"], "the survivor did not resume the tracks"
    after_kill = crossings(alerts, "co-ve-cucuta") - killed_with
    assert after_kill, "no crossing in the dead correlator's region came after the kill"
    assert len(crossings(alerts, "co-ve-cucuta")) == len(crossings(alerts, "mx-gt-tapachula")) == people
    assert "Traceback" not in log.read_text(errors="replace")
