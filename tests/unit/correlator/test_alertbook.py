"""The alert book: one alert per condition, updated rather than repeated, with cooldowns and snapshots."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.alerts import Alert, AlertKind, AlertStatus, Severity
from schemas.common import Owner
from services.core.config import LinderoConfig
from services.correlator.domain.alertbook import AlertBook
from services.correlator.domain.region import RegionContext
from services.correlator.domain.rules import Finding, cleared
from tests.unit.correlator.worlds import (
    CUCUTA,
    T0,
    TAPACHULA,
    beside,
    border_distance_at,
    context_of,
    track_id,
    utc,
    with_rules,
)

Books = Callable[..., AlertBook]
Found = Callable[..., Finding]


@pytest.fixture
def make_book(demo_config: LinderoConfig) -> Books:
    """A fresh alert book of a demo region, optionally with changed rule settings."""

    def make(region: str = CUCUTA, **rules: Any) -> AlertBook:
        config = with_rules(demo_config, **rules) if rules else demo_config
        return AlertBook(context_of(config, region))

    return make


@pytest.fixture
def make_finding(demo_config: LinderoConfig) -> Found:
    """A border-crossing finding 100 m inside Venezuela (any field can be changed)."""
    context = context_of(demo_config)
    place = beside(context, "VE", 100)

    def make(time_s: float = T0, **changes: Any) -> Finding:
        fields: dict[str, Any] = {
            "kind": AlertKind.BORDER_CROSSING,
            "key": track_id(1),
            "severity": Severity.HIGH,
            "time_s": time_s,
            "east_m": place[0],
            "north_m": place[1],
            "summary": "Person crossed CO→VE",
            "track_ids": (track_id(1),),
            "sensor_ids": ("co-cuc-rdr-1",),
            "owners": (("CO", "ejercito"), ("VE", "fanb")),
            "evidence": ("ev-1", "ev-2"),
            "details": {"direction": "CO->VE", "crossings": 1, "speed_mps": 1.5},
        }
        fields.update(changes)
        return Finding(**fields)

    return make


def published(alert: Alert | None) -> Alert:
    assert alert is not None, "expected an alert to publish"
    return alert


# -- a new alert -----------------------------------------------------------------------------------


def test_the_first_finding_raises_revision_one_with_a_deterministic_id(
    make_book: Books, make_finding: Found
) -> None:
    """Revision 1; the same finding in a fresh book gets the same id; another subject another id."""
    alert = published(make_book().apply(make_finding()))
    assert alert.revision == 1
    assert re.fullmatch(r"A-[0-9a-f]{24}", alert.alert_id)
    assert published(make_book().apply(make_finding())).alert_id == alert.alert_id
    other = published(make_book().apply(make_finding(key=track_id(2))))
    assert other.alert_id != alert.alert_id
    kind = published(make_book().apply(make_finding(kind=AlertKind.LOITERING)))
    assert kind.alert_id != alert.alert_id


def test_alert_ids_differ_between_regions(make_book: Books, make_finding: Found) -> None:
    """The region is part of the id: the same subject key elsewhere is another alert."""
    here = published(make_book(CUCUTA).apply(make_finding()))
    there = published(make_book(TAPACHULA).apply(make_finding(east_m=0.0, north_m=0.0)))
    assert here.alert_id != there.alert_id
    assert there.region == TAPACHULA


def test_the_alert_carries_the_finding_where_it_happened(
    make_book: Books, make_finding: Found, demo_config: LinderoConfig
) -> None:
    """Kind, severity, times, place (back in WGS84), jurisdiction and border distance are filled."""
    context = context_of(demo_config)
    finding = make_finding()
    alert = published(make_book().apply(finding))
    assert alert.kind is AlertKind.BORDER_CROSSING
    assert alert.severity is Severity.HIGH
    assert alert.time == alert.updated_at == utc(T0)
    assert alert.region == CUCUTA
    assert alert.jurisdiction == "VE"
    east, north, _ = context.frame.to_enu(alert.lat, alert.lon)
    assert (float(east), float(north)) == pytest.approx((finding.east_m, finding.north_m), abs=0.01)
    assert alert.border_distance_m == pytest.approx(
        border_distance_at(context, (finding.east_m, finding.north_m)), abs=0.1
    )
    assert alert.track_ids == [track_id(1)]
    assert alert.sensor_ids == ["co-cuc-rdr-1"]
    assert alert.evidence == ["ev-1", "ev-2"]
    assert alert.details == finding.details
    assert alert.summary == finding.summary
    assert alert.status is AlertStatus.NEW


def test_jurisdiction_is_where_it_happened_and_owner_whose_sensor_saw_it_first(
    make_book: Books, make_finding: Found, demo_config: LinderoConfig
) -> None:
    """A CO sensor seeing something in Venezuela: jurisdiction VE, owner CO; contributors deduplicated."""
    context = context_of(demo_config)
    in_co = beside(context, "CO", 300)
    owners = (("CO", "policia"), ("VE", "gnb"), ("CO", "policia"), ("CO", "ejercito"))
    alert = published(make_book().apply(make_finding(owners=owners)))
    assert alert.jurisdiction == "VE"
    assert alert.owner == Owner(country="CO", agency="policia")
    assert [(o.country, o.agency) for o in alert.contributors] == [
        ("CO", "policia"),
        ("VE", "gnb"),
        ("CO", "ejercito"),
    ]
    seen_by_ve = published(
        make_book().apply(make_finding(east_m=in_co[0], north_m=in_co[1], owners=(("VE", "fanb"),)))
    )
    assert seen_by_ve.jurisdiction == "CO"
    assert seen_by_ve.owner == Owner(country="VE", agency="fanb")


def test_a_finding_nobody_owns_is_owned_by_its_jurisdiction(make_book: Books, make_finding: Found) -> None:
    """A region-wide finding without owners (activity surge): the country where it is, agency lindero."""
    alert = published(make_book().apply(make_finding(kind=AlertKind.ACTIVITY_SURGE, key="-1:5", owners=())))
    assert alert.owner == Owner(country="VE", agency="lindero")
    assert alert.contributors == [alert.owner]


def test_long_lists_are_cut_to_what_the_wire_allows(make_book: Books, make_finding: Found) -> None:
    """Evidence keeps the latest 50 ids, the summary 300 characters, track ids 16."""
    evidence = tuple(f"ev-{k}" for k in range(80))
    tracks = tuple(track_id(k) for k in range(1, 21))
    alert = published(make_book().apply(make_finding(evidence=evidence, summary="x" * 400, track_ids=tracks)))
    assert alert.evidence == list(evidence[-50:])
    assert len(alert.summary) == 300
    assert alert.track_ids == list(tracks[:16])


# -- updates ---------------------------------------------------------------------------------------


def test_repeating_the_same_finding_within_the_interval_says_nothing(
    make_book: Books, make_finding: Found
) -> None:
    """Identical facts within ``update_interval_s`` (30 s) are absorbed, volatile details included."""
    book = make_book()
    published(book.apply(make_finding(T0)))
    assert book.apply(make_finding(T0 + 1)) is None
    moving = {"direction": "CO->VE", "crossings": 1, "speed_mps": 3.5, "duration_s": 20, "dwell_s": 9}
    assert book.apply(make_finding(T0 + 29.9, details=moving)) is None


def test_after_the_interval_the_same_condition_is_republished(make_book: Books, make_finding: Found) -> None:
    """At 30 s a revision 2 with the first time kept and the update time moved."""
    book = make_book()
    first = published(book.apply(make_finding(T0)))
    second = published(book.apply(make_finding(T0 + 30)))
    assert (second.alert_id, second.revision) == (first.alert_id, 2)
    assert second.time == utc(T0)
    assert second.updated_at == utc(T0 + 30)
    assert book.apply(make_finding(T0 + 59)) is None
    assert published(book.apply(make_finding(T0 + 60))).revision == 3


def test_the_update_interval_comes_from_the_configuration(make_book: Books, make_finding: Found) -> None:
    """With ``update_interval_s: 5`` a repeat 5 s later is a new revision."""
    book = make_book(update_interval_s=5.0)
    published(book.apply(make_finding(T0)))
    assert book.apply(make_finding(T0 + 4)) is None
    assert published(book.apply(make_finding(T0 + 5))).revision == 2


def test_a_changed_fact_is_published_at_once(make_book: Books, make_finding: Found) -> None:
    """Another crossing one second later: revision 2 immediately, with the new facts."""
    book = make_book()
    first = published(book.apply(make_finding(T0)))
    back = {"direction": "VE->CO", "crossings": 2, "speed_mps": 1.5}
    second = published(book.apply(make_finding(T0 + 1, details=back)))
    assert (second.alert_id, second.revision) == (first.alert_id, 2)
    assert second.details["crossings"] == 2
    assert book.apply(make_finding(T0 + 2, details=back)) is None


@pytest.mark.parametrize("severity", [Severity.CRITICAL, Severity.LOW])
def test_a_changed_severity_is_published_at_once(
    make_book: Books, make_finding: Found, severity: Severity
) -> None:
    """Up or down, a severity change is a new revision immediately."""
    book = make_book()
    first = published(book.apply(make_finding(T0)))
    second = published(book.apply(make_finding(T0 + 1, severity=severity)))
    assert (second.alert_id, second.revision, second.severity) == (first.alert_id, 2, severity)


# -- closing, cooldown and episodes ----------------------------------------------------------------


def test_a_clear_says_nothing_and_a_recurrence_within_the_cooldown_reopens(
    make_book: Books, make_finding: Found
) -> None:
    """Cleared, then back 10 s later (cooldown 600 s): the same alert, next revision, at once."""
    book = make_book()
    first = published(book.apply(make_finding(T0)))
    assert book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 5)) is None
    again = published(book.apply(make_finding(T0 + 15)))
    assert (again.alert_id, again.revision) == (first.alert_id, 2)
    assert again.time == utc(T0)


def test_a_recurrence_after_the_cooldown_is_a_new_episode(make_book: Books, make_finding: Found) -> None:
    """Back more than 600 s after the clear: a new alert id, revision 1, itself deterministic."""
    book = make_book()
    first = published(book.apply(make_finding(T0)))
    book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 10))
    assert published(book.apply(make_finding(T0 + 610))).alert_id == first.alert_id
    book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 620))
    second = published(book.apply(make_finding(T0 + 1_221)))
    assert second.alert_id != first.alert_id
    assert second.revision == 1
    assert second.time == utc(T0 + 1_221)
    replay = make_book()
    replay.apply(make_finding(T0))
    replay.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 10))
    replay.apply(make_finding(T0 + 610))
    replay.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 620))
    assert published(replay.apply(make_finding(T0 + 1_221))).alert_id == second.alert_id


def test_a_second_clear_does_not_extend_the_cooldown(make_book: Books, make_finding: Found) -> None:
    """The cooldown runs from the first clear: repeated clears do not push it back."""
    book = make_book()
    first = published(book.apply(make_finding(T0)))
    book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 10))
    book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 500))
    assert published(book.apply(make_finding(T0 + 611))).alert_id != first.alert_id


def test_clearing_an_unknown_subject_changes_nothing(make_book: Books, make_finding: Found) -> None:
    """A clear without an open alert is ignored: the next finding is revision 1 of episode 1."""
    book = make_book()
    assert book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0)) is None
    assert book.open == {}
    alert = published(book.apply(make_finding(T0 + 1)))
    assert alert.revision == 1
    assert alert.alert_id == published(make_book().apply(make_finding(T0 + 1))).alert_id


def test_expire_forgets_closed_alerts_after_their_cooldown_only(
    make_book: Books, make_finding: Found
) -> None:
    """Open alerts stay however old; closed ones go after the cooldown, and their ids are not reused."""
    book = make_book()
    first = published(book.apply(make_finding(T0)))
    published(book.apply(make_finding(T0, key=track_id(2))))
    book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 10))
    book.expire(T0 + 610)
    assert len(book.open) == 2
    book.expire(T0 + 611)
    assert list(book.open) == [f"border_crossing|{track_id(2)}"]
    book.expire(T0 + 100_000)
    assert list(book.open) == [f"border_crossing|{track_id(2)}"]
    later = published(book.apply(make_finding(T0 + 700)))
    assert later.revision == 1
    assert later.alert_id != first.alert_id


@pytest.mark.parametrize(
    ("kind", "cooldown_s"),
    [
        (AlertKind.BORDER_CROSSING, 600.0),
        (AlertKind.RESTRICTED_ZONE, 300.0),
        (AlertKind.ACTIVITY_SURGE, 900.0),
        (AlertKind.SILENT_SENSOR, 0.0),
        (AlertKind.SENSOR_TAMPER, 3_600.0),
        (AlertKind.SENSOR_LOW_BATTERY, 3_600.0),
        (AlertKind.SENSOR_FAULT, 3_600.0),
    ],
)
def test_each_kind_has_its_rules_cooldown(
    make_book: Books, make_finding: Found, kind: AlertKind, cooldown_s: float
) -> None:
    """A recurrence exactly at the cooldown reopens; one second later is a new alert."""
    ids = []
    for gap in (cooldown_s, cooldown_s + 1):
        book = make_book()
        first = published(book.apply(make_finding(T0, kind=kind, key="subject")))
        book.apply(cleared(kind, "subject", T0 + 10))
        again = published(book.apply(make_finding(T0 + 10 + gap, kind=kind, key="subject")))
        ids.append(again.alert_id == first.alert_id)
    assert ids == [True, False]


def test_a_configured_cooldown_is_used(make_book: Books, make_finding: Found) -> None:
    """With ``border_crossing.cooldown_s: 60`` a recurrence 61 s after the clear is a new alert."""
    book = make_book(border_crossing={"cooldown_s": 60.0})
    first = published(book.apply(make_finding(T0)))
    book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 10))
    assert published(book.apply(make_finding(T0 + 71))).alert_id != first.alert_id


def test_forgetting_a_track_drops_every_alert_about_it_and_nothing_else(
    make_book: Books, make_finding: Found
) -> None:
    """Subjects naming the track (alone, with a zone, in a pair) go with their episodes; others stay."""
    book = make_book()
    gone = [
        (AlertKind.BORDER_CROSSING, track_id(1)),
        (AlertKind.RESTRICTED_ZONE, f"depot|{track_id(1)}"),
        (AlertKind.RENDEZVOUS, f"{track_id(1)}|{track_id(2)}"),
    ]
    kept = [
        (AlertKind.BORDER_CROSSING, track_id(10)),
        (AlertKind.RESTRICTED_ZONE, f"depot|{track_id(10)}"),
        (AlertKind.RENDEZVOUS, f"{track_id(2)}|{track_id(10)}"),
        (AlertKind.UNCORROBORATED_TRIP, "co-cuc-ugs-03"),
    ]
    for kind, key in gone + kept:
        published(book.apply(make_finding(kind=kind, key=key)))
    book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(10), T0 + 5))
    book.forget_track(track_id(1))
    expected = sorted(f"{kind.value}|{key}" for kind, key in kept)
    assert sorted(book.open) == expected
    assert sorted(book.episodes) == expected


# -- snapshots -------------------------------------------------------------------------------------


def test_state_round_trip_through_json_continues_ids_and_revisions(
    make_book: Books, make_finding: Found
) -> None:
    """Restored from an orjson snapshot, a book answers the next findings exactly as the original."""
    original = make_book()
    crossing2 = {"direction": "VE->CO", "crossings": 2, "speed_mps": 1.0}
    history = [
        make_finding(T0),
        make_finding(T0 + 1, details=crossing2),
        make_finding(T0, key=track_id(2)),
        cleared(AlertKind.BORDER_CROSSING, track_id(2), T0 + 5),
        make_finding(T0, kind=AlertKind.LOITERING, key=track_id(3), details={"duration_s": 300}),
        cleared(AlertKind.LOITERING, track_id(3), T0 + 2),
        make_finding(T0 + 700, kind=AlertKind.LOITERING, key=track_id(3), details={"duration_s": 300}),
    ]
    for finding in history:
        original.apply(finding)
    restored = make_book()
    restored.restore(orjson.loads(orjson.dumps(original.state())))
    upcoming = [
        make_finding(T0 + 10, details=crossing2),
        make_finding(T0 + 31, details=crossing2),
        make_finding(T0 + 40, key=track_id(2)),
        make_finding(T0 + 720, kind=AlertKind.LOITERING, key=track_id(3), details={"duration_s": 320}),
        make_finding(
            T0 + 725,
            kind=AlertKind.LOITERING,
            key=track_id(3),
            severity=Severity.MEDIUM,
            details={"duration_s": 325},
        ),
        make_finding(T0 + 800, key=track_id(4)),
    ]
    expected = [original.apply(f) for f in upcoming]
    got = [restored.apply(f) for f in upcoming]
    assert [a.model_dump() if a else None for a in got] == [a.model_dump() if a else None for a in expected]
    assert [a is None for a in expected] == [True, False, False, True, False, False]
    assert [a.revision for a in expected if a] == [3, 2, 2, 1]


def test_state_of_a_fresh_book_is_empty_and_restores_to_empty(make_book: Books, make_finding: Found) -> None:
    """An empty snapshot restores a book that behaves as new."""
    book = make_book()
    book.restore(orjson.loads(orjson.dumps(make_book().state())))
    assert book.open == {}
    assert book.episodes == {}
    assert published(book.apply(make_finding())).revision == 1


def test_regions_books_are_independent(make_book: Books, make_finding: Found) -> None:
    """Each region has its own book: a clear in one does not touch the other."""
    cucuta, tapachula = make_book(CUCUTA), make_book(TAPACHULA)
    context: RegionContext = tapachula.context
    place = beside(context, "GT", 100)
    first = published(tapachula.apply(make_finding(T0, east_m=place[0], north_m=place[1])))
    assert first.jurisdiction == "GT"
    published(cucuta.apply(make_finding(T0)))
    cucuta.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), T0 + 1))
    assert tapachula.open[f"border_crossing|{track_id(1)}"].closed_s is None


# -- property --------------------------------------------------------------------------------------

Event = tuple[float, bool, int, Severity]
EVENTS = st.lists(
    st.tuples(
        st.sampled_from([0.0, 1.0, 10.0, 29.0, 30.0, 200.0, 600.0, 601.0, 2_000.0]),
        st.booleans(),
        st.integers(0, 1),
        st.sampled_from([Severity.HIGH, Severity.CRITICAL]),
    ),
    max_size=25,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS)
def test_any_sequence_of_findings_and_clears_follows_the_documented_lifecycle(
    make_book: Books, make_finding: Found, events: list[Event]
) -> None:
    """Revisions count up without gaps, absorbed findings say nothing, ids are never reused."""
    book = make_book()
    time_s = T0
    alert_id: str | None = None
    revision = published_s = 0.0
    closed_s: float | None = None
    facts: tuple[int, Severity] | None = None
    ids: list[str] = []
    for gap, clears, fact, severity in events:
        time_s += gap
        if clears:
            assert book.apply(cleared(AlertKind.BORDER_CROSSING, track_id(1), time_s)) is None
            if alert_id is not None and closed_s is None:
                closed_s = time_s
            continue
        details = {"direction": "CO->VE", "crossings": fact + 1, "speed_mps": gap}
        alert = book.apply(make_finding(time_s, details=details, severity=severity))
        if alert_id is None or (closed_s is not None and time_s - closed_s > 600.0):
            alert = published(alert)
            assert alert.revision == 1
            assert alert.alert_id not in ids
            alert_id, revision = alert.alert_id, 1
            ids.append(alert_id)
        elif closed_s is not None or facts != (fact, severity) or time_s - published_s >= 30.0:
            alert = published(alert)
            assert (alert.alert_id, alert.revision) == (alert_id, revision + 1)
            revision += 1
        else:
            assert alert is None
            continue
        closed_s, published_s, facts = None, time_s, (fact, severity)
