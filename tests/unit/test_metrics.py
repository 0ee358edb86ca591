"""GOSPA, OSPA and the run statistics of bench/metrics.py."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from bench.metrics import gospa, ospa, run_statistics

Array = NDArray[np.float64]

coordinate = st.floats(min_value=-200.0, max_value=200.0, allow_nan=False, allow_infinity=False)
point_sets = st.lists(st.tuples(coordinate, coordinate), max_size=5).map(
    lambda points: np.array(points, dtype=np.float64).reshape(-1, 2)
)
cutoffs = st.floats(min_value=1.0, max_value=150.0)
orders = st.sampled_from([1.0, 2.0, 3.0])


def _brute_force(truth: Array, estimates: Array, c: float, p: float, alpha: float) -> float:
    """GOSPA by enumerating every injective map of the smaller set into the larger one."""
    small, large = (truth, estimates) if len(truth) <= len(estimates) else (estimates, truth)
    m, n = len(small), len(large)
    best = math.inf
    for image in itertools.permutations(range(n), m):
        cost = sum(min(float(np.linalg.norm(small[i] - large[j])), c) ** p for i, j in enumerate(image))
        best = min(best, cost)
    return float((best + c**p / alpha * (n - m)) ** (1.0 / p))


def _brute_force_ospa(truth: Array, estimates: Array, c: float, p: float) -> float:
    """OSPA from the brute-force GOSPA with alpha = 1, normalised by the larger cardinality."""
    n = max(len(truth), len(estimates))
    return 0.0 if n == 0 else _brute_force(truth, estimates, c, p, 1.0) / n ** (1.0 / p)


def test_both_empty_is_zero() -> None:
    """Two empty sets are at distance 0 under both metrics."""
    result = gospa(np.zeros((0, 2)), np.zeros((0, 2)), c=10.0)
    assert (result.distance, result.localisation, result.missed, result.false) == (0.0, 0.0, 0.0, 0.0)
    assert result.assignments.shape == (0, 2)
    assert ospa([], [], c=10.0) == 0.0


def test_only_truth_is_all_missed() -> None:
    """With no estimates every truth costs c^p/2 as missed, and OSPA is c."""
    result = gospa([[0.0, 0.0], [5.0, 5.0]], [], c=10.0)
    assert result.missed == pytest.approx(2 * 100.0 / 2)
    assert (result.false, result.num_missed, result.num_false) == (0.0, 2, 0)
    assert result.distance == pytest.approx(10.0)
    assert ospa([[0.0, 0.0], [5.0, 5.0]], [], c=10.0) == 10.0


def test_only_estimates_are_all_false() -> None:
    """With no truth every estimate costs c^p/2 as false, and OSPA is c."""
    result = gospa([], [[1.0, 2.0]], c=4.0)
    assert result.false == pytest.approx(8.0)
    assert result.distance == pytest.approx(math.sqrt(8.0))
    assert ospa([], [[1.0, 2.0]], c=4.0) == 4.0


def test_one_to_one_localisation() -> None:
    """Two truths each with a close estimate: GOSPA^2 is the sum of squared errors, OSPA their mean."""
    truth = [[0.0, 0.0], [100.0, 0.0]]
    estimates = [[103.0, 4.0], [0.0, 1.0]]
    result = gospa(truth, estimates, c=20.0)
    assert result.localisation == pytest.approx(1.0 + 25.0)
    assert (result.missed, result.false) == (0.0, 0.0)
    assert result.distance == pytest.approx(math.sqrt(26.0))
    assert sorted(map(tuple, result.assignments.tolist())) == [(0, 1), (1, 0)]
    assert ospa(truth, estimates, c=20.0) == pytest.approx(math.sqrt(26.0 / 2))


def test_missed_and_false_counts() -> None:
    """One matched pair, one missed truth, two false estimates."""
    truth = [[0.0, 0.0], [500.0, 500.0]]
    estimates = [[0.0, 2.0], [-300.0, 0.0], [0.0, 300.0]]
    result = gospa(truth, estimates, c=10.0)
    assert (result.num_missed, result.num_false) == (1, 2)
    assert result.localisation == pytest.approx(4.0)
    assert result.missed == pytest.approx(50.0)
    assert result.false == pytest.approx(100.0)
    assert result.distance == pytest.approx(math.sqrt(154.0))
    assert ospa(truth, estimates, c=10.0) == pytest.approx(math.sqrt((4.0 + 100.0 + 100.0) / 3))


def test_pair_beyond_cutoff_is_a_miss_and_a_false_target() -> None:
    """A pair farther than c is unassigned: c^p/2 missed plus c^p/2 false, no localisation."""
    result = gospa([[0.0, 0.0]], [[30.0, 40.0]], c=10.0)
    assert result.localisation == 0.0
    assert (result.missed, result.false) == (50.0, 50.0)
    assert result.assignments.shape == (0, 2)
    assert result.distance == pytest.approx(10.0)
    assert ospa([[0.0, 0.0]], [[30.0, 40.0]], c=10.0) == pytest.approx(10.0)


def test_pair_exactly_at_cutoff_is_unassigned() -> None:
    """A distance equal to c counts as missed + false, as in Stone Soup."""
    result = gospa([[0.0, 0.0]], [[3.0, 4.0]], c=5.0)
    assert (result.num_missed, result.num_false, result.localisation) == (1, 1, 0.0)


def test_permutation_invariance() -> None:
    """Reordering either set changes neither distance."""
    rng = np.random.default_rng(7)
    truth, estimates = rng.uniform(0, 50, (5, 2)), rng.uniform(0, 50, (4, 2))
    reference = gospa(truth, estimates, c=15.0)
    for _ in range(5):
        shuffled_truth, shuffled_estimates = rng.permutation(truth), rng.permutation(estimates)
        assert gospa(shuffled_truth, shuffled_estimates, c=15.0).distance == pytest.approx(reference.distance)
        assert ospa(shuffled_truth, shuffled_estimates, c=15.0) == pytest.approx(
            ospa(truth, estimates, c=15.0)
        )


def test_assignment_is_optimal_not_greedy() -> None:
    """The nearest-neighbour pairing is not taken when the global one is cheaper."""
    truth = [[0.0, 0.0], [10.0, 0.0]]
    estimates = [[6.0, 0.0], [-4.0, 0.0]]
    result = gospa(truth, estimates, c=100.0)
    assert result.localisation == pytest.approx(16.0 + 16.0)
    assert sorted(map(tuple, result.assignments.tolist())) == [(0, 1), (1, 0)]


def test_alpha_one_is_ospa_times_cardinality() -> None:
    """GOSPA with alpha = 1 is OSPA scaled by max(|X|, |Y|)^(1/p)."""
    truth, estimates = [[0.0, 0.0], [9.0, 9.0], [40.0, 0.0]], [[1.0, 1.0]]
    assert gospa(truth, estimates, c=12.0, alpha=1.0).distance == pytest.approx(
        ospa(truth, estimates, c=12.0) * 3**0.5
    )


@pytest.mark.parametrize(
    ("c", "p", "alpha"), [(0.0, 2.0, 2.0), (5.0, 0.5, 2.0), (5.0, math.inf, 2.0), (5.0, 2.0, 3.0)]
)
def test_invalid_parameters_are_refused(c: float, p: float, alpha: float) -> None:
    """c must be positive, p in [1, inf), alpha in (0, 2]."""
    with pytest.raises(ValueError, match="must"):
        gospa([[0.0, 0.0]], [[1.0, 1.0]], c=c, p=p, alpha=alpha)


def test_mismatched_dimensions_are_refused() -> None:
    """Points of different dimensions cannot be compared."""
    with pytest.raises(ValueError, match="dimensions"):
        gospa([[0.0, 0.0]], [[1.0, 1.0, 1.0]], c=5.0)


@settings(max_examples=200, deadline=None)
@given(point_sets, point_sets, cutoffs, orders)
def test_ospa_symmetric_and_bounded(truth: Array, estimates: Array, c: float, p: float) -> None:
    """OSPA(X, Y) = OSPA(Y, X) and 0 <= OSPA <= c."""
    forward, backward = ospa(truth, estimates, c, p), ospa(estimates, truth, c, p)
    assert forward == pytest.approx(backward, rel=1e-9, abs=1e-9)
    assert 0.0 <= forward <= c


@settings(max_examples=200, deadline=None)
@given(point_sets, point_sets, cutoffs, orders)
def test_gospa_decomposition(truth: Array, estimates: Array, c: float, p: float) -> None:
    """GOSPA^p = localisation + (missed + false) c^p/2 for alpha = 2, and it is symmetric."""
    result = gospa(truth, estimates, c, p)
    assert result.distance**p == pytest.approx(
        result.localisation + (result.num_missed + result.num_false) * c**p / 2, rel=1e-9, abs=1e-9
    )
    assert result.missed == pytest.approx(result.num_missed * c**p / 2)
    assert result.false == pytest.approx(result.num_false * c**p / 2)
    assert result.num_missed == len(truth) - len(result.assignments)
    assert result.num_false == len(estimates) - len(result.assignments)
    assert gospa(estimates, truth, c, p).distance == pytest.approx(result.distance, rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(point_sets, point_sets, cutoffs, orders, st.sampled_from([1.0, 1.5, 2.0]))
def test_matches_brute_force(truth: Array, estimates: Array, c: float, p: float, alpha: float) -> None:
    """The assignment-based GOSPA and OSPA equal exhaustive minimisation over all permutations."""
    assert gospa(truth, estimates, c, p, alpha).distance == pytest.approx(
        _brute_force(truth, estimates, c, p, alpha), rel=1e-9, abs=1e-9
    )
    assert ospa(truth, estimates, c, p) == pytest.approx(
        _brute_force_ospa(truth, estimates, c, p), rel=1e-9, abs=1e-9
    )


@settings(max_examples=150, deadline=None)
@given(point_sets, point_sets, point_sets, cutoffs)
def test_triangle_inequality(x: Array, y: Array, z: Array, c: float) -> None:
    """Both are metrics: d(X, Z) <= d(X, Y) + d(Y, Z)."""
    assert ospa(x, z, c) <= ospa(x, y, c) + ospa(y, z, c) + 1e-9
    assert gospa(x, z, c).distance <= gospa(x, y, c).distance + gospa(y, z, c).distance + 1e-9


@pytest.fixture
def ospametric() -> Any:
    """Stone Soup's metric module, or skip when Stone Soup (bench extra) is not installed."""
    return pytest.importorskip("stonesoup.metricgenerator.ospametric")


def _states(points: Array) -> list[Any]:
    from stonesoup.types.state import State

    moment = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [State(np.asarray(point, dtype=np.float64).reshape(2, 1), timestamp=moment) for point in points]


def _random_cases(count: int) -> list[tuple[Array, Array, float]]:
    rng = np.random.default_rng(2024)
    return [
        (rng.uniform(0, 100, (rng.integers(1, 7), 2)), rng.uniform(0, 100, (rng.integers(1, 7), 2)), c)
        for c in rng.uniform(5, 60, count)
    ]


def test_gospa_agrees_with_stone_soup(ospametric: Any) -> None:
    """Distance and its three components equal Stone Soup's GOSPAMetric on random cases."""
    for p in (1.0, 2.0):
        for truth, estimates, c in _random_cases(150):
            theirs, _ = ospametric.GOSPAMetric(c=c, p=p).compute_gospa_metric(
                _states(estimates), _states(truth)
            )
            ours = gospa(truth, estimates, c, p)
            for key in ("distance", "localisation", "missed", "false"):
                assert getattr(ours, key) == pytest.approx(float(theirs.value[key]), rel=1e-9, abs=1e-9), key


def test_ospa_agrees_with_stone_soup(ospametric: Any) -> None:
    """OSPA equals Stone Soup's for p = 1 and is never above it for p = 2.

    Stone Soup 1.9 assigns on d rather than d^p, so for p != 1 its value can exceed the optimum.
    """
    for truth, estimates, c in _random_cases(300):
        for p in (1.0, 2.0):
            theirs = float(
                ospametric.OSPAMetric(c=c, p=p)
                .compute_OSPA_distance(_states(estimates), _states(truth))
                .value
            )
            ours = ospa(truth, estimates, c, p)
            if p == 1.0:
                assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-9)
            else:
                assert ours <= theirs + 1e-9


def _step(*objects: tuple[str, float, float]) -> list[tuple[str, float, float]]:
    return list(objects)


def test_run_statistics_perfect_tracking() -> None:
    """One track following one truth exactly: zero errors, one matched track, no switch."""
    times = [0.0, 1.0, 2.0]
    truth = [_step(("a", float(k), 0.0)) for k in range(3)]
    tracks = [_step(("t1", float(k), 0.0)) for k in range(3)]
    stats = run_statistics(times, truth, tracks, c=10.0)
    summary = stats.summary()
    assert summary["mean_gospa_m"] == 0.0
    assert summary["mean_ospa_m"] == 0.0
    assert (stats.tracks_total, stats.tracks_matched, stats.false_tracks) == (1, 1, 0)
    assert (stats.id_switches, stats.fragmentations) == (0, 0)
    assert summary["position_rmse_m"] == 0.0
    assert stats.assigned_ids == [{"a": "t1"}] * 3


def test_run_statistics_switch_break_and_false_track() -> None:
    """A track lost, then replaced by another id: one fragmentation, one id switch; a far track is false."""
    times = [0.0, 1.0, 2.0, 3.0, 4.0]
    truth = [_step(("a", 0.0, 0.0))] * 5
    tracks = [
        _step(("t1", 3.0, 4.0)),
        _step(),
        _step(("t2", 0.0, 1.0)),
        _step(("t2", 0.0, 1.0), ("ghost", 500.0, 500.0)),
        _step(("t2", 0.0, 1.0)),
    ]
    stats = run_statistics(times, truth, tracks, c=10.0)
    assert (stats.tracks_total, stats.tracks_matched, stats.false_tracks) == (3, 2, 1)
    assert (stats.id_switches, stats.fragmentations) == (1, 1)
    np.testing.assert_allclose(stats.gospa_m, [5.0, math.sqrt(50.0), 1.0, math.sqrt(51.0), 1.0])
    np.testing.assert_allclose(stats.ospa_m, [5.0, 10.0, 1.0, math.sqrt(101.0 / 2), 1.0])
    summary = stats.summary()
    assert summary["missed_target_steps"] == 1
    assert summary["false_target_steps"] == 1
    assert summary["position_rmse_m"] == pytest.approx(math.sqrt((25.0 + 1.0 + 1.0 + 1.0) / 4))


def test_run_statistics_same_id_regained_is_no_switch() -> None:
    """Losing and regaining the same track id is a fragmentation, not an id switch."""
    truth = [_step(("a", 0.0, 0.0))] * 3
    tracks = [_step(("t1", 0.0, 0.0)), _step(("t1", 50.0, 0.0)), _step(("t1", 0.0, 0.0))]
    stats = run_statistics([0.0, 1.0, 2.0], truth, tracks, c=10.0)
    assert (stats.id_switches, stats.fragmentations) == (0, 1)


def test_run_statistics_crossing_targets_swap_ids() -> None:
    """Two tracks that swap their truths count two id switches and no fragmentation."""
    truth = [_step(("a", 0.0, 0.0), ("b", 100.0, 0.0))] * 2
    tracks = [
        _step(("t1", 0.0, 0.0), ("t2", 100.0, 0.0)),
        _step(("t2", 0.0, 0.0), ("t1", 100.0, 0.0)),
    ]
    stats = run_statistics([0.0, 1.0], truth, tracks, c=10.0)
    assert (stats.id_switches, stats.fragmentations, stats.false_tracks) == (2, 0, 0)


def test_run_statistics_refuses_ragged_input() -> None:
    """Times, truth steps and track steps must line up."""
    with pytest.raises(ValueError, match="times"):
        run_statistics([0.0, 1.0], [[]], [[], []], c=5.0)
