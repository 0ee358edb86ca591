"""Sensor traffic for the browser tests, posted to ingest the way a gateway posts it.

:class:`Walker` is a person walking across the Colombia–Venezuela border from Venezuela into
Colombia, seen by Colombia's radar ``co-cuc-rdr-1``: first the last couple of minutes at once
(so the crossing is raised within seconds), then one plot every two seconds in real time, so the
track stays alive and moves on the map while the test runs. The crossing happens in Colombia
(jurisdiction CO) and Colombian sensors saw it (owner CO): Cúcuta's centre sees it in full and may
send its own teams; Táchira's centre (VE) sees only what the CO–VE agreement shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import uuid
from typing import Any

import httpx
import shapely

from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.correlator.domain.region import RegionContext

REGION = "co-ve-cucuta"
RADAR = "co-cuc-rdr-1"
RADAR_GATEWAY = "gw-co-ejercito-cuc"
SPEED_MPS = 1.3


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Walker:
    """A person crossing VE→CO, reported by a Colombian radar through ingest."""

    def __init__(
        self,
        ingest_url: str,
        config: LinderoConfig,
        keys: dict[str, str],
        *,
        start_m: float = 130.0,
        history_s: float = 150.0,
        step_s: float = 2.0,
    ) -> None:
        self.ingest_url = ingest_url
        self.key = keys[RADAR_GATEWAY]
        self.history_s = history_s
        self.step_s = step_s
        assert config.geography_path is not None
        context = RegionContext.build(config, Geography.load(config.geography_path), REGION)
        self.context = context
        self.radar = context.sensors[RADAR]
        border = context.borders[0].line
        along = border.project(shapely.Point(self.radar.east_m, self.radar.north_m))
        a, b = border.interpolate(along - 20.0), border.interpolate(along + 20.0)
        tangent = (b.x - a.x, b.y - a.y)
        length = math.hypot(*tangent)
        normal = (-tangent[1] / length, tangent[0] / length)
        crossing = border.interpolate(along)
        if self.country(crossing.x + 100 * normal[0], crossing.y + 100 * normal[1]) != "VE":
            normal = (-normal[0], -normal[1])
        self.start = (crossing.x + start_m * normal[0], crossing.y + start_m * normal[1])
        self.velocity = (-SPEED_MPS * normal[0], -SPEED_MPS * normal[1])
        assert self.country(*self.start) == "VE"
        assert self.country(*self.position(2 * start_m / SPEED_MPS)) == "CO"
        self.t0: dt.datetime | None = None
        self.posted = 0
        self.task: asyncio.Task[None] | None = None

    def country(self, east_m: float, north_m: float) -> str | None:
        point = shapely.Point(east_m, north_m)
        return next((code for code, area in self.context.countries if area.contains(point)), None)

    def position(self, t_s: float) -> tuple[float, float]:
        return (self.start[0] + self.velocity[0] * t_s, self.start[1] + self.velocity[1] * t_s)

    def event(self, t_s: float) -> dict[str, Any]:
        assert self.t0 is not None
        east, north = self.position(t_s)
        de, dn = east - self.radar.east_m, north - self.radar.north_m
        return {
            "event_id": str(uuid.uuid4()),
            "sensor_id": RADAR,
            "sensor_type": "radar",
            "time": rfc3339(self.t0 + dt.timedelta(seconds=t_s)),
            "range_m": round(math.hypot(de, dn), 2),
            "bearing_deg": round(math.degrees(math.atan2(de, dn)) % 360.0, 4),
            "range_sigma_m": 15.0,
            "bearing_sigma_deg": 0.6,
            "class": "person",
            "confidence": 0.7,
        }

    async def post(self, client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
        response = await client.post("/v1/events/batch", json=events)
        assert response.status_code in {200, 202}, response.text
        self.posted += len(events)

    async def start_walking(self) -> None:
        """Post the history (ending now), then keep walking in real time until :meth:`stop`."""
        self.t0 = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.history_s)
        steps = int(self.history_s / self.step_s)
        async with httpx.AsyncClient(
            base_url=self.ingest_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10
        ) as client:
            await self.post(client, [self.event(i * self.step_s) for i in range(steps)])
        self.task = asyncio.create_task(self._live(steps))

    async def _live(self, step: int) -> None:
        assert self.t0 is not None
        async with httpx.AsyncClient(
            base_url=self.ingest_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10
        ) as client:
            while True:
                t_s = step * self.step_s
                due = self.t0 + dt.timedelta(seconds=t_s)
                await asyncio.sleep(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds()))
                with contextlib.suppress(httpx.HTTPError):  # the test may be restarting things
                    await self.post(client, [self.event(t_s)])
                step += 1

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


async def report_status(ingest_url: str, key: str, sensor_id: str, **fields: Any) -> None:
    """A sensor's status report (heartbeat, tamper switch, battery, self-test) through ingest."""
    async with httpx.AsyncClient(
        base_url=ingest_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        response = await client.post(
            "/v1/status",
            json={
                "event_id": str(uuid.uuid4()),
                "sensor_id": sensor_id,
                "time": rfc3339(dt.datetime.now(dt.UTC)),
                "self_test": "ok",
                **fields,
            },
        )
        assert response.status_code in {200, 202}, response.text
