"""The multi-sensor tracker of one region: IMM-EKF filtering, GNN association, M-of-N lifecycle.

Assembled from small parts, Stone Soup style: a predictor (``filters.imm_predict``), an
updater (``filters.imm_update``), an associator (``association.associate``), an initiator
(``_initiate``), a deleter (``advance``) and a classifier (``classification.ClassFusion``).
Unlike Stone Soup, tracks live in arrays (struct of arrays), so every step is vectorised over
tracks and detections.

Input comes in scans: the detections of one sensor at (nearly) one time. The caller feeds
scans in event-time order (the Kafka loop's reorder window takes care of that) and calls
:meth:`Tracker.advance` as event time passes, which coasts and ends tracks that receive no
more detections.

Lifecycle: a track starts *tentative* from a radar or drone detection no track claimed; it
is *confirmed* when it was detected in ``confirm_m`` of its last ``confirm_n`` opportunities (an
opportunity is a scan of a sensor whose coverage includes the track: for a radar, the sector its
beam swept during the scan, so one per revolution); it is *coasting* when
not updated for ``coast_after_s``; *lost* after ``max_coast_s`` (per class) or when its
position uncertainty exceeds ``max_position_sigma_m``. Ground sensors never start tracks:
they confirm, classify and barely locate.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from schemas.tracks import TrackStatus
from services.correlator.domain.association import associate, gate_threshold
from services.correlator.domain.classification import CLASSES, ClassFusion
from services.correlator.domain.detections import Detection, MeasurementKind, of_fields
from services.correlator.domain.filters import (
    ImmPrediction,
    combine,
    imm_predict,
    imm_update,
    predict_moments,
    predict_position,
)
from services.correlator.domain.motion import ImmModel

Array = NDArray[np.float64]

FREE, TENTATIVE, CONFIRMED, COASTING = 0, 1, 2, 3
_STATUS = {TENTATIVE: TrackStatus.TENTATIVE, CONFIRMED: TrackStatus.CONFIRMED, COASTING: TrackStatus.COASTING}
_EVIDENCE = 20
_FEW_DETECTIONS = 4
"""Scans of at most this many detections first narrow the tracks by a bound on their gates."""
_STATE = ("xm", "Pm", "mu", "t", "last_update", "status", "history", "opportunities", "cls")
"""The per-track arrays a snapshot holds (the kept moments are recomputed from them)."""
_ALT_SIGMA_M = 30.0
"""One sigma of a measured altitude when the sensor does not say."""
_ALT_DRIFT_M2_PER_S = 25.0
"""How fast an altitude estimate goes stale: a random walk of 5 m per square-root second."""


@dataclass(frozen=True)
class TrackerConfig:
    """Tracking parameters (per region, from the configuration)."""

    imm: ImmModel = field(default_factory=ImmModel)
    classes: ClassFusion = field(default_factory=ClassFusion)
    gate_probability: float = 0.9995
    """Probability that a true detection falls inside its track's gate."""
    confirm_m: int = 3
    confirm_n: int = 5
    tentative_timeout_s: float = 12.0
    """A tentative track not detected for this long is dropped."""
    coast_after_s: float = 6.0
    max_coast_s: dict[str, float] = field(
        default_factory=lambda: {
            "person": 45.0,
            "animal": 30.0,
            "vehicle": 25.0,
            "aircraft": 15.0,
            "vessel": 60.0,
            "unknown": 30.0,
        }
    )
    """How long a confirmed track may go undetected before it is lost, by class, s."""
    max_position_sigma_m: float = 400.0
    initial_speed_sigma_mps: float = 8.0
    """Velocity uncertainty of a new track (per axis), m/s."""
    scan_window_s: float = 0.5
    """Detections of one sensor closer in time than this form one scan."""
    sweep_margin_deg: float = 2.0
    sweep_margin_m: float = 50.0
    """A radar scan counts a miss only against tracks inside the sector its beam swept, at least
    this many degrees, and this many metres across, from the sector's edges (services/correlator/
    domain/sweep.py)."""
    merge_distance_m: float = 12.0
    merge_speed_mps: float = 2.0
    merge_max_age_s: float = 30.0
    """Two confirmed tracks this close in position and velocity, one of them younger than
    ``merge_max_age_s``, are one target started twice: merged into the older. Two established
    tracks that come together stay two (people meeting are not one person)."""
    search_radius_m: float = 3_000.0
    """Tracks farther than this from every detection of a scan are not considered for it."""


@dataclass(frozen=True)
class Coverage:
    """Where a scan could have seen targets: a disc in the local frame, or the sector of it that
    a rotating radar's beam swept during the scan.

    The sector runs clockwise from ``start_rad`` over ``extent_rad`` (bearings from north,
    clockwise, radians). A point at offset ``(de, dn)`` from ``center_en``, at range
    ``r = hypot(de, dn)`` and ``o = (atan2(de, dn) - start_rad) mod 2π`` into the sector, is
    inside when ``r <= radius_m`` and ``a <= o <= extent_rad - a``, with the edge margin
    ``a = max(margin_rad, margin_m / r)`` (a target right at an edge may have been seen by the
    neighbouring scan). No sector (the default) is the whole disc, without margins.
    """

    center_en: tuple[float, float]
    radius_m: float
    start_rad: float = 0.0
    extent_rad: float | None = None
    """Clockwise extent of the sector from ``start_rad``, radians; None: the whole disc."""
    margin_rad: float = 0.0
    margin_m: float = 0.0

    def contains(self, east_m: Array, north_m: Array) -> NDArray[np.bool_]:
        """Which points ``(east_m[i], north_m[i])`` lie inside the covered area."""
        de = np.asarray(east_m, dtype=np.float64) - self.center_en[0]
        dn = np.asarray(north_m, dtype=np.float64) - self.center_en[1]
        r = np.hypot(de, dn)
        inside = r <= self.radius_m
        if self.extent_rad is None:
            return inside
        offset = np.mod(np.arctan2(de, dn) - self.start_rad, 2.0 * math.pi)
        margin = np.maximum(self.margin_rad, self.margin_m / np.maximum(r, 1.0))
        return inside & (offset >= margin) & (offset <= self.extent_rad - margin)


@dataclass
class Scan:
    """Detections of one sensor at (nearly) one time, all of one measurement kind."""

    sensor_id: str
    time_s: float
    detections: list[Detection]
    coverage: Coverage | None = None


@dataclass(frozen=True)
class TrackEstimate:
    """A track's state at ``time_s`` (for publishing, rules and benchmarks).

    Immutable. The tracker builds one for every track each scan touches, through
    :meth:`_of`, not ``__init__``: a frozen dataclass's ``__init__`` sets each of the 18 fields
    with its own ``object.__setattr__`` call, which made building them the largest single cost
    of a radar scan; no ``__slots__``, so that ``_of`` can hand over all fields in one dict.
    """

    track_id: str
    status: TrackStatus
    time_s: float
    east_m: float
    north_m: float
    velocity_east_mps: float
    velocity_north_mps: float
    covariance: Array
    """(4, 4) state covariance."""
    class_probabilities: Array
    """Over ``classification.CLASSES``."""
    target_class: str
    sensor_ids: frozenset[str]
    owners: frozenset[tuple[str, str]]
    update_count: int
    first_seen_s: float
    last_update_s: float
    alt_m: float | None
    evidence: tuple[str, ...]
    primary_owner: tuple[str, str]
    """The owner of the sensor that first saw the track."""

    @classmethod
    def _of(cls, fields: dict[str, Any]) -> TrackEstimate:
        return of_fields(cls, fields)

    @property
    def speed_mps(self) -> float:
        return math.hypot(self.velocity_east_mps, self.velocity_north_mps)

    @property
    def position_sigma_m(self) -> float:
        """One-sigma circular equivalent: sqrt((P_ee + P_nn) / 2)."""
        return math.sqrt(max(0.0, (self.covariance[0, 0] + self.covariance[1, 1]) / 2.0))


@dataclass
class _Meta:
    track_id: str
    first_seen_s: float
    primary_owner: tuple[str, str] = ("", "")
    sensor_ids: frozenset[str] = frozenset()
    owners: frozenset[tuple[str, str]] = frozenset()
    """Frozen, so that every estimate shares them (a new set only when a new sensor reports)."""
    evidence: deque[str] = field(default_factory=lambda: deque(maxlen=_EVIDENCE))
    update_count: int = 0
    alt_m: float | None = None
    alt_var: float = 0.0
    """Variance of ``alt_m``, m^2 (as of ``alt_time_s``)."""
    alt_time_s: float = 0.0

    def seen_by(self, detection: Detection) -> None:
        """Note the detection's sensor and owner."""
        if detection.sensor_id not in self.sensor_ids:
            self.sensor_ids = self.sensor_ids | {detection.sensor_id}
        if detection.owner not in self.owners:
            self.owners = self.owners | {detection.owner}

    def fuse_altitude(self, detection: Detection) -> None:
        """Fold a measured altitude into the estimate (a scalar Kalman filter on a random walk).

        One radar altitude at long range is hundreds of metres off (elevation noise times range);
        weighting each by its variance keeps the estimate close to what the sensors agree on.
        """
        if detection.alt_m is None:
            return
        r = max(detection.alt_sigma_m or _ALT_SIGMA_M, 1.0) ** 2
        if self.alt_m is None:
            self.alt_m, self.alt_var, self.alt_time_s = detection.alt_m, r, detection.time_s
            return
        var = self.alt_var + _ALT_DRIFT_M2_PER_S * max(0.0, detection.time_s - self.alt_time_s)
        gain = var / (var + r)
        self.alt_m += gain * (detection.alt_m - self.alt_m)
        self.alt_var = (1.0 - gain) * var
        self.alt_time_s = max(self.alt_time_s, detection.time_s)


@dataclass
class StepResult:
    """What one scan or one advance changed."""

    changed: list[TrackEstimate] = field(default_factory=list)
    """Tracks created, updated or whose status changed (tentative ones included)."""
    ended: list[TrackEstimate] = field(default_factory=list)
    """Tracks lost (only those that had been confirmed) or merged into another."""
    unassigned: list[Detection] = field(default_factory=list)
    """Detections no track took (ground-sensor trips among them)."""


class Tracker:
    """All tracks of one region."""

    def __init__(self, region: str, config: TrackerConfig | None = None, capacity: int = 64) -> None:
        self.region = region
        self.config = config or TrackerConfig()
        self._models = self.config.imm.count
        self._allocate(capacity)
        self._meta: dict[int, _Meta] = {}
        self._slots: dict[str, int] = {}
        """Track id -> slot (the engine looks tracks up by id to publish held-back updates)."""
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self.next_id = 1
        self.time_s = -math.inf
        self._revision = 0
        self._gates = {d: gate_threshold(self.config.gate_probability, d) for d in (2, 3)}
        self._max_q = max(self.config.imm.q)
        limits = self.config.max_coast_s
        self._coast_limits = np.array([limits.get(name, limits.get("unknown", 30.0)) for name in CLASSES])
        """Coasting limit by class index (``classification.CLASSES``), s."""

    # -- storage -----------------------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        m = self._models
        self.xm = np.zeros((capacity, m, 4))
        self.Pm = np.tile(np.eye(4), (capacity, m, 1, 1))
        self.mu = np.full((capacity, m), 1.0 / m)
        self.t = np.zeros(capacity)
        self.last_update = np.zeros(capacity)
        self.status = np.zeros(capacity, dtype=np.int8)
        self.history = np.zeros(capacity, dtype=np.int64)
        """Last ``confirm_n`` opportunities as bits (1 = detected), newest in bit 0."""
        self.opportunities = np.zeros(capacity, dtype=np.int64)
        self.cls = np.zeros((capacity, len(CLASSES)))
        self.x = np.zeros((capacity, 4))
        self.P = np.tile(np.eye(4), (capacity, 1, 1))
        """The mixture's moments (``filters.combine`` of ``xm``, ``Pm``, ``mu``), kept up to date
        by every change of a track's state: read far more often than the state changes."""
        self.revision = np.zeros(capacity, dtype=np.int64)
        """Raised whenever a track's metadata changes or a new track takes the slot (the
        changelog compares it, see :meth:`changes`); not part of the state."""

    def _grow(self) -> None:
        old = len(self.t)
        new = old * 2
        for name in (*_STATE, "x", "P", "revision"):
            array = getattr(self, name)
            grown = np.zeros((new, *array.shape[1:]), dtype=array.dtype)
            grown[:old] = array
            setattr(self, name, grown)
        self._free.extend(range(new - 1, old - 1, -1))

    def _new_slot(self) -> int:
        if not self._free:
            self._grow()
        return self._free.pop()

    def _release(self, slot: int) -> None:
        self.status[slot] = FREE
        meta = self._meta.pop(slot, None)
        if meta is not None:
            self._slots.pop(meta.track_id, None)
        self._free.append(slot)

    def _revise(self, slots: NDArray[np.intp]) -> None:
        """The metadata of ``slots`` changed (or new tracks took them)."""
        self._revision += 1
        self.revision[slots] = self._revision

    @property
    def active(self) -> NDArray[np.intp]:
        return np.flatnonzero(self.status != FREE)

    def __len__(self) -> int:
        return int(np.count_nonzero(self.status))

    def counts(self) -> dict[str, int]:
        """Tracks by status."""
        return {
            "tentative": int(np.count_nonzero(self.status == TENTATIVE)),
            "confirmed": int(np.count_nonzero(self.status == CONFIRMED)),
            "coasting": int(np.count_nonzero(self.status == COASTING)),
        }

    # -- reading -----------------------------------------------------------------------------

    def _refresh(self, slots: NDArray[np.intp]) -> tuple[Array, Array]:
        """Recompute the kept moments of ``slots`` after their state changed; returns them."""
        x, P = combine(self.xm[slots], self.Pm[slots], self.mu[slots])
        self.x[slots], self.P[slots] = x, P
        return x, P

    def estimate(self, slot: int, at_s: float | None = None) -> TrackEstimate:
        """The track in ``slot`` (predicted to ``at_s`` when given and later than its time)."""
        return self._estimates(np.array([slot], dtype=np.intp), at_s)[0]

    def _estimates(self, slots: NDArray[np.intp], at_s: float | None = None) -> list[TrackEstimate]:
        """The tracks in ``slots``, each predicted to ``at_s`` when given and later than its time
        (one batched prediction for all of them)."""
        if len(slots) == 0:
            return []
        x, P = self.x[slots], self.P[slots]
        times = self.t[slots]
        if at_s is not None:
            later = np.flatnonzero(at_s > times)
            if len(later):
                moved = slots[later]
                x[later], P[later] = predict_moments(
                    self.x[moved], self.P[moved], self.mu[moved], at_s - self.t[moved], self.config.imm
                )
                times[later] = at_s
        probabilities = self.cls[slots]
        best_class = np.argmax(probabilities, axis=1).tolist()
        # Plain lists and one dict per estimate: this runs for every track a scan touches.
        columns = zip(
            slots.tolist(),
            self.status[slots].tolist(),
            times.tolist(),
            x.tolist(),
            P,
            probabilities,
            best_class,
            self.last_update[slots].tolist(),
            strict=True,
        )
        out = []
        for slot, status, time_s, (
            east,
            north,
            velocity_east,
            velocity_north,
        ), P_i, p_i, best, last in columns:
            meta = self._meta[slot]
            out.append(
                TrackEstimate._of(
                    {
                        "track_id": meta.track_id,
                        "status": _STATUS[status],
                        "time_s": time_s,
                        "east_m": east,
                        "north_m": north,
                        "velocity_east_mps": velocity_east,
                        "velocity_north_mps": velocity_north,
                        "covariance": P_i,
                        "class_probabilities": p_i,
                        "target_class": CLASSES[best],
                        "sensor_ids": meta.sensor_ids,
                        "owners": meta.owners,
                        "update_count": meta.update_count,
                        "first_seen_s": meta.first_seen_s,
                        "last_update_s": last,
                        "alt_m": meta.alt_m,
                        "evidence": tuple(meta.evidence),
                        "primary_owner": meta.primary_owner,
                    }
                )
            )
        return out

    def estimates(
        self, at_s: float | None = None, statuses: Iterable[TrackStatus] | None = None
    ) -> list[TrackEstimate]:
        """Every live track (optionally only some statuses), predicted to ``at_s``."""
        live = self.active
        if statuses is not None:
            codes = [code for code, status in _STATUS.items() if status in set(statuses)]
            live = live[np.isin(self.status[live], codes)]
        return self._estimates(live, at_s)

    def slot_of(self, track_id: str) -> int | None:
        return self._slots.get(track_id)

    def estimates_of(self, track_ids: Iterable[str]) -> list[TrackEstimate]:
        """The tracks with these ids that still exist, in that order (one batched read-out)."""
        slots = [slot for slot in map(self._slots.get, track_ids) if slot is not None]
        return self._estimates(np.array(slots, dtype=np.intp))

    # -- scans -------------------------------------------------------------------------------

    def process(self, scan: Scan) -> StepResult:
        """Associate one scan, update and start tracks; returns what changed."""
        result = StepResult()
        by_kind: dict[MeasurementKind, list[Detection]] = {}
        for detection in scan.detections:
            by_kind.setdefault(detection.kind, []).append(detection)
        changed: set[int] = set()
        assigned_any: set[int] = set()
        for kind, detections in by_kind.items():
            slots, unassigned = self._associate_and_update(kind, detections, scan.time_s)
            changed.update(slots)
            assigned_any.update(slots)
            for detection in unassigned:
                if kind is MeasurementKind.PRESENCE:
                    result.unassigned.append(detection)
                else:
                    changed.add(self._initiate(detection))
        if scan.coverage is not None:
            self._count_misses(scan.coverage, scan.time_s, assigned_any)
        self.time_s = max(self.time_s, scan.time_s)
        if changed:
            ordered = np.array(sorted(changed), dtype=np.intp)
            result.changed = self._estimates(ordered[self.status[ordered] != FREE])
        return result

    def _associate_and_update(
        self, kind: MeasurementKind, detections: list[Detection], scan_time_s: float
    ) -> tuple[list[int], list[Detection]]:
        live = self.active
        if len(live) == 0:
            return [], detections
        is_polar = kind is MeasurementKind.POLAR
        batch = _Batch.of(detections, is_polar)
        positions, variance = batch.positions_and_variance()
        # radial velocity given for some detections only: gate on range and bearing
        z = batch.z if batch.same_dim else batch.z[:, :2]
        R = batch.R if batch.same_dim else batch.R[:, :2, :2]
        gate = self._gates[min(3, z.shape[1])]
        # Coarse search: tracks whose constant-velocity position is near any detection.
        dt = scan_time_s - self.t[live]
        x_now = self.x[live]
        guess = x_now[:, :2] + x_now[:, 2:4] * np.maximum(dt, 0.0)[:, None]
        lo = positions.min(axis=0) - self.config.search_radius_m
        hi = positions.max(axis=0) + self.config.search_radius_m
        near = np.all((guess >= lo) & (guess <= hi), axis=1)
        candidates = live[near]
        if len(candidates) > 0 and len(detections) <= _FEW_DETECTIONS:
            candidates = candidates[self._may_gate(candidates, scan_time_s, positions, variance, gate)]
        if len(candidates) == 0:
            return [], detections
        # One IMM prediction to the scan's time serves the gate (each model's prediction: a
        # manoeuvring target stays in its manoeuvre model's gate) and, when every detection
        # carries the scan's time (a radar revolution, a drone's report), the update. When they
        # differ (the engine's scans span its grouping window) each assigned track is then
        # predicted to its own detection's time.
        shared = bool((batch.times == scan_time_s).all())
        dt = scan_time_s - self.t[candidates]
        prediction = imm_predict(
            self.xm[candidates], self.Pm[candidates], self.mu[candidates], dt, self.config.imm
        )
        sensor_en = batch.sensors[0] if batch.sensors is not None else None
        assignment = associate(
            prediction.xm, prediction.Pm, z, R, positions, variance, sensor_en, is_polar, gate, prediction.c
        )
        if len(assignment.tracks) == 0:
            return [], detections
        slots = candidates[assignment.tracks]
        if shared:
            prediction = _rows(prediction, assignment.tracks)
        else:
            times = batch.times[assignment.detections]
            prediction = imm_predict(
                self.xm[slots], self.Pm[slots], self.mu[slots], times - self.t[slots], self.config.imm
            )
        self._update(slots, prediction, assignment.detections, detections, batch)
        taken = set(assignment.detections.tolist())
        return slots.tolist(), [d for j, d in enumerate(detections) if j not in taken]

    def _may_gate(
        self, slots: NDArray[np.intp], time_s: float, positions: Array, variance: Array, gate: float
    ) -> NDArray[np.bool_]:
        """Which tracks could fall in the gate of any of a few detections, from the stored model
        states alone: a scan of one or two detections then predicts (and gates) only those few
        tracks, not every track within the search radius.

        A superset of the candidates ``association.associate`` keeps: some model ``j`` of the
        IMM prediction must reach the detection, within ``sqrt(gate · (tr P_j,pos + max tr
        R_pos)) + |x_j - x̄|`` of the predicted mixture mean ``x̄ = F x̄_now``. Mixing makes each
        model's mean a convex combination of the current model means ``x_i`` and its covariance
        one of ``P_i + s sᵀ`` (``s`` the offset of ``x_i`` from that mean); prediction moves every
        mean with the same ``F``. With ``D`` the largest distance of a predicted ``F x_i`` from
        ``x̄`` and ``T`` the largest ``tr Ppp + dt (tr Ppv + tr Pvp) + dt² tr Pvv`` of the
        ``P_i``, each model's predicted mean is within ``D`` of ``x̄`` and its predicted position
        trace at most ``T + (2D)² + (2/3) dt³ q_max``. A 1 m margin covers rounding.
        """
        dt = np.maximum(time_s - self.t[slots], 0.0)
        xm, Pm = self.xm[slots], self.Pm[slots]
        center = predict_position(self.x[slots], dt)
        moved = xm[..., :2] + xm[..., 2:] * dt[:, None, None]
        spread = np.hypot(*np.moveaxis(moved - center[:, None, :], -1, 0)).max(axis=1)
        cross = Pm[..., 0, 2] + Pm[..., 1, 3] + Pm[..., 2, 0] + Pm[..., 3, 1]
        step = dt[:, None]
        trace = Pm[..., 0, 0] + Pm[..., 1, 1] + step * cross + step * step * (Pm[..., 2, 2] + Pm[..., 3, 3])
        bound = trace.max(axis=1) + 4.0 * spread**2 + (2.0 / 3.0) * dt**3 * self._max_q
        reach = np.sqrt(gate * np.maximum(bound + variance.max(), 0.0)) + spread + 1.0
        offset = center[:, None, :] - positions[None, :, :]
        distance2 = np.einsum("kmd,kmd->km", offset, offset)
        return np.asarray((distance2 <= (reach * reach)[:, None]).any(axis=1))

    def _update(
        self,
        slots: NDArray[np.intp],
        prediction: ImmPrediction,
        rows: NDArray[np.intp],
        every: list[Detection],
        batch: _Batch,
    ) -> None:
        """Update the tracks in ``slots``, predicted to their detections' times, with the
        detections ``every[rows]`` (``batch`` holds all of ``every`` as arrays)."""
        detections = [every[j] for j in rows.tolist()]
        times = batch.times[rows]
        if batch.same_dim:
            groups = [np.arange(len(rows))]
        else:
            by_dim: dict[int, list[int]] = {}
            for i, detection in enumerate(detections):
                by_dim.setdefault(detection.z.shape[0], []).append(i)
            groups = [np.array(members, dtype=np.intp) for members in by_dim.values()]
        for index in groups:
            part = prediction if batch.same_dim else _rows(prediction, index)
            if batch.same_dim:
                z, R = batch.z[rows[index]], batch.R[rows[index]]
            else:
                z = np.array([detections[i].z for i in index.tolist()])
                R = np.array([detections[i].covariance for i in index.tolist()])
            sensors = batch.sensors[rows[index]] if batch.sensors is not None else None
            posterior = imm_update(part, z, R, sensors, batch.is_polar, with_nis=False)
            target = slots[index]
            self.xm[target] = posterior.xm
            self.Pm[target] = posterior.Pm
            self.mu[target] = posterior.mu
        self.t[slots] = np.maximum(self.t[slots], times)
        self.last_update[slots] = np.maximum(self.last_update[slots], times)
        self.history[slots] = ((self.history[slots] << 1) | 1) & ((1 << self.config.confirm_n) - 1)
        self.opportunities[slots] += 1
        x, P = self._refresh(slots)
        fusion = self.config.classes
        probabilities = self.cls[slots]
        informative, likelihoods = fusion.likelihood_rows(
            [(d.sensor_type, d.target_class, d.confidence) for d in detections]
        )
        if informative:
            reported = np.array(informative, dtype=np.intp)
            probabilities[reported] = fusion.update_rows(probabilities[reported], likelihoods)
        speed = np.hypot(x[:, 2], x[:, 3])
        speed_sigma = np.sqrt(np.maximum(0.0, (P[:, 2, 2] + P[:, 3, 3]) / 2.0))
        self.cls[slots] = fusion.kinematics_rows(probabilities, speed, speed_sigma)
        status = self.status[slots]
        hits = np.bitwise_count(self.history[slots])
        promoted = (status == COASTING) | ((status == TENTATIVE) & (hits >= self.config.confirm_m))
        self.status[slots[promoted]] = CONFIRMED
        self._revise(slots)
        for slot, detection in zip(slots.tolist(), detections, strict=True):
            meta = self._meta[slot]
            meta.update_count += 1
            meta.seen_by(detection)
            meta.evidence.append(detection.event_id)
            meta.fuse_altitude(detection)

    def _initiate(self, detection: Detection) -> int:
        slot = self._new_slot()
        east, north = detection.position_en()
        x0 = np.array([east, north, 0.0, 0.0])
        P0 = np.zeros((4, 4))
        P0[:2, :2] = _position_covariance(detection)
        sigma_v = self.config.initial_speed_sigma_mps
        P0[2:, 2:] = np.eye(2) * sigma_v**2
        if (
            detection.kind is MeasurementKind.POLAR
            and detection.z.shape[0] == 3
            and detection.sensor_en is not None
        ):
            bearing = float(detection.z[1])
            radial = np.array([math.sin(bearing), math.cos(bearing)])
            tangential = np.array([radial[1], -radial[0]])
            x0[2:] = detection.z[2] * radial
            P0[2:, 2:] = detection.covariance[2, 2] * np.outer(radial, radial) + sigma_v**2 * np.outer(
                tangential, tangential
            )
        self.xm[slot] = x0
        self.Pm[slot] = P0
        self.mu[slot] = np.asarray(self.config.imm.initial_probability)
        self.x[slot], self.P[slot] = x0, P0  # every model starts alike: the mixture is x0, P0
        self.t[slot] = detection.time_s
        self.last_update[slot] = detection.time_s
        self.status[slot] = TENTATIVE
        self.history[slot] = 1
        self.opportunities[slot] = 1
        fusion = self.config.classes
        self.cls[slot] = fusion.update(
            fusion.initial(),
            fusion.likelihood(detection.sensor_type, detection.target_class, detection.confidence),
        )
        meta = _Meta(
            track_id=f"{self.region}.T{self.next_id:06d}",
            first_seen_s=detection.time_s,
            primary_owner=detection.owner,
        )
        self.next_id += 1
        meta.update_count = 1
        self._revise(np.array([slot], dtype=np.intp))
        meta.seen_by(detection)
        meta.evidence.append(detection.event_id)
        meta.fuse_altitude(detection)
        self._meta[slot] = meta
        self._slots[meta.track_id] = slot
        if self.config.confirm_m <= 1:
            self.status[slot] = CONFIRMED
        return slot

    def _count_misses(self, coverage: Coverage, time_s: float, assigned: set[int]) -> None:
        """Tracks inside the scan's coverage (for a radar: the sector its beam swept) that got
        nothing: a miss in their M-of-N window."""
        live = self.active
        if len(live) == 0:
            return
        x = self.x[live]
        dt = np.maximum(time_s - self.t[live], 0.0)
        position = x[:, :2] + x[:, 2:4] * dt[:, None]
        inside = coverage.contains(position[:, 0], position[:, 1])
        inside &= self.t[live] < time_s
        if assigned:
            taken = np.zeros(len(self.t), dtype=bool)
            taken[list(assigned)] = True
            inside &= ~taken[live]
        missed = live[inside]
        if len(missed) == 0:
            return
        n = self.config.confirm_n
        self.history[missed] = (self.history[missed] << 1) & ((1 << n) - 1)
        self.opportunities[missed] += 1
        tentative = missed[self.status[missed] == TENTATIVE]
        seen = np.minimum(self.opportunities[tentative], n)
        possible = np.bitwise_count(self.history[tentative]) + (n - seen)
        for slot in tentative[possible < self.config.confirm_m].tolist():
            self._release(slot)

    # -- time --------------------------------------------------------------------------------

    def advance(self, now_s: float) -> StepResult:
        """Let event time pass: coast, lose and merge tracks. Returns status changes and ends."""
        result = StepResult()
        self.time_s = max(self.time_s, now_s)
        live = self.active
        if len(live) == 0:
            return result
        age = now_s - self.last_update[live]
        P = self.P[live]
        sigma = np.sqrt(np.maximum(0.0, (P[:, 0, 0] + P[:, 1, 1]) / 2.0))
        config = self.config
        status = self.status[live]
        tentative = status == TENTATIVE
        limit = self._coast_limits[np.argmax(self.cls[live], axis=1)]
        lost = ~tentative & ((age > limit) | (sigma > config.max_position_sigma_m))
        coasting = ~tentative & ~lost & (status == CONFIRMED) & (age > config.coast_after_s)
        result.ended = [_with_status(e, TrackStatus.LOST) for e in self._estimates(live[lost])]
        for slot in live[(tentative & (age > config.tentative_timeout_s)) | lost].tolist():
            self._release(slot)
        self.status[live[coasting]] = COASTING
        result.changed = self._estimates(live[coasting], now_s)
        result.ended.extend(self._merge(now_s))
        return result

    def _merge(self, now_s: float) -> list[TrackEstimate]:
        """Merge confirmed tracks that follow one target (same place, same velocity)."""
        live = np.flatnonzero((self.status == CONFIRMED) | (self.status == COASTING))
        if len(live) < 2:
            return []
        x = self.x[live]
        dt = np.maximum(now_s - self.t[live], 0.0)
        position = x[:, :2] + x[:, 2:4] * dt[:, None]
        pairs = cKDTree(position).query_pairs(self.config.merge_distance_m, output_type="ndarray")
        ended = []
        gone: set[int] = set()
        for a, b in pairs:
            sa, sb = int(live[a]), int(live[b])
            if sa in gone or sb in gone:
                continue
            if math.hypot(x[a, 2] - x[b, 2], x[a, 3] - x[b, 3]) > self.config.merge_speed_mps:
                continue
            keep, drop = (sa, sb) if self._meta[sa].first_seen_s <= self._meta[sb].first_seen_s else (sb, sa)
            if now_s - self._meta[drop].first_seen_s > self.config.merge_max_age_s:
                continue
            kept, dropped = self._meta[keep], self._meta[drop]
            kept.sensor_ids |= dropped.sensor_ids
            kept.owners |= dropped.owners
            kept.update_count += dropped.update_count
            self._revise(np.array([keep], dtype=np.intp))
            kept.evidence.extend(dropped.evidence)
            fusion = self.config.classes
            self.cls[keep] = fusion.update(self.cls[keep], self.cls[drop])
            ended.append(_with_status(self.estimate(drop), TrackStatus.LOST))
            self._release(drop)
            gone.add(drop)
        return ended

    # -- snapshots ---------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Everything needed to resume: JSON-ready (arrays as base64 little-endian bytes)."""
        live = self.active
        arrays = {name: getattr(self, name)[live] for name in _STATE}
        return {
            "version": 1,
            "region": self.region,
            "next_id": self.next_id,
            "time_s": self.time_s if math.isfinite(self.time_s) else None,
            "arrays": {
                name: {
                    "dtype": str(a.dtype),
                    "shape": list(a.shape),
                    "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode(),
                }
                for name, a in arrays.items()
            },
            "meta": [_meta_state(self._meta[int(s)]) for s in live],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: TrackerConfig | None = None) -> Tracker:
        """A tracker resumed from :meth:`export_state`."""
        arrays = {
            name: np.frombuffer(base64.b64decode(spec["data"]), dtype=spec["dtype"])
            .reshape(spec["shape"])
            .copy()
            for name, spec in state["arrays"].items()
        }
        count = len(state["meta"])
        tracker = cls(state["region"], config, capacity=max(64, 1 << max(count - 1, 1).bit_length()))
        for name, values in arrays.items():
            getattr(tracker, name)[:count] = values
        tracker._free = list(range(len(tracker.t) - 1, count - 1, -1))
        for slot, meta in enumerate(state["meta"]):
            tracker._meta[slot] = _Meta(
                track_id=meta["track_id"],
                first_seen_s=meta["first_seen_s"],
                sensor_ids=frozenset(meta["sensor_ids"]),
                owners=frozenset((o[0], o[1]) for o in meta["owners"]),
                evidence=deque(meta["evidence"], maxlen=_EVIDENCE),
                update_count=meta["update_count"],
                alt_m=meta["alt_m"],
                alt_var=float(meta.get("alt_var", 0.0)),
                alt_time_s=float(meta.get("alt_time_s", 0.0)),
                primary_owner=(meta["primary_owner"][0], meta["primary_owner"][1]),
            )
            tracker._slots[meta["track_id"]] = slot
        tracker._refresh(np.arange(count, dtype=np.intp))
        tracker._revise(np.arange(count, dtype=np.intp))
        tracker.next_id = int(state["next_id"])
        tracker.time_s = state["time_s"] if state["time_s"] is not None else -math.inf
        return tracker

    # -- changelog ---------------------------------------------------------------------------

    def changes(self, journal: TrackJournal) -> TrackChanges:
        """The tracks that differ from what ``journal`` says was last written, and those gone.

        A track changed when one of its rows of the snapshot arrays differs bit for bit, or its
        revision does (its metadata changed, or it is a new track in the slot). Vectorised over
        the slots: cheap enough for every commit."""
        live = self.active
        arrays = {name: getattr(self, name) for name in (*_STATE, "revision")}
        if journal.arrays is None or len(journal.arrays["t"]) != len(self.t):
            changed = live
        else:
            differs = np.zeros(len(self.t), dtype=bool)
            for name, now in arrays.items():
                differs |= (_row_bytes(now) != _row_bytes(journal.arrays[name])).any(axis=1)
            changed = live[differs[live]]
        removed = [track_id for track_id in journal.written if track_id not in self._slots]
        return TrackChanges(
            tracks=self.track_states(changed),
            removed=removed,
            slots=changed,
            rows={name: a[changed] for name, a in arrays.items()},
            written={self._meta[slot].track_id for slot in changed.tolist()},
            capacity=len(self.t),
        )

    def state_header(self) -> dict[str, Any]:
        """The tracker's own fields of a changelog (the tracks are separate records)."""
        return {
            "version": 1,
            "region": self.region,
            "next_id": self.next_id,
            "time_s": self.time_s if math.isfinite(self.time_s) else None,
            "count": len(self),
            "rows": {
                name: {"dtype": str(a.dtype), "shape": list(a.shape[1:])}
                for name in _STATE
                for a in [getattr(self, name)]
            },
        }

    def track_states(self, slots: NDArray[np.intp]) -> list[dict[str, Any]]:
        """Tracks of a changelog: each one's rows of the snapshot arrays (base64, little-endian, in
        ``_STATE`` order) and its metadata."""
        if not len(slots):
            return []
        rows = np.concatenate([_row_bytes(getattr(self, name)[slots]) for name in _STATE], axis=1)
        out = []
        for slot, row in zip(slots.tolist(), rows, strict=True):
            state = _meta_state(self._meta[slot])
            out.append(
                {"track_id": state.pop("track_id"), "rows": base64.b64encode(row.tobytes()).decode(), **state}
            )
        return out

    @staticmethod
    def state_of(header: dict[str, Any], tracks: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """A changelog's header and tracks as the state :meth:`from_state` takes (tracks in
        track id order)."""
        tracks = sorted(tracks, key=lambda t: str(t["track_id"]))
        specs = header["rows"]
        sizes = [
            int(np.dtype(spec["dtype"]).itemsize * np.prod(spec["shape"], dtype=np.int64))
            for spec in specs.values()
        ]
        blobs = [base64.b64decode(t["rows"]) for t in tracks]
        arrays = {}
        start = 0
        for (name, spec), size in zip(specs.items(), sizes, strict=True):
            data = b"".join(blob[start : start + size] for blob in blobs)
            arrays[name] = {
                "dtype": spec["dtype"],
                "shape": [len(tracks), *spec["shape"]],
                "data": base64.b64encode(data).decode(),
            }
            start += size
        for blob, track in zip(blobs, tracks, strict=True):
            if len(blob) != start:
                raise ValueError(f"track {track['track_id']}: {len(blob)} bytes of rows, expected {start}")
        return {
            "version": 1,
            "region": header["region"],
            "next_id": header["next_id"],
            "time_s": header["time_s"],
            "arrays": arrays,
            "meta": [{k: v for k, v in t.items() if k != "rows"} for t in tracks],
        }


@dataclass
class TrackChanges:
    """What changed in a tracker since its journal: the records to write, and (once they are
    committed) what the journal takes in."""

    tracks: list[dict[str, Any]]
    """:meth:`Tracker.track_state` of every changed track."""
    removed: list[str]
    """Track ids written before and gone since."""
    slots: NDArray[np.intp]
    rows: dict[str, NDArray[Any]]
    """The changed slots' rows of the compared arrays, as of the changes."""
    written: set[str]
    capacity: int


class TrackJournal:
    """What of a tracker the changelog holds (as of the last committed write): the rows of the
    snapshot arrays and the revision per slot, and the track ids written."""

    def __init__(self) -> None:
        self.arrays: dict[str, NDArray[Any]] | None = None
        self.written: set[str] = set()

    @classmethod
    def of(cls, tracker: Tracker) -> TrackJournal:
        """A journal saying the changelog holds exactly ``tracker`` (after a restore from it)."""
        journal = cls()
        journal.apply(tracker.changes(journal))
        return journal

    def apply(self, changes: TrackChanges) -> None:
        """The changes are committed: remember them."""
        if self.arrays is None or len(self.arrays["t"]) != changes.capacity:
            self.arrays = {
                name: np.zeros((changes.capacity, *rows.shape[1:]), dtype=rows.dtype)
                for name, rows in changes.rows.items()
            }
            # every live slot was in the changes (a new capacity compares as all changed); the
            # free ones hold zeros here, and only matter once a track takes them (a new id)
        for name, rows in changes.rows.items():
            self.arrays[name][changes.slots] = rows
        self.written.difference_update(changes.removed)
        self.written.update(changes.written)


def _row_bytes(array: NDArray[Any]) -> NDArray[np.uint8]:
    """Each row of ``array`` as its raw bytes (a bitwise comparison: NaN equals itself)."""
    return np.ascontiguousarray(array).view(np.uint8).reshape(len(array), -1)


def _meta_state(m: _Meta) -> dict[str, Any]:
    """A track's metadata as its state (snapshot and changelog alike)."""
    return {
        "track_id": m.track_id,
        "first_seen_s": m.first_seen_s,
        "sensor_ids": _sorted(m.sensor_ids),
        "owners": _sorted(m.owners),
        "evidence": list(m.evidence),
        "update_count": m.update_count,
        "alt_m": m.alt_m,
        "alt_var": m.alt_var,
        "alt_time_s": m.alt_time_s,
        "primary_owner": list(m.primary_owner),
    }


@functools.lru_cache(maxsize=4096)
def _sorted(values: frozenset[Any]) -> tuple[Any, ...]:
    """A set in a stable order for the snapshot. Tracks share a few sets (their sensors,
    their owners), and a snapshot lists every track's at each commit: sort each set once."""
    return tuple(sorted(values))


def _rows(prediction: ImmPrediction, index: NDArray[np.intp]) -> ImmPrediction:
    """The prediction of the tracks ``index`` of a batch."""
    return ImmPrediction(prediction.xm[index], prediction.Pm[index], prediction.c[index])


def _same_dim(detections: Sequence[Detection]) -> bool:
    return len({d.z.shape[0] for d in detections}) == 1


def _position_covariance(detection: Detection) -> Array:
    """Position covariance of a detection in the local frame (polar: first-order conversion)."""
    if detection.kind is MeasurementKind.POLAR:
        r, b = float(detection.z[0]), float(detection.z[1])
        jacobian = np.array([[math.sin(b), r * math.cos(b)], [math.cos(b), -r * math.sin(b)]])
        return np.asarray(jacobian @ detection.covariance[:2, :2] @ jacobian.T, dtype=np.float64)
    return np.asarray(detection.covariance[:2, :2], dtype=np.float64)


@dataclass(frozen=True)
class _Batch:
    """Detections of one kind as arrays, built once per scan."""

    is_polar: bool
    same_dim: bool
    z: Array
    """(m, d) measurements; (m, 2) range and bearing or position when dimensions differ."""
    R: Array
    times: Array
    sensors: Array | None
    """Polar: (m, 2) radar sites."""

    @classmethod
    def of(cls, detections: Sequence[Detection], is_polar: bool) -> _Batch:
        same_dim = _same_dim(detections)
        if same_dim:
            z = np.array([d.z for d in detections])
            R = np.array([d.covariance for d in detections])
        else:
            z = np.array([d.z[:2] for d in detections])
            R = np.array([d.covariance[:2, :2] for d in detections])
        sensors = None
        if is_polar:
            if any(d.sensor_en is None for d in detections):
                raise ValueError("a polar measurement needs the sensor's position")
            sensors = np.array([d.sensor_en for d in detections], dtype=np.float64)
        times = np.array([d.time_s for d in detections])
        return cls(is_polar, same_dim, z, R, times, sensors)

    def positions_and_variance(self) -> tuple[Array, Array]:
        """Point estimates (m, 2) and position variance (m,): the trace of the position
        covariance (polar: first-order conversion ``J R Jᵀ``)."""
        z, R = self.z[:, :2], self.R[:, :2, :2]
        if self.sensors is None:
            return z, R[:, 0, 0] + R[:, 1, 1]
        r, sin_b, cos_b = z[:, 0], np.sin(z[:, 1]), np.cos(z[:, 1])
        positions = self.sensors + r[:, None] * np.column_stack([sin_b, cos_b])
        jacobian = np.empty((len(z), 2, 2))
        jacobian[:, 0, 0], jacobian[:, 0, 1] = sin_b, r * cos_b
        jacobian[:, 1, 0], jacobian[:, 1, 1] = cos_b, -r * sin_b
        variance = np.einsum("kde,kef,kdf->k", jacobian, R, jacobian)
        return positions, np.asarray(variance, dtype=np.float64)


def _with_status(estimate: TrackEstimate, status: TrackStatus) -> TrackEstimate:
    return dataclasses.replace(estimate, status=status)
