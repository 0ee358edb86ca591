"""The demo stack end to end: the simulator posts an accelerated scenario to ingest, the correlator
raises alerts, and they reach a command centre's websocket."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from services.core.localkafka import free_port
from services.core.tokens import TokenSettings, issue
from services.stack import Stack
from tests.conftest import DEMO_CONFIG, DEMO_KEYS, ROOT
from tests.integration.alerts_fixtures import StreamClient

SECRET = "e2e-tests-only-0123456789-abcdefghijklmnopqrstuv"
REGION = "co-ve-cucuta"
SCENARIO_S = 900
SPEED = 15
NAMED = {"border_crossing", "loitering", "rendezvous", "low_slow_flyer", "silent_sensor"}
"""What the demo must show; the simulator's own ``expected.json`` lists what it planned."""


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Ingest, correlator and alerts as real processes on a fresh topic prefix."""
    running = Stack(
        config=DEMO_CONFIG,
        bootstrap=kafka_bootstrap,
        secret=SECRET,
        logs=tmp_path_factory.mktemp("stack-logs"),
        topic_prefix=f"e2e{uuid.uuid4().hex[:8]}.",
        ports={"ingest": free_port(), "correlator": free_port(), "alerts": free_port()},
        env={"LINDERO_KAFKA_PARTITIONS": "3", "LINDERO_INGEST_LOG_JSON": "true"},
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def token(**claims: Any) -> str:
    return issue(TokenSettings(secret=SecretStr(SECRET)), **claims)


@pytest.mark.timeout(600)
async def test_an_accelerated_scenario_raises_the_expected_alerts_and_no_stray_critical(
    stack: Stack, tmp_path: Path
) -> None:
    """Every alert kind the scenario planned (crossing, loiterer, rendezvous, low-slow flyer, silent
    and tampered sensors...) reaches a websocket, the Cúcuta centre sees its own, and every critical
    alert is one the scenario planned."""
    ws = stack.url("alerts").replace("http", "ws")
    centre = await StreamClient.open(
        f"{ws}/v1/stream",
        token(subject="e2e-operator", role="operator", centre="cc-cucuta", country="CO"),
        subscribe={"regions": [REGION], "tracks": False},
    )
    admin = await StreamClient.open(
        f"{ws}/v1/stream", token(subject="e2e-admin", role="admin"), subscribe={"tracks": False}
    )
    simulator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "simulate",
        "--config",
        str(DEMO_CONFIG),
        "--region",
        REGION,
        "--seed",
        "7",
        "--duration",
        str(SCENARIO_S),
        "--speed",
        str(SPEED),
        "--ingest",
        stack.url("ingest"),
        "--keys",
        str(DEMO_KEYS),
        "--out",
        str(tmp_path / "scenario"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(simulator.communicate(), SCENARIO_S / SPEED + 180)
    report = output.decode(errors="replace")
    assert simulator.returncode == 0, report
    assert "rejected 0" in report, report

    planned = json.loads((tmp_path / "scenario" / "expected.json").read_text("utf-8"))
    expected = {item["kind"] for item in planned if item["region"] == REGION}
    assert expected >= NAMED, f"the scenario no longer plans {sorted(NAMED - expected)}"

    def kinds(client: StreamClient) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for message in client.messages:
            if message["type"] in {"alert", "alert_update"}:
                data = message["data"]
                found.setdefault(data["alert"]["kind"], []).append(data)
            elif message["type"] == "snapshot":
                for data in message["alerts"]:
                    found.setdefault(data["alert"]["kind"], []).append(data)
        return found

    try:
        await admin.wait_for(lambda: set(kinds(admin)) >= expected, 120, "the planned alerts")
    except AssertionError:
        got = {kind: len(views) for kind, views in kinds(admin).items()}
        raise AssertionError(
            f"missing {sorted(expected - set(got))}; got {got}; simulator: {report[-600:]}"
        ) from None
    seen = kinds(admin)
    assert {"border_crossing", "rendezvous", "low_slow_flyer"} <= set(kinds(centre)), sorted(kinds(centre))
    crossings = {a["alert"]["alert_id"]: a for a in seen["border_crossing"]}
    assert any(a["alert"]["details"].get("direction") for a in crossings.values())
    planned_silent = {
        item["sensor_id"] for item in planned if item["kind"] == "silent_sensor" and item["region"] == REGION
    }

    def silenced() -> set[str]:
        return {sensor for a in kinds(admin).get("silent_sensor", []) for sensor in a["alert"]["sensor_ids"]}

    # At 15x a gateway's lane that stalls for a few wall seconds is minutes of scenario time, so
    # other sensors may also be reported silent; the planned one must be among them.
    await admin.wait_for(lambda: planned_silent <= silenced(), 60, f"silent {sorted(planned_silent)}")
    await asyncio.sleep(2.0)
    everything = kinds(admin)
    critical = {
        kind
        for kind, views in everything.items()
        for view in views
        if view["alert"]["severity"] == "critical"
    }
    assert critical <= {"sensor_tamper"}, (
        f"unexpected critical alerts: {sorted(critical - {'sensor_tamper'})}"
    )
    for kind, views in everything.items():
        for view in views:
            # Only Cúcuta is simulated: Tapachula's sensors are rightly "never heard from".
            if kind != "silent_sensor":
                assert view["alert"]["region"] == REGION, (kind, view["alert"]["region"])
            assert dt.datetime.fromisoformat(view["alert"]["time"]) <= dt.datetime.now(dt.UTC)
    assert all(stack.alive().values()), stack.alive()
    await centre.close()
    await admin.close()
