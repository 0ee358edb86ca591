"""Websocket feeds through the real broker: snapshot and live messages, resume without gaps,
authentication and expiry, commands (slow and stuck clients: tests/faults/test_slow_clients.py)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from schemas.alerts import Severity
from schemas.api import TRACK_MOVED_FIELDS, apply_alert_changes
from schemas.tracks import TrackStatus
from services.alerts.hub import AsgiWriter, DirectWriter
from tests.integration.alerts_fixtures import AlertsFactory, Producer, StreamClient, start_alerts
from tests.integration.conftest import KafkaFactory, wait_until
from tests.unit.alerts.builders import fresh_crossing, live_track, utc_now

__all__ = ["start_alerts"]


track = live_track


@pytest.mark.parametrize("ws", [None, "websockets-sansio"], ids=["lindero-frames", "plain-asgi"])
async def test_snapshot_then_live_messages_in_sequence(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory, ws: str | None
) -> None:
    """A client gets a snapshot of what exists, then alert, alert_update and track messages in
    order: with the service's own websocket protocol (frames written directly) and under plain
    uvicorn (frames sent through ASGI)."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka, ws=ws)
    before = fresh_crossing()
    async with Producer(kafka) as producer:
        await producer.alerts([before])
        operator = alerts.auth("operator", "cc-cucuta")

        async def known() -> bool:
            return (
                await alerts.client.get(f"/v1/alerts/{before.alert_id}", headers=operator)
            ).status_code == 200

        await wait_until(known, 20, "the first alert")
        client = await StreamClient.open(f"{alerts.ws_url}/v1/stream", alerts.token("operator", "cc-cucuta"))
        await client.wait_for(lambda: bool(client.of_type("snapshot")), what="the snapshot")
        snapshot = client.of_type("snapshot")[0]
        assert [a["alert"]["alert_id"] for a in snapshot["alerts"]] == [before.alert_id]
        assert client.frames[0]["type"] == "batch"
        assert client.messages[0]["type"] == "welcome"

        later = fresh_crossing()
        await producer.alerts([later])
        await producer.tracks([track(1)])
        await client.wait_for(
            lambda: bool(client.of_type("alert")) and bool(client.of_type("track")), what="live"
        )
        assert client.of_type("alert")[0]["data"]["alert"]["alert_id"] == later.alert_id
        await alerts.client.post(
            f"/v1/alerts/{later.alert_id}/actions", json={"action": "acknowledge"}, headers=operator
        )
        await client.wait_for(lambda: bool(client.of_type("alert_update")), what="the update")
        update = client.of_type("alert_update")[0]["data"]
        assert update["status"] == "acknowledged"
        times = [frame["time"] for frame in client.frames if frame["type"] == "batch"]
        assert times == sorted(times)
        writers = {type(c.writer) for c in alerts.service.hub.clients}
        assert writers == {AsgiWriter if ws else DirectWriter}
        await client.close()


@pytest.mark.parametrize("compact", [False, True], ids=["whole", "compact-alerts"])
async def test_reconnect_with_cursor_misses_nothing_and_repeats_nothing(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory, compact: bool
) -> None:
    """Connections cut mid-stream and resumed (on either of two instances) end with exactly the
    server's state, every alert version seen at most once and in increasing order. With
    compact_alerts the revisions come as alert_changed messages, applied to what the client holds."""
    kafka = make_kafka()
    first = await start_alerts(kafka)
    second = await start_alerts(kafka, run_lifecycle=False, run_webhooks=False)
    instances = [first, second]
    token = first.token("operator", "cc-cucuta")
    rng = random.Random(7)
    batch = [fresh_crossing() for _ in range(40)]
    versions: dict[str, list[int]] = {}
    cursor: dict[str, int] | None = None
    held: dict[str, dict[str, Any]] = {}
    resumed = changed = 0
    subscribe = {"compact_alerts": True} if compact else None

    def absorb(client: StreamClient) -> None:
        nonlocal held, changed
        for message in client.messages:
            kind = message["type"]
            if kind == "snapshot":
                held = {a["alert"]["alert_id"]: a for a in message["alerts"]}
                for alert in message["alerts"]:
                    versions.setdefault(alert["alert"]["alert_id"], []).append(alert["version"])
            elif kind in {"alert", "alert_update"}:
                data = message["data"]
                held[data["alert"]["alert_id"]] = data
                versions.setdefault(data["alert"]["alert_id"], []).append(data["version"])
            elif kind == "alert_changed":
                alert_id = message["alert_id"]
                held[alert_id] = apply_alert_changes(held[alert_id], message["set"])
                versions.setdefault(alert_id, []).append(message["version"])
                changed += 1

    async def producing(producer: Producer) -> None:
        await producer.alerts(batch)
        for _ in range(160):
            alert = rng.choice(batch)
            revision = alert.model_copy(update={"revision": alert.revision + 1, "updated_at": utc_now()})
            batch[batch.index(alert)] = revision
            await producer.alerts([revision])
            await asyncio.sleep(0.01)

    async with Producer(kafka) as producer:
        writer = asyncio.create_task(producing(producer))
        round_ = 0
        while not writer.done() or round_ < 2:
            instance = instances[round_ % 2]
            client = await StreamClient.open(
                f"{instance.ws_url}/v1/stream", token, resume=cursor, subscribe=subscribe
            )
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            client.cut()
            await client.close()
            if any(m["type"] == "resume" for m in client.messages):
                resumed += 1
            absorb(client)
            cursor = dict(client.cursor) or cursor
            round_ += 1
        await writer
        admin = first.auth("admin")

        async def settled() -> bool:
            listed = (await first.client.get("/v1/alerts", headers=admin, params={"limit": 1000})).json()
            return sorted(a["alert"]["revision"] for a in listed["alerts"]) == sorted(
                a.revision for a in batch
            )

        await wait_until(settled, 30, "the lifecycle to absorb every revision")
        final = await StreamClient.open(
            f"{second.ws_url}/v1/stream", token, resume=cursor, subscribe=subscribe
        )
        await asyncio.sleep(1.0)
        await final.close()
        absorb(final)

    assert resumed >= 2
    assert (changed > 0) is compact
    server = {
        a["alert"]["alert_id"]: a
        for a in (
            await first.client.get(
                "/v1/alerts", headers=first.auth("operator", "cc-cucuta"), params={"limit": 1000}
            )
        ).json()["alerts"]
    }
    assert set(held) == set(server)
    for alert_id, view in server.items():
        assert held[alert_id]["version"] == view["version"], alert_id
        assert held[alert_id]["alert"]["revision"] == view["alert"]["revision"], alert_id
        assert held[alert_id]["alert"] == view["alert"], alert_id
    for alert_id, seen in versions.items():
        assert seen == sorted(set(seen)), f"{alert_id}: versions {seen} repeat or go back"


async def test_hello_must_come_with_a_valid_token_in_time(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory
) -> None:
    """No hello, a bad token, a malformed hello or the wrong stream: the connection closes with the reason."""
    alerts = await start_alerts(make_kafka(), auth_timeout_s=1.0)
    url = f"{alerts.ws_url}/v1/stream"
    silent = await StreamClient.open(url, None, hello={"type": "ping"})
    code, reason = await silent.wait_closed()
    assert code == 4400
    assert "hello" in reason
    bad = await StreamClient.open(url, "not-a-token")
    code, reason = await bad.wait_closed()
    assert code == 4401
    assert "invalid token" in reason
    team = await StreamClient.open(url, alerts.token("team", "co-rrt-alfa"))
    code, reason = await team.wait_closed()
    assert code == 4403
    assert "/v1/teams/co-rrt-alfa/stream" in reason
    other_team = await StreamClient.open(
        f"{alerts.ws_url}/v1/teams/ve-rrt-1/stream", alerts.token("team", "co-rrt-alfa")
    )
    assert (await other_team.wait_closed())[0] == 4403
    foreign_region = await StreamClient.open(
        url, alerts.token("operator", "cc-cucuta"), subscribe={"regions": ["mx-gt-tapachula"]}
    )
    code, reason = await foreign_region.wait_closed()
    assert code == 4403
    assert "mx-gt-tapachula" in reason

    async with connect(url) as quiet:
        await asyncio.sleep(1.5)
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await asyncio.wait_for(quiet.recv(), 5)
        assert quiet.close_code == 4401


async def test_token_expiry_closes_the_stream_unless_renewed(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory
) -> None:
    """A stream whose token expires is closed with 4401; one renewed in time stays open."""
    alerts = await start_alerts(make_kafka())
    url = f"{alerts.ws_url}/v1/stream"
    soon = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=58)
    lapsing = await StreamClient.open(url, alerts.token("operator", "cc-cucuta", now=soon, ttl_s=90))
    renewing = await StreamClient.open(url, alerts.token("operator", "cc-cucuta", now=soon, ttl_s=90))
    await renewing.wait_for(lambda: bool(renewing.of_type("auth_expiring")), 10, "the expiry warning")
    await renewing.send({"type": "auth", "token": alerts.token("operator", "cc-cucuta")})
    await renewing.wait_for(lambda: bool(renewing.of_type("auth_ok")), 10, "auth_ok")
    code, reason = await lapsing.wait_closed(timeout_s=70)
    assert code == 4401
    assert "expired" in reason
    assert renewing.closed is None
    intruder = await StreamClient.open(url, alerts.token("operator", "cc-cucuta"))
    await intruder.wait_for(lambda: bool(intruder.of_type("welcome")), 10, "welcome")
    await intruder.send({"type": "auth", "token": alerts.token("operator", "cc-tachira")})
    code, _ = await intruder.wait_closed()
    assert code == 4403
    await renewing.close()


async def test_commands_ping_subscribe_and_act(start_alerts: AlertsFactory, make_kafka: KafkaFactory) -> None:
    """Commands over the websocket: ping, a narrower subscription, an action and its result, errors."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka)
    high = fresh_crossing()
    medium = fresh_crossing(severity=Severity.MEDIUM)
    async with Producer(kafka) as producer:
        await producer.alerts([high, medium])
    operator = alerts.auth("operator", "cc-cucuta")

    async def known() -> bool:
        listed = (await alerts.client.get("/v1/alerts", headers=operator)).json()
        return listed["count"] == 2

    await wait_until(known, 20, "both alerts")
    client = await StreamClient.open(f"{alerts.ws_url}/v1/stream", alerts.token("operator", "cc-cucuta"))
    await client.send({"type": "ping", "id": "p1"})
    await client.wait_for(lambda: bool(client.of_type("pong")), what="pong")
    assert client.of_type("pong")[0]["id"] == "p1"
    await client.send({"type": "subscribe", "subscribe": {"min_severity": "high", "tracks": False}})
    await client.wait_for(lambda: len(client.of_type("snapshot")) == 2, what="a fresh snapshot")
    narrowed = client.of_type("snapshot")[1]
    assert [a["alert"]["alert_id"] for a in narrowed["alerts"]] == [high.alert_id]
    await client.send({"type": "action", "id": "a1", "alert_id": high.alert_id, "action": "acknowledge"})
    await client.wait_for(lambda: bool(client.of_type("action_result")), what="the result")
    result = client.of_type("action_result")[0]
    assert result["id"] == "a1"
    assert result["status"] == 200
    assert result["version"] == 2
    await client.send({"type": "action", "id": "a2", "alert_id": high.alert_id, "action": "acknowledge"})
    await client.wait_for(lambda: len(client.of_type("action_result")) == 2, what="the refusal")
    refused = client.of_type("action_result")[1]
    assert refused["status"] == 409
    assert "acknowledged" in refused["detail"]
    await client.send({"type": "action", "alert_id": high.alert_id, "action": "explode"})
    await client.wait_for(lambda: bool(client.of_type("error")), what="a validation error")
    assert client.of_type("error")[0]["status"] == 422
    assert "action" in client.of_type("error")[0]["detail"]
    for _ in range(80):
        await client.send({"type": "ping"})
    await client.wait_for(
        lambda: any(e["status"] == 429 for e in client.of_type("error")), what="a 429 for the flood"
    )
    assert len(client.of_type("pong")) < 81
    await client.close()


async def test_compact_tracks_send_movement_small_and_changes_whole(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory
) -> None:
    """With compact_tracks a moving track sends small track_moved messages, a status change a whole track."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka)
    client = await StreamClient.open(
        f"{alerts.ws_url}/v1/stream",
        alerts.token("operator", "cc-cucuta"),
        subscribe={"compact_tracks": True},
    )
    await client.wait_for(lambda: bool(client.of_type("snapshot")), what="the snapshot")
    first = track(7)
    async with Producer(kafka) as producer:
        await producer.tracks([first])
        await client.wait_for(lambda: bool(client.of_type("track")), what="the whole track")
        moved = first.model_copy(update={"lat": first.lat + 0.0001, "update_count": first.update_count + 1})
        await producer.tracks([moved])
        await client.wait_for(lambda: bool(client.of_type("track_moved")), what="track_moved")
        coasting = moved.model_copy(update={"status": TrackStatus.COASTING})
        await producer.tracks([coasting])
        await client.wait_for(lambda: len(client.of_type("track")) == 2, what="the whole track again")
    small = client.of_type("track_moved")[0]
    moved_fields = dict(zip(TRACK_MOVED_FIELDS, small["m"], strict=True))
    assert small["track_id"] == first.track_id
    assert moved_fields["time"] == round(moved.time.timestamp(), 3)
    assert moved_fields["lat"] == round(moved.lat, 7)
    assert moved_fields["update_count"] == moved.update_count
    assert moved_fields["class_probabilities"] is None, "unchanged since the whole track"
    assert client.of_type("track")[1]["data"]["status"] == "coasting"
    whole = [m for m in client.raw if '"track"' in m]
    assert len(orjson.dumps(small)) * 3 < min(len(w) for w in whole)
    await client.close()


@pytest.mark.parametrize("compression", [False, True], ids=["default", "ws_compression"])
async def test_permessage_deflate_only_when_configured(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory, compression: bool
) -> None:
    """A client offering permessage-deflate (as every browser does) gets plain frames unless
    ws_compression is on: compressing every frame once per client costs the fan-out its capacity."""
    alerts = await start_alerts(make_kafka(), ws_compression=compression)
    async with connect(f"{alerts.ws_url}/v1/stream", compression="deflate", open_timeout=20) as connection:
        assert connection.response is not None
        extensions = connection.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert ("permessage-deflate" in extensions) is compression, extensions
        await connection.send(
            orjson.dumps({"type": "hello", "token": alerts.token("operator", "cc-cucuta")}).decode()
        )
        frame = orjson.loads(await asyncio.wait_for(connection.recv(), 20))
        assert frame["messages"][0]["type"] == "welcome"
