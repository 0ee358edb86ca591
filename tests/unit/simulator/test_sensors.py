"""The sensor models: noise as configured, coverage respected, health reports and faults."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from services.core.config import GroundSensor, LinderoConfig, RadarParams, RadarSensor
from services.core.geography import Geography
from services.correlator.domain.frames import LocalFrame
from services.simulator.domain import SimEvent, Simulation, simulate
from services.simulator.domain.status import LOW_BATTERY_PCT
from tests.unit.simulator.conftest import REGION, START


class TruthAt:
    """Truth positions interpolated at any time, in a local frame."""

    def __init__(self, sim: Simulation, frame: LocalFrame) -> None:
        self.tracks: dict[str, tuple[np.ndarray, ...]] = {}
        for index, truth_id in enumerate(sim.truth.ids):
            keep = sim.truth.entity == index
            east, north, _ = frame.to_enu(sim.truth.lat[keep], sim.truth.lon[keep])
            self.tracks[truth_id] = (sim.truth.time_s[keep], east, north, sim.truth.alt_m[keep])

    def at(self, truth_id: str, time_s: float) -> tuple[float, float, float]:
        times, east, north, alt = self.tracks[truth_id]
        return (
            float(np.interp(time_s, times, east)),
            float(np.interp(time_s, times, north)),
            float(np.interp(time_s, times, alt)),
        )


def of_type(sim: Simulation, sensor_type: str) -> list[SimEvent]:
    return [e for e in sim.events if e.payload.get("sensor_type") == sensor_type]


def site(frame: LocalFrame, sensor: Any) -> tuple[float, float]:
    east, north, _ = frame.to_enu(sensor.position.lat, sensor.position.lon)
    return float(east), float(north)


def wrap_deg(angle: np.ndarray) -> np.ndarray:
    return (angle + 180.0) % 360.0 - 180.0


# -- radar ---------------------------------------------------------------------------------------


def radar_errors(
    sim: Simulation, config: LinderoConfig, frame: LocalFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(measured - true) range and bearing of every truth-caused radar detection, and true ranges.

    The truth is interpolated linearly between its 1 Hz samples at each detection's time.
    """
    truth = TruthAt(sim, frame)
    by_cause: dict[tuple[str, str], list[SimEvent]] = defaultdict(list)
    for event in of_type(sim, "radar"):
        cause = sim.origin[event.event_id]
        if cause is not None:
            by_cause[(event.sensor_id, cause)].append(event)
    range_errors, bearing_errors, true_ranges = [], [], []
    for (sensor_id, cause), events in by_cause.items():
        radar = config.sensors_by_id[sensor_id]
        assert isinstance(radar, RadarSensor)
        sx, sy = site(frame, radar)
        times, east, north, alt = truth.tracks[cause]
        when = np.asarray([e.time_s for e in events])
        dx, dy = np.interp(when, times, east) - sx, np.interp(when, times, north) - sy
        dz = np.interp(when, times, alt) - (radar.position.alt_m or 0.0)
        ground = np.hypot(dx, dy)
        airborne = np.asarray(["elevation_deg" in e.payload for e in events])
        true_range = np.where(airborne, np.hypot(ground, dz), ground)
        range_errors.append(np.asarray([e.payload["range_m"] for e in events]) - true_range)
        bearing = np.degrees(np.arctan2(dx, dy))
        bearing_errors.append(np.asarray([e.payload["bearing_deg"] for e in events]) - bearing)
        true_ranges.append(ground)
    return (
        np.concatenate(range_errors),
        wrap_deg(np.concatenate(bearing_errors)),
        np.concatenate(true_ranges),
    )


def test_radar_noise_matches_the_configured_sigmas(
    quarter_hour: Simulation, demo_config: LinderoConfig, frame: LocalFrame
) -> None:
    """Over many detections, range and bearing errors have mean ~0 and the configured sigma."""
    range_errors, bearing_errors, _ = radar_errors(quarter_hour, demo_config, frame)
    count = len(range_errors)
    assert count > 5000
    params = RadarParams()
    for errors, sigma in ((range_errors, params.range_sigma_m), (bearing_errors, params.bearing_sigma_deg)):
        assert abs(errors.mean()) < 5.0 * sigma / math.sqrt(count)
        # the sample standard deviation has a relative standard error of 1/sqrt(2n)
        assert abs(errors.std() / sigma - 1.0) < 5.0 / math.sqrt(2 * count)
    for event in of_type(quarter_hour, "radar")[:50]:
        assert event.payload["range_sigma_m"] == params.range_sigma_m
        assert event.payload["bearing_sigma_deg"] == params.bearing_sigma_deg


def test_radar_noise_follows_other_sigmas_too(demo_config: LinderoConfig, geography: Geography) -> None:
    """Configured sigmas of 40 m and 2 degrees are what comes out."""
    params = RadarParams(range_sigma_m=40.0, bearing_sigma_deg=2.0, clutter_per_scan=0.0)
    config = _with_radar_params(demo_config, params)
    sim = simulate(config, geography, REGION, seed=5, start=START, duration_s=300)
    origin = config.regions_by_id[REGION].frame_origin
    range_errors, bearing_errors, _ = radar_errors(sim, config, LocalFrame(origin.lat, origin.lon))
    assert abs(range_errors.std() / 40.0 - 1.0) < 0.05
    assert abs(bearing_errors.std() / 2.0 - 1.0) < 0.05
    assert all(sim.origin[e.event_id] is not None for e in of_type(sim, "radar"))


def _with_radar_params(config: LinderoConfig, params: RadarParams) -> LinderoConfig:
    sensors = [
        s.model_copy(update={"radar": params}) if isinstance(s, RadarSensor) else s for s in config.sensors
    ]
    return config.model_copy(update={"sensors": sensors})


def test_radar_never_reports_beyond_max_range(demo_config: LinderoConfig, geography: Geography) -> None:
    """With a 3 km radar, no truth beyond 3 km is detected; clutter stays within coverage too."""
    params = RadarParams(max_range_m=3_000.0)
    config = _with_radar_params(demo_config, params)
    sim = simulate(config, geography, REGION, seed=5, start=START, duration_s=300)
    origin = config.regions_by_id[REGION].frame_origin
    _, _, true_ranges = radar_errors(sim, config, LocalFrame(origin.lat, origin.lon))
    assert len(true_ranges) > 100
    assert true_ranges.max() <= 3_000.0 + 0.5
    assert true_ranges.max() > 2_000.0
    measured = [e.payload["range_m"] for e in of_type(sim, "radar")]
    assert max(measured) <= 3_000.0 + 5 * params.range_sigma_m


def test_radar_reports_elevation_only_for_the_aircraft(quarter_hour: Simulation) -> None:
    """Airborne targets come with elevation (and its sigma); ground targets without."""
    with_elevation = [e for e in of_type(quarter_hour, "radar") if "elevation_deg" in e.payload]
    assert with_elevation
    for event in with_elevation:
        assert quarter_hour.origin[event.event_id] is not None
        assert ":aircraft-" in str(quarter_hour.origin[event.event_id])
        assert event.payload["elevation_sigma_deg"] > 0


def test_radar_scans_at_its_period(quarter_hour: Simulation) -> None:
    """A truth is seen at most once per scan: consecutive plots of it are about a period apart."""
    seen: dict[tuple[str, str], list[float]] = defaultdict(list)
    for event in of_type(quarter_hour, "radar"):
        cause = quarter_hour.origin[event.event_id]
        if cause is not None:
            seen[(event.sensor_id, cause)].append(event.time_s)
    gaps = np.concatenate([np.diff(times) for times in seen.values() if len(times) > 1])
    period = RadarParams().scan_period_s
    assert gaps.min() > 0.5 * period
    assert abs(np.median(gaps) - period) < 0.1


# -- drones --------------------------------------------------------------------------------------


def test_drone_detections_lie_in_the_camera_footprint(
    quarter_hour: Simulation, demo_config: LinderoConfig, frame: LocalFrame
) -> None:
    """The detected truth is within footprint_radius_m of the point below the drone."""
    truth = TruthAt(quarter_hour, frame)
    events = of_type(quarter_hour, "drone")
    assert len(events) > 20
    for event in events:
        drone = demo_config.sensors_by_id[event.sensor_id]
        footprint = drone.drone.footprint_radius_m  # type: ignore[union-attr]
        pose = event.payload["drone"]
        dx, dy, _ = frame.to_enu(pose["lat"], pose["lon"])
        x, y, _ = truth.at(str(quarter_hour.origin[event.event_id]), event.time_s)
        assert math.hypot(x - float(dx), y - float(dy)) <= footprint + 0.05
        assert pose["alt_m"] == drone.drone.cruise_alt_m  # type: ignore[union-attr]
        assert event.payload["detection"]["sigma_m"] == drone.drone.position_sigma_m  # type: ignore[union-attr]


def test_drones_orbit_near_the_border(quarter_hour: Simulation, frame: LocalFrame) -> None:
    """A drone's reported positions lie on a circle of 800-1500 m radius at constant speed."""
    events = of_type(quarter_hour, "drone")
    for sensor_id in {e.sensor_id for e in events}:
        poses = {e.time_s: e.payload["drone"] for e in events if e.sensor_id == sensor_id}
        times = np.asarray(sorted(poses))
        east, north, _ = frame.to_enu([poses[t]["lat"] for t in times], [poses[t]["lon"] for t in times])
        # fit a circle: x^2 + y^2 = 2 a x + 2 b y + c
        design = np.column_stack([2 * east, 2 * north, np.ones_like(east)])
        (a, b, c), *_ = np.linalg.lstsq(design, east**2 + north**2, rcond=None)
        radius = math.sqrt(c + a * a + b * b)
        assert 800.0 <= radius <= 1500.0
        assert np.abs(np.hypot(east - a, north - b) - radius).max() < 1.0


# -- ground sensors ------------------------------------------------------------------------------


def test_ground_sensors_trip_only_near_the_truth_at_most_every_5_s(
    quarter_hour: Simulation, demo_config: LinderoConfig, frame: LocalFrame
) -> None:
    """A trip comes from a truth within the detection radius; one truth trips a sensor <= every 5 s."""
    truth = TruthAt(quarter_hour, frame)
    last: dict[tuple[str, str], float] = {}
    events = of_type(quarter_hour, "ground")
    assert events
    for event in events:
        sensor = demo_config.sensors_by_id[event.sensor_id]
        assert isinstance(sensor, GroundSensor)
        assert event.payload["modality"] == sensor.ground.modality.value
        cause = quarter_hour.origin[event.event_id]
        if cause is None:
            continue
        sx, sy = site(frame, sensor)
        x, y, alt = truth.at(cause, event.time_s)
        assert math.hypot(x - sx, y - sy, alt) <= sensor.ground.detection_radius_m + 2.0
        key = (event.sensor_id, cause)
        if key in last:
            assert event.time_s - last[key] >= 5.0 - 1.0
        last[key] = event.time_s


def test_animals_cause_ground_detections(quarter_hour: Simulation) -> None:
    """The animals around the ground sensors trip them (false alarms for the operators)."""
    causes = [quarter_hour.origin[e.event_id] for e in of_type(quarter_hour, "ground")]
    assert any(cause is not None and ":animal-" in cause for cause in causes)


# -- health ------------------------------------------------------------------------------------


def statuses(sim: Simulation, sensor_id: str) -> list[SimEvent]:
    return [e for e in sim.events if e.stream == "status" and e.sensor_id == sensor_id]


def test_every_sensor_sends_heartbeats_at_its_interval(
    quarter_hour: Simulation, demo_config: LinderoConfig
) -> None:
    """Regular sensors report every heartbeat_interval_s with a battery that slowly drains."""
    faulty = {e.get("sensor_id") for e in quarter_hour.expected}
    for sensor in demo_config.sensors:
        if sensor.region != REGION or sensor.id in faulty:
            continue
        reports = statuses(quarter_hour, sensor.id)
        gaps = np.diff([r.time_s for r in reports])
        assert np.allclose(gaps, sensor.heartbeat_interval_s, atol=0.002), sensor.id
        battery = [r.payload["battery_pct"] for r in reports]
        assert battery == sorted(battery, reverse=True)
        assert all(r.payload["self_test"] == "ok" and r.payload["tamper"] is False for r in reports)


def test_the_silent_sensor_stops_reporting(quarter_hour: Simulation) -> None:
    """From its scripted time on, the silent sensor sends nothing at all."""
    [silent] = [e for e in quarter_hour.expected if e["kind"] == "silent_sensor"]
    sent = [e.time_s for e in quarter_hour.events if e.sensor_id == silent["sensor_id"]]
    assert sent
    assert max(sent) < silent["start_s"]
    assert silent["last_report_s"] == max(e.time_s for e in statuses(quarter_hour, silent["sensor_id"]))


def test_the_tampered_sensor_says_so(quarter_hour: Simulation) -> None:
    """A status with tamper=true at the scripted time, and on every later heartbeat."""
    [tamper] = [e for e in quarter_hour.expected if e["kind"] == "sensor_tamper"]
    reports = statuses(quarter_hour, tamper["sensor_id"])
    assert [r.payload["tamper"] for r in reports] == [r.time_s >= tamper["start_s"] for r in reports]
    assert any(r.time_s == tamper["start_s"] and r.payload["tamper"] for r in reports)


def test_the_low_battery_sensor_crosses_the_threshold(quarter_hour: Simulation) -> None:
    """Above 10 % before the scripted time, below it from then on."""
    [low] = [e for e in quarter_hour.expected if e["kind"] == "sensor_low_battery"]
    reports = statuses(quarter_hour, low["sensor_id"])
    below = [r.payload["battery_pct"] < LOW_BATTERY_PCT for r in reports]
    assert below == [r.time_s >= low["start_s"] for r in reports]
    assert any(below)
    assert not all(below)


@pytest.mark.parametrize("kind", ["silent_sensor", "sensor_tamper", "sensor_low_battery"])
def test_each_fault_hits_a_different_ground_sensor(quarter_hour: Simulation, kind: str) -> None:
    """Faults are scripted on ground sensors, one sensor each."""
    sensors = {
        e["sensor_id"]
        for e in quarter_hour.expected
        if e["kind"] in {"silent_sensor", "sensor_tamper", "sensor_low_battery"}
    }
    assert len(sensors) == 3
    assert all("-ugs-" in s for s in sensors)
    assert sum(e["kind"] == kind for e in quarter_hour.expected) == 1
