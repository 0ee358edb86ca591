"""Chi-square gating and global nearest-neighbour assignment, for thousands of tracks at once.

1. Candidate pairs from a k-d tree on positions: a detection can only be near a track within
   ``sqrt(gate · (tr P_pos + tr R_pos))`` metres, a bound on the gate's extent.
2. For candidate pairs, the squared Mahalanobis distance ``d² = nuᵀ S⁻¹ nu`` with
   ``S = H P Hᵀ + R`` (closed-form 2×2 and 3×3 inverses: no per-pair LAPACK call); pairs with
   ``d² > gate`` are dropped (``gate`` is a chi-square quantile for the measurement dimension).
   For an IMM, per motion model: a pair stays when it is inside the gate of some model.
3. Assignment minimises the total cost ``d² + ln det S`` (the negative log-likelihood up to a
   constant; for an IMM, that of the mixture of the models' predictions) over each connected
   component of the gated bipartite graph with ``scipy.optimize.linear_sum_assignment``; a
   component of one pair is assigned directly, and a star (one track or one detection) takes its
   cheapest pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.stats import chi2

from services.correlator.domain.filters import inverse_and_logdet, measure, residual

Array = NDArray[np.float64]
Index = NDArray[np.intp]


def gate_threshold(probability: float, dim: int) -> float:
    """The chi-square quantile below which ``probability`` of true pairs fall."""
    return float(chi2.ppf(probability, dim))


@dataclass(frozen=True)
class Assignment:
    """Which track index got which detection index, and the pair's d² (for an IMM, the
    smallest over the models)."""

    tracks: Index
    detections: Index
    distance2: Array


def _candidates(
    track_positions: Array, track_radius: Array, detection_positions: Array
) -> tuple[Index, Index]:
    if len(track_positions) * len(detection_positions) <= _BRUTE_FORCE_PAIRS:
        offset = track_positions[:, None, :] - detection_positions[None, :, :]
        inside = np.einsum("kmd,kmd->km", offset, offset) <= (track_radius * track_radius)[:, None]
        tracks, detections = np.nonzero(inside)
        return tracks.astype(np.intp), detections.astype(np.intp)
    tree = cKDTree(detection_positions)
    neighbours = tree.query_ball_point(track_positions, track_radius)
    counts = np.fromiter(map(len, neighbours), dtype=np.intp, count=len(neighbours))
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    tracks = np.repeat(np.arange(len(neighbours), dtype=np.intp), counts)
    detections = np.fromiter(chain.from_iterable(neighbours), dtype=np.intp, count=total)
    return tracks, detections


def associate(
    x: Array,
    P: Array,
    z: Array,
    R: Array,
    detection_positions: Array,
    detection_position_variance: Array,
    sensor_en: Array | None,
    is_polar: bool,
    gate: float,
    weights: Array | None = None,
) -> Assignment:
    """Gate and assign one scan's detections to predicted tracks.

    ``x`` (k, 4) and ``P`` (k, 4, 4): tracks predicted to the scan time; or, for an IMM, each
    model's prediction ``x`` (k, m, 4) and ``P`` (k, m, 4, 4) with the predicted model
    probabilities ``weights`` (k, m). ``z`` (n, d) and ``R`` (n, d, d): the detections;
    ``detection_positions`` (n, 2) and ``detection_position_variance`` (n,): their position
    estimates and position variance (trace) for the coarse search; ``sensor_en`` (2,) the radar
    site for polar detections.

    With models, a pair is inside the gate when it is inside some model's gate
    (``min_j d²_j <= gate``), and its cost is the mixture's negative log-likelihood
    ``-2 ln sum_j c_j exp(-(d²_j + ln det S_j) / 2)`` (one model: ``d² + ln det S``). A
    manoeuvring target thus stays in the gate of its manoeuvre model even when the mixture's
    moments, dominated by the quiet model, would leave it out.
    """
    empty = Assignment(np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp), np.empty(0))
    if len(x) == 0 or len(z) == 0:
        return empty
    if weights is None:
        x, P, weights = x[:, None], P[:, None], np.ones((len(x), 1))
    k, m, _ = x.shape
    mean = np.einsum("km,kmd->kd", weights, x)
    position_variance = P[..., 0, 0] + P[..., 1, 1]
    offset = np.hypot(x[..., 0] - mean[:, None, 0], x[..., 1] - mean[:, None, 1])
    reach = np.sqrt(gate * (position_variance + detection_position_variance.max())) + offset
    ti, dj = _candidates(mean[:, :2], reach.max(axis=1), detection_positions)
    if len(ti) == 0:
        return empty
    dim = z.shape[1]
    sensors = None if sensor_en is None else np.broadcast_to(sensor_en, (k * m, 2))
    flat_x, flat_P = x.reshape(k * m, 4), P.reshape(k * m, 4, 4)
    zhat, H = measure(flat_x, sensors, dim, is_polar)
    HPHt = (H @ flat_P @ np.swapaxes(H, 1, 2)).reshape(k, m, dim, dim)
    S = HPHt[ti] + R[dj][:, None]
    nu = residual(z[dj][:, None, :], zhat.reshape(k, m, dim)[ti], is_polar)
    S_inv, logdet = inverse_and_logdet(S)
    d2 = np.einsum("pjd,pjd->pj", nu, (S_inv @ nu[..., None])[..., 0])
    nll = d2 + logdet
    best = nll.min(axis=1)
    cost = best - 2.0 * np.log(np.einsum("pj,pj->p", weights[ti], np.exp(-0.5 * (nll - best[:, None]))))
    d2 = d2.min(axis=1)
    inside = d2 <= gate
    ti, dj, d2, cost = ti[inside], dj[inside], d2[inside], cost[inside]
    if len(ti) == 0:
        return empty
    return _assign(ti, dj, d2, cost, len(x), len(z))


def _assign(ti: Index, dj: Index, d2: Array, cost: Array, k: int, m: int) -> Assignment:
    """Optimal assignment of the gated pairs, one connected component of the bipartite graph at
    a time: a component of one pair is that pair; a star (one track, or one detection) takes its
    cheapest pair; two tracks and two detections take the cheaper full pairing; anything else
    goes to ``linear_sum_assignment``. Vectorised over components."""
    track_uses = np.bincount(ti, minlength=k)
    detection_uses = np.bincount(dj, minlength=m)
    alone = (track_uses[ti] == 1) & (detection_uses[dj] == 1)
    if alone.all():
        return Assignment(ti, dj, d2)  # no contention: every gated pair is the assignment
    parts = [Assignment(ti[alone], dj[alone], d2[alone])]
    rest = np.flatnonzero(~alone)
    r_ti, r_dj = ti[rest], dj[rest]
    if len(rest) <= _SMALL_CONTENTION:  # one dense block is cheaper than finding components
        c_tracks, c_t = np.unique(r_ti, return_inverse=True)
        c_dets, c_d = np.unique(r_dj, return_inverse=True)
        parts.append(_solve(c_tracks, c_dets, c_t, c_d, d2[rest], cost[rest]))
        return _concatenate(parts)
    graph = coo_matrix((np.ones(len(rest)), (r_ti, k + r_dj)), shape=(k + m, k + m))
    count, label = connected_components(graph, directed=False)
    component = label[r_ti]
    tracks_in = np.bincount(label[np.unique(r_ti)], minlength=count)
    detections_in = np.bincount(label[k + np.unique(r_dj)], minlength=count)
    star = (tracks_in[component] == 1) | (detections_in[component] == 1)
    if star.any():
        pairs = rest[star]
        order = np.lexsort((cost[pairs], component[star]))
        first = np.ones(len(order), dtype=bool)
        first[1:] = component[star][order][1:] != component[star][order][:-1]
        chosen = pairs[order[first]]
        parts.append(Assignment(ti[chosen], dj[chosen], d2[chosen]))
    dense, c_of = rest[~star], component[~star]
    square = (tracks_in[c_of] == 2) & (detections_in[c_of] == 2)
    if square.any():
        parts.append(_two_by_two(ti, dj, d2, cost, dense[square], c_of[square]))
        dense, c_of = dense[~square], c_of[~square]
    if len(dense):
        order = np.argsort(c_of, kind="stable")
        bounds = np.flatnonzero(np.diff(c_of[order])) + 1
        for chunk in np.split(dense[order], bounds):
            c_tracks, c_t = np.unique(ti[chunk], return_inverse=True)
            c_dets, c_d = np.unique(dj[chunk], return_inverse=True)
            parts.append(_solve(c_tracks, c_dets, c_t, c_d, d2[chunk], cost[chunk]))
    return _concatenate(parts)


def _two_by_two(ti: Index, dj: Index, d2: Array, cost: Array, pairs: Index, component: Index) -> Assignment:
    """Components of two tracks ``a < b`` and two detections ``x < y`` (three or four gated
    pairs): the cheaper of the two ways to pair them all, ``a-x, b-y`` or ``a-y, b-x`` (a missing
    pair costs infinity; one of the two always exists). What ``linear_sum_assignment`` gives,
    vectorised over the components, which widely spaced targets make the most common kind."""
    order = np.lexsort((dj[pairs], ti[pairs], component))
    pairs, component = pairs[order], component[order]
    _, start, sizes = np.unique(component, return_index=True, return_counts=True)
    row = np.repeat(np.arange(len(start)), sizes)
    first_track = ti[pairs[start]][row]
    first_detection = np.minimum.reduceat(dj[pairs], start)[row]
    column = 2 * (ti[pairs] != first_track) + (dj[pairs] != first_detection)  # a-x, a-y, b-x, b-y
    costs = np.full((len(start), 4), np.inf)
    costs[row, column] = cost[pairs]
    index = np.zeros((len(start), 4), dtype=np.intp)
    index[row, column] = pairs
    crossed = costs[:, 1] + costs[:, 2] < costs[:, 0] + costs[:, 3]
    chosen = np.where(crossed[:, None], index[:, [1, 2]], index[:, [0, 3]]).ravel()
    return Assignment(ti[chosen], dj[chosen], d2[chosen])


def _concatenate(parts: list[Assignment]) -> Assignment:
    return Assignment(
        np.concatenate([p.tracks for p in parts]),
        np.concatenate([p.detections for p in parts]),
        np.concatenate([p.distance2 for p in parts]),
    )


def _solve(tracks: Index, dets: Index, t_pos: Index, d_pos: Index, d2: Array, cost: Array) -> Assignment:
    """Optimal assignment on a dense block; pairs outside the gate are impossible."""
    matrix = np.full((len(tracks), len(dets)), _IMPOSSIBLE)
    matrix[t_pos, d_pos] = cost
    rows, cols = linear_sum_assignment(matrix)
    keep = matrix[rows, cols] < _IMPOSSIBLE
    rows, cols = rows[keep], cols[keep]
    distance2 = np.full((len(tracks), len(dets)), np.inf)
    distance2[t_pos, d_pos] = d2
    return Assignment(tracks[rows], dets[cols], distance2[rows, cols])


_IMPOSSIBLE = 1e12
_BRUTE_FORCE_PAIRS = 2_000
"""Up to this many track × detection pairs, the coarse search compares all of them (cheaper
than building a k-d tree)."""
_SMALL_CONTENTION = 12
"""Up to this many contended pairs, one dense assignment (exact: components are independent)."""
