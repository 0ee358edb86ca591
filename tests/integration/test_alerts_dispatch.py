"""Dispatch through the real broker: automatic offers, team streams, signed webhooks with retries,
escalation when nobody accepts, and the notice when no team is left."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
import yaml

from schemas.alerts import Alert, Severity
from services.alerts.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from services.core.config import LinderoConfig, load_config
from tests.conftest import DEMO_CONFIG
from tests.integration.alerts_fixtures import AlertsFactory, Producer, StreamClient, start_alerts
from tests.integration.conftest import KafkaFactory, wait_until
from tests.unit.alerts.builders import DEMO, make_alert

__all__ = ["start_alerts"]

WEBHOOK_SECRET = "webhook-secret-for-tests-0123456789-abcdefgh"


def config_with(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> LinderoConfig:
    """The demo configuration with ``change`` applied to its YAML document."""
    data = yaml.safe_load(DEMO_CONFIG.read_text("utf-8"))
    data["geography"] = str((DEMO_CONFIG.parent / data["geography"]).resolve())
    change(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return load_config(path)


@dataclass
class Receiver:
    """A team's webhook endpoint: answers 503 to the first ``failures`` calls of each delivery."""

    failures: int = 2
    calls: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    port: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        delivery = headers.get(DELIVERY_HEADER.lower(), "")
        self.attempts[delivery] = self.attempts.get(delivery, 0) + 1
        self.calls.append({"path": scope["path"], "headers": headers, "body": body})
        status = 503 if self.attempts[delivery] <= self.failures else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A local webhook receiver on a free port."""
    app = Receiver()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: asyncio.sleep(0, server.started), 20, "the receiver")
    app.port = server.servers[0].sockets[0].getsockname()[1]
    yield app
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


def critical(**changes: Any) -> Alert:
    moment = dt.datetime.now(dt.UTC)
    data: dict[str, Any] = {
        "severity": Severity.CRITICAL,
        "time": moment,
        "updated_at": moment,
        "revision": 1,
    }
    data.update(changes)
    return make_alert(DEMO, "CO", "co-ve-cucuta", **data)


async def test_offer_webhook_escalation_acceptance_and_no_team_left(
    start_alerts: AlertsFactory,
    make_kafka: KafkaFactory,
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A critical alert is offered to the nearest Colombian team (stream + signed webhook, retried
    until delivered), escalates when not accepted in time, and the next team accepts; a second
    alert that nobody accepts ends with a notice, and the centre sees every step."""
    monkeypatch.setenv("LINDERO_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)

    def change(data: dict[str, Any]) -> None:
        data["dispatch"]["accept_timeout_s"] = 3
        data["dispatch"]["max_escalations"] = 1
        for team in data["teams"]:
            if team["country"] == "CO":
                team["webhook"] = {
                    "url": f"http://127.0.0.1:{receiver.port}/hooks/{team['id']}",
                    "secret_env": "LINDERO_TEST_WEBHOOK_SECRET",
                }

    config = config_with(tmp_path, change)
    kafka = make_kafka()
    alerts = await start_alerts(kafka, config=config)
    centre = await StreamClient.open(f"{alerts.ws_url}/v1/stream", alerts.token("operator", "cc-cucuta"))
    team_streams = {
        team.id: await StreamClient.open(
            f"{alerts.ws_url}/v1/teams/{team.id}/stream", alerts.token("team", team.id)
        )
        for team in config.teams
        if team.country == "CO"
    }
    alert = critical()
    async with Producer(kafka) as producer:
        await producer.alerts([alert])
        operator = alerts.auth("operator", "cc-cucuta")

        async def offered_twice() -> bool:
            view = await alerts.client.get(f"/v1/alerts/{alert.alert_id}", headers=operator)
            return view.status_code == 200 and len(view.json()["teams_offered"]) == 2

        await wait_until(offered_twice, 30, "the offer to escalate to a second team")
        view = (await alerts.client.get(f"/v1/alerts/{alert.alert_id}", headers=operator)).json()
        first, second = view["teams_offered"]
        assert view["status"] == "dispatched"
        assert view["dispatch"]["team_id"] == second
        assert view["dispatch"]["escalation"] == 1

        # The first team heard of it on its stream, and by webhook after two failed attempts.
        stream = team_streams[first]
        await stream.wait_for(lambda: bool(stream.of_type("dispatch_update")), what="the first team's offer")
        offers = [m["data"] for m in stream.of_type("dispatch_update")]
        assert offers[0]["status"] == "offered"
        assert offers[0]["team_id"] == first
        assert any(o["status"] == "expired" for o in offers)
        assert all(m["data"]["team_id"] == first for m in stream.of_type("dispatch_update"))
        assert stream.of_type("alert"), "the team sees the alert it is sent to"
        seen = stream.of_type("alert")[0]["data"]
        assert seen["access"] == "team"
        assert "sensor_ids" not in seen["alert"]

        await wait_until(
            lambda: asyncio.sleep(0, len({c["path"] for c in receiver.calls if receiver.attempts}) >= 2),
            30,
            "webhook calls for both teams",
        )
        to_first = [c for c in receiver.calls if c["path"] == f"/hooks/{first}"]
        assert len(to_first) == 3
        assert len({c["headers"][DELIVERY_HEADER.lower()] for c in to_first}) == 1
        for call in to_first:
            headers = call["headers"]
            assert verify_signature(
                WEBHOOK_SECRET,
                headers[TIMESTAMP_HEADER.lower()],
                call["body"],
                headers[SIGNATURE_HEADER.lower()],
                now=time.time(),
            )
        assert orjson.loads(to_first[0]["body"])["alert_id"] == alert.alert_id

        async def delivered() -> bool:
            found = (await alerts.client.get("/v1/dispatches", headers=alerts.auth("team", second))).json()
            return any(d["delivery"] == "delivered" for d in found["dispatches"])

        await wait_until(delivered, 30, "the second team's delivery to be recorded")
        mine = (await alerts.client.get("/v1/dispatches", headers=alerts.auth("team", second))).json()[
            "dispatches"
        ]
        assert mine[0]["delivery_attempts"] == 3

        accepted = await alerts.client.post(
            f"/v1/dispatches/{mine[0]['dispatch_id']}/answer",
            json={"answer": "accept"},
            headers=alerts.auth("team", second),
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["alert"]["status"] == "dispatched"
        late = await alerts.client.post(
            f"/v1/alerts/{alert.alert_id}/actions",
            json={"action": "team_accept", "dispatch_id": offers[0]["dispatch_id"]},
            headers=alerts.auth("team", first),
        )
        assert late.status_code == 403
        assert "no longer" in late.json()["detail"]

        # The centre saw the escalation as it happened.
        await centre.wait_for(
            lambda: any(
                m["data"]["status"] == "accepted"
                for m in centre.of_type("dispatch_update")
                if m["data"]["team_id"] == second
            ),
            what="the acceptance on the centre's stream",
        )
        statuses = [(m["data"]["team_id"], m["data"]["status"]) for m in centre.of_type("dispatch_update")]
        assert (first, "offered") in statuses
        assert (first, "expired") in statuses
        assert statuses.index((first, "expired")) < statuses.index((second, "accepted"))
        escalations = [
            m["data"] for m in centre.of_type("alert_update") if len(m["data"]["teams_offered"]) == 2
        ]
        assert escalations

        # Nobody takes the second alert: two offers expire, then the alert says so.
        lonely = critical()
        await producer.alerts([lonely])

        async def gave_up() -> bool:
            view = await alerts.client.get(f"/v1/alerts/{lonely.alert_id}", headers=operator)
            return (
                view.status_code == 200
                and bool(view.json().get("notice"))
                and view.json()["dispatch"]["status"] == "expired"
            )

        await wait_until(gave_up, 40, "the lifecycle to give up")
        final = (await alerts.client.get(f"/v1/alerts/{lonely.alert_id}", headers=operator)).json()
        assert second not in final["teams_offered"], "a busy team is not offered a second alert"
        assert len(final["teams_offered"]) == 2
        assert "team" in final["notice"]

    metrics = (await alerts.client.get("/metrics")).text
    assert "lindero_alerts_dispatch_acceptance_seconds_count 1.0" in metrics
    assert 'lindero_alerts_webhook_deliveries_total{result="delivered"}' in metrics
    for client in [centre, *team_streams.values()]:
        await client.close()
