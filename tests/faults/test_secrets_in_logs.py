"""No secret in the logs: the whole stack at DEBUG, driven with good and bad API keys and tokens over
REST and websockets, then every log file of the run is searched for every secret it was given."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from services.core.localkafka import free_port
from services.core.tokens import TokenSettings, issue
from services.stack import Stack
from tests.conftest import DEMO_CONFIG, rfc3339, utc_now
from tests.integration.alerts_fixtures import StreamClient

pytestmark = pytest.mark.kafka


def near_miss(key: str) -> str:
    """``key`` with its last character changed."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def secret_part(key: str) -> str:
    return key.split("_", 2)[2]


async def drive(stack: Stack, demo_keys: dict[str, str], auth: TokenSettings) -> list[str]:
    """Good and bad requests to ingest and alerts; returns the tokens used."""
    good, other = demo_keys["gw-co-ejercito-cuc"], demo_keys["gw-ve-fanb-tac"]
    event = {
        "event_id": str(uuid.uuid4()),
        "sensor_id": "co-cuc-ugs-03",
        "sensor_type": "ground",
        "time": rfc3339(utc_now()),
        "modality": "pir",
        "class": "person",
        "confidence": 0.6,
    }
    async with httpx.AsyncClient(base_url=stack.url("ingest"), timeout=30) as ingest:
        accepted = await ingest.post("/v1/events", json=event, headers={"Authorization": f"Bearer {good}"})
        assert accepted.status_code == 202, accepted.text
        refused = {
            "near miss": {"Authorization": f"Bearer {near_miss(good)}"},
            "near miss, X-API-Key": {"X-API-Key": near_miss(other)},
            "another key id": {"X-API-Key": f"lnd_gw-ve-fanb-tac-k1_{secret_part(good)}"},
            "wrong scheme": {"Authorization": f"Basic {good}"},
        }
        for name, headers in refused.items():
            response = await ingest.post(
                "/v1/events", json={**event, "event_id": str(uuid.uuid4())}, headers=headers
            )
            assert response.status_code == 401, name
        foreign = await ingest.post(
            "/v1/events",
            json={**event, "event_id": str(uuid.uuid4()), "sensor_id": "co-cuc-ugs-03"},
            headers={"X-API-Key": other},
        )
        assert foreign.status_code == 403
        broken = await ingest.post(
            "/v1/events/batch",
            content=b'[{"event_id": NaN}, {"sensor_id": ',
            headers={"X-API-Key": good, "Content-Type": "application/json"},
        )
        assert broken.status_code == 400
        assert (await ingest.get("/v1/whoami", headers={"X-API-Key": other})).status_code == 200

    operator = issue(auth, subject="op-1", role="operator", centre="cc-cucuta", country="CO")
    fresh = issue(auth, subject="op-1", role="operator", centre="cc-cucuta", country="CO")
    admin = issue(auth, subject="admin-1", role="admin")
    expired = issue(
        auth, subject="op-1", role="admin", now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3), ttl_s=3600
    )
    forged = issue(TokenSettings(secret=SecretStr(secrets.token_urlsafe(48))), subject="x", role="admin")
    header, payload, signature = operator.split(".")
    tampered = f"{header}.{payload}x.{signature}"
    async with httpx.AsyncClient(base_url=stack.url("alerts"), timeout=30) as alerts:
        assert (
            await alerts.get("/v1/me", headers={"Authorization": f"Bearer {operator}"})
        ).status_code == 200
        assert (
            await alerts.get("/v1/audit", headers={"Authorization": f"Bearer {admin}"})
        ).status_code == 200
        for bad in (expired, forged, tampered):
            response = await alerts.get("/v1/alerts", headers={"Authorization": f"Bearer {bad}"})
            assert response.status_code == 401
        in_url = await alerts.get("/v1/me", params={"token": operator})
        assert in_url.status_code == 401
        action = await alerts.post(
            "/v1/alerts/no-such-alert/actions",
            json={"action": "comment", "note": f"my token is {operator}"},
            headers={"Authorization": f"Bearer {operator}"},
        )
        assert 400 <= action.status_code < 500

    ws = stack.url("alerts").replace("http", "ws") + "/v1/stream"
    client = await StreamClient.open(ws, operator)
    await client.wait_for(lambda: bool(client.of_type("welcome")), 20, "welcome")
    await client.send({"type": "auth", "token": fresh})
    await client.wait_for(lambda: bool(client.of_type("auth_ok")), 20, "auth_ok")
    await client.send({"type": "auth", "token": forged})
    await client.wait_for(
        lambda: any(m.get("status") == 401 for m in client.of_type("error")), 20, "a refusal"
    )
    await client.connection.send(orjson.dumps({"type": "nonsense", "token": admin}).decode())
    await client.close()
    for bad in (expired, forged, tampered):
        refused_stream = await StreamClient.open(ws, bad)
        assert (await refused_stream.wait_closed())[0] == 4401
    return [operator, fresh, admin, expired, forged, tampered]


@pytest.mark.timeout(300)
async def test_no_secret_reaches_any_log_of_a_run_at_debug_level(
    kafka_bootstrap: str, demo_keys: dict[str, str], tmp_path: Path
) -> None:
    """The token secret, the Kafka SASL password, every gateway key (and its secret part), a near miss
    of one, and every token used (and its signature) appear in no log line of ingest, correlator or
    alerts, at DEBUG, after good and refused requests of every kind."""
    auth_secret = secrets.token_urlsafe(48)
    sasl_password = f"sasl-{secrets.token_urlsafe(24)}"
    stack = Stack(
        config=DEMO_CONFIG,
        bootstrap=kafka_bootstrap,
        secret=auth_secret,
        logs=tmp_path / "logs",
        topic_prefix=f"sec{uuid.uuid4().hex[:8]}.",
        ports={"ingest": free_port(), "correlator": free_port(), "alerts": free_port()},
        env={
            "LINDERO_KAFKA_PARTITIONS": "3",
            "LINDERO_KAFKA_SASL_USERNAME": "lindero",
            "LINDERO_KAFKA_SASL_PASSWORD": sasl_password,
            "LINDERO_INGEST_LOG_LEVEL": "DEBUG",
            "LINDERO_CORRELATOR_LOG_LEVEL": "DEBUG",
            "LINDERO_ALERTS_LOG_LEVEL": "DEBUG",
        },
        grace_s=20,
    )
    await asyncio.to_thread(stack.start)
    try:
        tokens = await drive(stack, demo_keys, TokenSettings(secret=SecretStr(auth_secret)))
    finally:
        await asyncio.to_thread(stack.stop)

    logs = {path.name: path.read_text("utf-8", errors="replace") for path in sorted(stack.logs.iterdir())}
    assert set(logs) == {"ingest.log", "correlator.log", "alerts.log"}
    # The logs are real and cover what was done: start-up, DEBUG lines, the refused stream hellos.
    assert all(text.strip() for text in logs.values()), {name: len(text) for name, text in logs.items()}
    assert '"level":"DEBUG"' in "".join(logs.values())
    assert logs["alerts.log"].count("invalid token") >= 3, logs["alerts.log"][-2000:]

    forbidden = {"LINDERO_AUTH_SECRET": auth_secret, "LINDERO_KAFKA_SASL_PASSWORD": sasl_password}
    for gateway, key in demo_keys.items():
        forbidden[f"key of {gateway}"] = key
        forbidden[f"secret part of {gateway}'s key"] = secret_part(key)
    forbidden["near miss of a key"] = near_miss(demo_keys["gw-co-ejercito-cuc"])
    for number, token in enumerate(tokens):
        forbidden[f"token {number}"] = token
        forbidden[f"signature of token {number}"] = token.split(".")[2]
        forbidden[f"claims of token {number}"] = token.split(".")[1]
    leaks = [
        f"{what} in {name}"
        for what, value in forbidden.items()
        for name, text in logs.items()
        if value and value in text
    ]
    assert not leaks, leaks
