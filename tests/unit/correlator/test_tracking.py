"""The tracker's maths and lifecycle: filter consistency, gating, assignment, M-of-N, classes, snapshots."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from services.correlator.domain import association, classification
from services.correlator.domain.detections import Detection, MeasurementKind
from services.correlator.domain.filters import ImmPrediction, imm_predict, imm_update, wrap
from services.correlator.domain.motion import ImmModel, process_noise, transition
from services.correlator.domain.tracker import Coverage, Scan, Tracker, TrackerConfig
from tests.unit.correlator.synthetic import RADAR_EN, Scenario, Target

SINGLE = ImmModel(q=(0.05,), mean_sojourn_s=(1e12,), initial_probability=(1.0,))


def cv_truth(rng: np.random.Generator, steps: int, dt: float, q: float) -> np.ndarray:
    """A constant-velocity truth driven by white acceleration noise of density q (exactly the model)."""
    x = np.array([2_000.0, 3_000.0, 1.0, -0.5])
    out = [x]
    F = transition(np.array([dt]))[0]
    Q = process_noise(np.array([dt]), q)[0]
    chol = np.linalg.cholesky(Q + 1e-12 * np.eye(4))
    for _ in range(steps - 1):
        x = F @ x + chol @ rng.standard_normal(4)
        out.append(x)
    return np.array(out)


def run_filter(polar: bool, runs: int = 60, steps: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """NEES and NIS of a single-model filter on truths drawn from its own model."""
    rng = np.random.default_rng(11)
    dt, q = 2.0, 0.05
    nees, nis = [], []
    for _ in range(runs):
        truth = cv_truth(rng, steps, dt, q)
        R = np.diag([10.0**2, math.radians(0.3) ** 2]) if polar else np.diag([15.0**2, 15.0**2])
        xm = np.array([[truth[0] + rng.multivariate_normal(np.zeros(4), np.diag([100, 100, 4, 4]))]])
        Pm = np.array([[np.diag([100.0, 100.0, 4.0, 4.0])]])
        mu = np.array([[1.0]])
        sensor = np.array([list(RADAR_EN)])
        for k in range(1, steps):
            prediction = imm_predict(xm, Pm, mu, np.array([dt]), SINGLE)
            x = truth[k]
            if polar:
                de, dn = x[0] - RADAR_EN[0], x[1] - RADAR_EN[1]
                z = np.array([[math.hypot(de, dn), math.atan2(de, dn)]]) + rng.multivariate_normal(
                    np.zeros(2), R
                )
            else:
                z = x[None, :2] + rng.multivariate_normal(np.zeros(2), R)
            update = imm_update(prediction, z, R[None], sensor if polar else None, polar)
            xm, Pm, mu = update.xm, update.Pm, update.mu
            if k > 10:
                error = xm[0, 0] - x
                nees.append(error @ np.linalg.solve(Pm[0, 0], error))
                nis.append(update.nis[0])
    return np.array(nees), np.array(nis)


@pytest.mark.parametrize("polar", [False, True], ids=["point", "polar-ekf"])
def test_filter_is_consistent(polar: bool) -> None:
    """Average NEES (4 dof) and NIS (2 dof) fall inside their two-sided 95% chi-square bounds."""
    nees, nis = run_filter(polar)
    for values, dof in ((nees, 4), (nis, 2)):
        n = len(values)
        low, high = chi2.ppf(0.025, dof * n) / n, chi2.ppf(0.975, dof * n) / n
        assert low <= values.mean() <= high, (values.mean(), low, high)


def test_process_noise_and_switching_are_well_formed() -> None:
    """Q is symmetric positive semi-definite; each row of the IMM switching matrix sums to one."""
    Q = process_noise(np.array([0.1, 2.0, 30.0]), 0.5)
    assert np.allclose(Q, np.swapaxes(Q, 1, 2))
    assert (np.linalg.eigvalsh(Q) >= -1e-12).all()
    pi = ImmModel().switching(np.array([0.0, 1.0, 100.0]))
    assert np.allclose(pi.sum(axis=2), 1.0)
    assert np.allclose(pi[0], np.eye(2))


def test_bearing_residual_wraps_through_north() -> None:
    """A bearing of 359.9° against a prediction of 0.1° is a 0.2° residual, not 359.8°."""
    assert math.isclose(
        float(wrap(np.array(math.radians(359.9) - math.radians(0.1)))), math.radians(-0.2), abs_tol=1e-12
    )
    prediction = ImmPrediction(
        np.array([[[0.0, 1_000.0, 0.0, 0.0]]]),
        np.array([[np.diag([100.0, 100.0, 1.0, 1.0])]]),
        np.array([[1.0]]),
    )
    z = np.array([[1_000.0, math.radians(359.9)]])
    R = np.diag([10.0**2, math.radians(0.5) ** 2])[None]
    update = imm_update(prediction, z, R, np.array([[0.0, 0.0]]), is_polar=True)
    assert abs(update.xm[0, 0, 0]) < 5.0
    assert update.nis[0] < 10.0


@given(
    a=st.floats(1.0, 1e4),
    c=st.floats(1.0, 1e4),
    rho=st.floats(-0.95, 0.95),
    d=st.floats(0.01, 100.0),
)
@settings(max_examples=200)
def test_closed_form_inverse_matches_numpy(a: float, c: float, rho: float, d: float) -> None:
    """The batched 2×2 and 3×3 inverses and log-determinants equal numpy's."""
    b = rho * math.sqrt(a * c)
    S2 = np.array([[a, b], [b, c]])
    S3 = np.array([[a, b, 0.1 * b], [b, c, 0.0], [0.1 * b, 0.0, d]])
    for S in (S2, S3):
        if np.linalg.eigvalsh(S).min() <= 0:
            continue
        inverse, logdet = association.inverse_and_logdet(S[None])
        assert np.allclose(inverse[0], np.linalg.inv(S), rtol=1e-6, atol=1e-12)
        assert math.isclose(float(logdet[0]), np.linalg.slogdet(S)[1], rel_tol=1e-9, abs_tol=1e-9)


def _point_detection(
    event_id: str, east: float, north: float, t: float = 0.0, sigma: float = 10.0
) -> Detection:
    return Detection(
        event_id=event_id,
        time_s=t,
        region="test",
        sensor_id="uav-1",
        sensor_type="drone",
        owner=("CO", "ejercito"),
        kind=MeasurementKind.POINT,
        z=np.array([east, north]),
        covariance=np.diag([sigma**2, sigma**2]),
        target_class="vehicle",
        confidence=0.9,
    )


def test_gnn_prefers_the_global_optimum() -> None:
    """With contention, assignment minimises the total cost instead of grabbing the nearest pair."""
    x = np.array([[0.0, 0.0, 0, 0], [30.0, 0.0, 0, 0]])
    P = np.tile(np.diag([400.0, 400.0, 1, 1]), (2, 1, 1))
    z = np.array([[20.0, 0.0], [-25.0, 0.0]])
    R = np.tile(np.diag([25.0, 25.0]), (2, 1, 1))
    result = association.associate(
        x, P, z, R, z.copy(), np.full(2, 50.0), None, False, association.gate_threshold(0.9995, 2)
    )
    pairs = dict(zip(result.tracks.tolist(), result.detections.tolist(), strict=True))
    assert pairs == {0: 1, 1: 0}


def test_gate_keeps_far_detections_out() -> None:
    """A detection far outside the gate is not assigned, however alone it is."""
    x = np.array([[0.0, 0.0, 0, 0]])
    P = np.diag([100.0, 100.0, 1, 1])[None]
    z = np.array([[500.0, 0.0]])
    R = np.diag([25.0, 25.0])[None]
    result = association.associate(
        x, P, z, R, z.copy(), np.full(1, 50.0), None, False, association.gate_threshold(0.9995, 2)
    )
    assert len(result.tracks) == 0


def test_two_by_two_components_match_linear_sum_assignment() -> None:
    """Components of two tracks and two detections get the pairing linear_sum_assignment gives."""
    rng = np.random.default_rng(5)
    ti, dj, cost = [], [], []
    for c in range(40):
        pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
        if c % 2:
            del pairs[int(rng.integers(4))]
        for t, d in pairs:
            ti.append(2 * c + t)
            dj.append(2 * c + d)
            cost.append(float(rng.normal(0.0, 3.0)))
    tracks, detections, costs = np.array(ti), np.array(dj), np.array(cost)
    result = association._assign(tracks, detections, costs, costs, 80, 80)
    matrix = np.full((80, 80), 1e12)
    matrix[tracks, detections] = costs
    rows, cols = linear_sum_assignment(matrix)
    expected = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if matrix[r, c] < 1e12}
    assert dict(zip(result.tracks.tolist(), result.detections.tolist(), strict=True)) == expected


def test_a_manoeuvre_stays_in_the_gate_of_its_model() -> None:
    """A detection outside the quiet model's gate is assigned through the manoeuvre model's gate."""
    x = np.array([[[0.0, 0.0, 10.0, 0.0], [0.0, 0.0, 10.0, 0.0]]])
    P = np.array([np.diag([25.0, 25.0, 0.1, 0.1]), np.diag([900.0, 900.0, 40.0, 40.0])])[None]
    z = np.array([[0.0, 60.0]])
    R = np.diag([25.0, 25.0])[None]
    gate = association.gate_threshold(0.9995, 2)
    combined = association.associate(
        x[:, 0],
        np.full((1, 4, 4), 0.97 * P[0, 0] + 0.03 * P[0, 1]),
        z,
        R,
        z.copy(),
        np.full(1, 50.0),
        None,
        False,
        gate,
    )
    models = association.associate(
        x, P, z, R, z.copy(), np.full(1, 50.0), None, False, gate, weights=np.array([[0.97, 0.03]])
    )
    assert len(combined.tracks) == 0
    assert models.tracks.tolist() == [0]


def _run(scenario: Scenario, seconds: float, config: TrackerConfig | None = None) -> Tracker:
    tracker = Tracker("test", config)
    for scan in scenario.scans(seconds):
        tracker.process(scan)
        tracker.advance(scan.time_s)
    return tracker


def test_targets_are_confirmed_and_clutter_is_not() -> None:
    """Three targets in clutter give exactly three confirmed tracks near the truth."""
    scenario = Scenario(
        [
            Target(1_000, 2_000, 1.2, 0.3),
            Target(-3_000, 1_500, 10, -2, "vehicle"),
            Target(2_000, -2_000, -1, 1),
        ],
        clutter_per_scan=4,
        detection_probability=0.85,
        seed=5,
    )
    tracker = _run(scenario, 300)
    confirmed = [e for e in tracker.estimates() if e.status.value == "confirmed"]
    assert len(confirmed) == 3
    end = scenario.scans(300)[-1].time_s - 1_800_000_000.0
    for target in scenario.targets:
        truth = target.state(end)
        nearest = min(math.hypot(e.east_m - truth[0], e.north_m - truth[1]) for e in confirmed)
        assert nearest < 60.0


def test_m_of_n_confirmation_needs_m_hits() -> None:
    """Two detections do not confirm a track with M=3; the third does."""
    tracker = Tracker("test", TrackerConfig(confirm_m=3, confirm_n=5))
    for k in range(3):
        result = tracker.process(
            Scan("uav-1", float(k), [_point_detection(f"e{k}", 100.0 + k, 200.0, float(k))])
        )
        assert len(result.changed) == 1
        assert result.changed[0].status.value == ("tentative" if k < 2 else "confirmed")


def test_coasting_then_lost() -> None:
    """A confirmed track coasts after coast_after_s without detections and is lost after max_coast_s."""
    tracker = Tracker("test", TrackerConfig(coast_after_s=5.0))
    for k in range(4):
        tracker.process(Scan("uav-1", float(k), [_point_detection(f"e{k}", 100.0, 200.0, float(k))]))
    changed = tracker.advance(3.0 + 6.0).changed
    assert [e.status.value for e in changed] == ["coasting"]
    limit = TrackerConfig().max_coast_s["vehicle"]
    ended = tracker.advance(3.0 + limit + 1.0).ended
    assert [e.status.value for e in ended] == ["lost"]
    assert len(tracker) == 0


def test_unclaimed_tentative_tracks_expire_silently() -> None:
    """A lone clutter detection becomes a tentative track that disappears without being reported lost."""
    tracker = Tracker("test", TrackerConfig(tentative_timeout_s=5.0))
    tracker.process(Scan("uav-1", 0.0, [_point_detection("c1", 900.0, 900.0)]))
    assert tracker.counts()["tentative"] == 1
    result = tracker.advance(10.0)
    assert result.ended == []
    assert len(tracker) == 0


def test_misses_inside_coverage_drop_tentative_tracks() -> None:
    """Radar scans that cover a tentative track and miss it make confirmation impossible: it is dropped."""
    tracker = Tracker("test", TrackerConfig(confirm_m=3, confirm_n=4))
    tracker.process(Scan("uav-1", 0.0, [_point_detection("c1", 500.0, 500.0)]))
    for k, t in enumerate((2.0, 4.0)):
        scan = Scan(
            "radar-1", t, [_point_detection(f"f{k}", 5_000.0, 5_000.0 + k, t)], Coverage((0.0, 0.0), 10_000.0)
        )
        tracker.process(scan)
    assert [round(e.east_m) for e in tracker.estimates()] == [5_000]


def test_a_target_started_twice_is_merged() -> None:
    """Two young tracks on one spot with one velocity are one target: the younger is merged away."""
    tracker = Tracker("test", TrackerConfig(confirm_m=1))
    tracker.process(
        Scan(
            "a",
            0.0,
            [_point_detection("a0", 0.0, 0.0, sigma=2.0), _point_detection("b0", 5.0, 0.0, sigma=2.0)],
        )
    )
    assert len(tracker) == 2
    ended = tracker.advance(1.0).ended
    assert len(ended) == 1
    assert len(tracker) == 1


def test_established_tracks_that_meet_stay_two() -> None:
    """Two tracks older than merge_max_age_s that come within metres of each other are not merged."""
    tracker = Tracker("test", TrackerConfig(confirm_m=1))
    for k in range(40):
        t = 2.0 * k
        b_east = max(8.0, 300.0 - 5.0 * t)
        scan = Scan(
            "uav-1",
            t,
            [
                _point_detection(f"a{k}", 0.0, 0.0, t, sigma=2.0),
                _point_detection(f"b{k}", b_east, 0.0, t, sigma=2.0),
            ],
        )
        tracker.process(scan)
        assert tracker.advance(t).ended == []
    assert len(tracker) == 2


def test_class_fusion() -> None:
    """Drone reports of "vehicle" convince the track; "unknown" reports carry no information."""
    fusion = classification.ClassFusion()
    p = fusion.initial()
    for _ in range(4):
        p = fusion.update(p, fusion.likelihood("drone", "vehicle", 0.9))
    assert classification.best(p)[0] == "vehicle"
    assert p[classification.INDEX["vehicle"]] > 0.9
    assert fusion.likelihood("ground", "unknown", 0.9) is None
    assert np.array_equal(fusion.update(p, None), p)
    assert p.min() >= fusion.floor / classification.K - 1e-12


def test_likelihood_rows_match_one_report_at_a_time() -> None:
    """The batched class likelihoods equal the one-report ones and skip uninformative reports."""
    fusion = classification.ClassFusion()
    reports = [
        ("drone", "vehicle", 0.9),
        ("ground", "unknown", 0.7),
        ("radar", "person", 1.4),
        ("x", None, 0.5),
    ]
    informative, rows = fusion.likelihood_rows(reports)
    assert informative == [0, 2]
    for row, i in zip(rows, informative, strict=True):
        assert np.array_equal(row, fusion.likelihood(*reports[i]))
    assert fusion.likelihood_rows([])[0] == []


def test_estimates_are_frozen_dataclasses_equal_to_their_fields() -> None:
    """The tracker's fast-built estimates equal ones built field by field, and stay immutable."""
    tracker = _run(Scenario([Target(1_000, 2_000, 1.2, 0.3)], seed=2), 10)
    [estimate] = tracker.estimates()
    fields = {f.name: getattr(estimate, f.name) for f in dataclasses.fields(estimate)}
    assert repr(type(estimate)(**fields)) == repr(estimate)
    assert dataclasses.replace(estimate, east_m=1.0).east_m == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.east_m = 1.0  # type: ignore[misc]


def test_speed_argues_against_people() -> None:
    """A well-estimated 20 m/s makes 'person' and 'animal' unlikely."""
    fusion = classification.ClassFusion()
    p = fusion.update(fusion.initial(), fusion.likelihood("ground", "person", 0.8))
    fast = fusion.kinematics(p, speed_mps=20.0, speed_sigma_mps=0.5, alt_agl_m=None)
    assert fast[classification.INDEX["person"]] < p[classification.INDEX["person"]]
    assert fusion.kinematics(p, speed_mps=20.0, speed_sigma_mps=5.0, alt_agl_m=None) is p


def test_snapshot_round_trip_continues_identically() -> None:
    """export_state -> JSON -> from_state mid-run gives exactly the tracks an uninterrupted run gives."""
    scenario = Scenario(
        [Target(1_000, 2_000, 1.2, 0.3), Target(-2_500, 1_500, 8, -2, "vehicle")], clutter_per_scan=2, seed=8
    )
    scans = scenario.scans(200)
    straight = Tracker("test")
    resumed = Tracker("test")
    for k, scan in enumerate(scans):
        if k == 40:
            resumed = Tracker.from_state(orjson.loads(orjson.dumps(resumed.export_state())))
        for tracker in (straight, resumed):
            tracker.process(scan)
            tracker.advance(scan.time_s)
    a = sorted((e.track_id, round(e.east_m, 6), round(e.north_m, 6)) for e in straight.estimates())
    b = sorted((e.track_id, round(e.east_m, 6), round(e.north_m, 6)) for e in resumed.estimates())
    assert a == b
    assert straight.next_id == resumed.next_id


def test_capacity_grows_beyond_the_initial_table() -> None:
    """Hundreds of simultaneous tracks are fine (storage doubles as needed)."""
    tracker = Tracker("test", TrackerConfig(confirm_m=1), capacity=8)
    detections = [_point_detection(f"e{i}", 300.0 * (i % 20), 300.0 * (i // 20)) for i in range(300)]
    tracker.process(Scan("uav-1", 0.0, detections))
    assert tracker.counts()["confirmed"] == 300


def test_altitude_is_filtered_by_each_measurements_variance() -> None:
    """An aircraft at 120 m seen by a far radar (altitudes ±175 m) and now and then by a drone (±10 m):
    the track's altitude stays near the truth, not at the last noisy radar reading."""
    rng = np.random.default_rng(3)
    tracker = Tracker("test")
    raw_errors, track_errors = [], []
    for step in range(60):
        t = float(step)
        radar = dataclasses.replace(
            _point_detection(f"r{step}", 10_000.0 + 30 * t, 0.0, t, sigma=30.0),
            sensor_id="rdr-1",
            sensor_type="radar",
            target_class="aircraft",
            alt_m=120.0 + float(rng.normal(0.0, 175.0)),
            alt_sigma_m=175.0,
        )
        scans = [radar]
        if step % 15 == 14:
            scans.append(
                dataclasses.replace(
                    _point_detection(f"d{step}", 10_000.0 + 30 * t, 0.0, t + 0.5, sigma=10.0),
                    target_class="aircraft",
                    alt_m=120.0 + float(rng.normal(0.0, 10.0)),
                    alt_sigma_m=10.0,
                )
            )
        for detection in scans:
            tracker.process(Scan(detection.sensor_id, detection.time_s, [detection]))
        tracker.advance(t + 0.5)
        (estimate,) = tracker.estimates()
        assert estimate.alt_m is not None
        if step >= 20:
            raw_errors.append(abs(radar.alt_m - 120.0))  # type: ignore[operator]
            track_errors.append(abs(estimate.alt_m - 120.0))
    assert max(track_errors) < 40.0
    assert max(raw_errors) > 150.0, "the radar's readings should have been far off to prove anything"
