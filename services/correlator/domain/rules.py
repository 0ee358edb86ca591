"""Anomaly rules on tracks: each a small state machine, fed with what the tracker knows.

A rule looks at the region's live (confirmed or coasting) tracks as event time passes and
reports :class:`Finding` objects: "this condition holds for this subject now" (``active``) or
"it no longer holds" (not ``active``). It never decides whether an alert is new or an update:
the :mod:`alertbook` does, so deduplication and cooldowns live in one place. A rule's failure
is contained by the caller; rules share nothing but their inputs.

Rules here: border crossing (with direction and border), restricted-zone entry, loitering near
the border, rendezvous, low-slow flyer, speed implausible for the class, activity surge per
cell, and ground-sensor trips that no track explains.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy.spatial import cKDTree

from schemas.alerts import AlertKind, Severity
from services.core.ruleconfig import RulesConfig
from services.correlator.domain.classification import INDEX
from services.correlator.domain.detections import Detection
from services.correlator.domain.region import RegionContext, ZoneArea
from services.correlator.domain.tracker import TrackEstimate

_LABEL = {
    "person": "Person",
    "vehicle": "Vehicle",
    "aircraft": "Aircraft",
    "vessel": "Vessel",
    "animal": "Animal",
    "unknown": "Unidentified target",
}


@dataclass(frozen=True)
class Finding:
    """A rule's observation about one subject at one event time."""

    kind: AlertKind
    key: str
    """The subject inside the rule: a track id, a pair of track ids, a sensor id, a cell..."""
    severity: Severity
    time_s: float
    east_m: float
    north_m: float
    summary: str
    track_ids: tuple[str, ...] = ()
    sensor_ids: tuple[str, ...] = ()
    owners: tuple[tuple[str, str], ...] = ()
    """Whose sensors saw it; the first is the alert's owner."""
    evidence: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    active: bool = True
    """False: the condition that was reported before has ended."""


@dataclass(frozen=True)
class TrackView:
    """A track with what the region knows about where it is."""

    track: TrackEstimate
    jurisdiction: str | None
    border_distance_m: float
    zones: tuple[ZoneArea, ...]

    @property
    def track_id(self) -> str:
        return self.track.track_id

    @classmethod
    def _of(
        cls,
        track: TrackEstimate,
        jurisdiction: str | None,
        border_distance_m: float,
        zones: tuple[ZoneArea, ...],
    ) -> TrackView:
        """``cls(...)`` without a frozen dataclass's ``object.__setattr__`` per field (the rules
        view every live track once a second of event time)."""
        view = object.__new__(cls)
        object.__setattr__(
            view,
            "__dict__",
            {
                "track": track,
                "jurisdiction": jurisdiction,
                "border_distance_m": border_distance_m,
                "zones": zones,
            },
        )
        return view


def views(context: RegionContext, tracks: Sequence[TrackEstimate]) -> list[TrackView]:
    """Attach jurisdiction, border distance and zones to tracks (vectorised)."""
    if not tracks:
        return []
    east = np.array([t.east_m for t in tracks])
    north = np.array([t.north_m for t in tracks])
    countries = context.jurisdiction(east, north)
    distances = context.border_distance(east, north).tolist()
    zones = context.zones_containing(east, north)
    return [
        TrackView._of(track, country, distance, tuple(inside))
        for track, country, distance, inside in zip(tracks, countries, distances, zones, strict=True)
    ]


def _owners(track: TrackEstimate) -> tuple[tuple[str, str], ...]:
    rest = sorted(o for o in track.owners if o != track.primary_owner)
    return (track.primary_owner, *rest)


def _about(
    track: TrackEstimate,
    *,
    kind: AlertKind,
    severity: Severity,
    summary: str,
    details: dict[str, Any],
    key: str | None = None,
    at: tuple[float, float] | None = None,
) -> Finding:
    """A finding about one track: keyed by its id (unless ``key``), at its time and position (or
    ``at``), with its sensors, owners and evidence."""
    east_m, north_m = at if at is not None else (track.east_m, track.north_m)
    return Finding(
        kind=kind,
        key=key or track.track_id,
        severity=severity,
        time_s=track.time_s,
        east_m=east_m,
        north_m=north_m,
        summary=summary,
        track_ids=(track.track_id,),
        sensor_ids=tuple(sorted(track.sensor_ids)),
        owners=_owners(track),
        evidence=track.evidence,
        details=details,
    )


def _label(track: TrackEstimate) -> str:
    return _LABEL.get(track.target_class, "Target")


def _probability(track: TrackEstimate, name: str) -> float:
    return float(track.class_probabilities[INDEX[name]])


class TrackRule(Protocol):
    """A rule over the region's tracks."""

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]: ...

    def forget(self, track_id: str) -> None: ...

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class PerTrackRule(TrackRule, Protocol):
    """A rule whose verdict on a track depends on that track alone (not on the others, not on
    the clock): it may look at just the tracks that changed, as soon as they change."""

    @property
    def revision(self) -> int:
        """Counts the changes of its state that no finding reports (a track's first side of the
        border, a new loitering anchor): the engine writes the state when it moved."""
        ...


class BorderCrossing:
    """A track established on one side of a border later established on the other.

    "Established" means inside a country's outline and at least ``hysteresis_m`` from every
    border line, so position noise along the border never looks like a crossing.
    """

    def __init__(self, context: RegionContext, rules: RulesConfig) -> None:
        self.context = context
        self.config = rules.border_crossing
        self.side: dict[str, str] = {}
        self.crossings: dict[str, int] = {}
        self.revision = 0

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]:
        out = []
        for view in tracks:
            track = view.track
            if view.jurisdiction is None or view.border_distance_m < self.config.hysteresis_m:
                continue
            before = self.side.get(track.track_id)
            if before == view.jurisdiction:
                continue
            self.side[track.track_id] = view.jurisdiction
            self.revision += 1
            if before is None or track.target_class in self.config.ignore_classes:
                continue
            count = self.crossings.get(track.track_id, 0) + 1
            self.crossings[track.track_id] = count
            border = self.context.border_between(before, view.jurisdiction)
            border_name = border.name if border else f"{before}–{view.jurisdiction}"
            direction = f"{before}->{view.jurisdiction}"
            out.append(
                _about(
                    track,
                    kind=AlertKind.BORDER_CROSSING,
                    severity=Severity(self.config.severity),
                    summary=(
                        f"{_label(track)} crossed {before}→{view.jurisdiction} ({border_name} border), "
                        f"{track.speed_mps:.1f} m/s"
                    ),
                    details={
                        "direction": direction,
                        "from": before,
                        "to": view.jurisdiction,
                        "border_id": border.border_id if border else None,
                        "border": border_name,
                        "crossings": count,
                        "class": track.target_class,
                        "speed_mps": round(track.speed_mps, 2),
                    },
                )
            )
        return out

    def forget(self, track_id: str) -> None:
        self.side.pop(track_id, None)
        self.crossings.pop(track_id, None)

    def state(self) -> dict[str, Any]:
        return {"side": self.side, "crossings": self.crossings}

    def restore(self, state: dict[str, Any]) -> None:
        self.side = dict(state.get("side", {}))
        self.crossings = dict(state.get("crossings", {}))


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``: as an operator reads a dwell."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class RestrictedZone:
    """A track inside a configured restricted zone (one finding per track and zone)."""

    def __init__(self, context: RegionContext, rules: RulesConfig) -> None:
        self.context = context
        self.config = rules.restricted_zone
        self.inside: dict[str, float] = {}  # "zone|track" -> entry time
        self.revision = 0
        """Never moves: every change of its state (an entry, an exit) is a finding."""

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]:
        out = []
        present: set[str] = set()
        for view in tracks:
            track = view.track
            if track.target_class in self.config.ignore_classes:
                continue
            for zone in view.zones:
                key = f"{zone.zone_id}|{track.track_id}"
                present.add(key)
                entered = self.inside.setdefault(key, track.time_s)
                dwell = track.time_s - entered
                out.append(
                    _about(
                        track,
                        kind=AlertKind.RESTRICTED_ZONE,
                        key=key,
                        severity=Severity(zone.severity),
                        summary=(
                            f"{_label(track)} entered restricted zone {zone.name}"
                            if dwell < 1
                            else f"{_label(track)} inside restricted zone {zone.name} for {_duration(dwell)}"
                        ),
                        details={"zone_id": zone.zone_id, "zone": zone.name, "dwell_s": round(dwell)},
                    )
                )
        observed = {v.track_id for v in tracks}
        for key in list(self.inside):
            _, track_id = key.split("|", 1)
            if key not in present and track_id in observed:
                del self.inside[key]
                out.append(cleared(AlertKind.RESTRICTED_ZONE, key, now_s))
        return out

    def forget(self, track_id: str) -> None:
        for key in [k for k in self.inside if k.endswith(f"|{track_id}")]:
            del self.inside[key]

    def state(self) -> dict[str, Any]:
        return {"inside": self.inside}

    def restore(self, state: dict[str, Any]) -> None:
        self.inside = dict(state.get("inside", {}))


class Loitering:
    """A track that stays within ``radius_m`` of one point for ``min_duration_s`` near a border.

    The anchor is where the current stay began; moving farther than the radius from it starts
    a new stay at the current position.
    """

    def __init__(self, context: RegionContext, rules: RulesConfig) -> None:
        self.config = rules.loitering
        self.anchor: dict[str, tuple[float, float, float]] = {}  # track -> (east, north, since)
        self.reported: set[str] = set()
        self.revision = 0

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]:
        out = []
        for view in tracks:
            track = view.track
            if track.target_class not in self.config.classes:
                continue
            anchor = self.anchor.get(track.track_id)
            if (
                anchor is None
                or math.hypot(track.east_m - anchor[0], track.north_m - anchor[1]) > self.config.radius_m
            ):
                if track.track_id in self.reported:
                    self.reported.discard(track.track_id)
                    out.append(cleared(AlertKind.LOITERING, track.track_id, track.time_s))
                self.anchor[track.track_id] = (track.east_m, track.north_m, track.time_s)
                self.revision += 1
                continue
            stayed = track.time_s - anchor[2]
            if (
                stayed < self.config.min_duration_s
                or view.border_distance_m > self.config.max_border_distance_m
            ):
                continue
            self.reported.add(track.track_id)
            out.append(
                _about(
                    track,
                    kind=AlertKind.LOITERING,
                    severity=Severity(self.config.severity),
                    at=(anchor[0], anchor[1]),
                    summary=(
                        f"{_label(track)} loitering {stayed / 60:.0f} min "
                        f"within {self.config.radius_m:.0f} m, "
                        f"{view.border_distance_m:.0f} m from the border"
                    ),
                    details={
                        "duration_s": round(stayed),
                        "radius_m": self.config.radius_m,
                        "border_distance_m": round(view.border_distance_m),
                        "class": track.target_class,
                    },
                )
            )
        return out

    def forget(self, track_id: str) -> None:
        self.anchor.pop(track_id, None)
        self.reported.discard(track_id)

    def state(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "reported": sorted(self.reported)}

    def restore(self, state: dict[str, Any]) -> None:
        self.anchor = {k: (v[0], v[1], v[2]) for k, v in state.get("anchor", {}).items()}
        self.reported = set(state.get("reported", []))


class Rendezvous:
    """Two tracks within ``distance_m`` of each other for ``min_duration_s`` near a border."""

    def __init__(self, context: RegionContext, rules: RulesConfig) -> None:
        self.config = rules.rendezvous
        self.since: dict[str, float] = {}  # "a|b" -> first time together
        self.reported: set[str] = set()

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]:
        eligible = [v for v in tracks if v.track.target_class in self.config.classes]
        together: set[str] = set()
        out = []
        if len(eligible) >= 2:
            points = np.array([[v.track.east_m, v.track.north_m] for v in eligible])
            for i, j in cKDTree(points).query_pairs(self.config.distance_m):
                a, b = sorted((eligible[i], eligible[j]), key=lambda v: v.track_id)
                key = f"{a.track_id}|{b.track_id}"
                together.add(key)
                since = self.since.setdefault(key, max(a.track.time_s, b.track.time_s))
                duration = now_s - since
                border_m = min(a.border_distance_m, b.border_distance_m)
                if duration < self.config.min_duration_s or border_m > self.config.max_border_distance_m:
                    continue
                self.reported.add(key)
                gap = math.hypot(a.track.east_m - b.track.east_m, a.track.north_m - b.track.north_m)
                owners = tuple(dict.fromkeys((*_owners(a.track), *_owners(b.track))))
                out.append(
                    Finding(
                        kind=AlertKind.RENDEZVOUS,
                        key=key,
                        severity=Severity(self.config.severity),
                        time_s=now_s,
                        east_m=(a.track.east_m + b.track.east_m) / 2,
                        north_m=(a.track.north_m + b.track.north_m) / 2,
                        summary=(
                            f"Rendezvous: {_label(a.track).lower()} and {_label(b.track).lower()} within "
                            f"{gap:.0f} m for {duration / 60:.1f} min, {border_m:.0f} m from the border"
                        ),
                        track_ids=(a.track_id, b.track_id),
                        sensor_ids=tuple(sorted(a.track.sensor_ids | b.track.sensor_ids)),
                        owners=owners,
                        evidence=(*a.track.evidence[-10:], *b.track.evidence[-10:]),
                        details={
                            "duration_s": round(duration),
                            "distance_m": round(gap, 1),
                            "border_distance_m": round(border_m),
                            "jurisdictions": sorted({j for j in (a.jurisdiction, b.jurisdiction) if j}),
                        },
                    )
                )
        observed = {v.track_id for v in tracks}
        for key in list(self.since):
            if key in together:
                continue
            a_id, b_id = key.split("|")
            if a_id in observed or b_id in observed:
                del self.since[key]
                if key in self.reported:
                    self.reported.discard(key)
                    out.append(cleared(AlertKind.RENDEZVOUS, key, now_s))
        return out

    def forget(self, track_id: str) -> None:
        for key in [k for k in self.since if track_id in k.split("|")]:
            self.since.pop(key, None)
            self.reported.discard(key)

    def state(self) -> dict[str, Any]:
        return {"since": self.since, "reported": sorted(self.reported)}

    def restore(self, state: dict[str, Any]) -> None:
        self.since = dict(state.get("since", {}))
        self.reported = set(state.get("reported", []))


class _Sustained:
    """Helper: a per-track condition that must hold for ``min_duration_s`` before it counts."""

    def __init__(self, min_duration_s: float) -> None:
        self.min_duration_s = min_duration_s
        self.since: dict[str, float] = {}
        self.reported: set[str] = set()
        self.revision = 0
        """Counts the starts and ends of the condition (see :class:`PerTrackRule`)."""

    def check(self, track_id: str, holds: bool, time_s: float) -> tuple[bool, bool]:
        """(fire now, cleared now)."""
        if not holds:
            if self.since.pop(track_id, None) is not None:
                self.revision += 1
            if track_id in self.reported:
                self.reported.discard(track_id)
                return False, True
            return False, False
        since = self.since.get(track_id)
        if since is None:
            since = self.since[track_id] = time_s
            self.revision += 1
        if time_s - since >= self.min_duration_s:
            self.reported.add(track_id)
            return True, False
        return False, False

    def forget(self, track_id: str) -> None:
        self.since.pop(track_id, None)
        self.reported.discard(track_id)

    def state(self) -> dict[str, Any]:
        return {"since": self.since, "reported": sorted(self.reported)}

    def restore(self, state: dict[str, Any]) -> None:
        self.since = dict(state.get("since", {}))
        self.reported = set(state.get("reported", []))


class LowSlowFlyer:
    """An aircraft flying low and slow (a light aircraft or drone smuggling across)."""

    def __init__(self, context: RegionContext, rules: RulesConfig) -> None:
        self.context = context
        self.config = rules.low_slow_flyer
        self.held = _Sustained(self.config.min_duration_s)

    @property
    def revision(self) -> int:
        return self.held.revision

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]:
        out = []
        for view in tracks:
            track = view.track
            agl = None if track.alt_m is None else track.alt_m - self.context.ground_alt_m
            holds = (
                _probability(track, "aircraft") >= self.config.min_probability
                and track.speed_mps <= self.config.max_speed_mps
                and (agl is None or agl <= self.config.max_altitude_agl_m)
            )
            fire, ended = self.held.check(track.track_id, holds, track.time_s)
            if ended:
                out.append(cleared(AlertKind.LOW_SLOW_FLYER, track.track_id, track.time_s))
            if not fire:
                continue
            altitude = f"{agl:.0f} m above ground" if agl is not None else "altitude unknown"
            out.append(
                _about(
                    track,
                    kind=AlertKind.LOW_SLOW_FLYER,
                    severity=Severity(self.config.severity),
                    summary=f"Low, slow aircraft: {altitude}, {track.speed_mps:.0f} m/s",
                    details={
                        "altitude_agl_m": None if agl is None else round(agl),
                        "speed_mps": round(track.speed_mps, 1),
                        "heading_deg": round(
                            math.degrees(math.atan2(track.velocity_east_mps, track.velocity_north_mps)) % 360
                        ),
                        "p_aircraft": round(_probability(track, "aircraft"), 2),
                        "border_distance_m": round(view.border_distance_m)
                        if math.isfinite(view.border_distance_m)
                        else None,
                    },
                )
            )
        return out

    def forget(self, track_id: str) -> None:
        self.held.forget(track_id)

    def state(self) -> dict[str, Any]:
        return self.held.state()

    def restore(self, state: dict[str, Any]) -> None:
        self.held.restore(state)


class ImplausibleSpeed:
    """A track moving faster than its (confident) class can: misclassified, or a vehicle hiding."""

    def __init__(self, context: RegionContext, rules: RulesConfig) -> None:
        self.config = rules.implausible_speed
        self.held = _Sustained(self.config.min_duration_s)

    @property
    def revision(self) -> int:
        return self.held.revision

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]:
        out = []
        for view in tracks:
            track = view.track
            limit = self.config.max_speed_mps.get(track.target_class)  # type: ignore[call-overload]
            speed = track.speed_mps
            holds = False
            # speed - 2 sigma > limit needs speed > limit: the class belief and the speed's sigma
            # (numpy reads) only for the few tracks that are that fast (the rule sees every track
            # once a second)
            if limit is not None and speed > limit:
                sure = _probability(track, track.target_class) >= self.config.min_probability
                speed_sigma = math.sqrt(max(0.0, (track.covariance[2, 2] + track.covariance[3, 3]) / 2.0))
                holds = sure and speed - 2.0 * speed_sigma > limit
            fire, ended = self.held.check(track.track_id, holds, track.time_s)
            if ended:
                out.append(cleared(AlertKind.IMPLAUSIBLE_SPEED, track.track_id, track.time_s))
            if fire:
                out.append(
                    _about(
                        track,
                        kind=AlertKind.IMPLAUSIBLE_SPEED,
                        severity=Severity(self.config.severity),
                        summary=(
                            f"{track.speed_mps:.0f} m/s is implausible for a {track.target_class} "
                            f"(limit {limit:.0f} m/s)"
                        ),
                        details={
                            "speed_mps": round(track.speed_mps, 1),
                            "limit_mps": limit,
                            "class": track.target_class,
                        },
                    )
                )
        return out

    def forget(self, track_id: str) -> None:
        self.held.forget(track_id)

    def state(self) -> dict[str, Any]:
        return self.held.state()

    def restore(self, state: dict[str, Any]) -> None:
        self.held.restore(state)


class ActivitySurge:
    """New tracks per grid cell per interval, against an exponentially weighted baseline.

    At the end of each ``bin_s`` interval, a cell whose count exceeds
    ``max(min_count, mean + k_sigma * sd)`` of its baseline fires; the baseline then learns
    the count (EWMA with weight ``2 / (baseline_bins + 1)``, mean and variance).
    """

    def __init__(self, context: RegionContext, rules: RulesConfig) -> None:
        self.config = rules.activity_surge
        self.bin_start: float | None = None
        self.counts: dict[str, int] = {}
        self.owners: dict[str, list[list[str]]] = {}
        self.mean: dict[str, float] = {}
        self.var: dict[str, float] = {}
        self.seen: set[str] = set()
        self.bins = 0

    def _cell(self, east_m: float, north_m: float) -> str:
        size = self.config.cell_m
        return f"{math.floor(east_m / size)}:{math.floor(north_m / size)}"

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]:
        if self.bin_start is None:
            self.bin_start = now_s
        for view in tracks:
            if view.track_id not in self.seen:
                self.seen.add(view.track_id)
                cell = self._cell(view.track.east_m, view.track.north_m)
                self.counts[cell] = self.counts.get(cell, 0) + 1
                known = self.owners.setdefault(cell, [])
                for owner in _owners(view.track):
                    if list(owner) not in known:
                        known.append(list(owner))
        out = []
        while now_s - self.bin_start >= self.config.bin_s:
            out.extend(self._close_bin(self.bin_start + self.config.bin_s))
            self.bin_start += self.config.bin_s
        return out

    def _close_bin(self, end_s: float) -> list[Finding]:
        weight = 2.0 / (self.config.baseline_bins + 1)
        out = []
        cells = set(self.counts) | set(self.mean)
        for cell in sorted(cells):
            count = self.counts.get(cell, 0)
            mean = self.mean.get(cell, 0.0)
            sd = math.sqrt(self.var.get(cell, 0.0))
            threshold = max(float(self.config.min_count), mean + self.config.k_sigma * sd)
            if self.bins >= 2 and count >= threshold:
                x, y = (int(v) for v in cell.split(":"))
                size = self.config.cell_m
                out.append(
                    Finding(
                        kind=AlertKind.ACTIVITY_SURGE,
                        key=cell,
                        severity=Severity(self.config.severity),
                        time_s=end_s,
                        east_m=(x + 0.5) * size,
                        north_m=(y + 0.5) * size,
                        summary=(
                            f"Activity surge: {count} new tracks in {self.config.bin_s / 60:.0f} min "
                            f"in a {size / 1000:.0f} km cell (baseline {mean:.1f})"
                        ),
                        owners=tuple((o[0], o[1]) for o in self.owners.get(cell, [])),
                        details={
                            "count": count,
                            "baseline_mean": round(mean, 2),
                            "baseline_sd": round(sd, 2),
                            "cell": cell,
                        },
                    )
                )
            delta = count - mean
            self.mean[cell] = mean + weight * delta
            self.var[cell] = (1.0 - weight) * (self.var.get(cell, 0.0) + weight * delta * delta)
        self.counts = {}
        self.owners = {}
        self.bins += 1
        return out

    def forget(self, track_id: str) -> None:
        self.seen.discard(track_id)

    def state(self) -> dict[str, Any]:
        return {
            "bin_start": self.bin_start,
            "counts": self.counts,
            "owners": self.owners,
            "mean": self.mean,
            "var": self.var,
            "seen": sorted(self.seen),
            "bins": self.bins,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.bin_start = state.get("bin_start")
        self.counts = dict(state.get("counts", {}))
        self.owners = {k: list(v) for k, v in state.get("owners", {}).items()}
        self.mean = dict(state.get("mean", {}))
        self.var = dict(state.get("var", {}))
        self.seen = set(state.get("seen", []))
        self.bins = int(state.get("bins", 0))


class UncorroboratedTrips:
    """Ground-sensor trips that no track explains: someone the radars and drones do not see.

    A trip no track took is held for ``wait_s``; if by then no live track is within
    ``radius_m`` of the sensor, it is reported (repeated trips of one sensor update one alert).
    Trips of one sensor no more than ``cooldown_s`` apart form a series, counted for the
    escalation (the third escalates to medium); a trip after a longer gap starts a new series:
    the old one is reported cleared as of its last trip, so the alert book raises a new alert.
    """

    def __init__(self, context: RegionContext, rules: RulesConfig) -> None:
        self.context = context
        self.config = rules.uncorroborated_trip
        self.pending: list[dict[str, Any]] = []
        self.trips: dict[str, int] = {}
        self.last: dict[str, float] = {}  # sensor -> time of the latest trip of its series

    def add(self, detections: Iterable[Detection]) -> None:
        for detection in detections:
            if detection.sensor_type != "ground":
                continue
            if detection.target_class in self.config.ignore_classes:
                continue
            if (detection.confidence or 0.0) < self.config.min_confidence:
                continue
            self.pending.append(
                {
                    "sensor_id": detection.sensor_id,
                    "time_s": detection.time_s,
                    "east_m": float(detection.z[0]),
                    "north_m": float(detection.z[1]),
                    "class": detection.target_class,
                    "confidence": detection.confidence,
                    "event_id": detection.event_id,
                    "owner": list(detection.owner),
                }
            )

    def due_s(self) -> float:
        """When the oldest pending trip's wait is over (infinity: none is pending)."""
        return min((p["time_s"] for p in self.pending), default=math.inf) + self.config.wait_s

    def observe(self, tracks: Sequence[TrackView], now_s: float) -> list[Finding]:
        due = [p for p in self.pending if now_s - p["time_s"] >= self.config.wait_s]
        if not due:
            return []
        self.pending = [p for p in self.pending if now_s - p["time_s"] < self.config.wait_s]
        tree = cKDTree(np.array([[v.track.east_m, v.track.north_m] for v in tracks])) if tracks else None
        out = []
        for trip in due:
            if tree is not None and tree.query_ball_point(
                [trip["east_m"], trip["north_m"]], self.config.radius_m
            ):
                continue
            sensor = trip["sensor_id"]
            last = self.last.get(sensor)
            if last is not None and trip["time_s"] - last > self.config.cooldown_s:
                # The previous series is over: it ended with its last trip.
                out.append(cleared(AlertKind.UNCORROBORATED_TRIP, sensor, last))
                self.trips.pop(sensor, None)
            count = self.trips.get(sensor, 0) + 1
            self.trips[sensor] = count
            self.last[sensor] = trip["time_s"] if last is None else max(last, trip["time_s"])
            severity = Severity(self.config.severity)
            if count >= 3 and severity.rank < Severity.MEDIUM.rank:
                severity = Severity.MEDIUM
            out.append(
                Finding(
                    kind=AlertKind.UNCORROBORATED_TRIP,
                    key=sensor,
                    severity=severity,
                    time_s=trip["time_s"],
                    east_m=trip["east_m"],
                    north_m=trip["north_m"],
                    summary=(
                        f"Ground sensor {sensor} tripped ({trip['class']}, {trip['confidence']:.2f}) "
                        f"with no track within {self.config.radius_m:.0f} m"
                        + (f"; {count} such trips" if count > 1 else "")
                    ),
                    sensor_ids=(sensor,),
                    owners=((trip["owner"][0], trip["owner"][1]),),
                    evidence=(trip["event_id"],),
                    details={"trips": count, "class": trip["class"], "confidence": trip["confidence"]},
                )
            )
        return out

    def forget(self, track_id: str) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {"pending": self.pending, "trips": self.trips, "last": self.last}

    def restore(self, state: dict[str, Any]) -> None:
        self.pending = list(state.get("pending", []))
        self.trips = dict(state.get("trips", {}))
        self.last = dict(state.get("last", {}))


def cleared(kind: AlertKind, key: str, time_s: float) -> Finding:
    """The finding that says a condition reported before has ended."""
    return Finding(
        kind=kind,
        key=key,
        severity=Severity.INFO,
        time_s=time_s,
        east_m=0.0,
        north_m=0.0,
        summary="",
        active=False,
    )


def track_rules(context: RegionContext) -> dict[str, TrackRule]:
    """The enabled track rules of a region, by name."""
    rules = context.rules
    candidates: dict[str, tuple[bool, type]] = {
        "border_crossing": (rules.border_crossing.enabled, BorderCrossing),
        "restricted_zone": (rules.restricted_zone.enabled and bool(context.zones), RestrictedZone),
        "loitering": (rules.loitering.enabled, Loitering),
        "rendezvous": (rules.rendezvous.enabled, Rendezvous),
        "low_slow_flyer": (rules.low_slow_flyer.enabled, LowSlowFlyer),
        "implausible_speed": (rules.implausible_speed.enabled, ImplausibleSpeed),
        "activity_surge": (rules.activity_surge.enabled, ActivitySurge),
        "uncorroborated_trip": (rules.uncorroborated_trip.enabled, UncorroboratedTrips),
    }
    return {name: cls(context, rules) for name, (enabled, cls) in candidates.items() if enabled}
