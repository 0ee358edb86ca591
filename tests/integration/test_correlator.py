"""The correlator against a real broker: events in, tracks and alerts out, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import shapely

from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.correlator.domain.region import RegionContext
from tests.integration.conftest import KafkaFactory, wait_until
from tests.integration.correlator_fixtures import (
    Writer,
    alerts_in,
    radar_events,
    running_correlator,
    tracks_in,
)


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
