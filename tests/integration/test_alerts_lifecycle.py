"""The alert lifecycle through the real broker: REST actions, the event-sourced state, audit, rebuild."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from schemas.alerts import Alert, Severity
from tests.integration.alerts_fixtures import AlertsFactory, Producer, start_alerts
from tests.integration.conftest import KafkaFactory, wait_until
from tests.unit.alerts.builders import DEMO, make_alert

__all__ = ["start_alerts"]

CO_OPERATOR = ("operator", "cc-cucuta")


def fresh_alert(**changes: Any) -> Alert:
    """A Colombian crossing near Cúcuta, raised now (high: no automatic dispatch)."""
    now = dt.datetime.now(dt.UTC)
    data: dict[str, Any] = {"severity": Severity.HIGH, "time": now, "updated_at": now, "revision": 1}
    data.update(changes)
    return make_alert(DEMO, "CO", "co-ve-cucuta", **data)


async def test_acknowledge_dispatch_answer_resolve_with_history_and_audit(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory
) -> None:
    """An alert goes new → acknowledged → dispatched (team accepts, on scene) → resolved, audited."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka)
    http = alerts.client
    operator = alerts.auth(*CO_OPERATOR)
    alert = fresh_alert()
    async with Producer(kafka) as producer:
        await producer.alerts([alert])

    async def listed() -> bool:
        found = (await http.get("/v1/alerts", headers=operator)).json()["alerts"]
        return any(a["alert"]["alert_id"] == alert.alert_id for a in found)

    await wait_until(listed, 20, "the alert to be listed")
    view = (await http.get(f"/v1/alerts/{alert.alert_id}", headers=operator)).json()
    assert view["status"] == "new"
    assert view["version"] == 1
    assert view["access"] == "full"

    acked = await http.post(
        f"/v1/alerts/{alert.alert_id}/actions",
        json={"action": "acknowledge", "expected_version": 1, "note": "looking"},
        headers=operator,
    )
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["outcome"] == "applied"
    assert body["alert"]["status"] == "acknowledged"
    assert body["alert"]["version"] == 2
    step = body["alert"]["history"][-1]
    assert step["action"] == "acknowledge"
    assert step["actor"]["subject"] == "operator-cc-cucuta"

    again = await http.post(
        f"/v1/alerts/{alert.alert_id}/actions", json={"action": "acknowledge"}, headers=operator
    )
    assert again.status_code == 409
    assert "acknowledged" in again.json()["detail"]

    dispatched = await http.post(
        f"/v1/alerts/{alert.alert_id}/actions", json={"action": "dispatch"}, headers=operator
    )
    assert dispatched.status_code == 200, dispatched.text
    state = dispatched.json()["alert"]
    assert state["status"] == "dispatched"
    dispatch = state["dispatch"]
    team = dispatch["team_id"]
    assert DEMO.teams_by_id[team].country == "CO"
    assert dispatch["status"] == "offered"

    team_auth = alerts.auth("team", team)
    mine = (await http.get("/v1/dispatches", headers=team_auth)).json()["dispatches"]
    assert [d["dispatch_id"] for d in mine] == [dispatch["dispatch_id"]]
    for answer, _status in (("accept", "accepted"), ("on_scene", "on_scene")):
        reply = await http.post(
            f"/v1/dispatches/{dispatch['dispatch_id']}/answer", json={"answer": answer}, headers=team_auth
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["alert"]["status"] == "dispatched"
    current = (await http.get(f"/v1/alerts/{alert.alert_id}", headers=operator)).json()
    assert current["dispatch"]["status"] == "on_scene"

    resolved = await http.post(
        f"/v1/alerts/{alert.alert_id}/actions",
        json={"action": "resolve", "note": "two people detained"},
        headers=operator,
    )
    assert resolved.status_code == 200, resolved.text
    final = resolved.json()["alert"]
    assert final["status"] == "resolved"
    assert final["dispatch"]["status"] == "completed"
    assert [h["action"] for h in final["history"]][-5:] == [
        "acknowledge",
        "dispatch",
        "team_accept",
        "team_on_scene",
        "resolve",
    ]

    admin = alerts.auth("admin")

    async def audited() -> bool:
        records = (await http.get("/v1/audit", params={"subject": alert.alert_id}, headers=admin)).json()
        return len(records["audit"]) >= 6

    await wait_until(audited, 20, "the audit records")
    records = (await http.get("/v1/audit", params={"subject": alert.alert_id}, headers=admin)).json()["audit"]
    outcomes = sorted((r["action"], r["outcome"]) for r in records)
    assert ("acknowledge", "applied") in outcomes
    assert ("acknowledge", "refused") in outcomes
    assert ("resolve", "applied") in outcomes
    assert ("team_accept", "applied") in outcomes

    # A second instance rebuilds the same state from Kafka alone.
    second = await start_alerts(kafka, run_lifecycle=False, run_webhooks=False)
    rebuilt = (await second.client.get(f"/v1/alerts/{alert.alert_id}", headers=operator)).json()
    assert rebuilt == (await http.get(f"/v1/alerts/{alert.alert_id}", headers=operator)).json()


async def test_the_pipeline_latency_metrics_count_each_alert(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory
) -> None:
    """An alert is counted by the lifecycle's latency and commit histograms and the state read histogram."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka)
    registry = alerts.service.registry
    alert = fresh_alert()
    async with Producer(kafka) as producer:
        await producer.alerts([alert])

    names = ["lindero_alerts_lifecycle_latency_seconds", "lindero_alerts_lifecycle_commit_seconds"]
    names.append("lindero_alerts_state_read_latency_seconds")

    async def counted() -> bool:
        return all(registry.get_sample_value(f"{name}_count") for name in names)

    await wait_until(counted, 20, "the alert to be counted")
    assert registry.get_sample_value("lindero_alerts_lifecycle_latency_seconds_count") == 1
    slowest = registry.get_sample_value("lindero_alerts_lifecycle_latency_seconds_sum") or 0.0
    assert 0 <= slowest < 20


async def test_two_operators_at_once_one_wins_one_gets_409(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory
) -> None:
    """Two operators acting on the same version at once: one applied, the other refused as stale."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka)
    http = alerts.client
    alert = fresh_alert()
    async with Producer(kafka) as producer:
        await producer.alerts([alert])
    first = alerts.auth("operator", "cc-cucuta", subject="maria")
    second = alerts.auth("supervisor", "cc-cucuta", subject="jorge")

    async def visible() -> bool:
        return (await http.get(f"/v1/alerts/{alert.alert_id}", headers=first)).status_code == 200

    await wait_until(visible, 20, "the alert")
    url = f"/v1/alerts/{alert.alert_id}/actions"
    replies = await asyncio.gather(
        http.post(url, json={"action": "acknowledge", "expected_version": 1}, headers=first),
        http.post(url, json={"action": "false_alarm", "expected_version": 1}, headers=second),
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [200, 409], [r.text for r in replies]
    loser = next(r for r in replies if r.status_code == 409)
    assert "stale" in loser.json()["detail"]
    final = (await http.get(f"/v1/alerts/{alert.alert_id}", headers=first)).json()
    assert final["version"] == 2
    assert len([h for h in final["history"] if h["action"] in {"acknowledge", "false_alarm"}]) == 1


async def test_refusals_are_precise(start_alerts: AlertsFactory, make_kafka: KafkaFactory) -> None:
    """Bad requests get 401, 403, 404, 409 or 422 with the reason, never 500."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka)
    http = alerts.client
    alert = fresh_alert()
    far = fresh_alert(border_distance_m=9_000.0)
    async with Producer(kafka) as producer:
        await producer.alerts([alert, far])
    operator = alerts.auth(*CO_OPERATOR)

    async def visible() -> bool:
        codes = [
            (await http.get(f"/v1/alerts/{a.alert_id}", headers=operator)).status_code for a in (alert, far)
        ]
        return codes == [200, 200]

    await wait_until(visible, 20, "the alerts")
    url = f"/v1/alerts/{alert.alert_id}/actions"

    assert (await http.get("/v1/alerts")).status_code == 401
    bad = await http.get("/v1/alerts", headers={"Authorization": "Bearer not.a.token"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"].startswith("Bearer")
    expired = alerts.token(
        "operator", "cc-cucuta", now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), ttl_s=60
    )
    assert (await http.get("/v1/alerts", headers={"Authorization": f"Bearer {expired}"})).status_code == 401

    unknown_action = await http.post(url, json={"action": "launch"}, headers=operator)
    assert unknown_action.status_code == 422
    assert unknown_action.json()["detail"][0]["field"] == "body.action"
    typo = await http.post(url, json={"action": "acknowledge", "expected_versoin": 1}, headers=operator)
    assert typo.status_code == 422
    assert "expected_versoin" in typo.text
    assert (await http.post(url, content=b"{", headers=operator)).status_code == 422

    venezuela = alerts.auth("operator", "cc-tachira")
    shared = await http.get(f"/v1/alerts/{alert.alert_id}", headers=venezuela)
    assert shared.status_code == 200
    assert shared.json()["access"] == "shared"
    refused = await http.post(url, json={"action": "acknowledge"}, headers=venezuela)
    assert refused.status_code == 403
    assert "information only" in refused.json()["detail"]
    assert (await http.get(f"/v1/alerts/{far.alert_id}", headers=venezuela)).status_code == 404
    mexico = alerts.auth("operator", "cc-tapachula")
    assert (await http.post(url, json={"action": "acknowledge"}, headers=mexico)).status_code == 404
    assert (await http.get("/v1/alerts/nope", headers=operator)).status_code == 404

    system_only = await http.post(url, json={"action": "webhook_delivered"}, headers=operator)
    assert system_only.status_code == 403
    operator_reopen = await http.post(url, json={"action": "reopen"}, headers=operator)
    assert operator_reopen.status_code == 403
    assert "supervisor" in operator_reopen.json()["detail"]
    foreign_team = await http.post(url, json={"action": "dispatch", "team_id": "ve-rrt-1"}, headers=operator)
    assert foreign_team.status_code == 403
    no_team = await http.post(url, json={"action": "dispatch", "team_id": "nobody"}, headers=operator)
    assert no_team.status_code == 404
    stale = await http.post(url, json={"action": "acknowledge", "expected_version": 7}, headers=operator)
    assert stale.status_code == 409
    team = alerts.auth("team", "co-rrt-alfa")
    assert (await http.get(f"/v1/alerts/{alert.alert_id}", headers=team)).status_code == 404
    assert (await http.get("/v1/audit", headers=operator)).status_code == 403
    window = await http.get(
        "/v1/alerts",
        params={"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"},
        headers=operator,
    )
    assert window.status_code == 422
    naive = await http.get("/v1/alerts", params={"since": "2030-01-01T00:00:00"}, headers=operator)
    assert naive.status_code == 422
    assert naive.json()["detail"][0]["field"] == "query.since"


async def test_history_queries_filter_and_page(start_alerts: AlertsFactory, make_kafka: KafkaFactory) -> None:
    """GET /v1/alerts filters by time window, kind, status and severity, and pages without overlap."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka)
    http = alerts.client
    base = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    batch = [
        fresh_alert(
            time=base + dt.timedelta(minutes=i),
            updated_at=base + dt.timedelta(minutes=i),
            kind="loitering" if i % 3 == 0 else "border_crossing",
            severity="medium" if i % 2 else "high",
        )
        for i in range(30)
    ]
    async with Producer(kafka) as producer:
        await producer.alerts(batch)
    operator = alerts.auth(*CO_OPERATOR)

    async def all_there() -> bool:
        return (await http.get("/v1/alerts", headers=operator)).json()["count"] == 30

    await wait_until(all_there, 20, "30 alerts")
    window = {
        "since": (base + dt.timedelta(minutes=10)).isoformat(),
        "until": (base + dt.timedelta(minutes=20)).isoformat(),
    }
    found = (await http.get("/v1/alerts", params=window, headers=operator)).json()["alerts"]
    assert sorted(a["alert"]["alert_id"] for a in found) == sorted(a.alert_id for a in batch[10:20])
    loiter = (await http.get("/v1/alerts", params={"kind": "loitering"}, headers=operator)).json()
    assert loiter["count"] == 10
    high = (await http.get("/v1/alerts", params={"min_severity": "high"}, headers=operator)).json()
    assert high["count"] == 15

    await http.post(
        f"/v1/alerts/{batch[0].alert_id}/actions", json={"action": "false_alarm"}, headers=operator
    )
    closed = (await http.get("/v1/alerts", params={"status": "false_alarm"}, headers=operator)).json()
    assert [a["alert"]["alert_id"] for a in closed["alerts"]] == [batch[0].alert_id]

    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if after:
            params["after"] = after
        page = (await http.get("/v1/alerts", params=params, headers=operator)).json()
        seen += [a["alert"]["alert_id"] for a in page["alerts"]]
        after = page["next_page"]
        if after is None:
            break
    assert seen == [a.alert_id for a in reversed(batch)]


async def test_retried_action_is_applied_once(start_alerts: AlertsFactory, make_kafka: KafkaFactory) -> None:
    """The same action id sent twice changes the alert once and answers 200 both times."""
    kafka = make_kafka()
    alerts = await start_alerts(kafka)
    http = alerts.client
    alert = fresh_alert()
    async with Producer(kafka) as producer:
        await producer.alerts([alert])
    operator = alerts.auth(*CO_OPERATOR)

    async def visible() -> bool:
        return (await http.get(f"/v1/alerts/{alert.alert_id}", headers=operator)).status_code == 200

    await wait_until(visible, 20, "the alert")
    body = {"action": "comment", "note": "drone on the way", "action_id": str(uuid.uuid4())}
    url = f"/v1/alerts/{alert.alert_id}/actions"
    first = await http.post(url, json=body, headers=operator)
    second = await http.post(url, json=body, headers=operator)
    assert first.status_code == second.status_code == 200
    assert first.json()["alert"]["version"] == second.json()["alert"]["version"] == 2
