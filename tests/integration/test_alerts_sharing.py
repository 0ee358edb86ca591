"""Sharing agreements end to end: every demo centre (both roles), every team and an admin try to
see, over the websocket and over REST, what must stay hidden from them."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from typing import Any

from schemas.alerts import Alert, Severity
from schemas.tracks import Track
from services.alerts.domain.sharing import Viewer
from tests.integration.alerts_fixtures import AlertsFactory, Producer, StreamClient, start_alerts
from tests.integration.conftest import KafkaFactory, wait_until
from tests.unit.alerts.builders import DEMO, agencies_of, make_alert, make_track

__all__ = ["start_alerts"]

VARIANTS: dict[str, dict[str, Any]] = {
    "near": {"severity": Severity.HIGH, "kind": "border_crossing", "border_distance_m": 150.0},
    "near-low": {"severity": Severity.LOW, "kind": "border_crossing", "border_distance_m": 150.0},
    "far": {"severity": Severity.CRITICAL, "kind": "border_crossing", "border_distance_m": 9_000.0},
    "near-surge": {"severity": Severity.HIGH, "kind": "activity_surge", "border_distance_m": 300.0},
    "sensor": {"severity": Severity.CRITICAL, "kind": "sensor_tamper", "border_distance_m": 800.0},
}


def corpus() -> tuple[list[Alert], list[Track]]:
    """For every region and each of its two countries: one alert per variant and two tracks."""
    moment = dt.datetime.now(dt.UTC)
    alerts, tracks = [], []
    number = itertools.count(1)
    for region, countries in (("co-ve-cucuta", ("CO", "VE")), ("mx-gt-tapachula", ("MX", "GT"))):
        for country in countries:
            for name, variant in VARIANTS.items():
                alerts.append(
                    make_alert(
                        DEMO,
                        country,
                        region,
                        time=moment,
                        updated_at=moment,
                        revision=1,
                        alert_id=f"A-{country}-{name}",
                        **variant,
                    )
                )
            for distance in (200.0, 8_000.0):
                tracks.append(
                    make_track(
                        DEMO,
                        country,
                        region,
                        track_id=f"{region}.T{next(number):06d}",
                        border_distance_m=distance,
                        time=moment,
                        first_seen=moment,
                        last_update=moment,
                    )
                )
    return alerts, tracks


def viewers() -> list[tuple[str, str | None]]:
    """(role, centre or team) of every demo centre in both roles, every team, and an admin."""
    out: list[tuple[str, str | None]] = []
    for centre in DEMO.centres:
        out += [("operator", centre.id), ("supervisor", centre.id)]
    out += [("team", team.id) for team in DEMO.teams]
    out.append(("admin", None))
    return out


def secrets_of(country: str) -> set[str]:
    """Identifiers of ``country`` that a partner must never read when redacted: sensor ids and agencies."""
    sensors = {s.id for s in DEMO.sensors if s.owner.country == country}
    return sensors | set(agencies_of(DEMO, country))


def words(text: str) -> set[str]:
    return set(
        text.replace('"', " ").replace(",", " ").replace(":", " ").replace("[", " ").replace("]", " ").split()
    )


async def test_every_viewer_sees_exactly_what_the_agreements_allow(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory
) -> None:
    """Over websocket and REST, each viewer receives exactly the policy's views, nothing hidden, no
    redacted identifier anywhere in the bytes, and 404 for every alert it may not see."""
    kafka = make_kafka()
    alerts_service = await start_alerts(kafka)
    http = alerts_service.client
    alerts, tracks = corpus()
    everyone = viewers()
    streams: dict[tuple[str, str | None], StreamClient] = {}
    for role, home in everyone:
        token = alerts_service.token(role, home)
        path = f"/v1/teams/{home}/stream" if role == "team" else "/v1/stream"
        streams[(role, home)] = await StreamClient.open(f"{alerts_service.ws_url}{path}", token)

    admin = alerts_service.auth("admin")
    async with Producer(kafka) as producer:
        await producer.alerts(alerts)
        await producer.tracks(tracks)

        async def all_in() -> bool:
            listed = (await http.get("/v1/alerts", headers=admin, params={"limit": 1000})).json()
            tracked = (await http.get("/v1/tracks", headers=admin)).json()
            return listed["count"] == len(alerts) and tracked["count"] == len(tracks)

        await wait_until(all_in, 30, "every alert and track")

    # Critical alerts were dispatched automatically: wait until every offer is on the board.
    service = alerts_service.service
    critical = {a.alert_id for a in alerts if a.severity is Severity.CRITICAL}
    await wait_until(
        lambda: asyncio.sleep(0, {d.alert_id for d in service.board.dispatches.values()} == critical),
        30,
        "the automatic dispatches",
    )
    teams_reached: set[str] = set()

    policy = service.policy
    for (role, home), client in streams.items():
        claims = {"sub": "x", "role": role}
        if role == "team":
            claims["team"] = home or ""
        elif home is not None:
            claims["centre"] = home
        viewer = Viewer.from_claims(claims, DEMO)
        dispatched_to = service.dispatched_to(viewer)
        expected = {
            a.alert_id: view
            for a in alerts
            if (view := policy.alert(viewer, service.store.alerts[a.alert_id], dispatched_to)) is not None
        }
        expected_tracks = {
            t.track_id: view
            for t in tracks
            if (view := policy.track(viewer, service.store.tracks[t.track_id])) is not None
        }

        def received(stream: StreamClient = client) -> dict[str, dict[str, Any]]:
            held: dict[str, dict[str, Any]] = {}
            for message in stream.messages:
                if message["type"] == "snapshot":
                    held.update({a["alert"]["alert_id"]: a for a in message["alerts"]})
                elif message["type"] in {"alert", "alert_update"}:
                    held[message["data"]["alert"]["alert_id"]] = message["data"]
            return held

        await client.wait_for(
            lambda stream=client, want=expected: (
                {k: v["version"] for k, v in received(stream).items()}
                == {k: v["version"] for k, v in want.items()}
            ),
            30,
            f"the stream of {role} {home}",
        )
        assert received() == expected, f"{role} {home}"
        streamed_tracks = {m["data"]["track_id"]: m["data"] for m in client.of_type("track")}
        assert streamed_tracks == expected_tracks, f"{role} {home}: tracks"

        auth = alerts_service.auth(role, home)
        listed = (await http.get("/v1/alerts", headers=auth, params={"limit": 1000})).json()["alerts"]
        assert {a["alert"]["alert_id"]: a for a in listed} == expected, f"{role} {home}: REST"
        listed_tracks = (await http.get("/v1/tracks", headers=auth)).json()["tracks"]
        assert {t["track_id"]: t for t in listed_tracks} == expected_tracks, f"{role} {home}: REST tracks"
        for alert in alerts:
            reply = await http.get(f"/v1/alerts/{alert.alert_id}", headers=auth)
            assert reply.status_code == (200 if alert.alert_id in expected else 404), (
                role,
                home,
                alert.alert_id,
            )

        # Absolute rules, independent of the policy code.
        country = viewer.country
        raw = " ".join(client.raw) + json.dumps(listed) + json.dumps(listed_tracks)
        if role == "admin":
            assert len(expected) == len(alerts)
            continue
        if role == "team":
            offered = {d.alert_id for d in service.board.of_team(home or "")}
            assert set(expected) == offered, home
            assert all(service.store.alerts[a].alert.jurisdiction == country for a in offered)
            assert expected_tracks == {}
            teams_reached |= {home or ""} if offered else set()
            continue
        assert country is not None
        partners = {"CO": "VE", "VE": "CO", "MX": "GT", "GT": "MX"}
        partner = partners[country]
        mine = {a.alert_id for a in alerts if a.alert_id.startswith(f"A-{country}-")}
        theirs = {a.alert_id for a in alerts if a.alert_id.startswith(f"A-{partner}-")}
        assert mine <= set(expected), f"{home} misses its own alerts"
        assert set(expected) <= mine | theirs, f"{home} sees another region"
        shared = set(expected) & theirs
        assert f"A-{partner}-far" not in shared
        assert f"A-{partner}-near-low" not in shared
        if country in {"CO", "VE"}:
            assert shared == {f"A-{partner}-near"}, home
        else:
            # The Suchiate memorandum names no kinds: every kind at high or above within 5 km.
            assert shared == {f"A-{partner}-near", f"A-{partner}-near-surge", f"A-{partner}-sensor"}, home
        for alert_id in shared:
            view = expected[alert_id]
            assert view["access"] == "shared"
            assert view["alert"]["sensor_ids"] == []
            assert view["alert"]["evidence"] == []
            assert view["alert"]["owner"]["agency"] is None
            assert "dispatch" not in view or view["dispatch"] is None
        leaked = words(raw) & secrets_of(partner)
        assert not leaked, f"{role} {home} read {sorted(leaked)}"
        partner_tracks = {t for t, v in expected_tracks.items() if v["access"] == "shared"}
        if country in {"MX", "GT"}:
            assert partner_tracks == set(), "the Suchiate memorandum shares no tracks"
        else:
            assert len(partner_tracks) == 1, "only the partner's track near the border"
        other_region = "mx-gt-tapachula" if country in {"CO", "VE"} else "co-ve-cucuta"
        assert other_region not in raw

    assert len(teams_reached) >= 4, "every country's critical alerts reached one of its teams"
    for client in streams.values():
        await client.close()


async def test_map_data_shows_only_your_own_sensors_and_zones(
    start_alerts: AlertsFactory, make_kafka: KafkaFactory
) -> None:
    """/v1/map gives a centre its regions' outlines and borders, only its own country's sensors and zones."""
    alerts_service = await start_alerts(make_kafka())
    http = alerts_service.client
    assert (await http.get("/v1/map")).status_code == 401
    for centre in DEMO.centres:
        data = (await http.get("/v1/map", headers=alerts_service.auth("operator", centre.id))).json()
        assert {r["id"] for r in data["regions"]} == set(centre.regions)
        assert data["sensors"], centre.id
        assert {s["owner"]["country"] for s in data["sensors"]} == {centre.country}
        assert {t["country"] for t in data["teams"]} == {centre.country}
        kinds = {f["properties"]["kind"] for f in data["geography"]["features"]}
        assert kinds == {"country", "border"}
        assert {f["properties"]["region"] for f in data["geography"]["features"]} == set(centre.regions)
        for zone in data["zones"]:
            assert zone["region"] in centre.regions
        foreign = {s.id for s in DEMO.sensors if s.owner.country != centre.country}
        assert not foreign & words(json.dumps(data))
    everything = (await http.get("/v1/map", headers=alerts_service.auth("admin"))).json()
    assert len(everything["sensors"]) == len(DEMO.sensors)
    assert len(everything["zones"]) == len(DEMO.zones)
