"""From findings to alerts: one alert per condition, updated rather than repeated.

Each (kind, subject) has at most one open alert. A finding for an open subject updates that
alert (same ``alert_id``, ``revision`` + 1) when its severity changed, when its facts changed
(another crossing, another trip) or when ``update_interval_s`` passed since the last revision;
otherwise it is absorbed. When a rule reports the condition over, the alert is closed but
remembered for ``cooldown_s``: a recurrence within the cooldown reopens the same alert; after
it, a new alert (a new episode, a new id) is raised.

Alert ids are deterministic (region, kind, subject, episode), so a correlator that resumes
from its snapshot continues the same alerts.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.alerts import Alert, AlertKind, Severity
from schemas.common import Owner
from services.core.ruleconfig import RulesConfig
from services.correlator.domain.region import RegionContext
from services.correlator.domain.rules import Finding

_NAMESPACE = uuid.UUID("6c1e0a3e-6b0f-4c35-9c61-1f6a3a0de7a1")
_VOLATILE = frozenset(
    {
        "duration_s",
        "dwell_s",
        "silent_s",
        "speed_mps",
        "distance_m",
        "border_distance_m",
        "altitude_agl_m",
        "heading_deg",
        "p_aircraft",
    }
)
"""Details that change at every look (measurements, not facts): they never force a revision."""


@dataclass
class _Open:
    alert_id: str
    episode: int
    revision: int
    first_s: float
    published_s: float
    severity: str
    facts: dict[str, Any]
    closed_s: float | None = None


def _cooldown(rules: RulesConfig, kind: AlertKind) -> float:
    section = {
        AlertKind.BORDER_CROSSING: rules.border_crossing.cooldown_s,
        AlertKind.RESTRICTED_ZONE: rules.restricted_zone.cooldown_s,
        AlertKind.LOITERING: rules.loitering.cooldown_s,
        AlertKind.RENDEZVOUS: rules.rendezvous.cooldown_s,
        AlertKind.LOW_SLOW_FLYER: rules.low_slow_flyer.cooldown_s,
        AlertKind.IMPLAUSIBLE_SPEED: rules.implausible_speed.cooldown_s,
        AlertKind.ACTIVITY_SURGE: rules.activity_surge.cooldown_s,
        AlertKind.SILENT_SENSOR: rules.silent_sensor.cooldown_s,
        AlertKind.UNCORROBORATED_TRIP: rules.uncorroborated_trip.cooldown_s,
    }
    return section.get(kind, rules.sensor_status.cooldown_s)


class AlertBook:
    """The open and recently closed alerts of one region."""

    def __init__(self, context: RegionContext) -> None:
        self.context = context
        self.open: dict[str, _Open] = {}
        self.episodes: dict[str, int] = {}

    def apply(self, finding: Finding) -> Alert | None:
        """The alert to publish for this finding, or None when nothing new is to be said."""
        book_key = f"{finding.kind.value}|{finding.key}"
        entry = self.open.get(book_key)
        cooldown = _cooldown(self.context.rules, finding.kind)
        if not finding.active:
            if entry is not None and entry.closed_s is None:
                entry.closed_s = finding.time_s
            return None
        if entry is not None and entry.closed_s is not None and finding.time_s - entry.closed_s > cooldown:
            entry = None
        facts = {k: v for k, v in finding.details.items() if k not in _VOLATILE}
        if entry is None:
            episode = self.episodes.get(book_key, 0) + 1
            self.episodes[book_key] = episode
            name = f"{self.context.region}|{finding.kind.value}|{finding.key}|{episode}"
            alert_id = f"A-{uuid.uuid5(_NAMESPACE, name).hex[:24]}"
            entry = _Open(alert_id, episode, 0, finding.time_s, -math.inf, finding.severity.value, facts)
            self.open[book_key] = entry
        else:
            reopened = entry.closed_s is not None
            changed = entry.severity != finding.severity.value or entry.facts != facts or reopened
            due = finding.time_s - entry.published_s >= self.context.rules.update_interval_s
            entry.closed_s = None
            if not changed and not due:
                return None
        entry.revision += 1
        entry.published_s = finding.time_s
        entry.severity = finding.severity.value
        entry.facts = facts
        return self._alert(entry, finding)

    def forget_track(self, track_id: str) -> None:
        """Drop the alerts whose subject involves a track that ended, and their episode counters.

        Track ids are never reused, so such a subject cannot recur; without this, alerts that
        never clear (a border crossing) would stay in the book, and in every snapshot, forever.
        """
        for table in (self.open, self.episodes):
            for key in [k for k in table if track_id in k.split("|")[1:]]:
                del table[key]

    def expire(self, now_s: float) -> None:
        """Forget closed alerts whose cooldown has passed (the episode counter stays)."""
        for key, entry in list(self.open.items()):
            kind = AlertKind(key.split("|", 1)[0])
            if entry.closed_s is not None and now_s - entry.closed_s > _cooldown(self.context.rules, kind):
                del self.open[key]

    def _alert(self, entry: _Open, finding: Finding) -> Alert:
        context = self.context
        lat, lon, _ = context.to_wgs84(finding.east_m, finding.north_m)
        east = np.array([finding.east_m])
        north = np.array([finding.north_m])
        jurisdiction = context.jurisdiction(east, north)[0]
        border = float(context.border_distance(east, north)[0])
        owners = [Owner(country=c, agency=a) for c, a in dict.fromkeys(finding.owners) if c]
        if not owners:  # a region-wide finding nobody's sensor alone explains
            owners = [Owner(country=jurisdiction or context.countries[0][0], agency="lindero")]
        return Alert(
            alert_id=entry.alert_id,
            revision=entry.revision,
            kind=finding.kind,
            severity=Severity(finding.severity),
            time=_utc(entry.first_s),
            updated_at=_utc(finding.time_s),
            lat=lat,
            lon=lon,
            region=context.region,
            jurisdiction=jurisdiction,
            owner=owners[0],
            contributors=owners[:16],
            track_ids=list(finding.track_ids)[:16],
            sensor_ids=list(finding.sensor_ids)[:64],
            border_distance_m=round(border, 1) if math.isfinite(border) else None,
            summary=finding.summary[:300],
            evidence=list(finding.evidence)[-50:],
            details=finding.details,
        )

    def state(self) -> dict[str, Any]:
        return {
            "open": {
                key: [
                    e.alert_id,
                    e.episode,
                    e.revision,
                    e.first_s,
                    e.published_s if math.isfinite(e.published_s) else None,
                    e.severity,
                    e.facts,
                    e.closed_s,
                ]
                for key, e in self.open.items()
            },
            "episodes": self.episodes,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.open = {
            key: _Open(v[0], v[1], v[2], v[3], v[4] if v[4] is not None else -math.inf, v[5], v[6], v[7])
            for key, v in state.get("open", {}).items()
        }
        self.episodes = dict(state.get("episodes", {}))


def _utc(time_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_s, dt.UTC)
