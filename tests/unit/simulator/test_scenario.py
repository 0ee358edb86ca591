"""The simulated scenario: deterministic, valid on the wire, and it contains what it promises."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import TypeAdapter

from schemas.events import SensorEvent, SensorStatus
from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.simulator import files
from services.simulator.domain import ScenarioParams, Simulation, combine, simulate
from tests.unit.simulator.conftest import REGION, START, Played, truth_en

EVENTS = TypeAdapter[Any](list[SensorEvent])  # type: ignore[valid-type]
STATUSES = TypeAdapter[Any](list[SensorStatus])


def short(config: LinderoConfig, geography: Geography, **changes: Any) -> Simulation:
    region = changes.pop("region", REGION)
    arguments: dict[str, Any] = {"seed": 3, "start": START, "duration_s": 120.0, **changes}
    return simulate(config, geography, region, **arguments)


def serialised(sim: Simulation, folder: Path) -> dict[str, bytes]:
    files.write(sim, folder)
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# -- determinism ---------------------------------------------------------------------------------


def test_same_inputs_give_byte_identical_files(
    demo_config: LinderoConfig, geography: Geography, tmp_path: Path
) -> None:
    """Same configuration, seed, start and duration: the same five files, byte for byte."""
    first = serialised(short(demo_config, geography), tmp_path / "a")
    second = serialised(short(demo_config, geography), tmp_path / "b")
    assert first.keys() == {"events.ndjson", "truth.ndjson", "origin.json", "expected.json", "scenario.json"}
    assert first == second


def test_another_seed_gives_another_scenario(demo_config: LinderoConfig, geography: Geography) -> None:
    """A different seed changes the truth, the events and their ids."""
    one, two = short(demo_config, geography), short(demo_config, geography, seed=4)
    assert not np.array_equal(one.truth.lat[:50], two.truth.lat[:50])
    assert {e.event_id for e in one.events}.isdisjoint(e.event_id for e in two.events)


def test_event_ids_depend_on_the_start_but_the_scene_does_not(
    demo_config: LinderoConfig, geography: Geography
) -> None:
    """Replaying a seed at another start keeps the kinematics but never reuses an event id."""
    one = short(demo_config, geography)
    two = short(demo_config, geography, start=START + dt.timedelta(hours=1))
    assert np.array_equal(one.truth.lat, two.truth.lat)
    assert [e.payload.get("range_m") for e in one.events] == [e.payload.get("range_m") for e in two.events]
    assert {e.event_id for e in one.events}.isdisjoint(e.event_id for e in two.events)


def test_event_ids_are_unique_version_4_uuids(quarter_hour: Simulation) -> None:
    """Every event id is a distinct RFC 9562 version-4 UUID."""
    ids = [uuid.UUID(e.event_id) for e in quarter_hour.events]
    assert len(set(ids)) == len(ids)
    assert {(u.version, u.variant) for u in ids} == {(4, uuid.RFC_4122)}


# -- the wire ------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["quarter_hour", "quarter_hour_tapachula"])
def test_every_payload_validates_strictly(which: str, request: pytest.FixtureRequest) -> None:
    """Each message is a SensorEvent or SensorStatus under strict validation with extra=forbid."""
    sim: Simulation = request.getfixturevalue(which)
    for stream, model in (("events", EVENTS), ("status", STATUSES)):
        payloads = [e.payload for e in sim.events if e.stream == stream]
        # one JSON array per stream: the same strict check per item, without per-call overhead
        assert len(model.validate_json(orjson.dumps(payloads), strict=True, extra="forbid")) == len(payloads)
        assert all(p["time"].endswith("Z") for p in payloads)
        assert all(("sensor_type" in p) == (stream == "events") for p in payloads)


def test_sensors_post_through_their_own_gateway(played: Played, demo_config: LinderoConfig) -> None:
    """An event's sensor is one its gateway lists, and every sensor of the region reports."""
    quarter_hour = played.sim
    for event in quarter_hour.events:
        assert event.sensor_id in demo_config.gateways_by_id[event.gateway_id].sensors
    region_sensors = {s.id for s in demo_config.sensors if s.region == played.region}
    assert {e.sensor_id for e in quarter_hour.events} == region_sensors


def test_events_are_in_time_order_inside_the_scenario(played: Played) -> None:
    """time_s is sorted, within [0, duration], and agrees with the payload's RFC 3339 time."""
    quarter_hour = played.sim
    times = [e.time_s for e in quarter_hour.events]
    assert times == sorted(times)
    assert times[0] >= 0.0
    assert times[-1] <= quarter_hour.duration_s
    for event in quarter_hour.events[:: max(1, len(times) // 500)]:
        stamped = dt.datetime.fromisoformat(event.payload["time"])
        assert stamped == START + dt.timedelta(milliseconds=round(event.time_s * 1000))


def test_origin_names_a_truth_for_detections_and_none_for_status(played: Played) -> None:
    """Every event has an origin entry; status reports have none, detections mostly a truth."""
    quarter_hour = played.sim
    assert set(quarter_hour.origin) == {e.event_id for e in quarter_hour.events}
    truths = set(quarter_hour.truth.ids)
    causes: Counter[str] = Counter()
    for event in quarter_hour.events:
        cause = quarter_hour.origin[event.event_id]
        if event.stream == "status":
            assert cause is None
        else:
            causes["truth" if cause is not None else "false"] += 1
            assert cause is None or cause in truths
    assert causes["truth"] > 10 * causes["false"] > 0


def test_the_default_scenario_has_every_scripted_behaviour(played: Played) -> None:
    """Fifteen minutes contain each kind of anomaly and each class of truth."""
    quarter_hour = played.sim
    kinds = Counter(e["kind"] for e in quarter_hour.expected)
    assert set(kinds) == {
        "border_crossing",
        "loitering",
        "rendezvous",
        "low_slow_flyer",
        "silent_sensor",
        "sensor_tamper",
        "sensor_low_battery",
    }
    assert set(quarter_hour.truth.classes) == {"person", "vehicle", "aircraft", "animal"}
    directions = Counter(e["direction"] for e in quarter_hour.expected if e["kind"] == "border_crossing")
    a, b = sorted(played.countries)
    assert directions[f"{a}->{b}"] >= 2
    assert directions[f"{b}->{a}"] >= 2
    by_type = Counter(e.payload.get("sensor_type", "status") for e in quarter_hour.events)
    assert min(by_type[kind] for kind in ("radar", "drone", "ground", "status")) > 0


# -- ground truth --------------------------------------------------------------------------------


def _sides(sim: Simulation, geography: Geography, truth_id: str) -> list[tuple[float, str]]:
    rows = sim.truth.of(truth_id)
    sides = []
    for time_s, lat, lon in zip(rows.time_s.tolist(), rows.lat.tolist(), rows.lon.tolist(), strict=True):
        country = geography.country_at(lon, lat)
        if country is not None:
            sides.append((time_s, country))
    return sides


def test_crossers_really_cross_and_are_listed_with_their_direction(played: Played) -> None:
    """A truth whose country (Geography.country_at) changes is listed with that direction."""
    quarter_hour = played.sim
    local = played.geography
    listed = {
        (e["truth_ids"][0], e["direction"]): e
        for e in quarter_hour.expected
        if e["kind"] == "border_crossing"
    }
    crossed = 0
    for truth_id in quarter_hour.truth.ids:
        sides = _sides(quarter_hour, local, truth_id)
        for (t0, before), (t1, after) in itertools.pairwise(sides):
            if before != after:
                crossed += 1
                entry = listed[(truth_id, f"{before}->{after}")]
                assert t0 - 1.0 <= entry["start_s"] <= entry["end_s"] <= t1 + 1.0
    assert crossed >= 6
    assert crossed == len(listed)


def test_road_traffic_and_animals_never_cross(played: Played) -> None:
    """Legitimate road vehicles stay on one side, and so do animals."""
    quarter_hour = played.sim
    local = played.geography
    staying = [t for t in quarter_hour.truth.ids if ":road-" in t or ":animal-" in t]
    assert len(staying) > 5
    for truth_id in staying:
        assert len({side for _, side in _sides(quarter_hour, local, truth_id)}) == 1, truth_id


def test_everything_stays_inside_the_region(played: Played, demo_config: LinderoConfig) -> None:
    """Every truth sample lies in the region's area."""
    quarter_hour = played.sim
    region = demo_config.regions_by_id[played.region]
    truth = quarter_hour.truth
    for lat, lon in zip(truth.lat[::7].tolist(), truth.lon[::7].tolist(), strict=True):
        assert region.contains(lat, lon)


def test_people_walk_and_vehicles_drive_at_their_speeds(played: Played) -> None:
    """Walkers keep to 1.0-1.6 m/s, off-road vehicles to 5-15 m/s, animals below 2 m/s."""
    quarter_hour = played.sim
    truth = quarter_hour.truth
    speed = np.hypot(truth.velocity_east_mps, truth.velocity_north_mps)
    ids = np.asarray(truth.ids)[truth.entity]
    for role, low, high in (("crosser", 1.0, 1.6), ("vehicle", 5.0, 15.0)):
        moving = np.char.find(ids.astype(str), f":{role}-") >= 0
        assert np.median(speed[moving]) >= low
        assert np.percentile(speed[moving], 95) <= high + 0.05
    animals = np.char.find(ids.astype(str), ":animal-") >= 0
    assert speed[animals].max() <= 2.05


def test_the_loiterer_stays_within_its_radius_for_the_scripted_time(played: Played) -> None:
    """Within 40 m of its spot for at least 8 minutes, within 150 m of the border, then leaves."""
    quarter_hour = played.sim
    [loiter] = [e for e in quarter_hour.expected if e["kind"] == "loitering"]
    assert loiter["end_s"] - loiter["start_s"] >= 480.0
    times, east, north = truth_en(quarter_hour, played.frame, loiter["truth_ids"][0])
    cx, cy, _ = played.frame.to_enu(loiter["lat"], loiter["lon"])
    distance = np.hypot(east - cx, north - cy)
    during = (times >= loiter["start_s"]) & (times <= loiter["end_s"])
    assert during.sum() >= 480
    assert distance[during].max() <= 40.0
    assert distance[times > loiter["end_s"] + 120].min() > 40.0


def test_the_rendezvous_pair_meets_within_20_m_for_two_minutes(played: Played) -> None:
    """Two people from opposite sides stay < 20 m apart for >= 2 minutes, then separate."""
    quarter_hour = played.sim
    [meeting] = [e for e in quarter_hour.expected if e["kind"] == "rendezvous"]
    a, b = meeting["truth_ids"]
    ta, ea, na = truth_en(quarter_hour, played.frame, a)
    tb, eb, nb = truth_en(quarter_hour, played.frame, b)
    common, ia, ib = np.intersect1d(ta, tb, return_indices=True)
    apart = np.hypot(ea[ia] - eb[ib], na[ia] - nb[ib])
    close = common[apart < 20.0]
    assert close.max() - close.min() >= 120.0
    assert close.min() <= meeting["start_s"] + 1
    assert close.max() >= meeting["end_s"] - 1
    assert apart.max() > 100.0
    local = played.geography
    assert {_sides(quarter_hour, local, a)[0][1], _sides(quarter_hour, local, b)[0][1]} == played.countries


def test_the_aircraft_is_low_and_slow_and_crosses(played: Played) -> None:
    """The flyer stays 50-300 m up, slower than 40 m/s, and is listed as a crossing too."""
    quarter_hour = played.sim
    [flyer] = [e for e in quarter_hour.expected if e["kind"] == "low_slow_flyer"]
    rows = quarter_hour.truth.of(flyer["truth_ids"][0])
    assert rows.alt_m.min() >= 50.0
    assert rows.alt_m.max() < 300.0
    speed = np.hypot(rows.velocity_east_mps, rows.velocity_north_mps)
    assert np.median(speed) >= 20.0
    assert speed.max() < 40.0
    assert any(
        e["kind"] == "border_crossing" and e["truth_ids"] == flyer["truth_ids"] for e in quarter_hour.expected
    )


# -- scaling -------------------------------------------------------------------------------------


def test_short_scenarios_keep_what_fits(demo_config: LinderoConfig, geography: Geography) -> None:
    """Two minutes: crossings, a flyer and faults, but no 8-minute loiter or 2-minute meeting."""
    kinds = {e["kind"] for e in short(demo_config, geography).expected}
    assert {"border_crossing", "low_slow_flyer", "silent_sensor", "sensor_tamper"} <= kinds
    assert not kinds & {"loitering", "rendezvous"}
    five = simulate(demo_config, geography, REGION, seed=3, start=START, duration_s=300)
    assert "rendezvous" in {e["kind"] for e in five.expected}


def test_density_scales_the_counts(demo_config: LinderoConfig, geography: Geography) -> None:
    """Twice the density: more truths and more detections."""
    base = short(demo_config, geography)
    dense = short(demo_config, geography, params=ScenarioParams(density=2.0))
    assert len(dense.truth.ids) > 1.5 * len(base.truth.ids)
    assert len(dense.events) > 1.3 * len(base.events)


def test_regions_combine_into_one_sorted_scenario(demo_config: LinderoConfig, geography: Geography) -> None:
    """--all-regions: both regions' events in one time order, truths and expectations kept apart."""
    parts = [short(demo_config, geography, region=r.id) for r in demo_config.regions]
    both = combine(parts)
    assert len(both.events) == sum(len(p.events) for p in parts)
    assert [e.time_s for e in both.events] == sorted(e.time_s for e in both.events)
    assert set(both.truth.ids) == {t for p in parts for t in p.truth.ids}
    assert {e["region"] for e in both.expected} == set(both.regions)


def test_bad_arguments_are_refused(demo_config: LinderoConfig, geography: Geography) -> None:
    """Unknown region, naive start and non-positive duration are errors, not guesses."""
    with pytest.raises(ValueError, match="unknown region"):
        short(demo_config, geography, region="atlantis")
    with pytest.raises(ValueError, match="timezone"):
        short(demo_config, geography, start=dt.datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="positive"):
        short(demo_config, geography, duration_s=0.0)


def test_files_round_trip(demo_config: LinderoConfig, geography: Geography, tmp_path: Path) -> None:
    """What files.write writes, files.load reads back unchanged."""
    sim = short(demo_config, geography)
    files.write(sim, tmp_path)
    loaded = files.load(tmp_path)
    assert loaded.events == sim.events
    assert loaded.origin == sim.origin
    assert loaded.expected == sim.expected
    assert (loaded.seed, loaded.start, loaded.duration_s, loaded.regions) == (
        sim.seed,
        sim.start,
        sim.duration_s,
        sim.regions,
    )
    assert list(loaded.truth.rows()) == list(sim.truth.rows())
    assert loaded == sim
    first = orjson.loads((tmp_path / "events.ndjson").read_bytes().splitlines()[0])
    assert set(first) == {"time_s", "gateway_id", "stream", "payload"}


def test_loading_a_broken_folder_says_what_is_wrong(
    demo_config: LinderoConfig, geography: Geography, tmp_path: Path
) -> None:
    """A missing file or a bad line is reported with the file (and line)."""
    with pytest.raises(files.ScenarioFileError, match=r"scenario\.json: missing"):
        files.load(tmp_path)
    files.write(short(demo_config, geography, duration_s=20.0), tmp_path)
    with (tmp_path / "events.ndjson").open("ab") as handle:
        handle.write(b"{not json\n")
    with pytest.raises(files.ScenarioFileError, match=r"events\.ndjson:\d+: not JSON"):
        files.load_events(tmp_path)


def test_truth_rows_are_one_per_second_per_entity(quarter_hour: Simulation) -> None:
    """Truth comes at 1 Hz: whole seconds, one row per entity and second."""
    truth = quarter_hour.truth
    assert np.all(truth.time_s == np.round(truth.time_s))
    pairs = Counter(zip(truth.time_s.tolist(), truth.entity.tolist(), strict=True))
    assert max(pairs.values()) == 1
    per_entity: dict[int, list[float]] = defaultdict(list)
    for time_s, entity in pairs:
        per_entity[entity].append(time_s)
    for times in per_entity.values():
        assert np.all(np.diff(sorted(times)) == 1.0)
