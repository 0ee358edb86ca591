"""One region's correlation, end to end and pure: detections in, track updates and alerts out.

Event-time processing with a bounded reorder window: detections wait in a buffer until event
time has moved the window past them (event time's front is the newest event time seen, or the
caller's clock when it is caught up), then go to the tracker in time order, grouped into
scans (one sensor, within ``scan_window_s``; a radar scan covers only the sector its beam swept
meanwhile, see sweep.py). The window is ``reorder_window_s``, or with ``reorder_adaptive`` what
the region's detections needed lately, up to that (reorder.py). A detection older than the
release cursor when it arrives is *late*: counted and dropped (feeding it would rewind tracks).

Gateways may promise that everything they post from then on is newer than a time
(``Lindero-Complete-Through``, see schemas/events.py). While *every* gateway of the region keeps
promising (none of the promises more than ``reorder_window_s`` behind event time's front), the
cursor is the oldest of their promises, whether it is ahead of the window or behind it: a
detection then waits for the gateways, not for the slowest delay seen in five minutes, and a
promising gateway's slow request is waited for (up to ``reorder_window_s``) instead of being
dropped as late because the adaptive window had learnt a shorter wait. One gateway that stops
promising hands the region back to the window.

Every ``RULE_INTERVAL_S`` of event time the rules look at the live tracks; in between, the
rules whose verdict on a track depends on that track alone (a crossing, a zone entry) look at
each track that changed, at every step. The alert book turns their findings into alerts.
Track updates are rate-limited per track (``publish_interval_s``); status changes are
published at once; a track that ends is published ``lost`` and then deleted (a tombstone).

The whole state (tracks, rules, alert book, cursors) exports to a JSON-ready dict, so a
correlator resumes after a crash or a rebalance exactly where its last transaction left it.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from schemas.alerts import Alert
from schemas.common import SCHEMA_VERSION
from schemas.tracks import TrackStatus
from services.correlator.domain.alertbook import AlertBook
from services.correlator.domain.classification import CLASSES, ClassFusion
from services.correlator.domain.detections import Detection
from services.correlator.domain.motion import ImmModel
from services.correlator.domain.region import RegionContext
from services.correlator.domain.reorder import ReorderWindow
from services.correlator.domain.rules import (
    Finding,
    PerTrackRule,
    TrackRule,
    TrackView,
    UncorroboratedTrips,
    track_rules,
    views,
)
from services.correlator.domain.sweep import BeamFollower
from services.correlator.domain.tracker import (
    Coverage,
    Scan,
    TrackChanges,
    Tracker,
    TrackerConfig,
    TrackEstimate,
    TrackJournal,
)

RULE_INTERVAL_S = 1.0
DEDUP_WINDOW_S = 30.0
"""Repeated event ids within this much event time are dropped (ingest may write a retry twice)."""


def tracker_config(context: RegionContext) -> TrackerConfig:
    """The tracker's parameters from the region's ``tracking`` section."""
    tracking = context.tracking
    base = TrackerConfig()
    scale = tracking.max_coast_s / base.max_coast_s["person"]  # the setting is for people; others scale
    return TrackerConfig(
        imm=ImmModel(q=(tracking.quiet_q, tracking.manoeuvre_q)),
        classes=ClassFusion(),
        gate_probability=tracking.gate_probability,
        confirm_m=tracking.confirm_m,
        confirm_n=tracking.confirm_n,
        tentative_timeout_s=tracking.tentative_timeout_s,
        coast_after_s=tracking.coast_after_s,
        max_coast_s={name: limit * scale for name, limit in base.max_coast_s.items()},
        max_position_sigma_m=tracking.max_position_sigma_m,
    )


@dataclass
class Output:
    """What one step produced, ready for the wire."""

    tracks: list[tuple[str, bytes | None]] = field(default_factory=list)
    """(track id, the JSON of its :class:`schemas.tracks.Track`) in order; None is a tombstone
    (the track is deleted)."""
    alerts: list[Alert] = field(default_factory=list)
    late: int = 0
    duplicates: int = 0
    processed: int = 0
    rule_errors: list[tuple[str, str]] = field(default_factory=list)
    """(rule name, error) for rules that failed this step (the others ran)."""
    held_s: list[float] = field(default_factory=list)
    """Per track update published (not the ended ones), event time from its latest detection to
    its publication (the release cursor then): how far the cursor had moved past the detection
    when it was released, plus the time the publish interval held the update back. The reorder
    window comes before: a detection is released once event time is that much past it."""


class RegionEngine:
    """Tracker, rules and alert book of one region, driven by event time."""

    def __init__(self, context: RegionContext) -> None:
        self.context = context
        self.tracker = Tracker(context.region, tracker_config(context))
        self.rules: dict[str, TrackRule] = track_rules(context)
        self.per_track_rules = {n: r for n, r in self.rules.items() if isinstance(r, PerTrackRule)}
        self.book = AlertBook(context)
        self.buffer: list[tuple[float, int, int, Detection]] = []
        self._sequence = 0
        self.watermark_s = -math.inf
        self.front_s = -math.inf
        """Where event time stood at the last step: the watermark, or the caller's clock."""
        self.release_s = -math.inf
        self.window = ReorderWindow(context.tracking.reorder_window_s, context.tracking.reorder_adaptive)
        self.last_rules_s = -math.inf
        self.published: dict[str, float] = {}
        self.published_status: dict[str, str] = {}
        """The status each published track was last published with."""
        self.pending_publish: set[str] = set()
        self.recent: OrderedDict[str, float] = OrderedDict()
        self.late_total = 0
        self.promises: dict[str, float] = {}
        """Per gateway of the region, the latest time it promised to have posted everything up to."""
        config = self.tracker.config
        self.beams = BeamFollower(math.radians(config.sweep_margin_deg), config.sweep_margin_m)
        """Where each radar's beam was last seen (a radar scan counts misses only where it swept)."""
        self.journal = TrackJournal()
        """What the changelog holds of the tracker (as of the last committed changes)."""
        self.publish_dirty: set[str] = set()
        """Tracks whose publishing state changed since the last committed changes."""
        self.rules_dirty = True
        """Whether the rules' or the alert book's state changed since the last committed changes."""
        self._fragments: tuple[dict[Any, orjson.Fragment], ...] = ({}, {}, {})
        """The encoded lists of track messages (class probabilities, sensor ids, owners), by what
        they encode (see :meth:`to_messages`)."""

    # -- input -------------------------------------------------------------------------------

    def add(self, detection: Detection, offset: int = -1) -> bool:
        """Buffer one detection (``offset``: its Kafka offset). False when late or a duplicate.

        A repeated event id is a duplicate even when it comes back after its first copy was
        released (ids are remembered for ``DEDUP_WINDOW_S`` behind the release cursor): it is
        not late, and ``late_total`` does not count it.
        """
        if detection.event_id in self.recent:
            return False
        self.window.observe(max(self.front_s, self.watermark_s), detection.time_s)
        if detection.time_s <= self.release_s:
            self.late_total += 1
            return False
        self.recent[detection.event_id] = detection.time_s
        self._sequence += 1
        heapq.heappush(self.buffer, (detection.time_s, self._sequence, offset, detection))
        self.watermark_s = max(self.watermark_s, detection.time_s)
        return True

    def promise(self, gateway_id: str, through_s: float) -> bool:
        """A gateway promised that every detection it posts from now on is newer than
        ``through_s``. False when it is not one of the region's gateways (ignored)."""
        if gateway_id not in self.context.gateways or not math.isfinite(through_s):
            return False
        self.promises[gateway_id] = max(through_s, self.promises.get(gateway_id, -math.inf))
        return True

    def promised_s(self, front_s: float) -> float | None:
        """How far every gateway of the region has promised, or None when one has not (or its
        promise is more than ``reorder_window_s`` behind ``front_s``: it stopped promising)."""
        gateways = self.context.gateways
        if not gateways or len(self.promises) < len(gateways):
            return None
        through = min(self.promises.values())
        if front_s - through > self.window.max_s:
            return None
        return through

    def min_buffered_offset(self) -> int | None:
        """The smallest Kafka offset still waiting in the buffer (what must be re-read after a crash)."""
        offsets = [entry[2] for entry in self.buffer if entry[2] >= 0]
        return min(offsets) if offsets else None

    # -- time --------------------------------------------------------------------------------

    def step(self, now_s: float | None = None) -> Output:
        """Release what the reorder window allows, track it, run the rules; ``now_s`` is the
        caller's clock when it has no backlog (lets a quiet region's time move on)."""
        out = Output()
        front = self.watermark_s if now_s is None else max(self.watermark_s, now_s)
        self.front_s = max(self.front_s, front)
        release = front - self.window.seconds
        promised = self.promised_s(front)
        if promised is not None:
            # Every gateway's promise is fresh: release exactly what they all promised, sooner
            # than the window or (never more than reorder_window_s) later, so that a slow
            # request of a promising gateway is waited for rather than dropped as late.
            release = promised
        if release <= self.release_s:
            return out
        ready: list[Detection] = []
        while self.buffer and self.buffer[0][0] <= release:
            ready.append(heapq.heappop(self.buffer)[3])
        self.release_s = release
        changed: dict[str, TrackEstimate] = {}
        ended: list[TrackEstimate] = []
        unassigned: list[Detection] = []
        trips = self.rules.get("uncorroborated_trip")
        for scan in self._scans(ready):
            result = self.tracker.process(scan)
            changed.update((t.track_id, t) for t in result.changed)
            unassigned.extend(result.unassigned)
            if scan.time_s - self.last_rules_s >= RULE_INTERVAL_S:
                # Event time moved on: let rules and publishing see this moment, not only the
                # end of the batch (a backlog must not hide a crossing in one big step).
                self._checkpoint(scan.time_s, changed, ended, unassigned, trips, out)
                changed, ended, unassigned = {}, [], []
        self._checkpoint(release, changed, ended, unassigned, trips, out)
        out.processed = len(ready)
        self._forget_recent(release)
        return out

    def _checkpoint(
        self,
        now_s: float,
        changed: dict[str, TrackEstimate],
        ended: list[TrackEstimate],
        unassigned: list[Detection],
        trips: TrackRule | None,
        out: Output,
    ) -> None:
        progress = self.tracker.advance(now_s)
        changed.update((t.track_id, t) for t in progress.changed)
        ended.extend(progress.ended)
        if isinstance(trips, UncorroboratedTrips):
            waiting = len(trips.pending)
            trips.add(unassigned)
            self.rules_dirty = self.rules_dirty or len(trips.pending) != waiting
        if ended:
            self.rules_dirty = True  # the rules and the book forget the ended tracks
        if now_s - self.last_rules_s >= RULE_INTERVAL_S:
            self.rules_dirty = True
            self.last_rules_s = now_s
            self._run_rules(now_s, out)
        else:
            self._run_per_track_rules(changed, ended, now_s, out)
            if isinstance(trips, UncorroboratedTrips) and trips.due_s() <= now_s:
                self._run_due_trips(trips, now_s, out)
        self._publish(changed, ended, now_s, out)

    def _scans(self, detections: Sequence[Detection]) -> list[Scan]:
        """Detections (in time order) grouped into scans: one sensor and measurement kind, within
        the tracker's ``scan_window_s`` of the scan's first detection; a radar scan's coverage is
        the sector its beam swept (services/correlator/domain/sweep.py)."""
        window = self.tracker.config.scan_window_s
        scans: list[Scan] = []
        open_scans: dict[tuple[str, str], Scan] = {}
        for detection in detections:
            key = (detection.sensor_id, detection.kind.value)
            scan = open_scans.get(key)
            if scan is None or detection.time_s - scan.time_s > window:
                scan = Scan(detection.sensor_id, detection.time_s, [])
                open_scans[key] = scan
                scans.append(scan)
            scan.detections.append(detection)
        for scan in scans:  # in creation order: each sensor's scans in time order
            scan.coverage = self._coverage(scan.detections)
            scan.time_s = float(np.mean([d.time_s for d in scan.detections]))
        scans.sort(key=lambda s: s.time_s)
        return scans

    def _coverage(self, detections: Sequence[Detection]) -> Coverage | None:
        """Where one scan of one sensor could have seen targets: None except for radars."""
        first = detections[0]
        site = self.context.sensors.get(first.sensor_id)
        if site is None or first.sensor_type != "radar" or site.east_m is None or site.north_m is None:
            return None
        return self.beams.coverage(
            f"{first.sensor_id}/{first.kind.value}",
            (site.east_m, site.north_m),
            site.coverage_m,
            site.scan_period_s,
            detections,
        )

    def _forget_recent(self, release: float) -> None:
        horizon = release - DEDUP_WINDOW_S
        while self.recent:
            _, time_s = next(iter(self.recent.items()))
            if time_s > horizon:
                break
            self.recent.popitem(last=False)

    # -- rules -------------------------------------------------------------------------------

    def _live(self) -> list[TrackEstimate]:
        """The tracks the rules look at: confirmed and coasting, as of their latest update."""
        return self.tracker.estimates(at_s=None, statuses=(TrackStatus.CONFIRMED, TrackStatus.COASTING))

    def _run_rules(self, now_s: float, out: Output) -> None:
        self._apply_rules(self.rules, self._live(), now_s, out)
        self.book.expire(now_s)

    def _run_per_track_rules(
        self, changed: dict[str, TrackEstimate], ended: list[TrackEstimate], now_s: float, out: Output
    ) -> None:
        """Between two runs of every rule, the per-track rules look at the confirmed tracks that
        changed, so a crossing or a zone entry is alerted when its detection is released, not up
        to ``RULE_INTERVAL_S`` later. A track that only turned coasting is left to the next full
        run: its estimate is from its last detection, seconds old, and an alert about it would
        leave that late."""
        gone = {t.track_id for t in ended}
        live = [t for t in changed.values() if t.status == TrackStatus.CONFIRMED and t.track_id not in gone]
        if not live:
            return
        rules = self.per_track_rules
        before = sum(rule.revision for rule in rules.values())
        booked = self._apply_rules(rules, live, now_s, out)
        if booked or sum(rule.revision for rule in rules.values()) != before:
            self.rules_dirty = True

    def _run_due_trips(self, trips: UncorroboratedTrips, now_s: float, out: Output) -> None:
        """A ground-sensor trip whose wait is over is judged at once against the live tracks,
        not at the next run of every rule (up to ``RULE_INTERVAL_S`` later)."""
        self._apply_rules({"uncorroborated_trip": trips}, self._live(), now_s, out)
        self.rules_dirty = True  # the trip left the rule's pending list

    def _apply_rules(
        self, rules: Mapping[str, TrackRule], live: list[TrackEstimate], now_s: float, out: Output
    ) -> bool:
        """Let ``rules`` look at the ``live`` tracks and the book turn their findings into alerts
        (into ``out``). Whether the book may have changed: an alert came out, or a condition was
        reported over (the book closes its alert and says nothing); a finding it absorbed leaves
        it as it was."""
        # In track id order, not the tracker's slot order (which a restored tracker lays out
        # differently): what the rules see, and so what they report, must not depend on it.
        live.sort(key=lambda t: t.track_id)
        track_views: list[TrackView] = views(self.context, live)
        findings: list[Finding] = []
        for name, rule in rules.items():
            try:
                findings.extend(rule.observe(track_views, now_s))
            except Exception as exc:  # noqa: BLE001 - one rule's failure must not stop the others
                out.rule_errors.append((name, f"{type(exc).__name__}: {exc}"))
        booked = False
        for finding in findings:
            alert = self.book.apply(finding)
            if alert is not None:
                out.alerts.append(alert)
            booked = booked or alert is not None or not finding.active
        return booked

    # -- publishing --------------------------------------------------------------------------

    def _publish(
        self, changed: dict[str, TrackEstimate], ended: list[TrackEstimate], now_s: float, out: Output
    ) -> None:
        interval = self.context.tracking.publish_interval_s
        due: list[TrackEstimate] = []
        for track_id, estimate in changed.items():
            if estimate.status == TrackStatus.TENTATIVE:
                continue
            last = self.published.get(track_id)
            status_change = last is None or self.published_status.get(track_id) != estimate.status.value
            if status_change or now_s - last >= interval:  # type: ignore[operator]
                due.append(estimate)
                self.pending_publish.discard(track_id)
            else:
                self.pending_publish.add(track_id)
        held = [
            track_id
            for track_id in sorted(self.pending_publish)
            if track_id not in changed and now_s - self.published.get(track_id, -math.inf) >= interval
        ]
        self.pending_publish.difference_update(held)
        self.publish_dirty.update(changed)
        self.publish_dirty.update(held)
        due.extend(self.tracker.estimates_of(held))
        due.sort(key=lambda e: e.track_id)  # outputs in track id order, whatever the slot layout
        messages = self.to_messages(due)
        for estimate, message in zip(due, messages, strict=True):
            out.held_s.append(now_s - estimate.last_update_s)
            self.published[estimate.track_id] = now_s
            self.published_status[estimate.track_id] = estimate.status.value
            out.tracks.append((estimate.track_id, message))
        retracted: list[TrackEstimate] = []
        for estimate in sorted(ended, key=lambda e: e.track_id):
            for rule in self.rules.values():
                rule.forget(estimate.track_id)
            self.book.forget_track(estimate.track_id)
            self.pending_publish.discard(estimate.track_id)
            self.published_status.pop(estimate.track_id, None)
            if self.published.pop(estimate.track_id, None) is not None:  # else never shown
                retracted.append(estimate)
        for estimate, message in zip(retracted, self.to_messages(retracted), strict=True):
            out.tracks.append((estimate.track_id, message))
            out.tracks.append((estimate.track_id, None))

    def to_messages(self, estimates: Sequence[TrackEstimate]) -> list[bytes]:
        """Track estimates as wire messages: JSON of :class:`schemas.tracks.Track` (WGS84,
        jurisdiction, border distance).

        Written as plain data and encoded by orjson: byte for byte what
        ``Track(...).model_dump_json()`` gives, at a fraction of the cost (tests/unit/correlator
        validates every message against the schema). Most constraints hold by construction
        (clipped velocities, sorted and truncated lists); :func:`_check_wire` repeats the ones
        that depend on the numbers (finite, altitude range), so a bad state still fails loudly.
        """
        if not estimates:
            return []
        context = self.context
        east = np.array([e.east_m for e in estimates])
        north = np.array([e.north_m for e in estimates])
        lat, lon, _ = context.frame.to_wgs84(east, north, np.zeros(len(estimates)))
        countries = context.jurisdiction(east, north)
        borders = context.border_distance(east, north).tolist()
        # np.concatenate: the rows in one array at a fraction of np.stack's cost per row
        stacked = np.concatenate([e.class_probabilities for e in estimates]).reshape(len(estimates), -1)
        orders = np.argsort(-stacked, axis=1).tolist()
        probabilities = stacked.tolist()
        lats, lons = lat.tolist(), lon.tolist()
        # The covariance's east-north block, [P_ee, P_en, P_nn] per track, in one read-out.
        blocks = np.concatenate([e.covariance for e in estimates]).reshape(-1, 4, 4)[:, (0, 0, 1), (0, 1, 1)]
        blocks = blocks.tolist()
        region = context.region
        beliefs, sensors, owned = self._fragments
        for fragments in self._fragments:
            if len(fragments) > _FRAGMENTS:
                fragments.clear()
        out = []
        for i, estimate in enumerate(estimates):
            velocity_east, velocity_north = estimate.velocity_east_mps, estimate.velocity_north_mps
            heading = math.degrees(math.atan2(velocity_east, velocity_north)) % 360.0
            border_m = borders[i]
            alt_m = None if estimate.alt_m is None else float(estimate.alt_m)
            block = blocks[i]
            message = {
                "schema_version": SCHEMA_VERSION,
                "track_id": estimate.track_id,
                "region": region,
                "time": _utc_text(estimate.time_s),
                "lat": lats[i],
                "lon": lons[i],
                "alt_m": alt_m,
                "velocity_east_mps": max(-1_000.0, min(1_000.0, velocity_east)),
                "velocity_north_mps": max(-1_000.0, min(1_000.0, velocity_north)),
                "speed_mps": min(math.hypot(velocity_east, velocity_north), 1_500.0),
                "heading_deg": heading if heading < 360.0 else 0.0,
                # TrackEstimate.position_sigma_m, from the block already read out
                "position_sigma_m": math.sqrt(max(0.0, (block[0] + block[2]) / 2.0)),
                "covariance_en_m2": block,
                "status": _STATUS_TEXT[estimate.status],
                "class": estimate.target_class,
                "class_probabilities": None,
                "sensor_ids": None,
                "owners": None,
                "jurisdiction": countries[i],
                "border_distance_m": round(border_m, 1) if math.isfinite(border_m) else None,
                "update_count": int(estimate.update_count),
                "first_seen": _utc_text(estimate.first_seen_s),
                "last_update": _utc_text(estimate.last_update_s),
            }
            _check_wire(message)
            # The lists repeat from message to message (a track's class belief, sensors and
            # owners change seldom): each is encoded once and handed to orjson as a fragment.
            p_i = probabilities[i]
            key = tuple(p_i)
            fragment = beliefs.get(key)
            if fragment is None:
                fragment = beliefs[key] = orjson.Fragment(
                    orjson.dumps([{"class": CLASSES[k], "probability": round(p_i[k], 4)} for k in orders[i]])
                )
            message["class_probabilities"] = fragment
            sensor_ids = estimate.sensor_ids
            fragment = sensors.get(sensor_ids)
            if fragment is None:
                fragment = sensors[sensor_ids] = orjson.Fragment(orjson.dumps(sorted(sensor_ids)[:64]))
            message["sensor_ids"] = fragment
            owners = estimate.owners
            fragment = owned.get(owners)
            if fragment is None:
                fragment = owned[owners] = orjson.Fragment(
                    orjson.dumps([{"country": c, "agency": a} for c, a in sorted(owners)][:16])
                )
            message["owners"] = fragment
            out.append(orjson.dumps(message))
        return out

    # -- snapshots ---------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "region": self.context.region,
            "tracker": self.tracker.export_state(),
            "rules": {name: rule.state() for name, rule in self.rules.items()},
            "book": self.book.state(),
            "watermark_s": _finite(self.watermark_s),
            "front_s": _finite(self.front_s),
            "release_s": _finite(self.release_s),
            "reorder": self.window.state(),
            "last_rules_s": _finite(self.last_rules_s),
            "published": self.published,
            "published_status": self.published_status,
            "pending_publish": sorted(self.pending_publish),
            "late_total": self.late_total,
            "beams": self.beams.state(),
            "promises": self.promises,
        }

    # -- changelog ---------------------------------------------------------------------------

    def changes(self) -> EngineChanges:
        """What to write to the changelog now: the header (always), the rules and alert book
        (when they changed), every track whose state or publishing changed, and the ids of the
        tracks gone, all relative to the last committed changes (see :meth:`committed`)."""
        tracker = self.tracker
        found = tracker.changes(self.journal)
        records = {t["track_id"]: t for t in found.tracks}
        for track_id in sorted(self.publish_dirty):
            slot = tracker.slot_of(track_id)
            if slot is not None and track_id not in records:
                [records[track_id]] = tracker.track_states(np.array([slot], dtype=np.intp))
        tracks = [
            (
                track_id,
                {
                    "track": track,
                    "published": self.published.get(track_id),
                    "published_status": self.published_status.get(track_id),
                    "pending": track_id in self.pending_publish,
                },
            )
            for track_id, track in records.items()
        ]
        header = {
            "version": 2,
            "region": self.context.region,
            "tracker": tracker.state_header(),
            "watermark_s": _finite(self.watermark_s),
            "front_s": _finite(self.front_s),
            "release_s": _finite(self.release_s),
            "reorder": self.window.state(),
            "last_rules_s": _finite(self.last_rules_s),
            "late_total": self.late_total,
            "beams": self.beams.state(),
            "promises": dict(self.promises),
        }
        rules = None
        if self.rules_dirty:
            rules = {
                "rules": {name: rule.state() for name, rule in self.rules.items()},
                "book": self.book.state(),
            }
        return EngineChanges(header, rules, tracks, found.removed, found, set(self.publish_dirty))

    def committed(self, changes: EngineChanges) -> None:
        """``changes`` are in the log now: the next ones start from there."""
        self.journal.apply(changes.tracker)
        self.publish_dirty -= changes.publish_dirty
        if changes.rules is not None:
            self.rules_dirty = False

    @classmethod
    def from_changelog(
        cls,
        context: RegionContext,
        header: dict[str, Any],
        rules: dict[str, Any] | None,
        tracks: Sequence[dict[str, Any]],
    ) -> RegionEngine:
        """The engine the changelog records describe (header, rules record, one record per track)."""
        state = {
            **header,
            "tracker": Tracker.state_of(header["tracker"], [t["track"] for t in tracks]),
            "rules": (rules or {}).get("rules", {}),
            "book": (rules or {}).get("book", {}),
            "published": {
                t["track"]["track_id"]: t["published"] for t in tracks if t["published"] is not None
            },
            "published_status": {
                t["track"]["track_id"]: t["published_status"]
                for t in tracks
                if t["published_status"] is not None
            },
            "pending_publish": sorted(t["track"]["track_id"] for t in tracks if t["pending"]),
        }
        engine = cls.restore(context, state)
        engine.journal = TrackJournal.of(engine.tracker)
        engine.rules_dirty = rules is None
        return engine

    @classmethod
    def restore(cls, context: RegionContext, state: dict[str, Any]) -> RegionEngine:
        engine = cls(context)
        engine.tracker = Tracker.from_state(state["tracker"], tracker_config(context))
        for name, rule_state in state.get("rules", {}).items():
            if name in engine.rules:
                engine.rules[name].restore(rule_state)
        engine.book.restore(state.get("book", {}))
        engine.watermark_s = _infinite(state.get("watermark_s"))
        engine.front_s = _infinite(state.get("front_s"))
        engine.window.restore(state.get("reorder"))
        engine.release_s = _infinite(state.get("release_s"))
        engine.last_rules_s = _infinite(state.get("last_rules_s"))
        engine.published = dict(state.get("published", {}))
        engine.published_status = dict(state.get("published_status", {}))
        engine.pending_publish = set(state.get("pending_publish", []))
        engine.late_total = int(state.get("late_total", 0))
        engine.beams.restore(state.get("beams", []))
        engine.promises = {
            g: float(t) for g, t in (state.get("promises") or {}).items() if g in context.gateways
        }
        return engine


@dataclass
class EngineChanges:
    """One region's part of a changelog write (see :meth:`RegionEngine.changes`)."""

    header: dict[str, Any]
    rules: dict[str, Any] | None
    """The rules' and the alert book's state; None: unchanged since the last write."""
    tracks: list[tuple[str, dict[str, Any]]]
    """(track id, record) of each changed track."""
    removed: list[str]
    """Track ids whose records go (tombstones)."""
    tracker: TrackChanges
    publish_dirty: set[str]


@functools.lru_cache(maxsize=1 << 14)
def _utc_text(time_s: float) -> str:
    """RFC 3339 in UTC as pydantic writes it: ``2026-03-01T02:00:00.250000Z`` (no fraction when whole).

    Memoised: a batch of track messages repeats a few times over and over (the publishing time,
    the scan times of the latest updates, each track's first sighting), and formatting a
    datetime was a quarter of the cost of a track message."""
    return dt.datetime.fromtimestamp(time_s, dt.UTC).isoformat().replace("+00:00", "Z")


_WIRE_FLOATS = (
    "lat",
    "lon",
    "velocity_east_mps",
    "velocity_north_mps",
    "speed_mps",
    "heading_deg",
    "position_sigma_m",
)


def _check_wire(message: dict[str, Any]) -> None:
    """The checks of :class:`schemas.tracks.Track` that the numbers themselves could fail.

    A sum of floats is finite only if every term is (an infinity or a NaN carries through), so
    one sum settles the common case; only a sum that is not (an overflow of finite terms, or a
    bad value) looks at the terms one by one."""
    block = message["covariance_en_m2"]
    total = (
        message["lat"]
        + message["lon"]
        + message["velocity_east_mps"]
        + message["velocity_north_mps"]
        + message["speed_mps"]
        + message["heading_deg"]
        + message["position_sigma_m"]
        + block[0]
        + block[1]
        + block[2]
    )
    alt_m = message["alt_m"]
    if not math.isfinite(total):
        values = [message[name] for name in _WIRE_FLOATS] + block
        if not all(map(math.isfinite, values)):
            raise ValueError(f"track {message['track_id']}: not a valid wire state: {message}")
    if alt_m is not None and not -500.0 <= alt_m <= 20_000.0:
        raise ValueError(f"track {message['track_id']}: not a valid wire state: {message}")


_STATUS_TEXT = {status: status.value for status in TrackStatus}
_FRAGMENTS = 4_096
"""Encoded lists of each kind a region's engine keeps for its track messages (forgotten all at
once beyond)."""


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _infinite(value: float | None) -> float:
    return -math.inf if value is None else float(value)
