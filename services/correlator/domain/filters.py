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

from services.correlator.domain.motion import ImmModel, process_noise, transition

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
    x = np.einsum("km,kmd->kd", weights, xm)
    spread = xm - x[:, None, :]
    P = np.einsum("km,kmde->kde", weights, Pm + spread[..., :, None] * spread[..., None, :])
    return x, P


def imm_predict(xm: Array, Pm: Array, mu: Array, dt_s: Array, model: ImmModel) -> ImmPrediction:
    """IMM mixing then per-model constant-velocity prediction over ``dt_s`` (k,) seconds."""
    dt = np.maximum(np.asarray(dt_s, dtype=np.float64), 0.0)
    pi = model.switching(dt)
    c = np.einsum("kij,ki->kj", pi, mu)
    c = np.maximum(c, 1e-12)
    mixing = pi * mu[:, :, None] / c[:, None, :]  # mu_{i|j}
    x0 = np.einsum("kij,kid->kjd", mixing, xm)
    spread = xm[:, :, None, :] - x0[:, None, :, :]  # (k, i, j, 4)
    P0 = np.einsum("kij,kijde->kjde", mixing, Pm[:, :, None] + spread[..., :, None] * spread[..., None, :])
    F = transition(dt)
    x_pred = np.einsum("kde,kje->kjd", F, x0)
    P_pred = np.einsum("kde,kjef,kgf->kjdg", F, P0, F)
    for j, q in enumerate(model.q):
        P_pred[:, j] += process_noise(dt, q)
    return ImmPrediction(x_pred, P_pred, c / c.sum(axis=1, keepdims=True))


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
    return x[:, :2].copy(), np.broadcast_to(_POSITION, (x.shape[0], 2, 4)).copy()


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
    """h(x) and H for the measurement kind at hand."""
    if is_polar:
        if sensor_en is None:
            raise ValueError("a polar measurement needs the sensor's position")
        return polar(x, sensor_en, with_velocity=dim == 3)
    return linear_position(x)


@dataclass(frozen=True)
class ImmUpdate:
    """Posterior of an IMM update and its diagnostics."""

    xm: Array
    Pm: Array
    mu: Array
    nis: Array
    """Normalised innovation squared of the combined prediction, (k,)."""


def imm_update(
    prediction: ImmPrediction,
    z: Array,
    R: Array,
    sensor_en: Array | None,
    is_polar: bool,
) -> ImmUpdate:
    """Extended Kalman update of every model with one measurement per track.

    ``z`` (k, d), ``R`` (k, d, d). Per model j: nu = z - h(x_j), S = H P H^T + R,
    K = P H^T S^-1, x += K nu, P = (I - K H) P (I - K H)^T + K R K^T; model likelihood
    N(nu; 0, S) updates the model probabilities: mu_j ∝ c_j N_j.
    """
    k, m = prediction.c.shape
    dim = z.shape[1]
    xm = prediction.xm.copy()
    Pm = prediction.Pm.copy()
    log_likelihood = np.empty((k, m))
    eye = np.eye(4)
    for j in range(m):
        zhat, H = measure(prediction.xm[:, j], sensor_en, dim, is_polar)
        nu = residual(z, zhat, is_polar)
        P = prediction.Pm[:, j]
        PHt = np.einsum("kde,kfe->kdf", P, H)
        S = np.einsum("kde,kef->kdf", H, PHt) + R
        S_inv = np.linalg.inv(S)
        K = np.einsum("kde,kef->kdf", PHt, S_inv)
        xm[:, j] = prediction.xm[:, j] + np.einsum("kde,ke->kd", K, nu)
        A = eye - np.einsum("kde,kef->kdf", K, H)
        Pm[:, j] = np.einsum("kde,kef,kgf->kdg", A, P, A) + np.einsum("kde,kef,kgf->kdg", K, R, K)
        mahalanobis = np.einsum("kd,kde,ke->k", nu, S_inv, nu)
        _, logdet = np.linalg.slogdet(S)
        log_likelihood[:, j] = -0.5 * (mahalanobis + logdet + dim * np.log(2.0 * np.pi))
    weights = np.log(prediction.c) + log_likelihood
    weights -= weights.max(axis=1, keepdims=True)
    mu = np.exp(weights)
    mu /= mu.sum(axis=1, keepdims=True)
    mu = np.maximum(mu, 1e-9)
    mu /= mu.sum(axis=1, keepdims=True)
    x, P = prediction.combined()
    zhat, H = measure(x, sensor_en, dim, is_polar)
    nu = residual(z, zhat, is_polar)
    S = np.einsum("kde,kef,kgf->kdg", H, P, H) + R
    nis = np.einsum("kd,kde,ke->k", nu, np.linalg.inv(S), nu)
    return ImmUpdate(xm, Pm, mu, nis)
