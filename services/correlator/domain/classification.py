"""Bayesian class fusion across sensors.

A track carries a probability vector over the classes. A detection reporting class ``c`` with
confidence ``q`` from a sensor of reliability ``w`` (how far its confidences can be taken at
face value) contributes the likelihood

    q' = 1/K + w (q - 1/K)         (shrunk towards "no information")
    L(k) = q' if k == c else (1 - q') / (K - 1)

and ``p ∝ p · L``; a floor ``p = (1 - eps) p + eps / K`` keeps the track able to change its
mind. A report of "unknown" carries no class information. Kinematics add soft evidence: a
track faster than a person or an animal can move, or flying, is unlikely to be either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from schemas.common import TargetClass

Array = NDArray[np.float64]

CLASSES: tuple[str, ...] = tuple(c.value for c in TargetClass)
"""Order of the probability vector: person, vehicle, aircraft, vessel, animal, unknown."""
INDEX = {name: i for i, name in enumerate(CLASSES)}
K = len(CLASSES)


@dataclass(frozen=True)
class ClassFusion:
    """Parameters of the fusion."""

    reliability: dict[str, float] = field(default_factory=lambda: {"radar": 0.6, "drone": 0.9, "ground": 0.5})
    """How much each sensor type's confidence is believed (0: ignored, 1: taken as is)."""
    prior: tuple[float, ...] = (0.35, 0.25, 0.03, 0.01, 0.2, 0.16)
    floor: float = 0.01
    max_person_speed_mps: float = 4.0
    max_animal_speed_mps: float = 12.0

    def initial(self) -> Array:
        p = np.asarray(self.prior, dtype=np.float64)
        return np.asarray(p / p.sum(), dtype=np.float64)

    def likelihood(
        self, sensor_type: str, target_class: str | None, confidence: float | None
    ) -> Array | None:
        """L(k) for one report, or None when the report says nothing about the class."""
        reported = self._reported(sensor_type, target_class, confidence)
        if reported is None:
            return None
        index, q = reported
        out = np.full(K, (1.0 - q) / (K - 1))
        out[index] = q
        return out

    def likelihood_rows(
        self, reports: Sequence[tuple[str, str | None, float | None]]
    ) -> tuple[list[int], Array]:
        """:meth:`likelihood` of many reports ``(sensor_type, target_class, confidence)`` at once:
        the positions of those that say something about the class, and their L (n, K)."""
        informative, classes, shrunk = [], [], []
        for i, (sensor_type, target_class, confidence) in enumerate(reports):
            reported = self._reported(sensor_type, target_class, confidence)
            if reported is not None:
                informative.append(i)
                classes.append(reported[0])
                shrunk.append(reported[1])
        q = np.array(shrunk, dtype=np.float64)
        out = np.repeat(((1.0 - q) / (K - 1))[:, None], K, axis=1)
        out[np.arange(len(q)), classes] = q
        return informative, out

    def _reported(
        self, sensor_type: str, target_class: str | None, confidence: float | None
    ) -> tuple[int, float] | None:
        """The reported class's index and its shrunk confidence ``q'``; None: no information."""
        if target_class is None or target_class == TargetClass.UNKNOWN.value or confidence is None:
            return None
        weight = self.reliability.get(sensor_type, 0.5)
        q = 1.0 / K + weight * (min(max(confidence, 0.0), 1.0) - 1.0 / K)
        return INDEX[target_class], min(max(q, 1.0 / K), 0.999)

    def update(self, p: Array, likelihood: Array | None) -> Array:
        """Bayes' rule with the floor."""
        if likelihood is None:
            return p
        posterior = p * likelihood
        posterior /= posterior.sum()
        return (1.0 - self.floor) * posterior + self.floor / K

    def kinematics(
        self, p: Array, speed_mps: float, speed_sigma_mps: float, alt_agl_m: float | None
    ) -> Array:
        """Soft evidence from a well-estimated speed (and altitude when known)."""
        likelihood = np.ones(K)
        if speed_sigma_mps < 2.0:
            if speed_mps - 2 * speed_sigma_mps > self.max_person_speed_mps:
                likelihood[INDEX["person"]] = 0.3
            if speed_mps - 2 * speed_sigma_mps > self.max_animal_speed_mps:
                likelihood[INDEX["animal"]] = 0.3
        if alt_agl_m is not None and alt_agl_m > 30.0:
            likelihood *= 0.3
            likelihood[INDEX["aircraft"]] = 1.0
        if np.all(likelihood == 1.0):
            return p
        return self.update(p, likelihood)

    def update_rows(self, p: Array, likelihood: Array) -> Array:
        """:meth:`update` of each row of ``p`` (n, K) with the same row of ``likelihood`` (n, K)."""
        posterior = p * likelihood
        posterior /= posterior.sum(axis=1, keepdims=True)
        return np.asarray((1.0 - self.floor) * posterior + self.floor / K, dtype=np.float64)

    def kinematics_rows(self, p: Array, speed_mps: Array, speed_sigma_mps: Array) -> Array:
        """:meth:`kinematics` of each row of ``p`` (n, K) without altitude; rows without evidence
        come back unchanged."""
        certain = speed_sigma_mps < 2.0
        slowest = speed_mps - 2 * speed_sigma_mps
        not_person = certain & (slowest > self.max_person_speed_mps)
        not_animal = certain & (slowest > self.max_animal_speed_mps)
        rows = np.flatnonzero(not_person | not_animal)
        if len(rows) == 0:
            return p
        likelihood = np.ones((len(rows), K))
        likelihood[not_person[rows], INDEX["person"]] = 0.3
        likelihood[not_animal[rows], INDEX["animal"]] = 0.3
        out = p.copy()
        out[rows] = self.update_rows(p[rows], likelihood)
        return out


def best(p: Array) -> tuple[str, float]:
    """The most probable class and its probability."""
    index = int(np.argmax(p))
    return CLASSES[index], float(p[index])
