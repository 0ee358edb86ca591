"""Anomaly rules on tracks placed on the real Cúcuta and Tapachula borders, in event time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest

from schemas.alerts import AlertKind, Severity
from services.core.config import LinderoConfig
from services.correlator.domain.alertbook import AlertBook
from services.correlator.domain.region import RegionContext
from services.correlator.domain.rules import (
    ActivitySurge,
    BorderCrossing,
    Finding,
    ImplausibleSpeed,
    Loitering,
    LowSlowFlyer,
    Rendezvous,
    RestrictedZone,
    TrackRule,
    TrackView,
    UncorroboratedTrips,
    track_rules,
    views,
)
from services.correlator.domain.tracker import TrackEstimate
from tests.unit.correlator.worlds import (
    CUCUTA,
    T0,
    TAPACHULA,
    beside,
    border_distance_at,
    context_of,
    country_at,
    estimate,
    observe,
    offset,
    square_zone,
    track_id,
    trip,
    with_rules,
    with_zones,
)

Region = Callable[..., RegionContext]
ZoneSpec = tuple[str, tuple[float, float], float, str]


@pytest.fixture
def region(demo_config: LinderoConfig) -> Region:
    """Build a region's context from the demo configuration, with changed rules or other zones.

    ``zones`` (when given) replace the configured ones: ``(zone id, centre, half side m,
    severity)`` in the region's local frame.
    """

    def make(
        name: str = CUCUTA, *, zones: Sequence[ZoneSpec] | None = None, **rules: dict[str, Any]
    ) -> RegionContext:
        config = with_rules(demo_config, **rules) if rules else demo_config
        if zones is not None:
            base = context_of(config, name)
            config = with_zones(
                config, [square_zone(base, z, centre, half, sev) for z, centre, half, sev in zones]
            )
        return context_of(config, name)

    return make


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def active(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.active]


# -- the geometry the tests rely on ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "a", "b"), [(CUCUTA, "CO", "VE"), (TAPACHULA, "MX", "GT")])
def test_points_beside_the_border_are_in_the_right_country_at_the_right_distance(
    region: Region, name: str, a: str, b: str
) -> None:
    """The builders put points on the asked side of the real border line, at the asked distance."""
    context = region(name)
    for country in (a, b):
        for distance in (10.0, 100.0, 800.0):
            point = beside(context, country, distance)
            assert country_at(context, point) == country
            assert border_distance_at(context, point) == pytest.approx(distance, rel=0.2)


@pytest.mark.parametrize("name", [CUCUTA, TAPACHULA])
def test_demo_regions_run_every_track_rule(region: Region, name: str) -> None:
    """Both demo regions have zones: all eight track rules run, in a fixed order."""
    context = region(name)
    assert len(context.zones) >= 2
    assert list(track_rules(context)) == [
        "border_crossing",
        "restricted_zone",
        "loitering",
        "rendezvous",
        "low_slow_flyer",
        "implausible_speed",
        "activity_surge",
        "uncorroborated_trip",
    ]


def test_without_zones_or_when_disabled_a_rule_does_not_run(region: Region) -> None:
    """No zones switch the zone rule off; ``enabled: false`` switches any rule off."""
    assert "restricted_zone" not in track_rules(region(zones=[]))
    rules = track_rules(region(loitering={"enabled": False}, activity_surge={"enabled": False}))
    assert "loitering" not in rules
    assert "activity_surge" not in rules
    assert isinstance(rules["restricted_zone"], RestrictedZone)
    assert isinstance(rules["border_crossing"], BorderCrossing)


# -- border crossing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "start", "end", "border_id", "border_name"),
    [
        (CUCUTA, "CO", "VE", "CO-VE", "Colombia–Venezuela"),
        (CUCUTA, "VE", "CO", "CO-VE", "Colombia–Venezuela"),
        (TAPACHULA, "MX", "GT", "GT-MX", "Guatemala–Mexico"),
        (TAPACHULA, "GT", "MX", "GT-MX", "Guatemala–Mexico"),
    ],
)
def test_a_track_established_on_each_side_crosses_with_direction_and_border(
    region: Region, name: str, start: str, end: str, border_id: str, border_name: str
) -> None:
    """Established on one side, then on the other: one finding naming the direction and the border."""
    context = region(name)
    rule = BorderCrossing(context, context.rules)
    here, there = beside(context, start, 100), beside(context, end, 100)
    stays = estimate(2, beside(context, start, 300), T0, region=name)
    assert observe(rule, context, estimate(1, here, T0, region=name), stays) == []
    moved = estimate(1, there, T0 + 120, velocity=(1.2, 0.0), others=[("VE", "fanb")], region=name)
    finding = only(
        observe(rule, context, moved, estimate(2, beside(context, start, 310), T0 + 120, region=name))
    )
    assert finding.kind is AlertKind.BORDER_CROSSING
    assert finding.key == track_id(1, name)
    assert finding.active
    assert finding.severity is Severity.HIGH
    assert finding.time_s == T0 + 120
    assert (finding.east_m, finding.north_m) == there
    assert finding.track_ids == (track_id(1, name),)
    assert finding.owners == (("CO", "ejercito"), ("VE", "fanb"))
    assert finding.details["direction"] == f"{start}->{end}"
    assert (finding.details["from"], finding.details["to"]) == (start, end)
    assert finding.details["border_id"] == border_id
    assert finding.details["border"] == border_name
    assert finding.details["crossings"] == 1
    assert f"{start}→{end}" in finding.summary
    assert border_name in finding.summary


def test_jitter_across_the_line_within_the_hysteresis_band_is_no_crossing(region: Region) -> None:
    """Positions within ``hysteresis_m`` of the line never count; the established side is kept."""
    context = region()
    rule = BorderCrossing(context, context.rules)
    assert context.rules.border_crossing.hysteresis_m == 25.0
    assert observe(rule, context, estimate(1, beside(context, "CO", 100), T0)) == []
    jitter = [("VE", 10), ("CO", 15), ("VE", 20), ("CO", 5), ("VE", 22), ("VE", 12)]
    for step, (country, distance) in enumerate(jitter, start=1):
        assert observe(rule, context, estimate(1, beside(context, country, distance), T0 + 2 * step)) == []
    crossed = only(observe(rule, context, estimate(1, beside(context, "VE", 40), T0 + 20)))
    assert crossed.details["direction"] == "CO->VE"


def test_a_wider_hysteresis_from_the_configuration_is_respected(region: Region) -> None:
    """With ``hysteresis_m: 150``, 100 m into the other country is not yet established there."""
    context = region(border_crossing={"hysteresis_m": 150.0})
    rule = BorderCrossing(context, context.rules)
    assert observe(rule, context, estimate(1, beside(context, "CO", 200), T0)) == []
    assert observe(rule, context, estimate(1, beside(context, "VE", 100), T0 + 60)) == []
    assert (
        only(observe(rule, context, estimate(1, beside(context, "VE", 200), T0 + 120))).details["crossings"]
        == 1
    )


def test_an_animal_crossing_is_ignored_unless_configured(region: Region) -> None:
    """Animals are in ``ignore_classes`` by default; with an empty list they cross like anyone."""
    for ignore, expected in ((None, 0), ([], 1)):
        context = region(border_crossing={"ignore_classes": ignore}) if ignore is not None else region()
        rule = BorderCrossing(context, context.rules)
        observe(rule, context, estimate(1, beside(context, "CO", 100), T0, target_class="animal"))
        found = observe(
            rule, context, estimate(1, beside(context, "VE", 100), T0 + 60, target_class="animal")
        )
        assert len(found) == expected


def test_a_track_first_seen_in_ve_is_no_crossing_until_it_crosses(region: Region) -> None:
    """The first sighting only establishes a side: staying there says nothing, leaving it does."""
    context = region()
    rule = BorderCrossing(context, context.rules)
    for step, distance in enumerate((100, 300, 200)):
        assert observe(rule, context, estimate(1, beside(context, "VE", distance), T0 + 10 * step)) == []
    assert (
        only(observe(rule, context, estimate(1, beside(context, "CO", 100), T0 + 60))).details["direction"]
        == "VE->CO"
    )


def test_crossing_back_is_a_second_crossing_of_the_same_subject(region: Region) -> None:
    """CO -> VE -> CO: two findings for one key, the second with ``crossings == 2``."""
    context = region()
    rule = BorderCrossing(context, context.rules)
    observe(rule, context, estimate(1, beside(context, "CO", 100), T0))
    first = only(observe(rule, context, estimate(1, beside(context, "VE", 100), T0 + 60)))
    assert observe(rule, context, estimate(1, beside(context, "VE", 150), T0 + 90)) == []
    second = only(observe(rule, context, estimate(1, beside(context, "CO", 100), T0 + 150)))
    assert second.key == first.key
    assert second.details["crossings"] == 2
    assert second.details["direction"] == "VE->CO"


def test_forget_resets_side_and_count(region: Region) -> None:
    """After ``forget`` the next sighting is a first sighting and the crossing count restarts."""
    context = region()
    rule = BorderCrossing(context, context.rules)
    observe(rule, context, estimate(1, beside(context, "CO", 100), T0))
    observe(rule, context, estimate(1, beside(context, "VE", 100), T0 + 60))
    rule.forget(track_id(1))
    assert observe(rule, context, estimate(1, beside(context, "CO", 100), T0 + 120)) == []
    assert (
        only(observe(rule, context, estimate(1, beside(context, "VE", 100), T0 + 180))).details["crossings"]
        == 1
    )


# -- restricted zone -----------------------------------------------------------------------------------


def zoned(
    region: Region, severity: str = "critical", **rules: dict[str, Any]
) -> tuple[RegionContext, tuple[float, float]]:
    """The Cúcuta region with a 400 m square zone ``depot`` 1 km inside Colombia, and its centre."""
    centre = beside(region(), "CO", 1_000)
    return region(zones=[("depot", centre, 200.0, severity)], **rules), centre


def test_entering_a_zone_fires_and_staying_updates_the_dwell(region: Region) -> None:
    """Outside: nothing; inside: one finding per look with the zone's severity and a growing dwell."""
    context, centre = zoned(region)
    rule = RestrictedZone(context, context.rules)
    assert observe(rule, context, estimate(1, offset(centre, 300), T0)) == []
    entered = only(observe(rule, context, estimate(1, offset(centre, 150), T0 + 10)))
    assert entered.kind is AlertKind.RESTRICTED_ZONE
    assert entered.key == f"depot|{track_id(1)}"
    assert entered.severity is Severity.CRITICAL
    assert entered.details == {"zone_id": "depot", "zone": "Zone depot", "dwell_s": 0}
    assert "entered restricted zone Zone depot" in entered.summary
    staying = only(observe(rule, context, estimate(1, offset(centre, 50), T0 + 40)))
    assert staying.key == entered.key
    assert staying.details["dwell_s"] == 30
    assert "inside restricted zone Zone depot for 30 s" in staying.summary
    long_stay = only(observe(rule, context, estimate(1, offset(centre, 60), T0 + 10 + 3_900)))
    assert long_stay.details["dwell_s"] == 3_900
    assert long_stay.summary.endswith("for 1 h 05 min")


def test_leaving_a_zone_clears_once(region: Region) -> None:
    """Leaving produces one inactive finding for the same key, and nothing after that."""
    context, centre = zoned(region)
    rule = RestrictedZone(context, context.rules)
    observe(rule, context, estimate(1, centre, T0))
    left = only(observe(rule, context, estimate(1, offset(centre, 400), T0 + 20)))
    assert not left.active
    assert left.kind is AlertKind.RESTRICTED_ZONE
    assert left.key == f"depot|{track_id(1)}"
    assert observe(rule, context, estimate(1, offset(centre, 500), T0 + 30)) == []
    again = only(observe(rule, context, estimate(1, centre, T0 + 60)))
    assert again.details["dwell_s"] == 0


def test_a_track_not_seen_keeps_its_zone_state(region: Region) -> None:
    """A look without the track is no evidence that it left; ``forget`` drops the dwell."""
    context, centre = zoned(region)
    rule = RestrictedZone(context, context.rules)
    observe(rule, context, estimate(1, centre, T0))
    assert observe(rule, context, estimate(2, offset(centre, 900), T0 + 10)) == []
    assert only(observe(rule, context, estimate(1, centre, T0 + 20))).details["dwell_s"] == 20
    rule.forget(track_id(1))
    assert only(observe(rule, context, estimate(1, centre, T0 + 30))).details["dwell_s"] == 0


@pytest.mark.parametrize(
    ("name", "zone_id", "country"),
    [
        (CUCUTA, "co-zone-puesto-1", "CO"),
        (CUCUTA, "ve-zone-aduana", "VE"),
        (TAPACHULA, "mx-zone-estacion", "MX"),
        (TAPACHULA, "gt-zone-destacamento", "GT"),
    ],
)
def test_the_demo_zones_fire_where_they_are(region: Region, name: str, zone_id: str, country: str) -> None:
    """A track at a configured demo zone's centre is inside it (and in its country); 1 km away it is not."""
    context = region(name)
    zone = next(z for z in context.zones if z.zone_id == zone_id)
    centre = (zone.area.centroid.x, zone.area.centroid.y)
    assert country_at(context, centre) == country
    rule = RestrictedZone(context, context.rules)
    assert observe(rule, context, estimate(1, offset(centre, 1_000), T0, region=name)) == []
    finding = only(observe(rule, context, estimate(1, centre, T0 + 5, region=name)))
    assert finding.key == f"{zone_id}|{track_id(1, name)}"
    assert finding.details["zone"] == zone.name
    assert finding.severity is Severity.HIGH


def test_zone_ignores_configured_classes(region: Region) -> None:
    """An animal inside the zone is ignored; with animals no longer ignored it fires."""
    context, centre = zoned(region)
    rule = RestrictedZone(context, context.rules)
    assert observe(rule, context, estimate(1, centre, T0, target_class="animal")) == []
    assert (
        only(observe(rule, context, estimate(2, centre, T0, target_class="vehicle"))).key
        == f"depot|{track_id(2)}"
    )
    open_context, _ = zoned(region, restricted_zone={"ignore_classes": []})
    open_rule = RestrictedZone(open_context, open_context.rules)
    assert len(observe(open_rule, open_context, estimate(1, centre, T0, target_class="animal"))) == 1


# -- loitering -----------------------------------------------------------------------------------------


def loiter(
    rule: TrackRule,
    context: RegionContext,
    at: tuple[float, float],
    start_s: float,
    until_s: float,
    **kw: Any,
) -> list[tuple[float, list[Finding]]]:
    """Looks every 30 s at a track wandering up to 20 m around ``at``."""
    out = []
    wander = [(0, 0), (20, 0), (0, 15), (-15, -10), (10, -20)]
    time_s, step = start_s, 0
    while time_s <= until_s:
        point = offset(at, *wander[step % len(wander)])
        out.append((time_s - start_s, observe(rule, context, estimate(1, point, time_s, **kw))))
        step += 1
        time_s = start_s + 30 * step
    return out


def test_staying_near_the_border_for_the_minimum_duration_fires(region: Region) -> None:
    """Within 60 m for 300 s, 200 m from the border: nothing before 300 s, a finding from then on."""
    context = region()
    rule = Loitering(context, context.rules)
    spot = beside(context, "CO", 200)
    looks = loiter(rule, context, spot, T0, T0 + 330)
    assert all(found == [] for elapsed, found in looks if elapsed < 300)
    fired = only(dict(looks)[300])
    assert fired.kind is AlertKind.LOITERING
    assert fired.key == track_id(1)
    assert fired.severity is Severity.MEDIUM
    assert (fired.east_m, fired.north_m) == spot
    assert fired.details["duration_s"] == 300
    assert fired.details["border_distance_m"] == pytest.approx(border_distance_at(context, spot), abs=25)
    assert only(dict(looks)[330]).details["duration_s"] == 330


def test_moving_away_clears_and_restarts_the_stay(region: Region) -> None:
    """Leaving the radius clears the loitering and a new stay needs the full duration again."""
    context = region()
    rule = Loitering(context, context.rules)
    spot = beside(context, "CO", 200)
    loiter(rule, context, spot, T0, T0 + 300)
    moved = offset(spot, 0, 100)
    cleared = only(observe(rule, context, estimate(1, moved, T0 + 310)))
    assert not cleared.active
    assert cleared.key == track_id(1)
    looks = loiter(rule, context, moved, T0 + 340, T0 + 610)
    assert all(found == [] for elapsed, found in looks if elapsed < 270)
    assert only(dict(looks)[270]).details["duration_s"] == 300


@pytest.mark.parametrize(
    ("distance_m", "until_s", "target_class"),
    [(1_500, 900, "person"), (200, 290, "person"), (200, 900, "aircraft"), (200, 900, "animal")],
    ids=["far-from-border", "too-short", "aircraft", "animal"],
)
def test_no_loitering_far_from_the_border_too_short_or_of_other_classes(
    region: Region, distance_m: float, until_s: float, target_class: str
) -> None:
    """1.5 km from the border, under 300 s, or not a person/vehicle/unknown: nothing."""
    context = region()
    rule = Loitering(context, context.rules)
    looks = loiter(
        rule, context, beside(context, "CO", distance_m), T0, T0 + until_s, target_class=target_class
    )
    assert all(found == [] for _, found in looks)


def test_loitering_radius_comes_from_the_configuration(region: Region) -> None:
    """With ``radius_m: 150`` a 100 m shift stays within the stay and the duration keeps growing."""
    context = region(loitering={"radius_m": 150.0})
    rule = Loitering(context, context.rules)
    spot = beside(context, "VE", 200)
    loiter(rule, context, spot, T0, T0 + 300)
    assert (
        only(observe(rule, context, estimate(1, offset(spot, 0, 100), T0 + 330))).details["duration_s"] == 330
    )


# -- rendezvous ----------------------------------------------------------------------------------------


def pair(
    context: RegionContext, at: tuple[float, float], gap_m: float, time_s: float, **kw: Any
) -> tuple[TrackEstimate, TrackEstimate]:
    """Tracks 9 and 2, ``gap_m`` apart east-west around ``at``."""
    return (
        estimate(9, offset(at, gap_m / 2), time_s, **kw),
        estimate(2, offset(at, -gap_m / 2), time_s, owner=("VE", "fanb"), **kw),
    )


def test_two_tracks_together_near_the_border_meet(region: Region) -> None:
    """10 m apart for 60 s, 300 m from the border: one finding per look, keyed by the sorted ids."""
    context = region()
    rule = Rendezvous(context, context.rules)
    spot = beside(context, "CO", 300)
    for elapsed in (0, 30, 59):
        assert observe(rule, context, *pair(context, spot, 10, T0 + elapsed)) == []
    met = only(observe(rule, context, *pair(context, spot, 10, T0 + 60)))
    key = f"{track_id(2)}|{track_id(9)}"
    assert met.kind is AlertKind.RENDEZVOUS
    assert met.key == key
    assert met.track_ids == (track_id(2), track_id(9))
    assert met.severity is Severity.HIGH
    assert met.details["duration_s"] == 60
    assert met.details["distance_m"] == pytest.approx(10.0)
    assert met.owners == (("VE", "fanb"), ("CO", "ejercito"))
    assert (met.east_m, met.north_m) == pytest.approx(spot)
    reversed_order = observe(rule, context, *reversed(pair(context, spot, 10, T0 + 90)))
    assert [f.key for f in reversed_order] == [key]


def test_three_tracks_together_are_three_pairs(region: Region) -> None:
    """Each pair within the distance is its own subject, once."""
    context = region()
    rule = Rendezvous(context, context.rules)
    spot = beside(context, "CO", 300)
    group = [estimate(n, offset(spot, 5 * n), T0) for n in (1, 2, 3)]
    observe(rule, context, *group)
    later = [estimate(n, offset(spot, 5 * n), T0 + 60) for n in (1, 2, 3)]
    keys = sorted(f.key for f in observe(rule, context, *later))
    assert keys == [f"{track_id(a)}|{track_id(b)}" for a, b in ((1, 2), (1, 3), (2, 3))]


@pytest.mark.parametrize(
    ("gap_m", "distance_m", "duration_s", "target_class"),
    [(50, 300, 120, "person"), (10, 300, 50, "person"), (10, 3_000, 120, "person"), (10, 300, 120, "animal")],
    ids=["too-far-apart", "too-short", "far-from-border", "animals"],
)
def test_no_rendezvous_apart_briefly_far_from_the_border_or_of_other_classes(
    region: Region, gap_m: float, distance_m: float, duration_s: float, target_class: str
) -> None:
    """50 m apart, under 60 s, 3 km from the border, or animals: nothing."""
    context = region()
    rule = Rendezvous(context, context.rules)
    spot = beside(context, "VE", distance_m, along=0.4)
    for elapsed in range(0, int(duration_s) + 1, 10):
        assert (
            observe(rule, context, *pair(context, spot, gap_m, T0 + elapsed, target_class=target_class)) == []
        )


def test_separation_clears_the_rendezvous_and_restarts_the_clock(region: Region) -> None:
    """Moving apart clears the pair once; meeting again needs the full duration again."""
    context = region()
    rule = Rendezvous(context, context.rules)
    spot = beside(context, "CO", 300)
    observe(rule, context, *pair(context, spot, 10, T0))
    assert len(observe(rule, context, *pair(context, spot, 10, T0 + 60))) == 1
    cleared = only(observe(rule, context, *pair(context, spot, 100, T0 + 70)))
    assert not cleared.active
    assert cleared.key == f"{track_id(2)}|{track_id(9)}"
    assert observe(rule, context, *pair(context, spot, 100, T0 + 80)) == []
    assert observe(rule, context, *pair(context, spot, 10, T0 + 90)) == []
    assert observe(rule, context, *pair(context, spot, 10, T0 + 149)) == []
    assert len(observe(rule, context, *pair(context, spot, 10, T0 + 150))) == 1


def test_a_partner_that_disappears_clears_the_rendezvous(region: Region) -> None:
    """When only one of the pair is still seen, the pair is over."""
    context = region()
    rule = Rendezvous(context, context.rules)
    spot = beside(context, "CO", 300)
    observe(rule, context, *pair(context, spot, 10, T0))
    observe(rule, context, *pair(context, spot, 10, T0 + 60))
    stayed, _ = pair(context, spot, 10, T0 + 70)
    assert not only(observe(rule, context, stayed)).active


# -- low-slow flyer ------------------------------------------------------------------------------------


def flyer(number: int, time_s: float, **kw: Any) -> TrackEstimate:
    settings: dict[str, Any] = {
        "target_class": "aircraft",
        "probability": 0.9,
        "velocity": (0.0, 30.0),
        "alt_m": 150.0,
    }
    settings.update(kw)
    return estimate(number, (1_000.0, 2_000.0), time_s, **settings)


def test_a_low_slow_aircraft_fires_after_the_minimum_duration(region: Region) -> None:
    """P(aircraft) 0.9, 30 m/s, 150 m up: nothing at 0 and 4 s, a finding at 5 s."""
    context = region()
    rule = LowSlowFlyer(context, context.rules)
    assert observe(rule, context, flyer(1, T0)) == []
    assert observe(rule, context, flyer(1, T0 + 4)) == []
    fired = only(observe(rule, context, flyer(1, T0 + 5)))
    assert fired.kind is AlertKind.LOW_SLOW_FLYER
    assert fired.key == track_id(1)
    assert fired.severity is Severity.HIGH
    assert fired.details["altitude_agl_m"] == 150
    assert fired.details["speed_mps"] == 30.0
    assert fired.details["heading_deg"] == 0
    assert fired.details["p_aircraft"] == 0.9


def test_an_aircraft_of_unknown_altitude_counts_as_low(region: Region) -> None:
    """Without altitude only class and speed decide."""
    context = region()
    rule = LowSlowFlyer(context, context.rules)
    observe(rule, context, flyer(1, T0, alt_m=None))
    fired = only(observe(rule, context, flyer(1, T0 + 6, alt_m=None)))
    assert fired.details["altitude_agl_m"] is None
    assert "altitude unknown" in fired.summary


@pytest.mark.parametrize(
    "changes",
    [
        {"velocity": (0.0, 60.0)},
        {"alt_m": 800.0},
        {"target_class": "person", "probability": 0.9},
        {"probability": 0.45},
    ],
    ids=["fast", "high", "person", "unsure"],
)
def test_fast_high_or_non_aircraft_tracks_are_no_low_slow_flyers(
    region: Region, changes: dict[str, Any]
) -> None:
    """60 m/s, 800 m up, a person, or P(aircraft) below 0.5: nothing however long."""
    context = region()
    rule = LowSlowFlyer(context, context.rules)
    for elapsed in range(0, 31, 5):
        assert observe(rule, context, flyer(1, T0 + elapsed, **changes)) == []


def test_climbing_away_clears_the_low_slow_flyer(region: Region) -> None:
    """Once reported, leaving the envelope clears it, and coming back needs the duration again."""
    context = region()
    rule = LowSlowFlyer(context, context.rules)
    observe(rule, context, flyer(1, T0))
    observe(rule, context, flyer(1, T0 + 5))
    cleared = only(observe(rule, context, flyer(1, T0 + 8, alt_m=900.0)))
    assert not cleared.active
    assert observe(rule, context, flyer(1, T0 + 10)) == []
    assert observe(rule, context, flyer(1, T0 + 14)) == []
    assert len(observe(rule, context, flyer(1, T0 + 15))) == 1


def test_a_low_slow_flyer_in_flight_is_republished_only_at_the_update_interval(region: Region) -> None:
    """Looked at every second for 90 s, altitude and heading wobbling: one alert, a revision per 30 s."""
    context = region()
    rule = LowSlowFlyer(context, context.rules)
    book = AlertBook(context)
    alerts = []
    for elapsed in range(91):
        wobble = (-1) ** elapsed
        track = flyer(1, T0 + elapsed, alt_m=150.0 + 3 * wobble, velocity=(2.0 * wobble, 30.0))
        alerts += [a for f in observe(rule, context, track) if (a := book.apply(f)) is not None]
    assert len({a.alert_id for a in alerts}) == 1
    assert [a.revision for a in alerts] == [1, 2, 3]
    assert [a.updated_at.timestamp() - T0 for a in alerts] == [5, 35, 65]


# -- implausible speed ---------------------------------------------------------------------------------


def runner(number: int, time_s: float, speed_mps: float = 15.0, **kw: Any) -> TrackEstimate:
    settings: dict[str, Any] = {"target_class": "person", "probability": 0.9, "speed_sigma_mps": 0.5}
    settings.update(kw)
    return estimate(number, (0.0, 0.0), time_s, velocity=(speed_mps, 0.0), **settings)


def test_a_sure_person_at_15_mps_sustained_is_implausible(region: Region) -> None:
    """A person (P 0.9) at 15 m/s for 10 s: nothing before, a finding naming the limit at 10 s."""
    context = region()
    rule = ImplausibleSpeed(context, context.rules)
    assert observe(rule, context, runner(1, T0)) == []
    assert observe(rule, context, runner(1, T0 + 9)) == []
    fired = only(observe(rule, context, runner(1, T0 + 10)))
    assert fired.kind is AlertKind.IMPLAUSIBLE_SPEED
    assert fired.severity is Severity.MEDIUM
    assert fired.details == {"speed_mps": 15.0, "limit_mps": 9.0, "class": "person"}


@pytest.mark.parametrize(
    "changes",
    [
        {"probability": 0.5},
        {"speed_sigma_mps": 4.0},
        {"target_class": "vehicle"},
        {"target_class": "unknown", "speed_mps": 100.0},
    ],
    ids=["unsure-class", "unsure-speed", "vehicle", "unknown-has-no-limit"],
)
def test_uncertain_or_plausible_speeds_are_not_implausible(region: Region, changes: dict[str, Any]) -> None:
    """P(person) 0.5, a speed within two sigma of the limit, a vehicle, or no limit: nothing."""
    context = region()
    rule = ImplausibleSpeed(context, context.rules)
    for elapsed in range(0, 41, 5):
        assert observe(rule, context, runner(1, T0 + elapsed, **changes)) == []


def test_a_brief_spike_is_not_implausible_and_restarts_the_clock(region: Region) -> None:
    """6 s at 15 m/s, a normal pace, 6 s more: nothing; the clock restarts at each spike."""
    context = region()
    rule = ImplausibleSpeed(context, context.rules)
    looks = [(0, 15.0), (6, 15.0), (8, 1.5), (10, 15.0), (16, 15.0), (18, 1.4)]
    for elapsed, speed in looks:
        assert observe(rule, context, runner(1, T0 + elapsed, speed)) == []
    assert observe(rule, context, runner(1, T0 + 20)) == []
    assert len(observe(rule, context, runner(1, T0 + 30))) == 1
    cleared = only(observe(rule, context, runner(1, T0 + 32, 1.5)))
    assert not cleared.active


# -- activity surge ------------------------------------------------------------------------------------

CELL = (-2, 5)
"""A 1 km cell of the Cúcuta frame (east -2000..-1000 m, north 5000..6000 m)."""


def surge(rule: TrackRule, context: RegionContext, per_bin: list[int]) -> list[list[Finding]]:
    """New tracks per 5-minute bin in ``CELL``; the findings produced at the close of each bin.

    Looks happen at the start (empty), in the middle of each bin (the new tracks, which stay
    in view) and at its end (the bin closes).
    """
    bin_s = context.rules.activity_surge.bin_s
    assert observe(rule, context, now_s=T0) == []
    number = 0
    out = []
    for index, count in enumerate(per_bin):
        middle = T0 + index * bin_s + bin_s / 2
        tracks = []
        for k in range(count):
            number += 1
            at = ((CELL[0] + 0.1 + 0.08 * k) * 1_000, (CELL[1] + 0.5) * 1_000)
            tracks.append(estimate(number, at, middle))
        assert observe(rule, context, *tracks, now_s=middle) == []
        assert observe(rule, context, *tracks, now_s=middle + 10) == [], "new tracks only count once"
        out.append(observe(rule, context, now_s=T0 + (index + 1) * bin_s))
    return out


def test_a_burst_of_new_tracks_after_a_quiet_baseline_fires_once_at_the_bin_close(region: Region) -> None:
    """Six bins of one new track, then eight: one finding when that bin closes, none after."""
    context = region()
    rule = ActivitySurge(context, context.rules)
    closes = surge(rule, context, [1, 1, 1, 1, 1, 1, 8, 1, 1])
    assert [len(c) for c in closes] == [0, 0, 0, 0, 0, 0, 1, 0, 0]
    fired = closes[6][0]
    assert fired.kind is AlertKind.ACTIVITY_SURGE
    assert fired.key == f"{CELL[0]}:{CELL[1]}"
    assert fired.time_s == T0 + 7 * 300
    assert (fired.east_m, fired.north_m) == (-1_500.0, 5_500.0)
    assert fired.details["count"] == 8
    assert 0 < fired.details["baseline_mean"] < 1
    assert fired.owners == (("CO", "ejercito"),)
    assert fired.severity is Severity.MEDIUM


@pytest.mark.parametrize(
    "per_bin",
    [[6] * 20, [1, 1, 1, 1, 1, 4], [8, 8, 1]],
    ids=["steady-above-min-count", "below-min-count", "no-baseline-yet"],
)
def test_counts_at_baseline_or_below_the_minimum_do_not_fire(region: Region, per_bin: list[int]) -> None:
    """A steady six per bin, four after a quiet spell, or bursts before two bins of history: nothing."""
    context = region()
    rule = ActivitySurge(context, context.rules)
    assert all(c == [] for c in surge(rule, context, per_bin))


def test_a_long_gap_closes_every_bin_in_between(region: Region) -> None:
    """One look 20 minutes later closes four bins: the burst counted in the first of them fires."""
    context = region()
    rule = ActivitySurge(context, context.rules)
    surge(rule, context, [1, 1, 1])
    burst = [estimate(100 + k, (-1_900.0 + 50 * k, 5_500.0), T0 + 1_000) for k in range(7)]
    assert observe(rule, context, *burst, now_s=T0 + 1_000) == []
    found = observe(rule, context, now_s=T0 + 900 + 1_200)
    assert [f.time_s for f in found] == [T0 + 1_200]
    assert found[0].details["count"] == 7


# -- uncorroborated ground-sensor trips -----------------------------------------------------------------

UGS = "co-cuc-ugs-03"


def site_of(context: RegionContext, sensor_id: str = UGS) -> tuple[float, float]:
    site = context.sensors[sensor_id]
    assert site.east_m is not None
    assert site.north_m is not None
    return site.east_m, site.north_m


def test_a_trip_no_track_explains_fires_after_the_wait(region: Region) -> None:
    """A person trip, no track near: nothing after 10 s, one finding after 20 s, then nothing."""
    context = region()
    rule = UncorroboratedTrips(context, context.rules)
    rule.add([trip(context, UGS, T0, event_id="trip-1")])
    far = estimate(1, offset(site_of(context), 300), T0 + 10)
    assert observe(rule, context, far, now_s=T0 + 10) == []
    fired = only(observe(rule, context, far, now_s=T0 + 20))
    assert fired.kind is AlertKind.UNCORROBORATED_TRIP
    assert fired.key == UGS
    assert fired.severity is Severity.LOW
    assert fired.time_s == T0
    assert (fired.east_m, fired.north_m) == site_of(context)
    assert fired.sensor_ids == (UGS,)
    assert fired.owners == (("CO", "ejercito"),)
    assert fired.evidence == ("trip-1",)
    assert fired.details["trips"] == 1
    assert observe(rule, context, far, now_s=T0 + 40) == []


def test_a_track_near_the_sensor_explains_the_trip(region: Region) -> None:
    """A live track 100 m from the sensor when the wait is over: nothing."""
    context = region()
    rule = UncorroboratedTrips(context, context.rules)
    rule.add([trip(context, UGS, T0)])
    near = estimate(1, offset(site_of(context), 60, 80), T0 + 20)
    assert observe(rule, context, near, now_s=T0 + 20) == []
    assert observe(rule, context, now_s=T0 + 60) == []


@pytest.mark.parametrize(
    ("sensor_id", "target_class", "confidence"),
    [(UGS, "animal", 0.9), (UGS, "person", 0.3), ("co-cuc-rdr-1", "person", 0.9)],
    ids=["animal", "unsure", "not-a-ground-sensor"],
)
def test_animal_unsure_and_non_ground_trips_are_ignored(
    region: Region, sensor_id: str, target_class: str, confidence: float
) -> None:
    """Animals, confidence below 0.4, and presence reports of other sensors never fire."""
    context = region()
    rule = UncorroboratedTrips(context, context.rules)
    rule.add([trip(context, sensor_id, T0, target_class=target_class, confidence=confidence)])
    assert observe(rule, context, now_s=T0 + 30) == []
    assert rule.state()["pending"] == []


def test_the_third_trip_of_a_sensor_escalates_to_medium(region: Region) -> None:
    """Three unexplained trips a minute apart: low, low, then medium, counted in one subject."""
    context = region()
    rule = UncorroboratedTrips(context, context.rules)
    found = []
    for k in range(3):
        rule.add([trip(context, UGS, T0 + 60 * k)])
        found.append(only(observe(rule, context, now_s=T0 + 60 * k + 25)))
    assert [f.severity for f in found] == [Severity.LOW, Severity.LOW, Severity.MEDIUM]
    assert [f.details["trips"] for f in found] == [1, 2, 3]
    assert {f.key for f in found} == {UGS}
    assert "3 such trips" in found[2].summary


def test_trips_of_other_sensors_are_counted_apart(region: Region) -> None:
    """Two sensors tripping twice each: every count stays at two, severity low."""
    context = region()
    rule = UncorroboratedTrips(context, context.rules)
    rule.add([trip(context, UGS, T0), trip(context, "ve-tac-ugs-03", T0)])
    rule.add([trip(context, UGS, T0 + 5), trip(context, "ve-tac-ugs-03", T0 + 5)])
    found = observe(rule, context, now_s=T0 + 30)
    assert sorted((f.key, f.details["trips"]) for f in found) == [
        (UGS, 1),
        (UGS, 2),
        ("ve-tac-ugs-03", 1),
        ("ve-tac-ugs-03", 2),
    ]
    assert {f.owners for f in found if f.key == "ve-tac-ugs-03"} == {(("VE", "fanb"),)}
    assert all(f.severity is Severity.LOW for f in found)


def test_isolated_trips_hours_apart_do_not_escalate(region: Region) -> None:
    """Trips further apart than the cooldown are separate series: each is the first of its own."""
    context = region()
    rule = UncorroboratedTrips(context, context.rules)
    looks = []
    for k in range(4):
        rule.add([trip(context, UGS, T0 + 3_600 * k)])
        looks.append(observe(rule, context, now_s=T0 + 3_600 * k + 25))
    assert [[f.details["trips"] for f in active(found)] for found in looks] == [[1], [1], [1], [1]]
    assert all(f.severity is Severity.LOW for found in looks for f in active(found))
    ended = [f for found in looks for f in found if not f.active]
    assert [(f.key, f.time_s) for f in ended] == [(UGS, T0), (UGS, T0 + 3_600), (UGS, T0 + 7_200)]


def test_trips_within_the_cooldown_of_each_other_are_one_series(region: Region) -> None:
    """Trips 500 s apart (cooldown 600 s) keep counting and escalate; none is cleared."""
    context = region()
    rule = UncorroboratedTrips(context, context.rules)
    found = []
    for k in range(4):
        rule.add([trip(context, UGS, T0 + 500 * k)])
        found += observe(rule, context, now_s=T0 + 500 * k + 25)
    assert [f.details["trips"] for f in found] == [1, 2, 3, 4]
    assert all(f.active for f in found)
    assert found[-1].severity is Severity.MEDIUM


def test_a_new_series_of_trips_is_a_new_alert(region: Region) -> None:
    """Through the alert book: trips in one series update one alert, a later series raises another."""
    context = region()
    rule = UncorroboratedTrips(context, context.rules)
    book = AlertBook(context)
    alerts = []
    for time_s in (T0, T0 + 300, T0 + 5_000):
        rule.add([trip(context, UGS, time_s)])
        alerts += [a for f in observe(rule, context, now_s=time_s + 25) if (a := book.apply(f)) is not None]
    assert [(a.revision, a.details["trips"]) for a in alerts] == [(1, 1), (2, 2), (1, 1)]
    assert alerts[0].alert_id == alerts[1].alert_id != alerts[2].alert_id


# -- rule state through a snapshot -------------------------------------------------------------------

Script = list[tuple[float, list[TrackEstimate]]]


def crossing_script(context: RegionContext) -> Script:
    return [
        (T0, [estimate(1, beside(context, "CO", 100), T0)]),
        (T0 + 60, [estimate(1, beside(context, "VE", 100), T0 + 60)]),
        (T0 + 120, [estimate(1, beside(context, "CO", 100), T0 + 120)]),
    ]


def loitering_script(context: RegionContext) -> Script:
    spot = beside(context, "CO", 200)
    looks = [(T0 + 30 * k, [estimate(1, offset(spot, 5 * (k % 3)), T0 + 30 * k)]) for k in range(12)]
    return [*looks, (T0 + 400, [estimate(1, offset(spot, 200), T0 + 400)])]


def rendezvous_script(context: RegionContext) -> Script:
    spot = beside(context, "CO", 300)
    return [(T0 + 20 * k, list(pair(context, spot, 10 if k < 5 else 80, T0 + 20 * k))) for k in range(7)]


def speed_script(context: RegionContext) -> Script:
    return [(T0 + 4 * k, [runner(1, T0 + 4 * k, 15.0 if k < 5 else 1.0)]) for k in range(7)]


def zone_script(context: RegionContext) -> Script:
    centre = context.zones[0].area.centroid
    inside = (centre.x, centre.y)
    return [
        (T0, [estimate(1, inside, T0)]),
        (T0 + 30, [estimate(1, inside, T0 + 30)]),
        (T0 + 60, [estimate(1, offset(inside, 500), T0 + 60)]),
    ]


@pytest.mark.parametrize(
    ("rule_type", "script"),
    [
        (BorderCrossing, crossing_script),
        (RestrictedZone, zone_script),
        (Loitering, loitering_script),
        (Rendezvous, rendezvous_script),
        (ImplausibleSpeed, speed_script),
    ],
    ids=["border_crossing", "restricted_zone", "loitering", "rendezvous", "implausible_speed"],
)
def test_rule_state_survives_a_json_snapshot_at_every_point(
    region: Region, rule_type: Callable[..., TrackRule], script: Callable[[RegionContext], Script]
) -> None:
    """Snapshot (orjson) and restore after any look: the rest of the findings are unchanged."""
    context, _ = zoned(region)
    looks = script(context)

    def run(rule: TrackRule, part: Script) -> list[Finding]:
        return [f for now_s, tracks in part for f in rule.observe(views(context, tracks), now_s)]

    straight = run(rule_type(context, context.rules), looks)
    assert active(straight), "the script must make the rule fire"
    assert any(not f.active for f in straight) or rule_type is BorderCrossing
    for cut in range(1, len(looks)):
        first = rule_type(context, context.rules)
        before = run(first, looks[:cut])
        resumed = rule_type(context, context.rules)
        resumed.restore(orjson.loads(orjson.dumps(first.state())))
        assert before + run(resumed, looks[cut:]) == straight


def test_trip_state_survives_a_json_snapshot(region: Region) -> None:
    """Pending trips and per-sensor counts come back from an orjson snapshot."""
    context = region()
    first = UncorroboratedTrips(context, context.rules)
    first.add([trip(context, UGS, T0)])
    assert observe(first, context, now_s=T0 + 25) != []
    first.add([trip(context, UGS, T0 + 60)])
    resumed = UncorroboratedTrips(context, context.rules)
    resumed.restore(orjson.loads(orjson.dumps(first.state())))
    assert only(observe(resumed, context, now_s=T0 + 85)).details["trips"] == 2


def test_surge_state_survives_a_json_snapshot(region: Region) -> None:
    """The baseline learnt before a snapshot still decides after it."""
    context = region()
    first = ActivitySurge(context, context.rules)
    surge(first, context, [1, 1, 1, 1])
    resumed = ActivitySurge(context, context.rules)
    resumed.restore(orjson.loads(orjson.dumps(first.state())))
    burst = [estimate(100 + k, (-1_900.0 + 50 * k, 5_500.0), T0 + 1_300) for k in range(6)]
    observe(resumed, context, *burst, now_s=T0 + 1_300)
    assert [f.details["count"] for f in observe(resumed, context, now_s=T0 + 1_500)] == [6]


def test_speed_limit_is_checked_against_two_sigma(region: Region) -> None:
    """The margin is two speed sigmas: 9 + 2 * 2.5 = 14 m/s is the edge at sigma 2.5."""
    context = region()
    for speed, expected in ((13.9, 0), (14.2, 1)):
        rule = ImplausibleSpeed(context, context.rules)
        observe(rule, context, runner(1, T0, speed, speed_sigma_mps=2.5))
        assert len(observe(rule, context, runner(1, T0 + 10, speed, speed_sigma_mps=2.5))) == expected


def test_views_are_frozen_dataclasses_equal_to_their_fields(demo_config: LinderoConfig) -> None:
    """A view is what TrackView(...) makes of the country, border distance and zones it holds."""
    context = context_of(demo_config)
    tracks = [estimate(1, beside(context, "CO", 300)), estimate(2, beside(context, "VE", 900))]
    found = views(context, tracks)
    for track, view in zip(tracks, found, strict=True):
        assert view == TrackView(
            track, country_at(context, (track.east_m, track.north_m)), view.border_distance_m, view.zones
        )
        assert view.border_distance_m == pytest.approx(
            border_distance_at(context, (track.east_m, track.north_m))
        )
        assert type(view.border_distance_m) is float
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.jurisdiction = "XX"  # type: ignore[misc]
    assert [v.jurisdiction for v in found] == ["CO", "VE"]
