"""A rotating radar's scans: the swept sector, misses counted only inside it, every target confirmed."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from schemas.tracks import TrackStatus
from services.core.config import LinderoConfig
from services.correlator.domain.detections import Detection, MeasurementKind
from services.correlator.domain.engine import RegionEngine
from services.correlator.domain.region import RegionContext
from services.correlator.domain.sweep import BeamFollower
from services.correlator.domain.tracker import Coverage, Scan, Tracker, TrackerConfig
from tests.unit.correlator.worlds import CUCUTA, RADAR, T0, Walker, context_of, sweeping_radar

SITE = (0.0, 0.0)


def _at(bearing_deg: float, range_m: float) -> tuple[float, float]:
    b = math.radians(bearing_deg)
    return SITE[0] + range_m * math.sin(b), SITE[1] + range_m * math.cos(b)


def _plot(name: str, time_s: float, bearing_deg: float, range_m: float = 5_000.0) -> Detection:
    """A radar plot (range, bearing) from the radar at ``SITE``."""
    return Detection(
        event_id=name,
        time_s=time_s,
        region="test",
        sensor_id="radar-1",
        sensor_type="radar",
        owner=("CO", "ejercito"),
        kind=MeasurementKind.POLAR,
        z=np.array([range_m, math.radians(bearing_deg)]),
        covariance=np.diag([15.0**2, math.radians(0.6) ** 2]),
        sensor_en=SITE,
    )


def _degrees(coverage: Coverage | None) -> tuple[float, float] | None:
    """(start, extent) of a sector in degrees; None for the whole disc."""
    assert coverage is not None
    if coverage.extent_rad is None:
        return None
    return round(math.degrees(coverage.start_rad), 3), round(math.degrees(coverage.extent_rad), 3)


# -- coverage ----------------------------------------------------------------------------------------


def test_a_sector_through_north_holds_what_the_beam_swept() -> None:
    """A sector from 350° over 20° holds 355° and 5° but not 20° or 340°, and nothing beyond range."""
    sector = Coverage(SITE, 10_000.0, start_rad=math.radians(350.0), extent_rad=math.radians(20.0))
    points = [
        _at(355.0, 5_000.0),
        _at(5.0, 5_000.0),
        _at(20.0, 5_000.0),
        _at(340.0, 5_000.0),
        _at(0.0, 11_000.0),
    ]
    east, north = np.array(points).T
    assert sector.contains(east, north).tolist() == [True, True, False, False, False]
    assert Coverage(SITE, 10_000.0).contains(east, north).tolist() == [True] * 4 + [False]


def test_sector_edges_keep_a_margin_in_degrees_and_in_metres() -> None:
    """1° inside a sector edge is out with a 2° margin; close to the radar the metres margin wins."""
    sector = Coverage(
        SITE,
        10_000.0,
        start_rad=math.radians(10.0),
        extent_rad=math.radians(40.0),
        margin_rad=math.radians(2.0),
        margin_m=50.0,
    )
    points = [_at(11.0, 5_000.0), _at(13.0, 5_000.0), _at(49.0, 5_000.0), _at(13.0, 500.0), _at(30.0, 500.0)]
    east, north = np.array(points).T
    assert sector.contains(east, north).tolist() == [False, True, False, False, True]


# -- the beam follower --------------------------------------------------------------------------------


def test_consecutive_scans_tile_the_disc() -> None:
    """Each scan's sector starts where the previous one's beam was last seen, so no bearing is
    swept twice or skipped within a revolution (here with a pass through north)."""
    beams = BeamFollower()
    first = beams.coverage("r", SITE, 10_000.0, 2.0, [_plot("a", 0.0, 300.0), _plot("b", 0.2, 336.0)])
    second = beams.coverage("r", SITE, 10_000.0, 2.0, [_plot("c", 0.4, 12.0), _plot("d", 0.5, 30.0)])
    third = beams.coverage("r", SITE, 10_000.0, 2.0, [_plot("e", 1.9, 282.0)])
    assert _degrees(first) == (300.0, 36.0)  # the radar's first scan: from its first detection
    assert _degrees(second) == (336.0, 54.0)
    assert _degrees(third) == (30.0, 252.0)


def test_a_full_revolution_or_more_since_the_beam_was_seen_covers_the_disc() -> None:
    """A scan a revolution or more after the beam was last seen covers the whole disc."""
    beams = BeamFollower()
    beams.coverage("r", SITE, 10_000.0, 2.0, [_plot("a", 0.0, 90.0)])
    assert _degrees(beams.coverage("r", SITE, 10_000.0, 2.0, [_plot("b", 2.0, 90.5)])) is None
    assert _degrees(beams.coverage("r", SITE, 10_000.0, 2.0, [_plot("c", 9.0, 20.0)])) is None


def test_bearing_noise_against_the_sweep_does_not_make_a_revolution() -> None:
    """A later detection a little anticlockwise of an earlier one is noise, not a 359° sweep."""
    beams = BeamFollower()
    beams.coverage("r", SITE, 10_000.0, 2.0, [_plot("a", 0.0, 90.0)])
    assert _degrees(
        beams.coverage("r", SITE, 10_000.0, 2.0, [_plot("b", 0.01, 89.5), _plot("c", 0.3, 144.0)])
    ) == (
        89.5,
        54.5,
    )


def test_radars_are_followed_separately_and_the_state_round_trips() -> None:
    """Two radars do not share a beam; the follower's state survives JSON."""
    beams = BeamFollower()
    beams.coverage("r1", SITE, 10_000.0, 2.0, [_plot("a", 0.0, 90.0)])
    beams.coverage("r2", SITE, 10_000.0, 2.0, [_plot("b", 0.1, 200.0)])
    restored = BeamFollower()
    restored.restore(orjson.loads(orjson.dumps(beams.state())))
    for follower in (beams, restored):
        assert _degrees(follower.coverage("r1", SITE, 10_000.0, 2.0, [_plot("c", 0.5, 180.0)])) == (
            90.0,
            90.0,
        )


def test_without_a_scan_period_the_sector_is_the_scan_s_own_bearings() -> None:
    """Unknown rotation: the sector spans the scan's bearings and nothing is remembered between scans."""
    beams = BeamFollower()
    beams.coverage("r", SITE, 10_000.0, None, [_plot("a", 0.0, 90.0)])
    assert _degrees(
        beams.coverage("r", SITE, 10_000.0, None, [_plot("b", 1.0, 120.0), _plot("c", 1.1, 100.0)])
    ) == (
        100.0,
        20.0,
    )


# -- misses in the tracker ------------------------------------------------------------------------------


def test_a_radar_scan_counts_no_miss_outside_its_swept_sector() -> None:
    """Scans of one quarter of the disc leave a tentative track elsewhere untouched; the quarter
    that holds it counts the misses that drop it."""
    tracker = Tracker("test", TrackerConfig(confirm_m=3, confirm_n=4))
    tracker.process(Scan("radar-1", 0.0, [_plot("t", 0.0, 200.0)]))
    [slot] = tracker.active.tolist()
    elsewhere = Coverage(SITE, 10_000.0, start_rad=0.0, extent_rad=math.radians(90.0))
    for k in range(1, 6):
        tracker.process(Scan("radar-1", 2.0 * k, [_plot(f"a{k}", 2.0 * k, 45.0 + k)], elsewhere))
    assert int(tracker.opportunities[slot]) == 1
    assert int(tracker.history[slot]) == 1
    assert round(tracker.estimate(slot).east_m) == round(_at(200.0, 5_000.0)[0])
    track_id = tracker.estimate(slot).track_id
    here = Coverage(SITE, 10_000.0, start_rad=math.radians(180.0), extent_rad=math.radians(90.0))
    tracker.process(Scan("radar-1", 12.0, [_plot("b", 12.0, 260.0, 3_000.0)], here))
    assert int(tracker.opportunities[slot]) == 2
    tracker.process(Scan("radar-1", 14.0, [_plot("c", 14.0, 260.0, 2_000.0)], here))
    assert track_id not in {e.track_id for e in tracker.estimates()}  # 1 hit in 3 chances: not 3 of 4


# -- a realistic radar through the engine ----------------------------------------------------------------


@pytest.fixture
def cucuta(demo_config: LinderoConfig) -> RegionContext:
    return context_of(demo_config, CUCUTA)


def _targets(context: RegionContext) -> list[Walker]:
    """Twelve targets all round the CO radar, 2-10 km out: people at 1.5 m/s, vehicles at 12 m/s."""
    site = context.sensors[RADAR]
    assert site.east_m is not None
    assert site.north_m is not None
    rng = np.random.default_rng(4)
    out = []
    for k in range(12):
        bearing = math.radians(15.0 + 30.0 * k)
        r = 2_000.0 + 8_000.0 * k / 11
        speed, kind = (12.0, "vehicle") if k % 2 else (1.5, "person")
        heading = float(rng.uniform(0.0, 2 * math.pi))
        start = (site.east_m + r * math.sin(bearing), site.north_m + r * math.cos(bearing))
        velocity = (speed * math.sin(heading), speed * math.cos(heading))
        out.append(Walker(start, velocity, T0, T0 + 600.0, kind))
    return out


def _run(engine: RegionEngine, detections: list[Detection], per_detection: bool) -> None:
    if per_detection:  # as the Kafka loop: a step after each record
        for offset, detection in enumerate(detections):
            engine.add(detection, offset)
            engine.step()
        return
    used = 0
    end = detections[-1].time_s
    second = T0
    while second <= end + 1.0:  # as the benchmark: a second's detections, then a step
        while used < len(detections) and detections[used].time_s <= second:
            engine.add(detections[used])
            used += 1
        engine.step(second + engine.window.seconds)
        second += 1.0


@pytest.mark.parametrize("per_detection", [True, False], ids=["step-per-detection", "step-per-second"])
def test_a_rotating_radar_confirms_every_target(cucuta: RegionContext, per_detection: bool) -> None:
    """Twelve targets all round a radar whose beam sweeps them one by one (p_D 0.9, clutter): each
    has a confirmed track on it within 30 s, and clutter confirms none."""
    walkers = _targets(cucuta)
    detections = sweeping_radar(cucuta, walkers, T0, T0 + 30.0, clutter_per_scan=2.0, seed=3)
    engine = RegionEngine(cucuta)
    _run(engine, detections, per_detection)
    live = engine.tracker.estimates(statuses=(TrackStatus.CONFIRMED, TrackStatus.COASTING))
    assert len(live) == len(walkers)
    for walker in walkers:
        nearest = min(math.dist((e.east_m, e.north_m), walker.at(e.time_s)) for e in live)
        assert nearest < 150.0, walker


def test_the_engine_groups_scans_with_the_tracker_s_window(
    cucuta: RegionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine cuts a radar's stream into scans with its tracker's ``scan_window_s``."""
    detections = sweeping_radar(cucuta, _targets(cucuta), T0, T0 + 2.0, clutter_per_scan=0.0)
    sizes: dict[float, list[int]] = {}
    for window in (0.25, 1.0):
        engine = RegionEngine(cucuta)
        monkeypatch.setattr(engine.tracker, "config", TrackerConfig(scan_window_s=window))
        sizes[window] = [len(scan.detections) for scan in engine._scans(detections)]
        assert sum(sizes[window]) == len(detections)
    assert len(sizes[0.25]) > len(sizes[1.0])


def test_a_restored_engine_goes_on_following_the_beam(cucuta: RegionContext) -> None:
    """Export, JSON, restore mid-run: the next radar scan covers the sector it covers without the cut
    (an engine that forgot the beam would cover less)."""
    detections = sweeping_radar(cucuta, _targets(cucuta), T0, T0 + 20.0, seed=5)
    cut = len(detections) // 2
    straight = RegionEngine(cucuta)
    for detection in detections[:cut]:
        straight.add(detection)
    straight.step(detections[cut - 1].time_s + 10.0)
    resumed = RegionEngine.restore(cucuta, orjson.loads(orjson.dumps(straight.export_state())))
    forgetful = RegionEngine.restore(cucuta, {**straight.export_state(), "beams": []})
    after = detections[cut : cut + 2]
    [expected] = [_degrees(scan.coverage) for scan in straight._scans(after)]
    assert expected is not None
    assert [_degrees(scan.coverage) for scan in resumed._scans(after)] == [expected]
    [partial] = [_degrees(scan.coverage) for scan in forgetful._scans(after)]
    assert partial is not None
    assert partial[1] < expected[1]


def _looped(
    follower: BeamFollower, key: str, period_s: float | None, detections: list[Detection]
) -> Coverage | None:
    """BeamFollower.coverage as it was written before it was vectorised: one detection at a time."""
    times = [d.time_s for d in detections]
    positions = np.array([d.position_en() for d in detections])
    bearings = np.arctan2(positions[:, 0] - SITE[0], positions[:, 1] - SITE[1]).tolist()
    rate = 2.0 * math.pi / period_s if period_s else 0.0
    previous = follower.last.get(key) if rate else None
    if previous is not None and times[0] < previous[0]:
        previous = None
    t_prev, u = previous if previous is not None else (times[0], bearings[0])
    low = high = b_prev = u
    for t, b in zip(times, bearings, strict=True):
        expected = rate * max(0.0, t - t_prev)
        u += expected + (math.pi - (math.pi - (b - b_prev - expected)) % (2.0 * math.pi))
        low, high = min(low, u), max(high, u)
        t_prev, b_prev = t, b
    wrap = math.pi - (math.pi - bearings[-1]) % (2.0 * math.pi)
    follower.last[key] = (times[-1], wrap)
    if high - low >= 2.0 * math.pi or (
        previous is not None and rate * (times[-1] - previous[0]) >= 2.0 * math.pi
    ):
        return Coverage(SITE, 12_000.0)
    start = (math.pi - (math.pi - low) % (2.0 * math.pi)) % (2.0 * math.pi)
    return Coverage(SITE, 12_000.0, start, high - low, follower.margin_rad, follower.margin_m)


@pytest.mark.parametrize("period_s", [2.0, None])
def test_the_swept_sector_is_the_one_the_detection_by_detection_unwrapping_finds(
    period_s: float | None,
) -> None:
    """Random scans of a turning beam (some jumping back, some spanning a revolution): the same
    sectors, bit for bit, and the same remembered beam, scan after scan."""
    rng = np.random.default_rng(11)
    vectorised, looped = BeamFollower(), BeamFollower()
    time_s, bearing = T0, 10.0
    for n in range(300):
        count = int(rng.integers(1, 40))
        scan = []
        for k in range(count):
            time_s += float(rng.exponential(0.02)) - (0.5 if n % 37 == 5 and k == 0 else 0.0)
            bearing = (bearing + float(rng.normal(3.6, 40.0 if n % 11 == 0 else 0.8))) % 360.0
            scan.append(_plot(f"{n}-{k}", time_s, bearing, float(rng.uniform(100.0, 11_000.0))))
        expected = _looped(looped, "r", period_s, scan)
        found = vectorised.coverage("r", SITE, 12_000.0, period_s, scan)
        assert found == expected
        assert vectorised.last == looped.last
