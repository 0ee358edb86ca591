"""Chi-square gating and global nearest-neighbour assignment, for thousands of tracks at once.

1. Candidate pairs from a k-d tree on positions: a detection can only be near a track within
   ``sqrt(gate · (tr P_pos + tr R_pos))`` metres, a bound on the gate's extent.
2. For candidate pairs, the squared Mahalanobis distance ``d² = nuᵀ S⁻¹ nu`` with
   ``S = H P Hᵀ + R`` (closed-form 2×2 and 3×3 inverses: no per-pair LAPACK call); pairs with
   ``d² > gate`` are dropped (``gate`` is a chi-square quantile for the measurement dimension).
3. Assignment minimises the total cost ``d² + ln det S`` (the negative log-likelihood up to a
   constant) over each connected component of the gated bipartite graph with
   ``scipy.optimize.linear_sum_assignment``; a component of one pair is assigned directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.stats import chi2

from services.correlator.domain.filters import measure, residual

Array = NDArray[np.float64]
Index = NDArray[np.intp]


def gate_threshold(probability: float, dim: int) -> float:
    """The chi-square quantile below which ``probability`` of true pairs fall."""
    return float(chi2.ppf(probability, dim))


def inverse_and_logdet(S: Array) -> tuple[Array, Array]:
    """Batched inverse and log-determinant of 2×2 or 3×3 symmetric matrices (…, d, d)."""
    d = S.shape[-1]
    if d == 2:
        a, b, c = S[..., 0, 0], S[..., 0, 1], S[..., 1, 1]
        det = a * c - b * b
        inv = np.empty_like(S)
        inv[..., 0, 0] = c / det
        inv[..., 1, 1] = a / det
        inv[..., 0, 1] = inv[..., 1, 0] = -b / det
        return inv, np.log(det)
    if d == 3:
        m = S
        c00 = m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1]
        c01 = m[..., 1, 2] * m[..., 2, 0] - m[..., 1, 0] * m[..., 2, 2]
        c02 = m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0]
        det = m[..., 0, 0] * c00 + m[..., 0, 1] * c01 + m[..., 0, 2] * c02
        inv = np.empty_like(S)
        inv[..., 0, 0] = c00
        inv[..., 1, 0] = c01
        inv[..., 2, 0] = c02
        inv[..., 0, 1] = m[..., 0, 2] * m[..., 2, 1] - m[..., 0, 1] * m[..., 2, 2]
        inv[..., 1, 1] = m[..., 0, 0] * m[..., 2, 2] - m[..., 0, 2] * m[..., 2, 0]
        inv[..., 2, 1] = m[..., 0, 1] * m[..., 2, 0] - m[..., 0, 0] * m[..., 2, 1]
        inv[..., 0, 2] = m[..., 0, 1] * m[..., 1, 2] - m[..., 0, 2] * m[..., 1, 1]
        inv[..., 1, 2] = m[..., 0, 2] * m[..., 1, 0] - m[..., 0, 0] * m[..., 1, 2]
        inv[..., 2, 2] = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
        inv /= det[..., None, None]
        return inv, np.log(det)
    inverse = np.asarray(np.linalg.inv(S), dtype=np.float64)
    return inverse, np.asarray(np.linalg.slogdet(S)[1], dtype=np.float64)


@dataclass(frozen=True)
class Assignment:
    """Which track index got which detection index, and the pair's d²."""

    tracks: Index
    detections: Index
    distance2: Array


def _candidates(
    track_positions: Array, track_radius: Array, detection_positions: Array
) -> tuple[Index, Index]:
    tree = cKDTree(detection_positions)
    neighbours = tree.query_ball_point(track_positions, track_radius)
    counts = np.fromiter((len(n) for n in neighbours), dtype=np.intp, count=len(neighbours))
    if counts.sum() == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    tracks = np.repeat(np.arange(len(neighbours), dtype=np.intp), counts)
    detections = np.fromiter((j for n in neighbours for j in n), dtype=np.intp, count=int(counts.sum()))
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
) -> Assignment:
    """Gate and assign one scan's detections to predicted tracks.

    ``x`` (k, 4) and ``P`` (k, 4, 4): tracks predicted to the scan time; ``z`` (m, d) and
    ``R`` (m, d, d): the detections; ``detection_positions`` (m, 2) and
    ``detection_position_variance`` (m,): their position estimates and position variance
    (trace) for the coarse search; ``sensor_en`` (2,) the radar site for polar detections.
    """
    empty = Assignment(np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp), np.empty(0))
    if len(x) == 0 or len(z) == 0:
        return empty
    position_variance = P[:, 0, 0] + P[:, 1, 1]
    radius = np.sqrt(gate * (position_variance + detection_position_variance.max()))
    ti, dj = _candidates(x[:, :2], radius, detection_positions)
    if len(ti) == 0:
        return empty
    sensors = None if sensor_en is None else np.broadcast_to(sensor_en, (len(x), 2))
    zhat, H = measure(x, sensors, z.shape[1], is_polar)
    HPHt = np.einsum("kde,kef,kgf->kdg", H, P, H)
    S = HPHt[ti] + R[dj]
    nu = residual(z[dj], zhat[ti], is_polar)
    S_inv, logdet = inverse_and_logdet(S)
    d2 = np.einsum("pd,pde,pe->p", nu, S_inv, nu)
    inside = d2 <= gate
    ti, dj, d2, cost = ti[inside], dj[inside], d2[inside], (d2 + logdet)[inside]
    if len(ti) == 0:
        return empty
    return _assign(ti, dj, d2, cost, len(x), len(z))


def _assign(ti: Index, dj: Index, d2: Array, cost: Array, k: int, m: int) -> Assignment:
    track_uses = np.bincount(ti, minlength=k)
    detection_uses = np.bincount(dj, minlength=m)
    if track_uses.max() <= 1 and detection_uses.max() <= 1:
        return Assignment(ti, dj, d2)  # no contention: every gated pair is the assignment
    tracks, t_pos = np.unique(ti, return_inverse=True)
    dets, d_pos = np.unique(dj, return_inverse=True)
    if len(tracks) * len(dets) <= 250_000:
        return _solve(tracks, dets, t_pos, d_pos, d2, cost)
    graph = coo_matrix((np.ones(len(ti)), (ti, k + dj)), shape=(k + m, k + m))
    _, label = connected_components(graph, directed=False)
    component = label[ti]
    order = np.argsort(component, kind="stable")
    bounds = np.flatnonzero(np.diff(component[order])) + 1
    parts = []
    for chunk in np.split(order, bounds):
        c_tracks, c_t = np.unique(ti[chunk], return_inverse=True)
        c_dets, c_d = np.unique(dj[chunk], return_inverse=True)
        parts.append(_solve(c_tracks, c_dets, c_t, c_d, d2[chunk], cost[chunk]))
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
