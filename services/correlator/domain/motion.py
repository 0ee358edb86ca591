"""Motion models: constant velocity with white-noise acceleration, combined in an IMM.

State ``x = [east_m, north_m, velocity_east_mps, velocity_north_mps]``. For a step of ``dt``::

    F = [[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]]
    Q = q [[dt³/3, 0, dt²/2, 0], [0, dt³/3, 0, dt²/2], [dt²/2, 0, dt, 0], [0, dt²/2, 0, dt]]

with ``q`` the acceleration noise spectral density (m²/s³). The interacting multiple model
(IMM) runs a quiet model (steady walking or driving) beside a manoeuvre model (large ``q``:
turns, stops, starts) and mixes them by their probabilities; switching follows a continuous-time
Markov chain, ``P(stay in i over dt) = exp(-dt / mean_sojourn_s[i])``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

STATE_DIM = 4


def transition(dt_s: Array) -> Array:
    """F for each step in ``dt_s`` (shape (k,)): (k, 4, 4)."""
    dt = np.asarray(dt_s, dtype=np.float64)
    f = np.zeros((dt.shape[0], 4, 4))
    f[:, 0, 0] = f[:, 1, 1] = f[:, 2, 2] = f[:, 3, 3] = 1.0
    f[:, 0, 2] = f[:, 1, 3] = dt
    return f


def process_noise(dt_s: Array, q: float) -> Array:
    """Q for each step in ``dt_s`` with spectral density ``q`` (m²/s³): (k, 4, 4)."""
    dt = np.asarray(dt_s, dtype=np.float64)
    out = np.zeros((dt.shape[0], 4, 4))
    a, b, c = q * dt**3 / 3.0, q * dt**2 / 2.0, q * dt
    out[:, 0, 0] = out[:, 1, 1] = a
    out[:, 0, 2] = out[:, 2, 0] = out[:, 1, 3] = out[:, 3, 1] = b
    out[:, 2, 2] = out[:, 3, 3] = c
    return out


@dataclass(frozen=True)
class ImmModel:
    """The IMM's models and their switching."""

    q: tuple[float, ...] = (0.05, 24.0)
    """Acceleration noise of each model, m²/s³ (quiet, manoeuvring; the defaults of the
    configuration's ``tracking.quiet_q`` and ``tracking.manoeuvre_q``)."""
    mean_sojourn_s: tuple[float, ...] = (60.0, 10.0)
    """Mean time spent in each model before switching, s."""
    initial_probability: tuple[float, ...] = (0.5, 0.5)

    @property
    def count(self) -> int:
        return len(self.q)

    def switching(self, dt_s: Array) -> Array:
        """Markov transition matrices Pi[k, i, j] = P(model j after dt | model i), (k, m, m)."""
        dt = np.asarray(dt_s, dtype=np.float64)[:, None]
        stay = np.exp(-dt / np.asarray(self.mean_sojourn_s)[None, :])
        m = self.count
        pi = np.empty((dt.shape[0], m, m))
        leave = (1.0 - stay) / max(1, m - 1)
        pi[:] = leave[:, :, None]
        idx = np.arange(m)
        pi[:, idx, idx] = stay
        return pi
