"""The sharing policy: every centre, agreement and team of the demo tries to see what it must not."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.alerts import Alert, AlertKind, Severity
from schemas.common import Owner
from schemas.lifecycle import (
    ActionKind,
    Actor,
    AlertState,
    DispatchStatus,
    HistoryEntry,
    Role,
)
from schemas.tracks import Track
from services.alerts.domain import sharing
from services.alerts.domain.sharing import PolicyError, SharingPolicy, Viewer
from services.core.config import Agreement, LinderoConfig
from tests.unit.alerts.builders import (
    DEMO,
    T0,
    admin_viewer,
    agencies_of,
    centre_viewer,
    make_alert,
    make_dispatch,
    make_state,
    make_track,
    operator_subject,
    point_in,
    team_viewer,
    teams_of,
)

ORDER = ["info", "low", "medium", "high", "critical"]
SENSOR_KINDS = {"silent_sensor", "sensor_tamper", "sensor_low_battery", "sensor_fault", "uncorroborated_trip"}
ALL_REDACTIONS = ["sensor_ids", "sensor_sites", "evidence", "owner_agency", "track_ids", "details"]


# -- building blocks: tests/unit/alerts/builders.py ----------------------------------------------


def has_word(text: str, word: str) -> bool:
    """``word`` appears in ``text`` as a token (not inside a longer word, e.g. ``gn`` in ``sign``)."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


def sharing_cases(config: LinderoConfig) -> Iterator[tuple[str, str, str, str]]:
    """(agreement, viewer centre, partner country, region) for every centre of every party."""
    for agreement in config.agreements:
        for centre in config.centres:
            if centre.country not in agreement.parties:
                continue
            for partner in agreement.parties:
                if partner == centre.country:
                    continue
                for region in centre.regions:
                    if partner in config.regions_by_id[region].countries:
                        yield agreement.id, centre.id, partner, region


CASES = list(sharing_cases(DEMO))
CASE_IDS = [f"{a}:{c}<-{p}" for a, c, p, _ in CASES]


def expected_redactions(agreement: Agreement, kind: str) -> list[str]:
    return [
        name
        for name in ALL_REDACTIONS
        if name in agreement.redact and (name != "sensor_sites" or kind in SENSOR_KINDS)
    ]


def kinds_to_try(agreement: Agreement) -> list[str]:
    """One allowed kind that is not a sensor kind and, when allowed, one sensor kind."""
    allowed = [k.value for k in AlertKind if agreement.kinds is None or k.value in agreement.kinds]
    plain = [k for k in allowed if k not in SENSOR_KINDS][:1]
    sensor = [k for k in allowed if k in SENSOR_KINDS][-1:]
    return plain + sensor


# -- the demo's cases cover everything --------------------------------------------------------------


def test_the_cases_cover_every_centre_and_agreement(demo_config: LinderoConfig) -> None:
    """Every centre and every agreement of the demo take part in the sharing cases below."""
    assert {c for _, c, _, _ in CASES} == {centre.id for centre in demo_config.centres}
    assert {a for a, _, _, _ in CASES} == {agreement.id for agreement in demo_config.agreements}


# -- thresholds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("agreement_id", "centre", "partner", "region"), CASES, ids=CASE_IDS)
def test_distance_threshold_is_inclusive_and_unknown_distance_is_hidden(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str
) -> None:
    """At max_border_distance_m a partner's alert is shared; a centimetre beyond, or unknown, hidden."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    kind = kinds_to_try(agreement)[0]
    severity = agreement.min_severity

    def view(distance: float | None) -> dict[str, Any] | None:
        alert = make_alert(
            demo_config, partner, region, kind=kind, severity=severity, border_distance_m=distance
        )
        return policy.alert(viewer, make_state(demo_config, alert))

    at_limit = view(agreement.max_border_distance_m)
    assert at_limit is not None
    assert at_limit["access"] == "shared"
    assert at_limit["agreement"] == agreement_id
    assert view(0.0) is not None
    assert view(agreement.max_border_distance_m + 0.01) is None
    assert view(agreement.max_border_distance_m * 10) is None
    assert view(None) is None


@pytest.mark.parametrize(("agreement_id", "centre", "partner", "region"), CASES, ids=CASE_IDS)
def test_severity_threshold(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str
) -> None:
    """Every severity at or above min_severity is shared, every one below is hidden."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    kind = kinds_to_try(agreement)[0]
    for severity in ORDER:
        alert = make_alert(demo_config, partner, region, kind=kind, severity=severity)
        shown = policy.alert(viewer, make_state(demo_config, alert)) is not None
        assert shown == (ORDER.index(severity) >= ORDER.index(agreement.min_severity)), severity


@pytest.mark.parametrize(("agreement_id", "centre", "partner", "region"), CASES, ids=CASE_IDS)
def test_kinds_filter(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str
) -> None:
    """Exactly the agreement's kinds are shared (every kind when it lists none)."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    for kind in AlertKind:
        alert = make_alert(demo_config, partner, region, kind=kind, severity="critical")
        shown = policy.alert(viewer, make_state(demo_config, alert)) is not None
        assert shown == (agreement.kinds is None or kind.value in agreement.kinds), kind


@pytest.mark.parametrize(("agreement_id", "centre", "partner", "region"), CASES, ids=CASE_IDS)
def test_no_jurisdiction_falls_back_to_the_owner(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str
) -> None:
    """Outside every outline, the owner's country decides: a party's is shared, a stranger's hidden."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    kind = kinds_to_try(agreement)[0]
    partners = make_alert(demo_config, partner, region, jurisdiction=None, kind=kind)
    shared = policy.alert(viewer, make_state(demo_config, partners))
    assert shared is not None
    assert shared["access"] == "shared"
    stranger = next(c.code for c in demo_config.countries if c.code not in agreement.parties)
    strangers = make_alert(demo_config, stranger, region, jurisdiction=None, kind=kind)
    assert policy.alert(viewer, make_state(demo_config, strangers, team=None)) is None


@pytest.mark.parametrize(("agreement_id", "centre", "partner", "region"), CASES, ids=CASE_IDS)
def test_stranger_land_is_hidden_even_near_the_border(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str
) -> None:
    """A partner's sensors seeing something in a third country's land give the viewer nothing."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    stranger = next(c.code for c in demo_config.countries if c.code not in agreement.parties)
    alert = make_alert(demo_config, partner, region, jurisdiction=stranger, kind=kinds_to_try(agreement)[0])
    assert policy.alert(viewer, make_state(demo_config, alert)) is None


@pytest.mark.parametrize(("agreement_id", "centre", "partner", "region"), CASES, ids=CASE_IDS)
def test_own_land_or_own_sensors_is_full(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str
) -> None:
    """The viewer's land, or its sensors as owner or contributor, give full access whatever the agreement."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, centre)
    own = viewer.country
    assert own is not None
    far = {"border_distance_m": 90_000.0, "severity": "info", "kind": "activity_surge"}
    in_my_land = make_alert(demo_config, partner, region, jurisdiction=own, **far)
    my_sensors = make_alert(demo_config, own, region, jurisdiction=partner, **far)
    helper = make_alert(demo_config, partner, region, jurisdiction=partner, **far)
    helper = helper.model_copy(
        update={
            "contributors": [
                *helper.contributors,
                Owner(country=own, agency=agencies_of(demo_config, own)[0]),
            ]
        }
    )
    for alert in (in_my_land, my_sensors, helper):
        state = make_state(demo_config, alert)
        view = policy.alert(viewer, state)
        assert view is not None
        assert view["access"] == "full"
        assert view["agreement"] is None
        assert view["redacted"] == []
        assert view["actionable"] is True
        assert view["alert"]["sensor_ids"] == list(alert.sensor_ids)
        assert view["alert"]["evidence"] == list(alert.evidence)
        assert view["alert"]["details"] == alert.details
        assert view["alert"]["owner"]["agency"] == alert.owner.agency


# -- what a shared view shows ---------------------------------------------------------------------


SHARED_CASES = [
    (*case, kind)
    for case in CASES
    for kind in kinds_to_try(next(a for a in DEMO.agreements if a.id == case[0]))
]


@pytest.mark.parametrize(
    ("agreement_id", "centre", "partner", "region", "kind"),
    SHARED_CASES,
    ids=[f"{a}:{c}<-{p}:{k}" for a, c, p, _, k in SHARED_CASES],
)
def test_shared_view_applies_exactly_the_agreements_redactions(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str, kind: str
) -> None:
    """A shared view removes what the agreement redacts, keeps what it does not, and lists what it removed."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    alert = make_alert(demo_config, partner, region, kind=kind, severity="critical")
    state = make_state(demo_config, alert)
    view = policy.alert(viewer, state)
    assert view is not None
    body = view["alert"]
    expected = expected_redactions(agreement, kind)
    assert view["access"] == "shared"
    assert view["agreement"] == agreement_id
    assert view["redacted"] == expected
    assert view["actionable"] is False
    assert (body["sensor_ids"] == []) == ("sensor_ids" in expected)
    assert (body["evidence"] == []) == ("evidence" in expected)
    assert (body["track_ids"] == []) == ("track_ids" in expected)
    agencies = [body["owner"]["agency"], *(c["agency"] for c in body["contributors"])]
    if "owner_agency" in expected:
        assert agencies == [None] * len(agencies)
    else:
        assert agencies == [alert.owner.agency, *(c.agency for c in alert.contributors)]
    assert body["owner"]["country"] == partner
    assert [c["country"] for c in body["contributors"]] == [c.country for c in alert.contributors]
    if "details" in expected or "sensor_sites" in expected:
        assert body["details"] == {}
    elif "sensor_ids" in expected:
        assert body["details"] == {"class": "person", "crossings": 1}
    else:
        assert body["details"] == alert.details
    if "sensor_sites" in expected:
        assert (body["lat"], body["lon"]) == (round(alert.lat, 2), round(alert.lon, 2))
        assert (body["lat"], body["lon"]) != (alert.lat, alert.lon)
        assert body["border_distance_m"] == 0.0
    else:
        assert (body["lat"], body["lon"]) == (alert.lat, alert.lon)
        assert body["border_distance_m"] == alert.border_distance_m
    assert body["kind"] == kind
    assert body["severity"] == "critical"
    assert body["jurisdiction"] == partner


@pytest.mark.parametrize(
    ("agreement_id", "centre", "partner", "region", "kind"),
    SHARED_CASES,
    ids=[f"{a}:{c}<-{p}:{k}" for a, c, p, _, k in SHARED_CASES],
)
def test_shared_view_leaks_no_withheld_string(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str, kind: str
) -> None:
    """No redacted sensor id, evidence id or agency, no foreign operator or team appears in the view."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    alert = make_alert(demo_config, partner, region, kind=kind, severity="critical")
    state = make_state(demo_config, alert)
    assert state.dispatch is not None
    view = policy.alert(viewer, state)
    assert view is not None
    dumped = json.dumps(view)
    if "sensor_ids" in agreement.redact:
        for sensor in {*alert.sensor_ids, *(s.id for s in demo_config.sensors if s.owner.country == partner)}:
            assert sensor not in dumped
    if "evidence" in agreement.redact:
        for event in alert.evidence:
            assert event not in dumped
    if "owner_agency" in agreement.redact:
        for agency in agencies_of(demo_config, partner):
            assert not has_word(dumped, agency), agency
    if "track_ids" in agreement.redact:
        for track in alert.track_ids:
            assert track not in dumped
    assert operator_subject(partner) not in dumped
    for team in teams_of(demo_config, partner):
        assert team not in dumped
    assert view["dispatch"] is None
    assert view["suggested_team"] is None
    assert view["notice"] is None
    assert view.get("teams_offered", []) == []
    assert [entry["actor"]["subject"] for entry in view["history"] if entry["actor"]] == ["operator"]
    assert all(entry["actor"]["team"] is None for entry in view["history"] if entry["actor"])


def test_summary_and_notes_keep_their_sense_when_scrubbed(demo_config: LinderoConfig) -> None:
    """Scrubbing replaces the withheld identifier by a marker and leaves the rest of the sentence."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-tachira")
    alert = make_alert(demo_config, "CO", "co-ve-cucuta", summary="Person crossed near co-cuc-ugs-03, 2 m/s")
    view = policy.alert(viewer, make_state(demo_config, alert))
    assert view is not None
    assert view["alert"]["summary"] == "Person crossed near [withheld], 2 m/s"
    assert view["history"][0]["note"] == "raised: Person crossed near [withheld], 2 m/s"


def test_sensor_site_of_a_partner_is_coarsened(demo_config: LinderoConfig) -> None:
    """Tapachula sees a Guatemalan uncorroborated trip only ~1 km precise, without details or sensor ids."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-tapachula")
    alert = make_alert(
        demo_config,
        "GT",
        "mx-gt-tapachula",
        kind="uncorroborated_trip",
        severity="high",
        border_distance_m=1_700.0,
        summary="Ground sensor gt-tec-ugs-05 tripped (person, 0.81) with no track within 150 m",
        details={"trips": 3, "class": "person", "confidence": 0.81},
    )
    view = policy.alert(viewer, make_state(demo_config, alert))
    assert view is not None
    assert view["alert"]["lat"] == round(alert.lat, 2)
    assert view["alert"]["lon"] == round(alert.lon, 2)
    assert view["alert"]["border_distance_m"] == 2_000.0
    assert view["alert"]["details"] == {}
    assert "sensor_sites" in view["redacted"]
    assert "gt-tec-ugs-05" not in json.dumps(view)
    assert view["alert"]["summary"].startswith("Ground sensor [withheld] tripped")


def test_crossing_position_is_exact_even_when_sites_are_redacted(demo_config: LinderoConfig) -> None:
    """sensor_sites only coarsens alerts located at a sensor: a crossing keeps its position."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-tecun")
    alert = make_alert(demo_config, "MX", "mx-gt-tapachula", kind="border_crossing")
    view = policy.alert(viewer, make_state(demo_config, alert))
    assert view is not None
    assert (view["alert"]["lat"], view["alert"]["lon"]) == (alert.lat, alert.lon)
    assert "sensor_sites" not in view["redacted"]


# -- region and team isolation -------------------------------------------------------------------


@pytest.mark.parametrize("centre", [c.id for c in DEMO.centres])
def test_a_centre_sees_nothing_outside_its_regions(demo_config: LinderoConfig, centre: str) -> None:
    """An alert in the viewer's own land, from its own sensors, in a region it does not watch is hidden."""
    policy = SharingPolicy(demo_config)
    for role in ("operator", "supervisor"):
        viewer = centre_viewer(demo_config, centre, role)
        country = viewer.country
        assert country is not None
        elsewhere = [r.id for r in demo_config.regions if r.id not in (viewer.regions or ())]
        assert elsewhere
        for region in elsewhere:
            alert = make_alert(demo_config, country, region, border_distance_m=0.0)
            state = make_state(demo_config, alert, team=None)
            assert policy.alert(viewer, state) is None
            track = make_track(demo_config, country, region)
            assert policy.track(viewer, track) is None
            for team in teams_of(demo_config, country):
                assert policy.dispatch(viewer, make_dispatch(demo_config, alert, team)) is None
            for action in ActionKind:
                assert policy.may_act(viewer, state, action)[0] is False


def test_cucuta_never_sees_tapachula(demo_config: LinderoConfig) -> None:
    """A Colombian alert with Colombian sensors, placed in the Tapachula region, never reaches Cúcuta."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-cucuta")
    alert = make_alert(demo_config, "CO", "mx-gt-tapachula", border_distance_m=0.0)
    assert policy.alert(viewer, make_state(demo_config, alert, team=None)) is None
    assert policy.track(viewer, make_track(demo_config, "CO", "mx-gt-tapachula")) is None


def test_narrowed_regions_claim_hides_the_rest() -> None:
    """A token narrowed to one region of a two-region centre sees only that region."""
    config = extended_config()
    policy = SharingPolicy(config)
    wide = Viewer.from_claims({"sub": "a", "role": "operator", "centre": "cc-bogota"}, config)
    narrow = Viewer.from_claims(
        {"sub": "b", "role": "operator", "centre": "cc-bogota", "regions": ["co-ve-cucuta"]}, config
    )
    alert = make_alert(config, "CO", "mx-gt-tapachula")
    state = make_state(config, alert, team=None)
    assert policy.alert(wide, state) is not None
    assert policy.alert(narrow, state) is None
    assert policy.view_key(wide) != policy.view_key(narrow)


@pytest.mark.parametrize("team", [t.id for t in DEMO.teams])
def test_a_team_sees_only_its_own_dispatches(demo_config: LinderoConfig, team: str) -> None:
    """A team sees alerts it is or was dispatched to, no other alert, no track, no other team's dispatch."""
    policy = SharingPolicy(demo_config)
    viewer = team_viewer(demo_config, team)
    home = demo_config.teams_by_id[team]
    other = next(t.id for t in demo_config.teams if t.id != team and t.country == home.country)
    alert = make_alert(demo_config, home.country, home.region)
    theirs = make_state(demo_config, alert, team=other)
    assert policy.alert(viewer, theirs) is None
    assert policy.alert(viewer, theirs, dispatched_to={"A-something-else"}) is None
    assert policy.track(viewer, make_track(demo_config, home.country, home.region)) is None
    assert policy.dispatch(viewer, make_dispatch(demo_config, alert, other)) is None
    assert policy.dispatch(viewer, make_dispatch(demo_config, alert, team)) is not None

    mine = make_state(demo_config, alert, team=team)
    current = policy.alert(viewer, mine)
    assert current is not None
    assert current["access"] == "team"
    assert current["dispatch"]["team_id"] == team
    assert current["actionable"] is True

    before = policy.alert(viewer, theirs, dispatched_to={alert.alert_id})
    assert before is not None
    assert before["access"] == "team"
    assert before["dispatch"] is None
    assert "dispatch" in before["redacted"]
    assert before["actionable"] is False


def test_team_view_carries_only_what_the_team_needs(demo_config: LinderoConfig) -> None:
    """Position, kind, severity, summary, times, status, its dispatch; no sensor, evidence, owner, actor."""
    policy = SharingPolicy(demo_config)
    viewer = team_viewer(demo_config, "co-rrt-alfa")
    alert = make_alert(demo_config, "CO", "co-ve-cucuta")
    view = policy.alert(viewer, make_state(demo_config, alert, team="co-rrt-alfa"))
    assert view is not None
    assert set(view["alert"]) == {
        "schema_version", "alert_id", "revision", "kind", "severity", "time", "updated_at", "lat", "lon",
        "region", "summary", "status",
    }  # fmt: skip
    assert (view["alert"]["lat"], view["alert"]["lon"]) == (alert.lat, alert.lon)
    assert all(set(entry) == {"time", "action", "status"} for entry in view["history"])
    assert {"suggested_team", "notice"}.isdisjoint(view)
    assert {"owner", "contributors", "sensor_ids", "evidence", "details", "track_ids"} <= set(
        view["redacted"]
    )
    dumped = json.dumps(view)
    for secret in [*alert.sensor_ids, *alert.evidence, *alert.track_ids, operator_subject("CO")]:
        assert secret not in dumped
    for agency in agencies_of(demo_config, "CO"):
        assert not has_word(dumped, agency)


def test_a_team_of_another_country_never_sees_the_alert(demo_config: LinderoConfig) -> None:
    """A Venezuelan team is not shown a Colombian alert it was never sent to, whatever the agreements."""
    policy = SharingPolicy(demo_config)
    alert = make_alert(demo_config, "CO", "co-ve-cucuta", border_distance_m=0.0)
    state = make_state(demo_config, alert, team="co-rrt-alfa")
    for team in teams_of(demo_config, "VE"):
        assert policy.alert(team_viewer(demo_config, team), state) is None


# -- tracks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("agreement_id", "centre", "partner", "region"), CASES, ids=CASE_IDS)
def test_tracks_follow_share_tracks_and_distance(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str
) -> None:
    """A partner's track is shared within the distance when the agreement shares tracks, else hidden."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    limit = agreement.max_border_distance_m
    at_limit = policy.track(viewer, make_track(demo_config, partner, region, border_distance_m=limit))
    if not agreement.share_tracks:
        assert at_limit is None
        assert policy.track(viewer, make_track(demo_config, partner, region, border_distance_m=0.0)) is None
        return
    assert at_limit is not None
    assert at_limit["access"] == "shared"
    assert at_limit["agreement"] == agreement_id
    assert (
        policy.track(viewer, make_track(demo_config, partner, region, border_distance_m=limit + 0.01)) is None
    )
    assert policy.track(viewer, make_track(demo_config, partner, region, border_distance_m=None)) is None
    unplaced = make_track(demo_config, partner, region, jurisdiction=None)
    assert policy.track(viewer, unplaced) is not None


TRACK_CASES = [case for case in CASES if next(a for a in DEMO.agreements if a.id == case[0]).share_tracks]


@pytest.mark.parametrize(
    ("agreement_id", "centre", "partner", "region"),
    TRACK_CASES,
    ids=[f"{a}:{c}<-{p}" for a, c, p, _ in TRACK_CASES],
)
def test_shared_track_redactions(
    demo_config: LinderoConfig, agreement_id: str, centre: str, partner: str, region: str
) -> None:
    """A shared track has no sensor ids and no agencies when the agreement redacts them."""
    policy = SharingPolicy(demo_config)
    agreement = next(a for a in demo_config.agreements if a.id == agreement_id)
    viewer = centre_viewer(demo_config, centre)
    track = make_track(demo_config, partner, region)
    view = policy.track(viewer, track)
    assert view is not None
    expected = [n for n in ALL_REDACTIONS if n in agreement.redact and n in {"sensor_ids", "owner_agency"}]
    assert view["redacted"] == expected
    dumped = json.dumps(view)
    if "sensor_ids" in agreement.redact:
        assert view["sensor_ids"] == []
        assert all(sensor not in dumped for sensor in track.sensor_ids)
    if "owner_agency" in agreement.redact:
        assert [o["agency"] for o in view["owners"]] == [None] * len(track.owners)
        assert not any(has_word(dumped, a) for a in agencies_of(demo_config, partner))
    assert [o["country"] for o in view["owners"]] == [partner] * len(track.owners)
    assert (view["lat"], view["lon"], view["class"]) == (track.lat, track.lon, "person")


@pytest.mark.parametrize("centre", [c.id for c in DEMO.centres])
def test_own_tracks_are_full(demo_config: LinderoConfig, centre: str) -> None:
    """A track in the viewer's land, or seen by its sensors, is full, far from any border."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, centre)
    assert viewer.country is not None
    assert viewer.regions is not None
    region = sorted(viewer.regions)[0]
    partner = next(c for c in demo_config.regions_by_id[region].countries if c != viewer.country)
    for track in (
        make_track(demo_config, viewer.country, region, jurisdiction=partner, border_distance_m=50_000.0),
        make_track(demo_config, partner, region, jurisdiction=viewer.country, border_distance_m=50_000.0),
    ):
        view = policy.track(viewer, track)
        assert view is not None
        assert view["access"] == "full"
        assert view["sensor_ids"] == list(track.sensor_ids)


# -- dispatches -----------------------------------------------------------------------------------


@pytest.mark.parametrize("centre", [c.id for c in DEMO.centres])
def test_centres_see_only_their_own_countrys_dispatches(demo_config: LinderoConfig, centre: str) -> None:
    """A centre sees its own teams' dispatches in its regions and never another country's."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, centre)
    for team in demo_config.teams:
        if team.region not in (viewer.regions or ()):
            continue
        alert = make_alert(demo_config, team.country, team.region)
        view = policy.dispatch(viewer, make_dispatch(demo_config, alert, team.id))
        assert (view is not None) == (team.country == viewer.country), team.id


def test_admin_sees_every_dispatch(demo_config: LinderoConfig) -> None:
    """An admin sees every team's dispatch in every region."""
    policy = SharingPolicy(demo_config)
    admin = admin_viewer(demo_config)
    for team in demo_config.teams:
        alert = make_alert(demo_config, team.country, team.region)
        view = policy.dispatch(admin, make_dispatch(demo_config, alert, team.id))
        assert view is not None
        assert view["team_id"] == team.id


def test_full_view_hides_another_countrys_dispatch_and_operators(demo_config: LinderoConfig) -> None:
    """Cúcuta sees a Venezuelan-land alert its sensors saw, not Venezuela's team nor its operator's name."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-cucuta")
    alert = make_alert(demo_config, "VE", "co-ve-cucuta")
    alert = alert.model_copy(
        update={"contributors": [*alert.contributors, Owner(country="CO", agency="ejercito")]}
    )
    state = make_state(demo_config, alert, team="ve-rrt-1")
    view = policy.alert(viewer, state)
    assert view is not None
    assert view["access"] == "full"
    assert view["dispatch"] is None
    assert view["suggested_team"] is None
    assert view.get("teams_offered", []) == []
    dumped = json.dumps(view)
    assert "ve-rrt-1" not in dumped
    assert operator_subject("VE") not in dumped
    assert view["alert"]["sensor_ids"] == list(alert.sensor_ids)


def test_full_view_keeps_own_dispatch_and_operators(demo_config: LinderoConfig) -> None:
    """An alert of the viewer's own is shown with its dispatch, suggestion and operators untouched."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-cucuta")
    state = make_state(demo_config, make_alert(demo_config, "CO", "co-ve-cucuta"), team="co-rrt-bravo")
    view = policy.alert(viewer, state)
    assert view is not None
    assert view["dispatch"]["team_id"] == "co-rrt-bravo"
    assert view["suggested_team"] == "co-rrt-bravo"
    assert view["history"][1]["actor"]["subject"] == operator_subject("CO")
    assert view["notice"] == "co-rrt-bravo is the nearest team"


def test_admin_sees_everything_unredacted(demo_config: LinderoConfig) -> None:
    """An admin gets every alert and track in full, with operators and foreign dispatches."""
    policy = SharingPolicy(demo_config)
    admin = admin_viewer(demo_config)
    for region in demo_config.regions:
        for country in region.countries:
            alert = make_alert(demo_config, country, region.id, border_distance_m=None, severity="info")
            state = make_state(demo_config, alert)
            view = policy.alert(admin, state)
            assert view is not None
            assert view["access"] == "full"
            assert view["redacted"] == []
            assert view["actionable"] is True
            assert view["dispatch"] == json.loads(state.model_dump_json(by_alias=True))["dispatch"]
            assert view["history"][1]["actor"]["subject"] == operator_subject(country)
            track = policy.track(admin, make_track(demo_config, country, region.id, border_distance_m=None))
            assert track is not None
            assert track["access"] == "full"


# -- actions --------------------------------------------------------------------------------------

COMMAND = {
    ActionKind.ACKNOWLEDGE, ActionKind.DISPATCH, ActionKind.RESOLVE, ActionKind.FALSE_ALARM,
    ActionKind.COMMENT,
}  # fmt: skip
SUPERVISING = COMMAND | {ActionKind.REOPEN, ActionKind.CANCEL_DISPATCH}
ANSWERS = {
    ActionKind.TEAM_ACCEPT,
    ActionKind.TEAM_DECLINE,
    ActionKind.TEAM_ON_SCENE,
    ActionKind.TEAM_COMPLETED,
}
EXPECTED_ACTIONS = {"operator": COMMAND, "supervisor": SUPERVISING, "team": ANSWERS, "admin": SUPERVISING}


def viewer_for(config: LinderoConfig, role: str) -> Viewer:
    if role in {"operator", "supervisor"}:
        return centre_viewer(config, "cc-cucuta", role)
    if role == "team":
        return team_viewer(config, "co-rrt-alfa")
    return admin_viewer(config)


@pytest.mark.parametrize("action", list(ActionKind), ids=lambda a: a.value)
@pytest.mark.parametrize("role", ["operator", "supervisor", "team", "admin"])
def test_who_may_do_what_on_an_own_alert(demo_config: LinderoConfig, role: str, action: ActionKind) -> None:
    """On Colombia's own alert with co-rrt-alfa offered: the role decides, and a refusal says why."""
    policy = SharingPolicy(demo_config)
    state = make_state(demo_config, make_alert(demo_config, "CO", "co-ve-cucuta"), team="co-rrt-alfa")
    allowed, reason = policy.may_act(viewer_for(demo_config, role), state, action)
    assert allowed == (action in EXPECTED_ACTIONS[role])
    assert (reason == "") == allowed
    if action in {ActionKind.WEBHOOK_DELIVERED, ActionKind.WEBHOOK_FAILED, ActionKind.EXPIRE_DISPATCH}:
        assert "system" in reason
    elif role == "operator" and action in {ActionKind.REOPEN, ActionKind.CANCEL_DISPATCH}:
        assert "supervisor" in reason
    elif role in {"operator", "supervisor", "admin"} and action in ANSWERS:
        assert "team" in reason
    elif role == "team" and not allowed:
        assert "team only answers its own dispatch" in reason


@pytest.mark.parametrize("action", list(ActionKind), ids=lambda a: a.value)
@pytest.mark.parametrize("role", ["operator", "supervisor"])
def test_a_shared_alert_is_read_only(demo_config: LinderoConfig, role: str, action: ActionKind) -> None:
    """Táchira may read Colombia's shared crossing but do nothing to it."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-tachira", role)
    state = make_state(demo_config, make_alert(demo_config, "CO", "co-ve-cucuta"), team="co-rrt-alfa")
    assert policy.alert(viewer, state) is not None
    allowed, reason = policy.may_act(viewer, state, action)
    assert allowed is False
    assert "co-ve-frontera" in reason or "system" in reason


@pytest.mark.parametrize("action", list(ActionKind), ids=lambda a: a.value)
def test_a_hidden_alert_allows_nothing(demo_config: LinderoConfig, action: ActionKind) -> None:
    """Tapachula's supervisor can do nothing to a Cúcuta alert, and its teams neither."""
    policy = SharingPolicy(demo_config)
    state = make_state(demo_config, make_alert(demo_config, "CO", "co-ve-cucuta"), team="co-rrt-alfa")
    for viewer in (
        centre_viewer(demo_config, "cc-tapachula", "supervisor"),
        team_viewer(demo_config, "mx-rrt-1"),
    ):
        assert policy.may_act(viewer, state, action)[0] is False


def test_team_answers_only_its_current_active_dispatch(demo_config: LinderoConfig) -> None:
    """A team may not answer another team's dispatch, a superseded one, or one that is over."""
    policy = SharingPolicy(demo_config)
    alfa = team_viewer(demo_config, "co-rrt-alfa")
    alert = make_alert(demo_config, "CO", "co-ve-cucuta")
    state = make_state(demo_config, alert, team="co-rrt-alfa")
    assert state.dispatch is not None
    assert policy.may_act(alfa, state, ActionKind.TEAM_ACCEPT, state.dispatch) == (True, "")

    bravo = policy.may_act(
        team_viewer(demo_config, "co-rrt-bravo"), state, ActionKind.TEAM_ACCEPT, state.dispatch
    )
    assert bravo[0] is False
    assert "not visible" in bravo[1]

    someone_elses = make_dispatch(demo_config, alert, "co-rrt-bravo")
    allowed, reason = policy.may_act(alfa, state, ActionKind.TEAM_ACCEPT, someone_elses)
    assert allowed is False
    assert "another team" in reason

    old = make_dispatch(demo_config, alert, "co-rrt-alfa", status="declined")
    allowed, reason = policy.may_act(alfa, state, ActionKind.TEAM_ACCEPT, old)
    assert allowed is False
    assert "no longer the alert's current dispatch" in reason

    done = state.model_copy(
        update={"dispatch": state.dispatch.model_copy(update={"status": DispatchStatus.COMPLETED})}
    )
    allowed, reason = policy.may_act(alfa, done, ActionKind.TEAM_ON_SCENE)
    assert allowed is False
    assert "completed" in reason

    none = make_state(demo_config, alert, team=None)
    allowed, reason = policy.may_act(alfa, none, ActionKind.TEAM_ACCEPT, state.dispatch)
    assert allowed is False


def test_only_the_jurisdiction_sends_teams(demo_config: LinderoConfig) -> None:
    """Cúcuta may acknowledge what its sensors saw in Venezuela but not send a team there."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-cucuta", "supervisor")
    alert = make_alert(demo_config, "CO", "co-ve-cucuta", jurisdiction="VE")
    state = make_state(demo_config, alert, team=None)
    assert policy.may_act(viewer, state, ActionKind.ACKNOWLEDGE) == (True, "")
    allowed, reason = policy.may_act(viewer, state, ActionKind.DISPATCH)
    assert allowed is False
    assert "VE's territory" in reason
    assert policy.may_dispatch_team(viewer, state, "co-rrt-alfa")[0] is False


def test_a_centre_sends_only_its_own_teams(demo_config: LinderoConfig) -> None:
    """Cúcuta sends Colombian teams to a Colombian alert, never a Venezuelan one, and cancels only its own."""
    policy = SharingPolicy(demo_config)
    viewer = centre_viewer(demo_config, "cc-cucuta", "supervisor")
    alert = make_alert(demo_config, "CO", "co-ve-cucuta")
    state = make_state(demo_config, alert, team=None)
    assert policy.may_dispatch_team(viewer, state, "co-rrt-policia") == (True, "")
    allowed, reason = policy.may_dispatch_team(viewer, state, "ve-rrt-1")
    assert allowed is False
    assert "ve-rrt-1 is VE's" in reason
    assert policy.may_dispatch_team(viewer, state, "no-such-team")[0] is False
    proposal = make_dispatch(demo_config, alert, "ve-rrt-2")
    assert policy.may_act(viewer, state, ActionKind.DISPATCH, proposal)[0] is False
    foreign = make_state(demo_config, alert, team="ve-rrt-2")
    allowed, reason = policy.may_act(viewer, foreign, ActionKind.CANCEL_DISPATCH)
    assert allowed is False
    assert "another country's" in reason
    assert policy.may_act(viewer, state, ActionKind.CANCEL_DISPATCH)[0] is False


def test_admin_may_not_send_a_team_into_another_countrys_land(demo_config: LinderoConfig) -> None:
    """Even an admin cannot send a Venezuelan team onto Colombian land."""
    policy = SharingPolicy(demo_config)
    admin = admin_viewer(demo_config)
    state = make_state(demo_config, make_alert(demo_config, "CO", "co-ve-cucuta"), team=None)
    assert policy.may_dispatch_team(admin, state, "co-rrt-alfa") == (True, "")
    assert policy.may_dispatch_team(admin, state, "ve-rrt-1")[0] is False


def test_system_only_dispatches_expires_and_reports(demo_config: LinderoConfig) -> None:
    """Lindero itself may dispatch, expire offers and report webhooks, and take no person's decision."""
    policy = SharingPolicy(demo_config)
    system = Viewer("lindero", Role.SYSTEM, None, None, None, None, None)
    state = make_state(demo_config, make_alert(demo_config, "CO", "co-ve-cucuta"), team="co-rrt-alfa")
    allowed = {a for a in ActionKind if policy.may_act(system, state, a)[0]}
    assert allowed == {
        ActionKind.DISPATCH, ActionKind.EXPIRE_DISPATCH,
        ActionKind.WEBHOOK_DELIVERED, ActionKind.WEBHOOK_FAILED,
    }  # fmt: skip
    assert policy.may_dispatch_team(system, state, "ve-rrt-1")[0] is False
    assert policy.alert(system, state) is None


# -- view keys ------------------------------------------------------------------------------------


def test_view_key_equal_within_a_centre_and_distinct_across(demo_config: LinderoConfig) -> None:
    """Two operators of one centre share a key; different centres, roles and teams never do."""
    policy = SharingPolicy(demo_config)
    for centre in demo_config.centres:
        a = centre_viewer(demo_config, centre.id, sub="op-a")
        b = centre_viewer(demo_config, centre.id, sub="op-b")
        assert policy.view_key(a) == policy.view_key(b)
        hash(policy.view_key(a))
    keys = [policy.view_key(centre_viewer(demo_config, c.id)) for c in demo_config.centres]
    keys += [policy.view_key(centre_viewer(demo_config, c.id, "supervisor")) for c in demo_config.centres]
    keys += [policy.view_key(team_viewer(demo_config, t.id)) for t in demo_config.teams]
    keys.append(policy.view_key(admin_viewer(demo_config)))
    assert len(set(keys)) == len(keys)


def test_equal_keys_see_equal_views(demo_config: LinderoConfig) -> None:
    """Viewers with one key get identical alert, track and dispatch views for every object of the demo."""
    policy = SharingPolicy(demo_config)
    viewers = [centre_viewer(demo_config, c.id, role, sub=f"{role}-{n}") for c in demo_config.centres
               for role in ("operator", "supervisor") for n in (1, 2)]  # fmt: skip
    viewers += [team_viewer(demo_config, t.id) for t in demo_config.teams]
    viewers += [admin_viewer(demo_config), Viewer.from_claims({"sub": "root2", "role": "admin"}, demo_config)]
    objects = []
    for region in demo_config.regions:
        for country in region.countries:
            alert = make_alert(demo_config, country, region.id)
            objects.append((make_state(demo_config, alert), make_track(demo_config, country, region.id)))
    compared = 0
    for a, b in itertools.combinations(viewers, 2):
        if policy.view_key(a) != policy.view_key(b):
            continue
        compared += 1
        for state, track in objects:
            assert policy.alert(a, state) == policy.alert(b, state)
            assert policy.track(a, track) == policy.track(b, track)
            if state.dispatch is not None:
                assert policy.dispatch(a, state.dispatch) == policy.dispatch(b, state.dispatch)
    assert compared >= len(demo_config.centres) * 2 + 1


# -- claims ---------------------------------------------------------------------------------------


def test_claims_of_an_operator_take_the_centres_country_and_regions(demo_config: LinderoConfig) -> None:
    """An operator's country, agency and regions come from the centre named in the token."""
    viewer = Viewer.from_claims(
        {"sub": "maria", "role": "operator", "country": "CO", "centre": "cc-cucuta", "regions": None},
        demo_config,
    )
    assert viewer == Viewer(
        "maria", Role.OPERATOR, "CO", "ejercito", "cc-cucuta", None, frozenset({"co-ve-cucuta"})
    )


def test_claims_of_a_team_and_an_admin(demo_config: LinderoConfig) -> None:
    """A team member takes the team's country and region; an admin watches every region."""
    team = Viewer.from_claims({"sub": "t", "role": "team", "team": "gt-rrt-2", "country": "GT"}, demo_config)
    assert (team.country, team.agency, team.regions) == ("GT", "pnc", frozenset({"mx-gt-tapachula"}))
    admin = Viewer.from_claims({"sub": "root", "role": "admin", "jti": "x", "exp": 1}, demo_config)
    assert (admin.role, admin.regions, admin.country) == (Role.ADMIN, None, None)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": "x", "role": "operator", "centre": "cc-nowhere"}, "unknown centre 'cc-nowhere'"),
        ({"sub": "x", "role": "operator", "centre": "cc-cucuta", "country": "VE"}, "is CO's, not VE's"),
        ({"sub": "x", "role": "supervisor", "centre": "cc-tecun", "country": "MX"}, "is GT's, not MX's"),
        ({"sub": "x", "role": "operator"}, "must name a centre"),
        ({"sub": "x", "role": "operator", "centre": "cc-cucuta", "team": "co-rrt-alfa"}, "not to a team"),
        ({"sub": "x", "role": "team", "team": "co-rrt-zulu"}, "unknown team 'co-rrt-zulu'"),
        ({"sub": "x", "role": "team", "team": "ve-rrt-1", "country": "CO"}, "is VE's, not CO's"),
        ({"sub": "x", "role": "team"}, "must name a team"),
        ({"sub": "x", "role": "team", "team": "co-rrt-alfa", "centre": "cc-cucuta"}, "belongs to no centre"),
        ({"sub": "x", "role": "system"}, "system role"),
        ({"sub": "x", "role": "king"}, "unknown role 'king'"),
        ({"role": "admin"}, "no subject"),
        ({"sub": 7, "role": "admin"}, "'sub' must be a string"),
        ({"sub": "x", "role": "admin", "country": "AR"}, "unknown country 'AR'"),
        ({"sub": "x", "role": "admin", "country": "CO", "agency": "fanb"}, "no agency 'fanb'"),
        ({"sub": "x", "role": "operator", "centre": "cc-cucuta", "agency": "policia"}, "agency 'ejercito'"),
        (
            {"sub": "x", "role": "operator", "centre": "cc-cucuta", "regions": ["mx-gt-tapachula"]},
            "does not watch",
        ),
        ({"sub": "x", "role": "admin", "regions": ["atlantis"]}, "unknown region 'atlantis'"),
        ({"sub": "x", "role": "admin", "regions": []}, "is empty"),
        ({"sub": "x", "role": "admin", "regions": "co-ve-cucuta"}, "must be a list"),
    ],
)
def test_inconsistent_claims_are_refused(
    demo_config: LinderoConfig, claims: dict[str, Any], message: str
) -> None:
    """Claims that contradict the configuration raise PolicyError saying what is wrong."""
    with pytest.raises(PolicyError, match=re.escape(message)):
        Viewer.from_claims(claims, demo_config)


# -- the policy's knowledge of the schemas ------------------------------------------------------------


def wire_names(model: Any) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_every_schema_field_is_classified() -> None:
    """A field added to the schemas must be classified for shared views here (until then it stays hidden)."""
    assert wire_names(Alert) <= sharing.SHARED_ALERT_FIELDS
    assert wire_names(AlertState) <= sharing.SHARED_STATE_FIELDS
    assert wire_names(HistoryEntry) <= sharing.HISTORY_FIELDS
    assert wire_names(Actor) <= sharing.ACTOR_FIELDS
    assert wire_names(Owner) <= sharing.OWNER_FIELDS
    assert wire_names(Track) <= sharing.SHARED_TRACK_FIELDS


def test_policy_kinds_and_redactions_match_the_config_vocabulary() -> None:
    """The policy knows every redaction name and every alert kind the configuration may use."""
    assert set(sharing.REDACTIONS) == set(ALL_REDACTIONS)
    assert {k.value for k in sharing.SENSOR_KINDS} == SENSOR_KINDS
    assert [s.value for s in sorted(Severity, key=lambda s: s.rank)] == ORDER


# -- several agreements, a third country: properties ----------------------------------------------


def extended_config() -> LinderoConfig:
    """The demo plus Panama (a centre at Cúcuta, party to nothing), a two-region Colombian centre and
    two more Colombia–Venezuela agreements with other redactions."""
    data = DEMO.model_dump()
    data["countries"].append(
        {
            "code": "PA",
            "name": "Panamá",
            "iso_numeric": "591",
            "agencies": [{"id": "senafront", "name": "SENAFRONT"}],
        }
    )
    data["centres"] += [
        {
            "id": "cc-panama", "name": "Observador", "country": "PA", "agency": "senafront",
            "regions": ["co-ve-cucuta"],
        },
        {
            "id": "cc-bogota", "name": "Bogotá", "country": "CO", "agency": "ejercito",
            "regions": ["co-ve-cucuta", "mx-gt-tapachula"],
        },
    ]  # fmt: skip
    data["agreements"] += [
        {
            "id": "co-ve-extra", "name": "Extra", "parties": ["VE", "CO"], "max_border_distance_m": 1000,
            "min_severity": "low", "share_tracks": False, "redact": ["sensor_ids", "details"],
        },
        {
            "id": "co-ve-alt", "name": "Alt", "parties": ["CO", "VE"], "max_border_distance_m": 3000,
            "min_severity": "high", "kinds": ["uncorroborated_trip", "border_crossing"],
            "redact": ["evidence", "track_ids", "sensor_sites"],
        },
    ]  # fmt: skip
    return LinderoConfig.model_validate(data)


EXTENDED = extended_config()
COUNTRIES = ["CO", "VE", "PA", "MX"]
OWNERS = [(c.code, a.id) for c in EXTENDED.countries for a in c.agencies if c.code in COUNTRIES]
EDGES_M = [0.0, 999.99, 1000.0, 1000.01, 1999.99, 2000.0, 2000.01, 3000.0, 3000.01]
"""Distances on each side of every agreement's limit in the extended configuration."""
SHARED_KINDS = ["border_crossing", "loitering", "uncorroborated_trip"]
"""Kinds two or three of the extended configuration's agreements share."""
TRACK_POOL = ["co-ve-cucuta.T000001", "co-ve-cucuta.T000777"]
SENSOR_POOL = [s.id for s in EXTENDED.sensors if s.region == "co-ve-cucuta"] + ["pa-ugs-1"]


@st.composite
def random_states(draw: st.DrawFn) -> AlertState:
    """Random alerts at Cúcuta: any kind, severity, jurisdiction, owners, distance, sensors and details."""
    country = draw(st.sampled_from(COUNTRIES))
    own = [o for o in OWNERS if o[0] == country]
    owners = draw(st.lists(st.sampled_from(own), min_size=1, max_size=2, unique=True))
    owners += draw(st.lists(st.sampled_from(OWNERS), max_size=2, unique=True).map(lambda o: o[:1]))
    owners = list(dict.fromkeys(owners))
    jurisdiction = draw(st.sampled_from([country, country, *COUNTRIES, None]))
    sensors = draw(st.lists(st.sampled_from(SENSOR_POOL), min_size=1, max_size=5, unique=True))
    evidence = draw(st.lists(st.uuids().map(str), max_size=3))
    lat, lon = point_in(EXTENDED, "co-ve-cucuta")
    alert = Alert.model_validate(
        {
            "alert_id": f"A-{draw(st.uuids()).hex[:24]}",
            "revision": 1,
            "kind": draw(st.one_of(st.sampled_from(SHARED_KINDS), st.sampled_from(list(AlertKind)))),
            "severity": draw(st.sampled_from(ORDER)),
            "time": T0,
            "updated_at": T0,
            "lat": lat + draw(st.floats(-0.05, 0.05)),
            "lon": lon + draw(st.floats(-0.05, 0.05)),
            "region": "co-ve-cucuta",
            "jurisdiction": jurisdiction,
            "owner": {"country": owners[0][0], "agency": owners[0][1]},
            "contributors": [{"country": c, "agency": a} for c, a in owners],
            "track_ids": draw(st.lists(st.sampled_from(TRACK_POOL), max_size=2, unique=True)),
            "sensor_ids": sensors,
            "border_distance_m": draw(st.one_of(st.none(), st.sampled_from(EDGES_M), st.floats(0, 4_000))),
            "summary": f"Seen by {', '.join(sensors)} of {owners[0][1]}",
            "evidence": evidence,
            "details": draw(
                st.dictionaries(
                    st.sampled_from(["sensor", "sensor_type", "near", "class", "count", "by"]),
                    st.one_of(st.integers(), st.sampled_from([*sensors, "person", f"{sensors[0]} (pir)"])),
                    max_size=4,
                )
            ),
        }
    )
    team = draw(st.sampled_from([None, *teams_of(EXTENDED, "CO"), *teams_of(EXTENDED, "VE")]))
    return make_state(EXTENDED, alert, team=team)


def matching(config: LinderoConfig, country: str, alert: Alert) -> list[Agreement]:
    """The oracle: agreements granting ``country`` a shared view of ``alert`` (written from the rules)."""
    subject = alert.jurisdiction or alert.owner.country
    return [
        a
        for a in config.agreements
        if country in a.parties
        and subject in a.parties
        and alert.border_distance_m is not None
        and alert.border_distance_m <= a.max_border_distance_m
        and ORDER.index(alert.severity.value) >= ORDER.index(a.min_severity)
        and (a.kinds is None or alert.kind.value in a.kinds)
    ]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=random_states())
def test_shared_views_never_show_what_every_matching_agreement_redacts(state: AlertState) -> None:
    """For random alerts, a shared view withholds every redaction all matching agreements agree on."""
    policy = SharingPolicy(EXTENDED)
    alert = state.alert
    for centre in ("cc-cucuta", "cc-tachira", "cc-panama", "cc-bogota"):
        viewer = centre_viewer(EXTENDED, centre)
        assert viewer.country is not None
        view = policy.alert(viewer, state)
        involved = {alert.jurisdiction, alert.owner.country, *(c.country for c in alert.contributors)}
        grants = matching(EXTENDED, viewer.country, alert)
        if viewer.country in involved:
            assert view is not None
            assert view["access"] == "full"
            continue
        if not grants:
            assert view is None
            continue
        assert view is not None
        assert view["access"] == "shared"
        applicable = [expected_redactions(a, alert.kind.value) for a in grants]
        assert view["redacted"] in applicable
        assert len(view["redacted"]) == min(len(r) for r in applicable)
        common = set.intersection(*(set(r) for r in applicable))
        assert common <= set(view["redacted"])
        body = view["alert"]
        dumped = json.dumps(view)
        if "sensor_ids" in view["redacted"]:
            assert body["sensor_ids"] == []
            assert not any(sensor in dumped for sensor in alert.sensor_ids)
            assert not any("sensor" in key for key in body["details"])
        if "evidence" in view["redacted"]:
            assert body["evidence"] == []
            assert not any(event in dumped for event in alert.evidence)
        if "track_ids" in view["redacted"]:
            assert body["track_ids"] == []
            assert not any(track in dumped for track in alert.track_ids)
        if "owner_agency" in view["redacted"]:
            assert not any(has_word(dumped, owner.agency) for owner in alert.contributors)
        if "details" in view["redacted"] or "sensor_sites" in view["redacted"]:
            assert body["details"] == {}
        if "sensor_sites" in view["redacted"]:
            assert (body["lat"], body["lon"]) == (round(alert.lat, 2), round(alert.lon, 2))
        assert view["dispatch"] is None
        assert view["actionable"] is False


@settings(max_examples=300, deadline=None)
@given(state=random_states())
def test_a_stranger_country_sees_nothing(state: AlertState) -> None:
    """Panama, party to no agreement, sees an alert only when its land or its sensors are involved."""
    policy = SharingPolicy(EXTENDED)
    alert = state.alert
    involved = {alert.jurisdiction, alert.owner.country, *(c.country for c in alert.contributors)}
    view = policy.alert(centre_viewer(EXTENDED, "cc-panama"), state)
    assert (view is not None) == ("PA" in involved)
    for centre in ("cc-tapachula", "cc-tecun"):
        assert policy.alert(centre_viewer(EXTENDED, centre), state) is None


def test_the_least_redacted_single_grant_wins() -> None:
    """Of two matching agreements, the one with fewer redactions is applied alone, never a combination."""
    policy = SharingPolicy(EXTENDED)
    viewer = centre_viewer(EXTENDED, "cc-tachira")
    alert = make_alert(
        EXTENDED, "CO", "co-ve-cucuta", kind="loitering", severity="high", border_distance_m=800.0
    )
    view = policy.alert(viewer, make_state(EXTENDED, alert))
    assert view is not None
    assert (view["agreement"], view["redacted"]) == ("co-ve-extra", ["sensor_ids", "details"])
    assert view["alert"]["evidence"] == list(alert.evidence)
    assert view["alert"]["owner"]["agency"] == alert.owner.agency

    farther = alert.model_copy(update={"border_distance_m": 1_500.0})
    view = policy.alert(viewer, make_state(EXTENDED, farther))
    assert view is not None
    assert view["agreement"] == "co-ve-frontera"
    assert view["redacted"] == ["sensor_ids", "evidence", "owner_agency"]
