"""Helpers for correlator tests: records written as ingest writes them, a correlator in-process."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from schemas.events import PROGRESS_KIND, RECORD_KIND_HEADER, GatewayProgressRecord
from schemas.topics import ALERTS, REGISTRY, SENSOR_EVENTS, SENSOR_STATUS, TRACKS
from services.core.config import LinderoConfig
from services.core.kafka import KafkaSettings, ensure_topics
from services.correlator.domain.region import RegionContext
from services.correlator.metrics import CorrelatorMetrics
from services.correlator.runner import Correlator
from services.correlator.settings import CorrelatorSettings
from services.ingest.domain.admission import Admitted, Directory, TimeLimits, admit, render_time
from services.ingest.service import EVENTS, STATUS
from tests.integration.conftest import read_topic

START = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


class Writer:
    """Writes sensor events to Kafka exactly as ingest would (same admission code, same keys)."""

    def __init__(self, kafka: KafkaSettings, config: LinderoConfig) -> None:
        self.kafka = kafka
        self.directory = Directory.from_config(config)
        self.gateway_of = {s: g.id for g in config.gateways for s in g.sensors}
        self.producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Writer:
        await ensure_topics(self.kafka, list(REGISTRY))
        self.producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **self.kafka.client_options())
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.producer is not None
        await self.producer.stop()

    def admitted(self, event: dict[str, Any]) -> Admitted:
        stream = EVENTS if "sensor_type" in event else STATUS
        parsed = stream.parser.single(orjson.dumps(event))
        assert parsed.model is not None, parsed.errors
        gateway = self.directory.gateways[self.gateway_of[event["sensor_id"]]]
        now = parsed.model.time
        decision = admit(
            0,
            parsed.model,
            parsed.canonical,
            gateway,
            self.directory,
            now,
            render_time(now),
            TimeLimits(1e9, 1e9),
        )
        assert isinstance(decision, Admitted), decision
        return decision

    async def write(self, events: Sequence[dict[str, Any]]) -> None:
        assert self.producer is not None
        futures = []
        for event in events:
            decision = self.admitted(event)
            topic = SENSOR_EVENTS if "sensor_type" in event else SENSOR_STATUS
            futures.append(
                await self.producer.send(
                    self.kafka.topics(topic), decision.value, key=decision.key, headers=decision.headers
                )
            )
        await asyncio.gather(*futures)

    async def promise(self, region: str, gateway_id: str, through_s: float) -> None:
        """A gateway's promise about ``region``, as ingest writes it after a request's events."""
        assert self.producer is not None
        record = GatewayProgressRecord(
            received_at=START + dt.timedelta(seconds=through_s),
            region=region,
            gateway_id=gateway_id,
            complete_through=START + dt.timedelta(seconds=through_s),
        )
        await self.producer.send_and_wait(
            self.kafka.topics(SENSOR_EVENTS),
            record.model_dump_json().encode(),
            key=region.encode(),
            headers=[(RECORD_KIND_HEADER, PROGRESS_KIND)],
        )


def stamp(seconds: float) -> str:
    return (START + dt.timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def radar_events(
    context: RegionContext,
    radar_id: str,
    path: Sequence[tuple[float, float, float]],
    target_class: str = "person",
) -> list[dict[str, Any]]:
    """Noise-free radar events of a target along ``path`` [(t_s, east_m, north_m)] seen by ``radar_id``."""
    site = context.sensors[radar_id]
    assert site.east_m is not None
    assert site.north_m is not None
    out = []
    for t, east, north in path:
        de, dn = east - site.east_m, north - site.north_m
        out.append(
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{radar_id}/{t}/{east}/{north}")),
                "sensor_id": radar_id,
                "sensor_type": "radar",
                "time": stamp(t),
                "range_m": round(math.hypot(de, dn), 2),
                "bearing_deg": round(math.degrees(math.atan2(de, dn)) % 360.0, 4),
                "range_sigma_m": 15.0,
                "bearing_sigma_deg": 0.6,
                "class": target_class,
                "confidence": 0.7,
            }
        )
    return out


@dataclass
class RunningCorrelator:
    correlator: Correlator
    task: asyncio.Task[None]
    stop: asyncio.Event
    registry: CollectorRegistry

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 60)
        await self.correlator.stop()


@contextlib.asynccontextmanager
async def running_correlator(
    kafka: KafkaSettings, config: LinderoConfig, **changes: Any
) -> AsyncIterator[RunningCorrelator]:
    """A correlator with its Kafka loop running in this event loop."""
    settings = CorrelatorSettings(kafka=kafka, port=0, commit_interval_s=0.1, **changes)
    registry = CollectorRegistry()
    correlator = Correlator(settings, config, CorrelatorMetrics(registry))
    await correlator.start()
    stop = asyncio.Event()
    task = asyncio.create_task(correlator.run(stop))
    running = RunningCorrelator(correlator, task, stop, registry)
    try:
        yield running
    finally:
        await running.close()


async def alerts_in(kafka: KafkaSettings) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in await read_topic(kafka, kafka.topics(ALERTS))]


async def tracks_in(kafka: KafkaSettings) -> list[tuple[str, dict[str, Any] | None]]:
    return [
        (r.key.decode(), orjson.loads(r.value) if r.value is not None else None)
        for r in await read_topic(kafka, kafka.topics(TRACKS))
    ]
