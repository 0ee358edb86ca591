"""Multi-target tracking accuracy: GOSPA, OSPA and track-level statistics over a run.

All positions are in a region's local east-north frame, metres; distances are Euclidean.
Notation: ``X = {x_1..x_m}`` the truth, ``Y = {y_1..y_n}`` the estimates, ``c > 0`` the cut-off
(m), ``p >= 1`` the order, ``d^(c)(x, y) = min(||x - y||, c)``.

- **GOSPA** (Rahmathullah, García-Fernández & Svensson, "Generalized optimal sub-pattern
  assignment metric", FUSION 2017), for ``m <= n`` (else swap X and Y)::

      d_p^(c,alpha)(X, Y) = ( min_{pi in Pi_n} sum_{i=1..m} d^(c)(x_i, y_pi(i))^p
                              + c^p / alpha * (n - m) )^(1/p)

  With ``alpha = 2`` it equals an optimisation over partial assignments gamma of truth to
  estimates::

      d^p = min_gamma [ sum_{(i,j) in gamma} ||x_i - y_j||^p + c^p/2 (|X| - |gamma|) + c^p/2 (|Y| - |gamma|) ]

  i.e. localisation error + c^p/2 per missed target + c^p/2 per false target; a pair farther
  apart than c costs the same as leaving both unassigned (c^p/2 + c^p/2 = c^p).
- **OSPA** (Schuhmacher, Vo & Vo, "A consistent metric for performance evaluation of
  multi-object filters", IEEE TSP 2008), for ``m <= n``, ``n > 0``::

      d_p^(c)(X, Y) = ( (1/n) (min_{pi in Pi_n} sum_{i=1..m} d^(c)(x_i, y_pi(i))^p + c^p (n - m)) )^(1/p)

  i.e. GOSPA with ``alpha = 1`` normalised by ``n``; 0 when both sets are empty, c when exactly
  one is.

The optimal assignment is ``scipy.optimize.linear_sum_assignment`` on the rectangular matrix
``min(d, c)^p`` (assigning every point of the smaller set is optimal because an assignment at
the cut-off costs exactly what leaving both points out costs).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

Array = NDArray[np.float64]
IndexArray = NDArray[np.intp]
Labelled = tuple[Hashable, float, float]
"""(id, east_m, north_m) of one truth object or one track at one time."""


@dataclass(frozen=True, slots=True)
class GospaResult:
    """GOSPA at one time: ``distance^p = localisation + missed + false``.

    ``localisation``, ``missed`` and ``false`` are in m^p (the components of ``distance^p``, as in
    Stone Soup's ``GOSPAMetric``); ``distance`` is in metres.
    """

    distance: float
    """d_p^(c,alpha)(X, Y), metres."""
    localisation: float
    """sum of ||x_i - y_j||^p over the assigned pairs closer than c, m^p (alpha = 2)."""
    missed: float
    """c^p/alpha per truth without an estimate within c, m^p."""
    false: float
    """c^p/alpha per estimate without a truth within c, m^p."""
    assignments: IndexArray
    """(K, 2) rows (truth index, estimate index) of the pairs closer than c."""
    num_missed: int
    """Truths without an estimate within c."""
    num_false: int
    """Estimates without a truth within c."""


def _points(values: ArrayLike) -> Array:
    """An (N, d) float array; an empty input of any shape becomes (0, 0)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 0), dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected an (N, d) array of points, got shape {array.shape}")
    return array


def _check(c: float, p: float) -> None:
    if not c > 0 or not math.isfinite(c):
        raise ValueError(f"cut-off c must be positive and finite, got {c}")
    if not p >= 1 or not math.isfinite(p):
        raise ValueError(f"order p must be in [1, inf), got {p}")


def _optimal_pairs(
    truth: Array, estimates: Array, c: float, p: float
) -> tuple[IndexArray, IndexArray, Array]:
    """Rows, columns and costs ``min(d, c)^p`` of the assignment minimising ``sum min(d, c)^p``."""
    if len(truth) == 0 or len(estimates) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0, dtype=np.float64)
    if truth.shape[1] != estimates.shape[1]:
        raise ValueError(f"truth has {truth.shape[1]} dimensions, estimates {estimates.shape[1]}")
    cost = np.minimum(cdist(truth, estimates), c) ** p
    rows, cols = linear_sum_assignment(cost)
    return rows.astype(np.intp), cols.astype(np.intp), cost[rows, cols]


def gospa(truth: ArrayLike, estimates: ArrayLike, c: float, p: float = 2, alpha: float = 2) -> GospaResult:
    """GOSPA distance (m) between the truth (N, d) and the estimates (M, d) at one time.

    ``d = (sum_{assigned, d_ij < c} d_ij^p + c^p/alpha (N + M - 2 K))^(1/p)`` for alpha = 2, with K
    the pairs closer than c in the optimal assignment on ``min(d, c)^p``. For ``0 < alpha < 2``
    (the general definition, ``m <= n``: ``sum_{i<=m} min(d, c)^p + c^p/alpha (n - m)``) a pair at
    the cut-off stays assigned and its c^p is counted in ``localisation``; ``missed`` and
    ``false`` then hold the cardinality mismatch only.
    """
    _check(c, p)
    if not 0 < alpha <= 2:
        raise ValueError(f"alpha must be in (0, 2], got {alpha}")
    x, y = _points(truth), _points(estimates)
    rows, cols, costs = _optimal_pairs(x, y, c, p)
    close = costs < c**p
    penalty = c**p / alpha
    if alpha == 2:
        localisation = float(np.sum(costs[close]))
        unassigned_truth, unassigned_estimates = len(x) - int(np.sum(close)), len(y) - int(np.sum(close))
    else:
        localisation = float(np.sum(costs))
        unassigned_truth, unassigned_estimates = len(x) - len(rows), len(y) - len(rows)
    missed, false = unassigned_truth * penalty, unassigned_estimates * penalty
    return GospaResult(
        distance=(localisation + missed + false) ** (1.0 / p),
        localisation=localisation,
        missed=missed,
        false=false,
        assignments=np.stack([rows[close], cols[close]], axis=1).reshape(-1, 2),
        num_missed=len(x) - int(np.sum(close)),
        num_false=len(y) - int(np.sum(close)),
    )


def ospa(truth: ArrayLike, estimates: ArrayLike, c: float, p: float = 2) -> float:
    """OSPA distance (m): ``((1/n)(min_pi sum_{i<=m} min(d, c)^p + c^p (n - m)))^(1/p)``, m <= n.

    0 when both sets are empty, ``c`` when exactly one is; always within [0, c].
    """
    _check(c, p)
    x, y = _points(truth), _points(estimates)
    n = max(len(x), len(y))
    if n == 0:
        return 0.0
    _, _, costs = _optimal_pairs(x, y, c, p)
    total = float(np.sum(costs)) + c**p * (n - min(len(x), len(y)))
    return float(min((total / n) ** (1.0 / p), c))


@dataclass(frozen=True)
class RunStatistics:
    """Accuracy of one tracker over one run, sampled at evaluation times."""

    times_s: Array
    """Evaluation times (s)."""
    gospa_m: Array
    """GOSPA distance per step (m)."""
    localisation: Array
    """GOSPA localisation component per step (m^p)."""
    missed: Array
    """GOSPA missed-target component per step (m^p)."""
    false: Array
    """GOSPA false-target component per step (m^p)."""
    ospa_m: Array
    """OSPA distance per step (m)."""
    squared_error_m2: Array
    """Sum of squared position errors of the truth-track pairs closer than c, per step (m^2)."""
    num_truths: NDArray[np.int64]
    num_tracks: NDArray[np.int64]
    num_assigned: NDArray[np.int64]
    """Truth-track pairs closer than c per step."""
    tracks_total: int
    """Unique track ids ever reported."""
    tracks_matched: int
    """Unique track ids assigned to some truth (within c) at least once."""
    false_tracks: int
    """Unique track ids never assigned to any truth within c."""
    id_switches: int
    """Times a truth's assigned track id differs from the last track id it was assigned."""
    fragmentations: int
    """Times a truth's coverage is interrupted: assigned, then unassigned, then assigned again."""
    truths_total: int
    c: float
    p: float
    assigned_ids: list[dict[Hashable, Hashable]] = field(repr=False)
    """Per step, truth id -> track id of the GOSPA assignment within c."""

    def summary(self) -> dict[str, Any]:
        """Plain numbers for a report: means over the steps, counts over the run."""
        pairs = int(np.sum(self.num_assigned))
        rmse = math.sqrt(float(np.sum(self.squared_error_m2)) / pairs) if pairs else math.nan
        steps = len(self.times_s)

        def mean(values: Array) -> float:
            return float(np.mean(values)) if steps else math.nan

        return {
            "steps": steps,
            "c_m": self.c,
            "p": self.p,
            "mean_gospa_m": mean(self.gospa_m),
            "mean_gospa_localisation": mean(self.localisation),
            "mean_gospa_missed": mean(self.missed),
            "mean_gospa_false": mean(self.false),
            "mean_ospa_m": mean(self.ospa_m),
            "position_rmse_m": rmse,
            "mean_truths": mean(self.num_truths.astype(np.float64)),
            "mean_tracks": mean(self.num_tracks.astype(np.float64)),
            "missed_target_steps": int(np.sum(self.num_truths - self.num_assigned)),
            "false_target_steps": int(np.sum(self.num_tracks - self.num_assigned)),
            "truths_total": self.truths_total,
            "tracks_total": self.tracks_total,
            "tracks_matched": self.tracks_matched,
            "false_tracks": self.false_tracks,
            "id_switches": self.id_switches,
            "fragmentations": self.fragmentations,
        }


def _split(objects: Sequence[Labelled]) -> tuple[list[Hashable], Array]:
    ids = [obj[0] for obj in objects]
    positions = np.array([[obj[1], obj[2]] for obj in objects], dtype=np.float64).reshape(-1, 2)
    return ids, positions


def run_statistics(
    times_s: Sequence[float],
    truth: Sequence[Sequence[Labelled]],
    tracks: Sequence[Sequence[Labelled]],
    c: float,
    p: float = 2,
    alpha: float = 2,
) -> RunStatistics:
    """GOSPA, OSPA and track-level statistics of a run.

    ``truth[k]`` and ``tracks[k]`` list the (id, east_m, north_m) of the truth objects and of the
    tracks at ``times_s[k]``. Each step's GOSPA assignment (pairs closer than ``c``) links truth
    ids to track ids; from these links over the run:

    - a track is *matched* if it is ever linked, *false* if never;
    - an *id switch* is a truth linked to a track id other than the last one it was linked to
      (gaps without a link in between do not reset it; losing and regaining the same id is none);
    - a *fragmentation* is a truth losing its link and regaining one later (any id).
    """
    if not len(times_s) == len(truth) == len(tracks):
        raise ValueError(f"{len(times_s)} times, {len(truth)} truth steps, {len(tracks)} track steps")
    steps = len(times_s)
    gospa_m, localisation, missed, false, ospa_m, squared_error = (np.zeros(steps) for _ in range(6))
    num_truths, num_tracks, num_assigned = (np.zeros(steps, dtype=np.int64) for _ in range(3))
    assigned_ids: list[dict[Hashable, Hashable]] = []
    all_tracks: set[Hashable] = set()
    matched_tracks: set[Hashable] = set()
    all_truths: set[Hashable] = set()
    last_track: dict[Hashable, Hashable] = {}
    was_linked: dict[Hashable, bool] = {}
    lost: set[Hashable] = set()
    id_switches = fragmentations = 0
    for k in range(steps):
        truth_ids, truth_en = _split(truth[k])
        track_ids, track_en = _split(tracks[k])
        result = gospa(truth_en, track_en, c, p, alpha)
        rows, cols = result.assignments[:, 0], result.assignments[:, 1]
        links = {truth_ids[i]: track_ids[j] for i, j in zip(rows, cols, strict=True)}
        squared_error[k] = float(np.sum((truth_en[rows] - track_en[cols]) ** 2)) if len(rows) else 0.0
        gospa_m[k], localisation[k] = result.distance, result.localisation
        missed[k], false[k] = result.missed, result.false
        ospa_m[k] = ospa(truth_en, track_en, c, p)
        num_truths[k], num_tracks[k], num_assigned[k] = len(truth_ids), len(track_ids), len(links)
        assigned_ids.append(links)
        all_tracks.update(track_ids)
        matched_tracks.update(links.values())
        all_truths.update(truth_ids)
        for truth_id in truth_ids:
            track_id = links.get(truth_id)
            if track_id is None:
                if was_linked.get(truth_id):
                    lost.add(truth_id)
                was_linked[truth_id] = False
                continue
            if truth_id in lost:
                fragmentations += 1
                lost.discard(truth_id)
            previous = last_track.get(truth_id)
            if previous is not None and previous != track_id:
                id_switches += 1
            last_track[truth_id] = track_id
            was_linked[truth_id] = True
    return RunStatistics(
        times_s=np.asarray(times_s, dtype=np.float64),
        gospa_m=gospa_m,
        localisation=localisation,
        missed=missed,
        false=false,
        ospa_m=ospa_m,
        squared_error_m2=squared_error,
        num_truths=num_truths,
        num_tracks=num_tracks,
        num_assigned=num_assigned,
        tracks_total=len(all_tracks),
        tracks_matched=len(matched_tracks),
        false_tracks=len(all_tracks - matched_tracks),
        id_switches=id_switches,
        fragmentations=fragmentations,
        truths_total=len(all_truths),
        c=c,
        p=p,
        assigned_ids=assigned_ids,
    )
