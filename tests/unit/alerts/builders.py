"""Alerts, states, dispatches, tracks and viewers for the alerts tests (unit and integration)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from schemas.alerts import Alert, Severity
from schemas.lifecycle import ActionKind, Actor, AlertState, Dispatch, HistoryEntry, Role
from schemas.tracks import Track
from services.alerts.domain.sharing import Viewer
from services.core.config import LinderoConfig, load_config

DEMO = load_config(Path(__file__).resolve().parents[3] / "config" / "demo.yaml")
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def point_in(config: LinderoConfig, region: str) -> tuple[float, float]:
    """A point well inside ``region`` with more decimals than a coarsened site keeps."""
    origin = config.regions_by_id[region].frame_origin
    return origin.lat + 0.0012345, origin.lon - 0.0043217


def agencies_of(config: LinderoConfig, country: str) -> list[str]:
    return [agency.id for agency in config.countries_by_code[country].agencies]


def sensors_of(config: LinderoConfig, country: str, region: str) -> list[str]:
    return [s.id for s in config.sensors if s.owner.country == country and s.region == region]


def teams_of(config: LinderoConfig, country: str, region: str | None = None) -> list[str]:
    return [t.id for t in config.teams if t.country == country and region in (None, t.region)]


def centre_of(config: LinderoConfig, country: str, region: str) -> str | None:
    return next((c.id for c in config.centres if c.country == country and region in c.regions), None)


def make_alert(
    config: LinderoConfig,
    country: str,
    region: str,
    *,
    jurisdiction: str | object | None = ...,
    **changes: Any,
) -> Alert:
    """An alert seen by ``country``'s sensors in ``region`` (its land unless told otherwise)."""
    lat, lon = point_in(config, region)
    sensors = sensors_of(config, country, region) or [f"{country.lower()}-x-ugs-01"]
    agencies = agencies_of(config, country)
    owners = [{"country": country, "agency": a} for a in agencies]
    data: dict[str, Any] = {
        "alert_id": f"A-{uuid.uuid4().hex[:24]}",
        "revision": 2,
        "kind": "border_crossing",
        "severity": "critical",
        "time": T0,
        "updated_at": T0,
        "lat": lat,
        "lon": lon,
        "region": region,
        "jurisdiction": country if jurisdiction is ... else jurisdiction,
        "owner": owners[0],
        "contributors": owners,
        "track_ids": [f"{region}.T000042", f"{region}.T000043"],
        "sensor_ids": sensors[:3],
        "border_distance_m": 150.0,
        "summary": f"Person crossed near {sensors[0]} ({agencies[0]}), seen by {sensors[-1]}",
        "evidence": [str(uuid.uuid4()), str(uuid.uuid4())],
        "details": {
            "sensor_id": sensors[0],
            "nearest": f"50 m from {sensors[-1]}",
            "class": "person",
            "crossings": 1,
        },
    }
    data.update(changes)
    return Alert.model_validate(data)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fresh_crossing(**changes: Any) -> Alert:
    """A high-severity alert in co-ve-cucuta seen by Colombia's sensors, raised just now (revision 1)."""
    moment = utc_now()
    data: dict[str, Any] = {"severity": Severity.HIGH, "time": moment, "updated_at": moment, "revision": 1}
    data.update(changes)
    return make_alert(DEMO, "CO", "co-ve-cucuta", **data)


def make_dispatch(config: LinderoConfig, alert: Alert, team: str, **changes: Any) -> Dispatch:
    """An offer of ``team`` for ``alert``."""
    data: dict[str, Any] = {
        "dispatch_id": f"D-{uuid.uuid4().hex[:12]}",
        "alert_id": alert.alert_id,
        "team_id": team,
        "status": "offered",
        "lat": alert.lat,
        "lon": alert.lon,
        "region": alert.region,
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "distance_m": 1234.5,
        "offered_at": T0,
        "accept_by": T0 + dt.timedelta(minutes=2),
        "updated_at": T0,
        "history": [{"time": T0, "action": "dispatch", "status": "dispatched", "note": f"offered to {team}"}],
    }
    data.update(changes)
    return Dispatch.model_validate(data)


def operator_subject(country: str) -> str:
    return f"op-{country.lower()}-maria"


def make_state(
    config: LinderoConfig, alert: Alert, *, team: str | object | None = ..., **changes: Any
) -> AlertState:
    """The state of ``alert``: acknowledged by an operator of its owner's country, its team offered."""
    country = alert.owner.country
    if team is ...:
        own = teams_of(config, country, alert.region)
        team = own[0] if own else None
    actor = Actor(
        subject=operator_subject(country),
        role=Role.OPERATOR,
        country=country,
        centre=centre_of(config, country, alert.region),
    )
    dispatch = make_dispatch(config, alert, str(team)) if team is not None else None
    data: dict[str, Any] = {
        "alert": alert,
        "status": "dispatched" if dispatch else "acknowledged",
        "version": 3,
        "updated_at": T0,
        "history": [
            HistoryEntry(time=T0, action=None, status="new", note=f"raised: {alert.summary}"),
            HistoryEntry(
                time=T0,
                action=ActionKind.ACKNOWLEDGE,
                status="acknowledged",
                actor=actor,
                note=f"{operator_subject(country)} checked {alert.sensor_ids[0]}",
            ),
        ],
        "dispatch": dispatch,
        "suggested_team": team,
        "teams_offered": [team] if team else [],
        "notice": f"{team} is the nearest team" if team else None,
    }
    data.update(changes)
    return AlertState.model_validate(data)


def make_track(config: LinderoConfig, country: str, region: str, **changes: Any) -> Track:
    """A track seen by ``country``'s sensors in ``region`` (its land unless told otherwise)."""
    lat, lon = point_in(config, region)
    sensors = sensors_of(config, country, region) or [f"{country.lower()}-x-rdr-1"]
    data: dict[str, Any] = {
        "track_id": f"{region}.T000042",
        "region": region,
        "time": T0,
        "lat": lat,
        "lon": lon,
        "velocity_east_mps": 1.0,
        "velocity_north_mps": 0.5,
        "speed_mps": 1.1,
        "heading_deg": 63.0,
        "position_sigma_m": 12.0,
        "covariance_en_m2": (144.0, 0.0, 144.0),
        "status": "confirmed",
        "class": "person",
        "class_probabilities": [{"class": "person", "probability": 0.9}],
        "sensor_ids": sensors[:2],
        "owners": [{"country": country, "agency": a} for a in agencies_of(config, country)],
        "jurisdiction": country,
        "border_distance_m": 100.0,
        "update_count": 12,
        "first_seen": T0,
        "last_update": T0,
    }
    data.update(changes)
    return Track.model_validate(data)


def live_track(number: int, **changes: Any) -> Track:
    """Track number ``number`` of co-ve-cucuta (a Colombian sensor's), updated just now."""
    moment = utc_now()
    data: dict[str, Any] = {"time": moment, "last_update": moment, "first_seen": moment}
    data.update(changes)
    return make_track(DEMO, "CO", "co-ve-cucuta", track_id=f"co-ve-cucuta.T{number:06d}", **data)


def centre_viewer(config: LinderoConfig, centre: str, role: str = "operator", sub: str = "op-1") -> Viewer:
    return Viewer.from_claims({"sub": sub, "role": role, "centre": centre}, config)


def team_viewer(config: LinderoConfig, team: str) -> Viewer:
    return Viewer.from_claims({"sub": team, "role": "team", "team": team}, config)


def admin_viewer(config: LinderoConfig) -> Viewer:
    return Viewer.from_claims({"sub": "root", "role": "admin"}, config)
