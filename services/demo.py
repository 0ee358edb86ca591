"""``lindero demo``: a real broker, the ingest service and a few sensors, live in the terminal.

Starts the local Kafka (or uses ``LINDERO_KAFKA_BOOTSTRAP``), starts ingest, then plays a
small scene near Cúcuta (a person walking from Colombia towards the Táchira river, seen by the
Colombian radar, a drone and a ground sensor, with heartbeats) through the HTTP API with the
demo gateways' keys, and prints every record as it lands in Kafka. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from aiokafka import AIOKafkaConsumer

from schemas.topics import SENSOR_EVENTS, SENSOR_STATUS
from services.core import localkafka
from services.core.config import LinderoConfig, load_config
from services.core.kafka import KafkaSettings

_EARTH_M = 6_371_008.8


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    dlat = math.degrees(north_m / _EARTH_M)
    dlon = math.degrees(east_m / (_EARTH_M * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def _range_bearing(site: tuple[float, float], target: tuple[float, float]) -> tuple[float, float]:
    north = math.radians(target[0] - site[0]) * _EARTH_M
    east = math.radians(target[1] - site[1]) * _EARTH_M * math.cos(math.radians(site[0]))
    return math.hypot(east, north), math.degrees(math.atan2(east, north)) % 360.0


class Scene:
    """A person walking east-south-east from the Colombian side, seen by three sensors."""

    def __init__(self, config: LinderoConfig) -> None:
        sensors = config.sensors_by_id
        radar = sensors["co-cuc-rdr-1"]
        ground = sensors["co-cuc-ugs-04"]
        if radar.position is None or ground.position is None:
            raise ValueError("the demo scene needs the fixed sites of co-cuc-rdr-1 and co-cuc-ugs-04")
        self.radar_site = (radar.position.lat, radar.position.lon)
        self.ground_site = (ground.position.lat, ground.position.lon)
        self.start = _offset(ground.position.lat, ground.position.lon, -600.0, 150.0)
        self.step = 0

    def position(self) -> tuple[float, float]:
        walked_m = 1.4 * 2.0 * self.step  # 1.4 m/s, one step every 2 s
        return _offset(self.start[0], self.start[1], walked_m * 0.97, -walked_m * 0.25)

    def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(gateway, endpoint, event) triples for this tick."""
        lat, lon = self.position()
        out: list[tuple[str, str, dict[str, Any]]] = []
        range_m, bearing_deg = _range_bearing(self.radar_site, (lat, lon))
        out.append(
            (
                "gw-co-ejercito-cuc",
                "/v1/events",
                {
                    "event_id": str(uuid.uuid4()),
                    "sensor_id": "co-cuc-rdr-1",
                    "sensor_type": "radar",
                    "time": _now(),
                    "range_m": round(range_m, 1),
                    "bearing_deg": round(bearing_deg, 2),
                    "range_sigma_m": 15.0,
                    "bearing_sigma_deg": 0.6,
                    "class": "person",
                    "confidence": 0.6,
                },
            )
        )
        if self.step % 3 == 0:
            out.append(
                (
                    "gw-co-ejercito-cuc",
                    "/v1/events",
                    {
                        "event_id": str(uuid.uuid4()),
                        "sensor_id": "co-cuc-uav-1",
                        "sensor_type": "drone",
                        "time": _now(),
                        "drone": {
                            "lat": lat - 0.002,
                            "lon": lon - 0.001,
                            "alt_m": 180.0,
                            "heading_deg": 60.0,
                        },
                        "detection": {"lat": round(lat, 6), "lon": round(lon, 6), "sigma_m": 10.0},
                        "class": "person",
                        "confidence": 0.82,
                    },
                )
            )
        distance_m, _ = _range_bearing(self.ground_site, (lat, lon))
        if distance_m < 60.0:
            out.append(
                (
                    "gw-co-ejercito-cuc",
                    "/v1/events",
                    {
                        "event_id": str(uuid.uuid4()),
                        "sensor_id": "co-cuc-ugs-04",
                        "sensor_type": "ground",
                        "time": _now(),
                        "modality": "magnetic",
                        "class": "person",
                        "confidence": 0.55,
                    },
                )
            )
        if self.step % 5 == 0:
            out.append(
                (
                    "gw-co-ejercito-cuc",
                    "/v1/status",
                    {
                        "event_id": str(uuid.uuid4()),
                        "sensor_id": "co-cuc-ugs-04",
                        "time": _now(),
                        "battery_pct": 88.0,
                        "self_test": "ok",
                    },
                )
            )
        self.step = (self.step + 1) % 400
        return out


def _describe(value: bytes) -> str:
    record = orjson.loads(value)
    body = record.get("event") or record.get("status") or {}
    kind = body.get("sensor_type", "status")
    if kind == "radar":
        detail = f"range {body.get('range_m')} m, bearing {body.get('bearing_deg')}°"
    elif kind == "drone":
        point = body.get("detection", {})
        detail = f"{body.get('class')} at {point.get('lat'):.5f}, {point.get('lon'):.5f}"
    elif kind == "ground":
        detail = f"{body.get('modality')} trip, {body.get('class')} ({body.get('confidence')})"
    else:
        detail = f"battery {body.get('battery_pct')}%, self-test {body.get('self_test')}"
    return f"{kind:<6} {body.get('sensor_id', ''):<14} {detail}"


async def _tail(kafka: KafkaSettings, counters: dict[str, int]) -> None:
    names = kafka.topics
    consumer = AIOKafkaConsumer(
        names(SENSOR_EVENTS),
        names(SENSOR_STATUS),
        auto_offset_reset="latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **kafka.client_options(),
    )
    await consumer.start()
    try:
        async for record in consumer:
            counters["landed"] += 1
            lag_ms = time.time() * 1000 - record.timestamp
            _say(
                f"  kafka {record.topic:<14} p{record.partition}@{record.offset:<6} "
                f"key={record.key.decode() if record.key else '-':<16} {_describe(record.value)}"
                f"  (+{lag_ms:.0f} ms)"
            )
    finally:
        await consumer.stop()


async def _play(config: LinderoConfig, keys: dict[str, str], base_url: str, counters: dict[str, int]) -> None:
    scene = Scene(config)
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        while True:
            for gateway, path, event in scene.events():
                response = await client.post(
                    path, json=event, headers={"Authorization": f"Bearer {keys[gateway]}"}
                )
                counters["posted"] += 1
                if response.status_code != 202:
                    _say(f"  post {path} -> {response.status_code}: {response.text[:200]}")
            await asyncio.sleep(2.0)


async def _wait_ready(base_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise TimeoutError(f"ingest did not become ready within {timeout_s:.0f} s")


def run(config: Path, keys: Path, port: int) -> int:
    """Run the demo until Ctrl-C; returns the exit code."""
    world = load_config(config)
    demo_keys = {str(k): str(v) for k, v in (yaml.safe_load(keys.read_text("utf-8")) or {}).items()}
    cluster: localkafka.LocalCluster | None = None
    bootstrap = os.environ.get("LINDERO_KAFKA_BOOTSTRAP")
    if bootstrap:
        _say(f"using Kafka at {bootstrap} (LINDERO_KAFKA_BOOTSTRAP)")
    else:
        cluster = localkafka.LocalCluster(name="local", ports=[localkafka.DEFAULT_PORT])
        bootstrap = cluster.start(progress=_say)
    kafka = KafkaSettings(bootstrap=bootstrap)
    logs = localkafka.project_root() / ".cache" / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LINDERO_KAFKA_BOOTSTRAP": bootstrap,
        "LINDERO_CONFIG": str(config),
        "LINDERO_INGEST_PORT": str(port),
    }
    base_url = f"http://127.0.0.1:{port}"
    with (logs / "ingest.log").open("ab") as log_file:
        ingest = subprocess.Popen(
            [sys.executable, "-m", "services.ingest"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    _say(f"ingest starting on {base_url} (log: {logs / 'ingest.log'})")
    counters = {"posted": 0, "landed": 0}

    async def main() -> None:
        await _wait_ready(base_url, 90.0)
        _say(f"ingest ready: API docs at {base_url}/docs, metrics at {base_url}/metrics")
        _say("posting a scene near Cúcuta; every record is printed as it lands in Kafka (Ctrl-C stops)")
        tail = asyncio.create_task(_tail(kafka, counters))
        await asyncio.sleep(1.0)
        play = asyncio.create_task(_play(world, demo_keys, base_url, counters))
        done, _ = await asyncio.wait({tail, play}, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()

    code = 0
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        _say(f"\nstopping (posted {counters['posted']}, landed in Kafka {counters['landed']})")
    except (TimeoutError, httpx.HTTPError) as exc:
        _say(f"demo failed: {exc}; see {logs / 'ingest.log'}")
        code = 1
    finally:
        if ingest.poll() is None:
            ingest.send_signal(signal.SIGTERM)
            try:
                ingest.wait(20)
            except subprocess.TimeoutExpired:
                ingest.kill()
        if cluster is not None:
            cluster.stop(progress=_say)
        _say("stopped; no process left behind")
    return code
