"""The Stone Soup reference tracker of bench/reference_tracker.py on small synthetic scenarios."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from services.correlator.domain.detections import Detection, MeasurementKind

pytest.importorskip("stonesoup")

from bench.reference_tracker import (
    BearingRangeRate2D,
    ReferenceConfig,
    group_scans,
    polar_to_stonesoup,
    run_stonesoup,
)

Array = NDArray[np.float64]
SITE = (1_000.0, -2_000.0)
RANGE_SIGMA_M = 10.0
BEARING_SIGMA_RAD = math.radians(0.4)
RADIAL_SIGMA_MPS = 0.5
POINT_SIGMA_M = 8.0
SCAN_PERIOD_S = 2.0
T0 = 1_700_000_000.0


def _polar(
    time_s: float, position: Array, velocity: Array, rng: np.random.Generator, *, radial: bool, name: str
) -> Detection:
    de, dn = position[0] - SITE[0], position[1] - SITE[1]
    range_m = math.hypot(de, dn)
    z = [range_m + rng.normal(0, RANGE_SIGMA_M), math.atan2(de, dn) + rng.normal(0, BEARING_SIGMA_RAD)]
    sigmas = [RANGE_SIGMA_M, BEARING_SIGMA_RAD]
    if radial:
        z.append((de * velocity[0] + dn * velocity[1]) / range_m + rng.normal(0, RADIAL_SIGMA_MPS))
        sigmas.append(RADIAL_SIGMA_MPS)
    return Detection(
        event_id=name,
        time_s=time_s,
        region="test",
        sensor_id="radar-1",
        sensor_type="radar",
        owner=("XX", "agency"),
        kind=MeasurementKind.POLAR,
        z=np.array(z),
        covariance=np.diag(np.square(sigmas)),
        sensor_en=SITE,
    )


def _point(time_s: float, position: Array, rng: np.random.Generator, name: str) -> Detection:
    return Detection(
        event_id=name,
        time_s=time_s,
        region="test",
        sensor_id="drone-1",
        sensor_type="drone",
        owner=("XX", "agency"),
        kind=MeasurementKind.POINT,
        z=position + rng.normal(0, POINT_SIGMA_M, 2),
        covariance=np.diag([POINT_SIGMA_M**2] * 2),
    )


Scenario = tuple[list[Detection], Callable[[float], dict[str, Array]]]


def _scenario(*, radial: bool, seed: int = 1, duration_s: float = 60.0) -> Scenario:
    """Two straight-line targets seen by one radar every 2 s, the first also by a drone every 6 s."""
    starts = {"a": np.array([3_000.0, 0.0]), "b": np.array([-500.0, 1_500.0])}
    velocities = {"a": np.array([-4.0, 6.0]), "b": np.array([8.0, 0.0])}

    def truth(t: float) -> dict[str, Array]:
        return {name: starts[name] + velocities[name] * (t - T0) for name in starts}

    rng = np.random.default_rng(seed)
    detections: list[Detection] = []
    for k, offset in enumerate(np.arange(0.0, duration_s + 1e-9, SCAN_PERIOD_S)):
        for j, name in enumerate(starts):
            t = T0 + offset + 0.05 * j
            detections.append(
                _polar(t, truth(t)[name], velocities[name], rng, radial=radial, name=f"r{k}{name}")
            )
        if k % 3 == 1:
            t = T0 + offset + 1.0
            detections.append(_point(t, truth(t)["a"], rng, f"p{k}"))
    return detections, truth


def test_bearing_convention_maps_north_clockwise_to_east_counter_clockwise() -> None:
    """Lindero's bearing 0 (north) is Stone Soup's pi/2; pi/2 (east) is 0; 3pi/2 (west) is pi."""
    for bearing, expected in [(0.0, math.pi / 2), (math.pi / 2, 0.0), (math.pi, -math.pi / 2)]:
        converted, _ = polar_to_stonesoup(np.array([100.0, bearing]), np.eye(2))
        assert converted[0] == pytest.approx(expected)
        assert converted[1] == 100.0
    west, _ = polar_to_stonesoup(np.array([100.0, 1.5 * math.pi]), np.eye(2))
    assert abs(west[0]) == pytest.approx(math.pi)


def test_covariance_is_reordered_to_bearing_range() -> None:
    """R in (range, bearing, radial) order becomes (bearing, range, radial), correlation sign flipped."""
    covariance = np.array([[100.0, 0.05, 1.0], [0.05, 1e-4, 0.0], [1.0, 0.0, 0.25]])
    _, converted = polar_to_stonesoup(np.array([100.0, 0.3, 2.0]), covariance)
    expected = np.array([[1e-4, -0.05, 0.0], [-0.05, 100.0, 1.0], [0.0, 1.0, 0.25]])
    np.testing.assert_allclose(converted, expected)


def test_stone_soup_model_reproduces_lindero_measurement() -> None:
    """Stone Soup's h(x) equals the converted Lindero h(x); the inverse gives position and radial velocity."""
    from stonesoup.types.array import StateVector
    from stonesoup.types.state import State

    position, velocity = np.array([1_300.0, -1_600.0]), np.array([3.0, -2.0])
    de, dn = position[0] - SITE[0], position[1] - SITE[1]
    range_m = math.hypot(de, dn)
    z = np.array([range_m, math.atan2(de, dn), (de * velocity[0] + dn * velocity[1]) / range_m])
    converted, covariance = polar_to_stonesoup(
        z, np.diag([RANGE_SIGMA_M, BEARING_SIGMA_RAD, RADIAL_SIGMA_MPS]) ** 2
    )
    model = BearingRangeRate2D(
        ndim_state=4, mapping=(0, 2), velocity_mapping=(1, 3), noise_covar=covariance,
        translation_offset=StateVector(list(SITE)),
    )  # fmt: skip
    state = State(StateVector([position[0], velocity[0], position[1], velocity[1]]))
    predicted = np.asarray(model.function(state), dtype=np.float64).ravel()
    np.testing.assert_allclose(predicted, converted, atol=1e-9)
    inverse = np.asarray(model.inverse_function(State(StateVector(converted))), dtype=np.float64).ravel()
    np.testing.assert_allclose(inverse[[0, 2]], position, atol=1e-6)
    line_of_sight = np.array([de, dn]) / range_m
    np.testing.assert_allclose(inverse[[1, 3]], z[2] * line_of_sight, atol=1e-9)


def test_scans_group_one_sensor_within_window_and_split_at_evaluation_times() -> None:
    """Consecutive detections of one sensor within 0.5 s form a scan; sensors and breaks split scans."""
    rng = np.random.default_rng(0)
    here, still = np.array([1_500.0, 0.0]), np.zeros(2)
    detections = [
        _polar(0.0, here, still, rng, radial=False, name="a"),
        _polar(0.3, here, still, rng, radial=False, name="b"),
        _polar(0.6, here, still, rng, radial=False, name="c"),
        _point(0.7, here, rng, "d"),
        _polar(2.0, here, still, rng, radial=False, name="e"),
        _polar(2.2, here, still, rng, radial=False, name="f"),
    ]
    scans = group_scans(list(reversed(detections)), window_s=0.5, breaks_s=[2.1])
    assert [[d.event_id for d in scan] for scan in scans] == [["a", "b"], ["c"], ["d"], ["e"], ["f"]]


@pytest.mark.parametrize("radial", [False, True], ids=["range-bearing", "with-radial-velocity"])
def test_two_targets_give_two_confirmed_tracks_near_the_truth(radial: bool) -> None:
    """Two straight-line targets end as exactly two confirmed tracks within a few sigma of the truth."""
    detections, truth = _scenario(radial=radial)
    end = T0 + 61.0
    run = run_stonesoup(detections, [T0 + 10.0, end])
    final = run.tracks[-1]
    assert len(final) == 2, final
    truth_end = truth(end)
    for name, position in truth_end.items():
        distances = [math.hypot(e - position[0], n - position[1]) for _, e, n in final]
        cross_range_sigma = math.hypot(*(position - np.array(SITE))) * BEARING_SIGMA_RAD
        assert min(distances) < 3 * math.hypot(cross_range_sigma, RANGE_SIGMA_M), (name, distances)
    assert len({track_id for track_id, _, _ in final}) == 2
    assert run.stonesoup_s > 0.0


def test_target_due_east_of_the_radar_comes_out_east() -> None:
    """A target at bearing pi/2 from the radar is tracked east of the site, not north of it."""
    rng = np.random.default_rng(3)
    position, velocity = np.array([SITE[0] + 2_000.0, SITE[1]]), np.array([0.0, 1.0])
    detections = [
        _polar(T0 + 2.0 * k, position + velocity * 2.0 * k, velocity, rng, radial=False, name=f"e{k}")
        for k in range(8)
    ]
    run = run_stonesoup(detections, [T0 + 14.0], ReferenceConfig(min_points=3))
    (track,) = run.tracks[0]
    _, east, north = track
    assert east - SITE[0] == pytest.approx(2_000.0, abs=50.0)
    assert north - SITE[1] == pytest.approx(14.0, abs=60.0)


def test_no_detections_no_tracks() -> None:
    """Without detections every evaluation time has an empty track list."""
    run = run_stonesoup([], [T0, T0 + 1.0])
    assert run.tracks == [[], []]
