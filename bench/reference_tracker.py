"""A Stone Soup GNN tracker run on Lindero's detections: the accuracy benchmark's reference.

Benchmark-only: needs the ``stonesoup`` package (the ``bench`` extra). The tracker is assembled
from stock Stone Soup components, driven by a plain loop that does what
``stonesoup.tracker.simple.MultiTargetTracker.__next__`` does for each scan:

- state ``[east_m, east_mps, north_m, north_mps]``, constant-velocity motion
  (``CombinedLinearGaussianTransitionModel`` of two ``ConstantVelocity``): per axis, over
  ``dt`` s, ``F = [[1, dt], [0, 1]]`` and ``Q = q [[dt^3/3, dt^2/2], [dt^2/2, dt]]``, q in m^2/s^3;
- radar polar detections: ``CartesianToBearingRange`` (or ``CartesianToBearingRangeRate2D`` when
  the radial velocity is present) with the radar site as ``translation_offset``; Stone Soup's
  bearing is ``phi = atan2(n - n_s, e - e_s)`` (from east, counter-clockwise) where Lindero's is
  ``b = atan2(e - e_s, n - n_s)`` (from north, clockwise): ``phi = pi/2 - b`` (wrapped to
  [-pi, pi)) and the measurement order is (phi, range(, radial velocity));
- point and presence detections: ``LinearGaussian`` on (east, north) with the detection's
  own covariance;
- ``ExtendedKalmanUpdater``; ``DistanceHypothesiser`` with the Mahalanobis distance and a
  missed-detection distance ``sqrt(chi2_2^-1(P_gate))`` as the gate; ``GNNWith2DAssignment``;
- ``MultiMeasurementInitiator`` (a tentative track is confirmed after ``min_points`` updates,
  dropped after ``tentative_coast_s`` without one) and ``UpdateTimeDeleter`` for confirmed
  tracks (deleted after ``coast_s`` without an update).

Detections are fed in time order in scans: runs of consecutive detections of one sensor within
``scan_window_s`` of the run's first detection, never straddling an evaluation time, so that no
track is ever predicted backwards.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.stats import chi2
from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
from stonesoup.deleter.time import UpdateTimeDeleter
from stonesoup.hypothesiser.distance import DistanceHypothesiser
from stonesoup.initiator.simple import MultiMeasurementInitiator
from stonesoup.measures import Mahalanobis
from stonesoup.models.base import ReversibleModel
from stonesoup.models.measurement.linear import LinearGaussian
from stonesoup.models.measurement.nonlinear import CartesianToBearingRange, CartesianToBearingRangeRate2D
from stonesoup.models.transition.linear import CombinedLinearGaussianTransitionModel, ConstantVelocity
from stonesoup.predictor.kalman import KalmanPredictor
from stonesoup.types.angle import Bearing
from stonesoup.types.array import StateVector
from stonesoup.types.detection import Detection as StoneSoupDetection
from stonesoup.types.state import GaussianState
from stonesoup.types.track import Track
from stonesoup.updater.kalman import ExtendedKalmanUpdater

from services.correlator.domain.detections import Detection, MeasurementKind

Array = NDArray[np.float64]
TrackPoint = tuple[str, float, float]
"""(track id, east_m, north_m)."""

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
POSITION = (0, 2)
VELOCITY = (1, 3)


@dataclass(frozen=True, slots=True)
class ReferenceConfig:
    """Tuning of the reference tracker (units in the names)."""

    q_m2_s3: float = 0.2
    """Process noise spectral density of each axis' white-noise acceleration, m^2/s^3."""
    gate_probability: float = 0.999
    """Probability mass of a 2-dof chi-square inside the gate; sets the missed distance."""
    min_points: int = 3
    """Updates (including the first detection) that confirm a tentative track."""
    tentative_coast_s: float = 5.0
    """A tentative track without an update for this long is dropped, s."""
    coast_s: float = 10.0
    """A confirmed track without an update for this long is deleted, s."""
    initial_speed_sigma_mps: float = 10.0
    """Prior sigma of each velocity component of a new track, m/s."""
    scan_window_s: float = 0.5
    """Detections of one sensor within this of the scan's first one form one scan, s."""
    use_radial_velocity: bool = True
    """Use a radar's radial velocity (``CartesianToBearingRangeRate2D``) when it is given."""


class ReferenceRun(NamedTuple):
    """Tracks per evaluation time and the wall time spent building and running Stone Soup."""

    tracks: list[list[TrackPoint]]
    """Per evaluation time, (track id, east_m, north_m) of each confirmed track, predicted to it."""
    stonesoup_s: float
    """Seconds from the first conversion to the last output (grouping excluded)."""


def polar_to_stonesoup(z: Array, covariance: Array) -> tuple[Array, Array]:
    """Lindero's ``[range_m, bearing_rad(, radial_mps)]`` and R in Stone Soup's order and convention.

    ``z' = [wrap(pi/2 - b), r(, rdot)]`` and ``R' = T R T^T`` with ``T = [[0, -1], [1, 0]]`` (plus a 1
    for the radial velocity): bearing from north clockwise becomes the angle from east
    counter-clockwise, in radians, wrapped to [-pi, pi).
    """
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    transform = np.zeros((n, n))
    transform[0, 1], transform[1, 0] = -1.0, 1.0
    if n == 3:
        transform[2, 2] = 1.0
    converted = transform @ z
    converted[0] = (math.pi / 2 - z[1] + math.pi) % (2 * math.pi) - math.pi
    return converted, transform @ np.asarray(covariance, dtype=np.float64) @ transform.T


class BearingRangeRate2D(CartesianToBearingRangeRate2D, ReversibleModel):  # type: ignore[misc]
    """``CartesianToBearingRangeRate2D`` with an inverse, so that its detections can start tracks.

    Inverse: position ``p = s + r [cos phi, sin phi]`` and velocity ``rdot [cos phi, sin phi]``
    (the line-of-sight component; the cross component is left to the prior). At that point the
    Jacobian's range-rate row is ``[0, cos phi, 0, sin phi]``, so the initiator's ``pinv(H) R pinv(H)^T``
    adds ``sigma_rdot^2`` along the line of sight to the prior velocity covariance.
    """

    def inverse_function(self, detection: Any, **kwargs: Any) -> Any:
        phi, rho, rdot = (float(v) for v in np.asarray(detection.state_vector, dtype=np.float64).ravel())
        unit = np.array([math.cos(phi), math.sin(phi)])
        state = np.zeros((self.ndim_state, 1))
        offset = np.asarray(self.translation_offset, dtype=np.float64).ravel()
        state[list(self.mapping), 0] = offset[:2] + rho * unit
        state[list(self.velocity_mapping), 0] = rdot * unit
        return StateVector(state)


def group_scans(
    detections: Sequence[Detection], window_s: float, breaks_s: Sequence[float] = ()
) -> list[list[Detection]]:
    """Time-ordered scans: runs of one sensor's consecutive detections within ``window_s`` of the first.

    A scan never contains detections on both sides of a break time (t <= break < t').
    """
    ordered = sorted(detections, key=lambda d: d.time_s)
    breaks = np.sort(np.asarray(breaks_s, dtype=np.float64))
    scans: list[list[Detection]] = []
    for detection in ordered:
        if scans:
            first, last = scans[-1][0], scans[-1][-1]
            same_period = np.searchsorted(breaks, last.time_s, "left") == np.searchsorted(
                breaks, detection.time_s, "left"
            )
            if (
                detection.sensor_id == first.sensor_id
                and detection.time_s - first.time_s <= window_s
                and same_period
            ):
                scans[-1].append(detection)
                continue
        scans.append([detection])
    return scans


def _timestamp(time_s: float) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=time_s)


class _Converter:
    """Lindero detections to Stone Soup detections, sharing one measurement model per sensor and R."""

    def __init__(self, use_radial_velocity: bool) -> None:
        self._use_radial_velocity = use_radial_velocity
        self._models: dict[tuple[Any, ...], Any] = {}

    def __call__(self, detection: Detection) -> StoneSoupDetection:
        when = _timestamp(detection.time_s)
        z = np.asarray(detection.z, dtype=np.float64)
        covariance = np.asarray(detection.covariance, dtype=np.float64)
        if detection.kind is MeasurementKind.POLAR:
            if detection.sensor_en is None:
                raise ValueError(f"polar detection {detection.event_id} has no radar site")
            if not self._use_radial_velocity:
                z, covariance = z[:2], covariance[:2, :2]
            zs, rs = polar_to_stonesoup(z, covariance)
            model = self._model(
                ("polar", detection.sensor_en, len(zs), rs.tobytes()), detection.sensor_en, rs
            )
            vector = StateVector([Bearing(zs[0]), *zs[1:]])
        else:
            model = self._model(("point", covariance.tobytes()), None, covariance)
            vector = StateVector(z[:2])
        return StoneSoupDetection(vector, timestamp=when, measurement_model=model)

    def _model(self, key: tuple[Any, ...], site: tuple[float, float] | None, covariance: Array) -> Any:
        model = self._models.get(key)
        if model is not None:
            return model
        if site is None:
            model = LinearGaussian(ndim_state=4, mapping=POSITION, noise_covar=covariance)
        elif len(covariance) == 3:
            model = BearingRangeRate2D(
                ndim_state=4,
                mapping=POSITION,
                velocity_mapping=VELOCITY,
                noise_covar=covariance,
                translation_offset=StateVector(list(site)),
            )
        else:
            model = CartesianToBearingRange(
                ndim_state=4,
                mapping=POSITION,
                noise_covar=covariance,
                translation_offset=StateVector(list(site)),
            )
        self._models[key] = model
        return model


@dataclass
class _Components:
    predictor: Any
    updater: Any
    associator: Any
    initiator: Any
    deleter: Any


def build_components(config: ReferenceConfig) -> _Components:
    """The Stone Soup predictor, updater, GNN associator, initiator and deleter of the reference."""
    transition = CombinedLinearGaussianTransitionModel(
        [ConstantVelocity(config.q_m2_s3), ConstantVelocity(config.q_m2_s3)]
    )
    predictor = KalmanPredictor(transition)
    updater = ExtendedKalmanUpdater(measurement_model=None)
    gate = math.sqrt(float(chi2.ppf(config.gate_probability, df=2)))

    def associator() -> Any:
        return GNNWith2DAssignment(
            DistanceHypothesiser(predictor, updater, measure=Mahalanobis(), missed_distance=gate)
        )

    speed_var = config.initial_speed_sigma_mps**2
    prior = GaussianState(StateVector([0.0, 0.0, 0.0, 0.0]), np.diag([0.0, speed_var, 0.0, speed_var]))
    initiator = MultiMeasurementInitiator(
        prior_state=prior,
        deleter=UpdateTimeDeleter(dt.timedelta(seconds=config.tentative_coast_s)),
        data_associator=associator(),
        updater=updater,
        min_points=config.min_points,
    )
    return _Components(
        predictor=predictor,
        updater=updater,
        associator=associator(),
        initiator=initiator,
        deleter=UpdateTimeDeleter(dt.timedelta(seconds=config.coast_s)),
    )


def run_stonesoup(
    detections: Sequence[Detection],
    evaluation_times: Sequence[float],
    config: ReferenceConfig | None = None,
) -> ReferenceRun:
    """Track ``detections`` with the Stone Soup GNN reference; report confirmed tracks at each time.

    ``evaluation_times`` are POSIX seconds (sorted on entry); the result lists, in that sorted
    order, each confirmed track's position predicted to the evaluation time,
    ``x(t_e) = F(t_e - t_k) x_k``, after every detection at or before ``t_e`` was processed.
    """
    config = config or ReferenceConfig()
    times = sorted(float(t) for t in evaluation_times)
    scans = group_scans(detections, config.scan_window_s, times)
    started = time.perf_counter()
    parts = build_components(config)
    convert = _Converter(config.use_radial_velocity)
    tracks: set[Track] = set()
    outputs: list[list[TrackPoint]] = []
    next_scan = 0
    for evaluation_time in times:
        while next_scan < len(scans) and scans[next_scan][-1].time_s <= evaluation_time:
            _process(parts, tracks, {convert(d) for d in scans[next_scan]}, scans[next_scan][-1].time_s)
            next_scan += 1
        outputs.append(_report(parts, tracks, evaluation_time))
    return ReferenceRun(outputs, time.perf_counter() - started)


def _process(parts: _Components, tracks: set[Track], detections: set[Any], time_s: float) -> None:
    """One scan, as MultiTargetTracker does: associate, update or coast, delete, initiate."""
    when = _timestamp(time_s)
    associations = parts.associator.associate(tracks, detections, when)
    used = set()
    for track, hypothesis in associations.items():
        if hypothesis:
            track.append(parts.updater.update(hypothesis))
            used.add(hypothesis.measurement)
        else:
            track.append(hypothesis.prediction)
    tracks -= parts.deleter.delete_tracks(tracks)
    tracks |= parts.initiator.initiate(detections - used, when)


def _report(parts: _Components, tracks: set[Track], time_s: float) -> list[TrackPoint]:
    when = _timestamp(time_s)
    points: list[TrackPoint] = []
    for track in sorted(tracks, key=lambda t: str(t.id)):
        state = track.state
        if state.timestamp < when:
            state = parts.predictor.predict(state, timestamp=when)
        vector = np.asarray(state.state_vector, dtype=np.float64).ravel()
        points.append((str(track.id), float(vector[POSITION[0]]), float(vector[POSITION[1]])))
    return points
