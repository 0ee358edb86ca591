"""An alerts instance SIGKILLed while command centres are connected: the clients reconnect to another
instance with their cursor and end with every alert, in its latest version, nothing seen twice."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.kafka import KafkaSettings
from services.core.localkafka import free_port
from tests.conftest import DEMO_CONFIG
from tests.integration.alerts_fixtures import AUTH, AlertsFactory, Producer, StreamClient
from tests.integration.conftest import KafkaFactory, wait_until
from tests.unit.alerts.builders import fresh_crossing, utc_now

pytestmark = pytest.mark.kafka

CLIENTS = 3
ALERTS = 30
UPDATES = 120


def start_alerts_process(kafka: KafkaSettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    """An alerts service process (``python -m services.alerts``), lifecycle included, on ``port``."""
    env = {
        **os.environ,
        "LINDERO_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "LINDERO_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "LINDERO_KAFKA_PARTITIONS": str(kafka.partitions),
        "LINDERO_CONFIG": str(DEMO_CONFIG),
        "LINDERO_AUTH_SECRET": AUTH.secret.get_secret_value(),
        "LINDERO_ALERTS_HOST": "127.0.0.1",
        "LINDERO_ALERTS_PORT": str(port),
        "LINDERO_ALERTS_RUN_WEBHOOKS": "false",
        "LINDERO_ALERTS_LOG_LEVEL": os.environ.get("LINDERO_TEST_SERVICE_LOG_LEVEL", "INFO"),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.alerts"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


class Centre:
    """One command-centre client across its connections: what it holds and every version it saw."""

    def __init__(self) -> None:
        self.held: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, list[int]] = {}
        self.resumes: list[int] = []
        self.snapshots = 0
        self.connection: StreamClient | None = None
        self.cursor: dict[str, int] | None = None

    async def connect(self, url: str, token: str) -> None:
        self.connection = await StreamClient.open(url, token, resume=self.cursor)

    def merged(self) -> dict[str, dict[str, Any]]:
        """What the centre holds with what its current connection has brought so far."""
        held = dict(self.held)
        assert self.connection is not None
        for message in self.connection.messages:
            if message["type"] == "snapshot":
                held = {a["alert"]["alert_id"]: a for a in message["alerts"]}
            elif message["type"] in {"alert", "alert_update"}:
                held[message["data"]["alert"]["alert_id"]] = message["data"]
        return held

    def absorb(self) -> None:
        """Take in everything the current connection received (once it is closed)."""
        assert self.connection is not None
        for message in self.connection.messages:
            kind = message["type"]
            if kind == "snapshot":
                self.snapshots += 1
                self.held = {a["alert"]["alert_id"]: a for a in message["alerts"]}
                for view in message["alerts"]:
                    self.seen.setdefault(view["alert"]["alert_id"], []).append(view["version"])
            elif kind == "resume":
                self.resumes.append(message["missed"])
            elif kind in {"alert", "alert_update"}:
                view = message["data"]
                self.held[view["alert"]["alert_id"]] = view
                self.seen.setdefault(view["alert"]["alert_id"], []).append(view["version"])
        self.cursor = dict(self.connection.cursor) or self.cursor


@pytest.mark.timeout(180)
async def test_clients_of_a_killed_instance_resume_on_another_without_gap(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory, tmp_path: Path
) -> None:
    """Kill -9 the instance three centres are on, mid-stream: they resume on another, gapless, no repeats."""
    kafka = make_kafka()
    survivor = await start_alerts(kafka, run_webhooks=False)
    port = free_port()
    log = tmp_path / "alerts.log"
    doomed = start_alerts_process(kafka, port, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def doomed_ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(doomed_ready, 60, "the second alerts instance to be ready")
        token = survivor.token("operator", "cc-cucuta")
        centres = [Centre() for _ in range(CLIENTS)]
        for centre in centres:
            await centre.connect(f"ws://127.0.0.1:{port}/v1/stream", token)
        rng = random.Random(11)
        batch = [fresh_crossing() for _ in range(ALERTS)]
        produced = asyncio.Event()

        async def producing(producer: Producer) -> None:
            await producer.alerts(batch[: ALERTS // 2])
            for step in range(UPDATES):
                if step == UPDATES // 3:
                    await producer.alerts(batch[ALERTS // 2 :])  # new alerts, around the kill
                live = batch if step >= UPDATES // 3 else batch[: ALERTS // 2]
                alert = rng.choice(live)
                revision = alert.model_copy(update={"revision": alert.revision + 1, "updated_at": utc_now()})
                batch[batch.index(alert)] = revision
                await producer.alerts([revision])
                await asyncio.sleep(0.04)
            produced.set()

        async with Producer(kafka) as producer:
            writer = asyncio.create_task(producing(producer))
            for centre in centres:
                assert centre.connection is not None
                await centre.connection.wait_for(
                    lambda c=centre.connection: len(c.of_type("alert", "alert_update")) >= 10,
                    30,
                    "live alerts before the kill",
                )
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            for centre in centres:
                assert centre.connection is not None
                code, _ = await centre.connection.wait_closed(timeout_s=30)
                assert code != 1000, "the killed instance closed the stream cleanly"
                centre.absorb()
            await asyncio.sleep(1.0)  # the centres are away while alerts keep changing
            for centre in centres:
                await centre.connect(f"{survivor.ws_url}/v1/stream", token)
            await writer
        admin = survivor.auth("admin")

        async def settled() -> bool:
            listed = (await survivor.client.get("/v1/alerts", headers=admin, params={"limit": 1000})).json()
            return sorted(a["alert"]["revision"] for a in listed["alerts"]) == sorted(
                a.revision for a in batch
            )

        await wait_until(settled, 60, "the surviving lifecycle to absorb every revision")
        server = {
            a["alert"]["alert_id"]: a
            for a in (
                await survivor.client.get(
                    "/v1/alerts", headers=survivor.auth("operator", "cc-cucuta"), params={"limit": 1000}
                )
            ).json()["alerts"]
        }

        async def delivered() -> bool:
            return all(
                {k: v["version"] for k, v in centre.merged().items()}
                == {k: v["version"] for k, v in server.items()}
                for centre in centres
            )

        await wait_until(delivered, 30, "every centre to get the latest version of every alert")
        for centre in centres:
            assert centre.connection is not None
            await centre.connection.close()
            centre.absorb()
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(10)

    assert len(server) == ALERTS
    for index, centre in enumerate(centres):
        assert centre.snapshots == 1, f"centre {index} was sent a fresh snapshot instead of what it missed"
        assert len(centre.resumes) == 1, f"centre {index} did not resume from its cursor"
        assert centre.resumes[0] > 0, f"centre {index} missed nothing while away: the test proved nothing"
        assert set(centre.held) == set(server), f"centre {index} lacks {len(set(server) - set(centre.held))}"
        for alert_id, view in server.items():
            assert centre.held[alert_id]["version"] == view["version"], (index, alert_id)
            assert centre.held[alert_id]["alert"]["revision"] == view["alert"]["revision"], (index, alert_id)
        for alert_id, versions in centre.seen.items():
            assert versions == sorted(set(versions)), f"centre {index}, {alert_id}: versions {versions}"
    assert "Traceback" not in log.read_text(errors="replace")
