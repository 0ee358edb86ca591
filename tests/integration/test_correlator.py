"""The correlator against a real broker: events in, tracks and alerts out, exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson
import shapely
from aiokafka.structs import ConsumerRecord

from schemas.topics import CORRELATOR_STATE, SENSOR_EVENTS
from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.core.processor import partition_of
from services.correlator.domain.region import RegionContext
from tests.integration.conftest import KafkaFactory, read_topic, wait_until
from tests.integration.correlator_fixtures import (
    RunningCorrelator,
    Writer,
    alerts_in,
    radar_events,
    running_correlator,
    stamp,
    tracks_in,
)
from tests.unit.correlator.worlds import with_tracking


def crossing_path(context: RegionContext, seconds: int = 600) -> list[tuple[float, float, float]]:
    """A person walking across the border, 1.3 m/s, one radar plot every 2 s."""
    radar = context.sensors["co-cuc-rdr-1"]
    border = context.borders[0].line
    nearest = shapely.ops.nearest_points(border, shapely.Point(radar.east_m, radar.north_m))[0]
    start = (nearest.x - 300.0, nearest.y - 60.0)
    return [(t, start[0] + 1.3 * t, start[1] + 0.25 * t) for t in range(0, seconds, 2)]


async def test_border_crossing_through_kafka(make_kafka: KafkaFactory, demo_config: LinderoConfig) -> None:
    """Radar events of a person crossing CO->VE give confirmed tracks and exactly one crossing alert."""
    kafka = make_kafka()
    geography = Geography.load(demo_config.geography_path)
    context = RegionContext.build(demo_config, geography, "co-ve-cucuta")
    events = radar_events(context, "co-cuc-rdr-1", crossing_path(context))
    async with running_correlator(kafka, demo_config) as running, Writer(kafka, demo_config) as writer:
        await writer.write(events)

        async def crossed() -> bool:
            return any(a["kind"] == "border_crossing" for a in await alerts_in(kafka))

        await wait_until(crossed, 60, "a border-crossing alert")
        await asyncio.sleep(1.0)
    alerts = [a for a in await alerts_in(kafka) if a["kind"] == "border_crossing"]
    assert len({a["alert_id"] for a in alerts}) == 1
    alert: dict[str, Any] = alerts[0]
    assert alert["details"]["direction"] == "CO->VE"
    assert alert["jurisdiction"] == "VE"
    assert alert["owner"] == {"country": "CO", "agency": "ejercito"}
    assert alert["region"] == "co-ve-cucuta"
    assert len(alert["evidence"]) > 0
    tracks = await tracks_in(kafka)
    confirmed = [t for _, t in tracks if t is not None and t["status"] == "confirmed"]
    assert confirmed
    assert {t["track_id"] for t in confirmed} == {alert["track_ids"][0]}
    assert confirmed[-1]["jurisdiction"] == "VE"
    assert confirmed[-1]["class"] == "person"
    assert running.correlator.metrics.registry is running.registry


async def test_gateway_promises_release_a_region_before_its_reorder_window(
    make_kafka: KafkaFactory, demo_config: LinderoConfig
) -> None:
    """With a fixed window of 10 minutes, radar events wait; once every gateway of the region has
    promised past them (records as ingest writes them), they are tracked and published at once."""
    kafka = make_kafka()
    config = with_tracking(demo_config, reorder_window_s=600.0, reorder_adaptive=False)
    context = RegionContext.build(config, Geography.load(config.geography_path), "co-ve-cucuta")
    events = radar_events(context, "co-cuc-rdr-1", crossing_path(context, seconds=40))
    async with running_correlator(kafka, config) as running, Writer(kafka, config) as writer:
        await writer.write(events)
        await asyncio.sleep(3.0)
        assert await tracks_in(kafka) == []  # held by the window
        for gateway in sorted(context.gateways - {"gw-ve-gnb-tac"}):
            await writer.promise("co-ve-cucuta", gateway, 40.0)
        await asyncio.sleep(3.0)
        assert await tracks_in(kafka) == []  # one gateway has not promised yet
        await writer.promise("co-ve-cucuta", "gw-ve-gnb-tac", 40.0)

        async def confirmed() -> bool:
            return any(t is not None and t["status"] == "confirmed" for _, t in await tracks_in(kafka))

        await wait_until(confirmed, 30, "a confirmed track, released by the promises")
        promises = running.registry.get_sample_value("lindero_correlator_gateway_promises_total")
        behind = {
            gateway: running.registry.get_sample_value(
                "lindero_correlator_promise_behind_seconds_count",
                {"region": "co-ve-cucuta", "gateway": gateway},
            )
            for gateway in context.gateways
        }
    assert promises == 4
    # each gateway's promise is measured against the region's front from the step after it came
    assert all(count is not None and count > 0 for count in behind.values()), behind
    latest = [t for _, t in await tracks_in(kafka) if t is not None][-1]
    last_update = dt.datetime.fromisoformat(latest["last_update"])
    assert last_update == dt.datetime.fromisoformat(stamp(38))  # every detection up to the promise


def latest_state(records: Sequence[ConsumerRecord[bytes, bytes]], prefix: str) -> dict[str, Any | None]:
    """The latest value of every key of ``correlator.state`` under ``prefix`` (None: a tombstone)."""
    return {
        r.key.decode(): (orjson.loads(r.value) if r.value is not None else None)
        for r in records
        if r.key is not None and r.key.decode().startswith(prefix)
    }


async def test_a_restarted_correlator_resumes_its_tracks_from_the_changelog(
    make_kafka: KafkaFactory, demo_config: LinderoConfig
) -> None:
    """The state is a header plus one record per live track; a second correlator restores the
    same tracks from it, tombstones a record of a stale generation, and a version-1 snapshot
    written at the header's key is restored too. All of a partition's state records are in the
    partition of the state topic where its header's key goes (a restore reads that one)."""
    kafka = make_kafka()
    geography = Geography.load(demo_config.geography_path)
    context = RegionContext.build(demo_config, geography, "co-ve-cucuta")
    events = radar_events(context, "co-cuc-rdr-1", crossing_path(context, seconds=120))
    state_topic = kafka.topics(CORRELATOR_STATE)
    key = f"{SENSOR_EVENTS.name}-{partition_of(b'co-ve-cucuta', kafka.partitions)}"

    def live(running: RunningCorrelator) -> set[str] | None:
        """The live tracks, once every partition is restored (closing during a restore leaks its
        readers' connections)."""
        if len(running.correlator.tasks) < 2 * kafka.partitions:
            return None
        return {
            t.track_id
            for task in running.correlator.tasks
            for engine in task.engines.values()
            for t in engine.tracker.estimates(at_s=None)
        }

    async with running_correlator(kafka, demo_config) as first, Writer(kafka, demo_config) as writer:
        await writer.write(events)

        async def confirmed() -> bool:
            return any(t is not None and t["status"] == "confirmed" for _, t in await tracks_in(kafka))

        await wait_until(confirmed, 60, "a confirmed track")
        await asyncio.sleep(1.0)
        tracks = live(first)
        [task] = [t for t in first.correlator.tasks if t.key == key]
        v1 = {
            "version": 1,
            "partition": key,
            "regions": {region: engine.export_state() for region, engine in task.engines.items()},
            "health": task.health.state(),
            "books": {},
            "status_time_s": task.status_time_s,
        }
    assert tracks
    written = await read_topic(kafka, state_topic)
    home = partition_of(key.encode(), kafka.partitions)
    assert {r.partition for r in written if r.key is not None and r.key.decode().startswith(key)} == {home}
    state = latest_state(written, key)
    header = state[key]
    assert header is not None
    assert header["version"] == 2
    assert header["regions"] == {}  # a previous version finds no regions: it starts them afresh
    assert header["changelog"]["co-ve-cucuta"]["tracker"]["count"] == len(tracks)
    records = {k: v for k, v in state.items() if v is not None and "/track/" in k}
    assert {k.rsplit("/", 1)[1] for k in records} == tracks
    assert {v["generation"] for v in records.values()} == {header["generation"]}
    assert state[f"{key}/rules/co-ve-cucuta"] is not None

    stale_key = f"{key}/track/co-ve-cucuta/co-ve-cucuta.T999999"
    async with Writer(kafka, demo_config) as writer:
        assert writer.producer is not None
        stale = {"generation": "an older one", "track": {}}
        await writer.producer.send_and_wait(
            state_topic, orjson.dumps(stale), key=stale_key.encode(), partition=home
        )
    async with running_correlator(kafka, demo_config) as second:
        await wait_until(lambda: _true(live(second) == tracks), 60, "the tracks restored")
        restores = second.registry.get_sample_value("lindero_correlator_restore_seconds_count")
        assert restores == 2 * kafka.partitions  # each events and status partition, timed once
        assert 0 < (second.registry.get_sample_value("lindero_correlator_restore_seconds_sum") or 0) < 60
    state = latest_state(await read_topic(kafka, state_topic), key)
    assert state[stale_key] is None  # deleted by the first commit after the restore

    async with Writer(kafka, demo_config) as writer:
        assert writer.producer is not None
        await writer.producer.send_and_wait(state_topic, orjson.dumps(v1), key=key.encode())
    async with running_correlator(kafka, demo_config) as third:
        await wait_until(lambda: _true(live(third) == tracks), 60, "the tracks restored from version 1")
    state = latest_state(await read_topic(kafka, state_topic), key)
    header = state[key]
    assert header is not None
    assert header["version"] == 2
    generation = header["generation"]
    assert {v["generation"] for k, v in state.items() if v is not None and "/track/" in k} == {generation}


async def _true(value: bool) -> bool:
    return value
