"""Vectorised IMM extended Kalman filtering: predict many tracks at once, update many at once.

Arrays carry a leading track axis ``k`` and a model axis ``m``: model-conditioned means
``xm (k, m, 4)``, covariances ``Pm (k, m, 4, 4)`` and model probabilities ``mu (k, m)``.

Measurement models (``h`` and its Jacobian ``H``), for a target at ``(e, n, ve, vn)`` and a
sensor at ``(se, sn)``, with ``de = e - se``, ``dn = n - sn``, ``r = sqrt(de² + dn²)``:

- point / presence: ``h(x) = [e, n]`` (linear);
- polar: ``h(x) = [r, atan2(de, dn)]`` (range, bearing from north, clockwise, radians), plus
  ``(de·ve + dn·vn) / r`` (radial velocity, positive receding) when measured.

The bearing residual is wrapped to ``(-pi, pi]``; covariance updates use the Joseph form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.correlator.domain.motion import ImmModel, process_noise

Array = NDArray[np.float64]

_MIN_RANGE_M = 1.0
_POSITION = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class ImmPrediction:
    """Model-conditioned predictions and the predicted model probabilities ``c``."""

    xm: Array
    Pm: Array
    c: Array

    def combined(self) -> tuple[Array, Array]:
        """Moment-matched mean and covariance: x = sum c_j x_j, P = sum c_j (P_j + d_j d_j^T)."""
        return combine(self.xm, self.Pm, self.c)


def combine(xm: Array, Pm: Array, weights: Array) -> tuple[Array, Array]:
    """Gaussian mixture moments: (k, 4) mean and (k, 4, 4) covariance."""
    k, m, d = xm.shape
    x = (weights[:, None, :] @ xm)[:, 0]
    spread = (xm - x[:, None, :]) * np.sqrt(weights)[:, :, None]  # sqrt(c_j) d_j, (k, m, 4)
    P = (weights[:, None, :] @ Pm.reshape(k, m, d * d)).reshape(k, d, d)
    P += np.swapaxes(spread, 1, 2) @ spread
    return x, P


def imm_predict(xm: Array, Pm: Array, mu: Array, dt_s: Array, model: ImmModel) -> ImmPrediction:
    """IMM mixing then per-model constant-velocity prediction over ``dt_s`` (k,) seconds.

    Mixing: ``c_j = sum_i pi_ij mu_i``, ``mu_i|j = pi_ij mu_i / c_j``, ``x0_j = sum_i mu_i|j x_i``,
    ``P0_j = sum_i mu_i|j (P_i + (x_i - x0_j)(x_i - x0_j)ᵀ)``; then ``x_j = F x0_j`` and
    ``P_j = F P0_j Fᵀ + Q_j`` (F and Q of motion.py, F applied in closed form).
    """
    dt = np.maximum(np.asarray(dt_s, dtype=np.float64), 0.0)
    k, m, d = xm.shape
    pi = model.switching(dt)
    c = np.maximum((mu[:, None, :] @ pi)[:, 0], 1e-12)
    mixing = pi * mu[:, :, None] / c[:, None, :]  # mu_{i|j}, (k, i, j)
    mixing_t = np.swapaxes(mixing, 1, 2)  # (k, j, i)
    x0 = mixing_t @ xm
    P0 = (mixing_t @ Pm.reshape(k, m, d * d)).reshape(k, m, d, d)
    # sum_i mu_i|j s_ij s_ijᵀ as Wᵀ W with rows W_i = sqrt(mu_i|j) s_ij
    spread = (xm[:, None, :, :] - x0[:, :, None, :]) * np.sqrt(mixing_t)[..., None]  # (k, j, i, 4)
    P0 += np.swapaxes(spread, 2, 3) @ spread
    x_pred, P_pred = _move(x0, P0, dt, np.asarray(model.q, dtype=np.float64)[None, :])
    return ImmPrediction(x_pred, P_pred, c / c.sum(axis=1, keepdims=True))


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


def predict_combined(xm: Array, Pm: Array, mu: Array, dt_s: Array, model: ImmModel) -> tuple[Array, Array]:
    """The moment-matched IMM prediction without the per-model states, (k, 4) and (k, 4, 4).

    Mixing keeps the mixture's moments and every model moves with the same ``F``, so the
    combined prediction is ``x = F x̄`` and ``P = F P̄ Fᵀ + sum_j c_j Q_j`` with ``x̄, P̄`` the
    moments of the current mixture and ``c_j = sum_i pi_ij mu_i``: what
    ``imm_predict(...).combined()`` gives, for a fraction of the work (gating, read-outs).
    """
    x, P = combine(xm, Pm, mu)
    return predict_moments(x, P, mu, dt_s, model)


def predict_moments(x: Array, P: Array, mu: Array, dt_s: Array, model: ImmModel) -> tuple[Array, Array]:
    """:func:`predict_combined` from the mixture's moments ``x`` (k, 4) and ``P`` (k, 4, 4)
    (already at hand: the tracker keeps them) and its model probabilities ``mu`` (k, m)."""
    dt = np.maximum(np.asarray(dt_s, dtype=np.float64), 0.0)
    c = (mu[:, None, :] @ model.switching(dt))[:, 0]
    q = c @ np.asarray(model.q, dtype=np.float64)
    return _move(x, P, dt, q)


def _move(x: Array, P: Array, dt: Array, q: Array) -> tuple[Array, Array]:
    """``F x`` and ``F P Fᵀ + Q(q)`` in closed form, for (k, ..., 4) states: with ``P`` in blocks
    of position and velocity, ``F P Fᵀ = [[Ppp + dt (Ppv + Pvp) + dt² Pvv, Ppv + dt Pvv],
    [Pvp + dt Pvv, Pvv]]``. ``dt`` (k,), ``q`` broadcasts against ``x``'s leading axes."""
    extra = (1,) * (x.ndim - 2)
    step = dt.reshape(-1, *extra, 1)
    x_new = x.copy()
    x_new[..., :2] += x[..., 2:] * step
    step = step[..., None]
    Pvv = P[..., 2:, 2:]
    P_new = P.copy()
    P_new[..., :2, 2:] += step * Pvv
    P_new[..., 2:, :2] += step * Pvv
    P_new[..., :2, :2] += step * (P[..., :2, 2:] + P[..., 2:, :2]) + step * step * Pvv
    P_new += np.asarray(q)[..., None, None] * process_noise(dt, 1.0).reshape(-1, *extra, 4, 4)
    return x_new, P_new


def predict_position(x: Array, dt_s: Array) -> Array:
    """Constant-velocity position after ``dt_s``: (k, 2)."""
    return x[:, :2] + x[:, 2:4] * np.asarray(dt_s, dtype=np.float64)[:, None]


def polar(x: Array, sensor_en: Array, with_velocity: bool) -> tuple[Array, Array]:
    """Polar ``h(x)`` (k, d) and Jacobian ``H`` (k, d, 4) for states ``x`` (k, 4)."""
    de = x[:, 0] - sensor_en[:, 0]
    dn = x[:, 1] - sensor_en[:, 1]
    r = np.maximum(np.hypot(de, dn), _MIN_RANGE_M)
    dim = 3 if with_velocity else 2
    zhat = np.empty((x.shape[0], dim))
    H = np.zeros((x.shape[0], dim, 4))
    zhat[:, 0] = r
    zhat[:, 1] = np.arctan2(de, dn)
    H[:, 0, 0] = de / r
    H[:, 0, 1] = dn / r
    H[:, 1, 0] = dn / r**2
    H[:, 1, 1] = -de / r**2
    if with_velocity:
        rv = (de * x[:, 2] + dn * x[:, 3]) / r
        zhat[:, 2] = rv
        H[:, 2, 0] = (x[:, 2] - rv * de / r) / r
        H[:, 2, 1] = (x[:, 3] - rv * dn / r) / r
        H[:, 2, 2] = de / r
        H[:, 2, 3] = dn / r
    return zhat, H


def linear_position(x: Array) -> tuple[Array, Array]:
    """Position ``h(x) = [e, n]`` (k, 2) and its Jacobian (k, 2, 4)."""
    return x[:, :2].copy(), np.broadcast_to(_POSITION, (x.shape[0], 2, 4))


_SHARED_POSITION = _POSITION[None]
_SHARED_POSITION.flags.writeable = False


def wrap(angle: Array) -> Array:
    """Angles to (-pi, pi]."""
    return np.asarray(np.pi - np.mod(np.pi - angle, 2.0 * np.pi))


def residual(z: Array, zhat: Array, is_polar: bool) -> Array:
    """z - h(x), bearing wrapped."""
    nu = z - zhat
    if is_polar:
        nu[..., 1] = wrap(nu[..., 1])
    return nu


def measure(x: Array, sensor_en: Array | None, dim: int, is_polar: bool) -> tuple[Array, Array]:
    """h(x) (k, d) and H for the measurement kind at hand: (k, d, 4), or for a linear
    measurement the one Jacobian all share, (1, 2, 4), which matrix products broadcast."""
    if is_polar:
        if sensor_en is None:
            raise ValueError("a polar measurement needs the sensor's position")
        return polar(x, sensor_en, with_velocity=dim == 3)
    return x[:, :2].copy(), _SHARED_POSITION


@dataclass(frozen=True)
class ImmUpdate:
    """Posterior of an IMM update and its diagnostics."""

    xm: Array
    Pm: Array
    mu: Array
    nis: Array
    """Normalised innovation squared of the combined prediction, (k,) (NaN when not asked for)."""


def imm_update(
    prediction: ImmPrediction,
    z: Array,
    R: Array,
    sensor_en: Array | None,
    is_polar: bool,
    with_nis: bool = True,
) -> ImmUpdate:
    """Extended Kalman update of every model with one measurement per track.

    ``z`` (k, d), ``R`` (k, d, d). Per model j: nu = z - h(x_j), S = H P H^T + R,
    K = P H^T S^-1, x += K nu, P = (I - K H) P (I - K H)^T + K R K^T; model likelihood
    N(nu; 0, S) updates the model probabilities: mu_j ∝ c_j N_j. All models of all tracks in one
    batch (closed-form 2×2 and 3×3 inverses). ``with_nis`` False skips the diagnostic NIS (NaN).
    """
    k, m = prediction.c.shape
    dim = z.shape[1]
    X = prediction.xm.reshape(k * m, 4)
    P = prediction.Pm.reshape(k * m, 4, 4)
    z_all = np.repeat(z, m, axis=0)
    R_all = np.repeat(R, m, axis=0)
    sensors = None if sensor_en is None else np.repeat(sensor_en, m, axis=0)
    zhat, H = measure(X, sensors, dim, is_polar)
    nu = residual(z_all, zhat, is_polar)
    PHt = P @ np.swapaxes(H, 1, 2)
    S = H @ PHt + R_all
    S_inv, logdet = inverse_and_logdet(S)
    K = PHt @ S_inv
    xm = (X + (K @ nu[:, :, None])[:, :, 0]).reshape(k, m, 4)
    A = np.eye(4) - K @ H
    Pm = (A @ P @ np.swapaxes(A, 1, 2) + K @ R_all @ np.swapaxes(K, 1, 2)).reshape(k, m, 4, 4)
    mahalanobis = np.einsum("pd,pd->p", nu, (S_inv @ nu[:, :, None])[:, :, 0])
    log_likelihood = (-0.5 * (mahalanobis + logdet + dim * np.log(2.0 * np.pi))).reshape(k, m)
    weights = np.log(prediction.c) + log_likelihood
    weights -= weights.max(axis=1, keepdims=True)
    mu = np.exp(weights)
    mu /= mu.sum(axis=1, keepdims=True)
    mu = np.maximum(mu, 1e-9)
    mu /= mu.sum(axis=1, keepdims=True)
    if not with_nis:
        return ImmUpdate(xm, Pm, mu, np.full(k, np.nan))
    x, P_combined = prediction.combined()
    zhat, H = measure(x, sensor_en, dim, is_polar)
    nu = residual(z, zhat, is_polar)
    S_inv, _ = inverse_and_logdet(H @ P_combined @ np.swapaxes(H, 1, 2) + R)
    nis = np.einsum("pd,pd->p", nu, (S_inv @ nu[:, :, None])[:, :, 0])
    return ImmUpdate(xm, Pm, mu, nis)
