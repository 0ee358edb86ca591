"""The alert lifecycle state machine: every move of the status diagram, team choice, escalation, audit."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.alerts import Alert, AlertStatus
from schemas.lifecycle import (
    ActionKind,
    Actor,
    AlertAction,
    AlertState,
    AuditRecord,
    Delivery,
    Dispatch,
    DispatchStatus,
    HistoryEntry,
    Role,
)
from services.alerts.domain.lifecycle import SYSTEM, Decision, Lifecycle, distance_m
from services.core.config import LinderoConfig
from tests.unit.alerts.builders import DEMO, T0, make_alert, teams_of

CO_REGION = "co-ve-cucuta"
MX_REGION = "mx-gt-tapachula"
EARTH_M = 6_371_008.8
NOW = T0 + dt.timedelta(minutes=5)
LC = Lifecycle(DEMO)

NEW, ACKNOWLEDGED, DISPATCHED = AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.DISPATCHED
RESOLVED, FALSE_ALARM = AlertStatus.RESOLVED, AlertStatus.FALSE_ALARM
K = ActionKind
OFFERED, ACCEPTED, ON_SCENE = DispatchStatus.OFFERED, DispatchStatus.ACCEPTED, DispatchStatus.ON_SCENE

OPERATOR = Actor(subject="op-co-maria", role=Role.OPERATOR, country="CO", centre="cc-cucuta")
SUPERVISOR = Actor(subject="sup-co-juan", role=Role.SUPERVISOR, country="CO", centre="cc-cucuta")

# The demo's Colombian teams near the point make_alert uses in co-ve-cucuta, nearest first.
ALFA, POLICIA, BRAVO = "co-rrt-alfa", "co-rrt-policia", "co-rrt-bravo"
CO_TEAMS = [ALFA, POLICIA, BRAVO]

OPERATOR_KINDS = [K.ACKNOWLEDGE, K.DISPATCH, K.RESOLVE, K.FALSE_ALARM, K.REOPEN, K.CANCEL_DISPATCH, K.COMMENT]
ALLOWED: dict[tuple[AlertStatus, ActionKind], AlertStatus] = {
    (NEW, K.ACKNOWLEDGE): ACKNOWLEDGED,
    (NEW, K.DISPATCH): DISPATCHED,
    (NEW, K.RESOLVE): RESOLVED,
    (NEW, K.FALSE_ALARM): FALSE_ALARM,
    (ACKNOWLEDGED, K.DISPATCH): DISPATCHED,
    (ACKNOWLEDGED, K.RESOLVE): RESOLVED,
    (ACKNOWLEDGED, K.FALSE_ALARM): FALSE_ALARM,
    (DISPATCHED, K.DISPATCH): DISPATCHED,
    (DISPATCHED, K.RESOLVE): RESOLVED,
    (DISPATCHED, K.FALSE_ALARM): FALSE_ALARM,
    (DISPATCHED, K.CANCEL_DISPATCH): ACKNOWLEDGED,
    (RESOLVED, K.REOPEN): ACKNOWLEDGED,
    (FALSE_ALARM, K.REOPEN): ACKNOWLEDGED,
    **{(status, K.COMMENT): status for status in AlertStatus},
}
"""The module docstring's status diagram, written out independently of the code's table."""
REFUSED = [(s, k) for s in AlertStatus for k in OPERATOR_KINDS if (s, k) not in ALLOWED]

TEAM_ANSWERS: dict[ActionKind, tuple[set[DispatchStatus], DispatchStatus]] = {
    K.TEAM_ACCEPT: ({OFFERED}, ACCEPTED),
    K.TEAM_DECLINE: ({OFFERED}, DispatchStatus.DECLINED),
    K.TEAM_ON_SCENE: ({ACCEPTED}, ON_SCENE),
    K.TEAM_COMPLETED: ({ACCEPTED, ON_SCENE}, DispatchStatus.COMPLETED),
}
TEAM_ALLOWED = [(k, s) for k, (sources, _) in TEAM_ANSWERS.items() for s in sorted(sources)]
TEAM_REFUSED = [
    (k, s) for k, (sources, _) in TEAM_ANSWERS.items() for s in DispatchStatus if s not in sources
]


# -- building blocks ---------------------------------------------------------------------------------


def words(kind: ActionKind | AlertStatus | DispatchStatus) -> str:
    return kind.value.replace("_", " ")


def team_actor(team: str) -> Actor:
    return Actor(subject=team, role=Role.TEAM, team=team)


def variant(*, teams: list[dict[str, Any]] | None = None, **dispatch: Any) -> LinderoConfig:
    """The demo configuration with extra or replaced teams and some ``dispatch`` keys changed."""
    data = DEMO.model_dump()
    if teams is not None:
        by_id = {team["id"]: team for team in data["teams"]}
        for team in teams:
            by_id[team["id"]] = {**by_id.get(team["id"], {}), **team}
        data["teams"] = list(by_id.values())
    data["dispatch"].update(dispatch)
    return LinderoConfig.model_validate(data)


def co_team(team_id: str, lat: float, lon: float, **changes: Any) -> dict[str, Any]:
    """A Colombian team of the Cúcuta region based at (lat, lon)."""
    return {
        "id": team_id,
        "name": team_id,
        "country": "CO",
        "agency": "ejercito",
        "region": CO_REGION,
        "base": {"lat": lat, "lon": lon},
        "capabilities": ["foot"],
        **changes,
    }


def alert(severity: str = "high", **changes: Any) -> Alert:
    """A first revision of an alert seen by Colombia's sensors in Cúcuta (below automatic dispatch)."""
    changes.setdefault("revision", 1)
    return make_alert(DEMO, "CO", CO_REGION, severity=severity, **changes)


def revise(previous: Alert, **changes: Any) -> Alert:
    """The correlator's next revision of ``previous``."""
    return Alert.model_validate({**previous.model_dump(), "revision": previous.revision + 1, **changes})


def action(state: AlertState | str, kind: ActionKind, actor: Actor = OPERATOR, **fields: Any) -> AlertAction:
    """A fresh request of ``kind`` on ``state``'s alert (or the alert id given), asked at T0."""
    alert_id = state if isinstance(state, str) else state.alert.alert_id
    return AlertAction(action_id=uuid.uuid4(), alert_id=alert_id, action=kind, actor=actor, time=T0, **fields)


def raised(item: Alert, lc: Lifecycle = LC, busy: Collection[str] = ()) -> AlertState:
    decision = lc.on_alert(None, item, T0, busy)
    assert decision.state is not None
    return decision.state


def ok(
    state: AlertState,
    kind: ActionKind,
    *,
    lc: Lifecycle = LC,
    busy: Collection[str] = (),
    now: dt.datetime = NOW,
    actor: Actor = OPERATOR,
    **fields: Any,
) -> AlertState:
    """Apply an action that must be applied; the new state."""
    decision = lc.on_action(state, action(state, kind, actor, **fields), now, busy)
    assert decision.refused is None, decision.refused.reason
    assert decision.state is not None
    return decision.state


def answer(
    state: AlertState, kind: ActionKind, *, lc: Lifecycle = LC, busy: Collection[str] = (), **kw: Any
) -> AlertState:
    """The current team's answer to its dispatch, sent by the team itself."""
    assert state.dispatch is not None
    team = state.dispatch.team_id
    return ok(
        state, kind, lc=lc, busy=busy, actor=team_actor(team), dispatch_id=state.dispatch.dispatch_id, **kw
    )


def state_at(status: AlertStatus, lc: Lifecycle = LC) -> AlertState:
    """An alert brought to ``status`` through the machine itself (dispatched: to the nearest team)."""
    state = raised(alert(), lc)
    if status is NEW:
        return state
    state = ok(state, K.ACKNOWLEDGE, lc=lc)
    if status is ACKNOWLEDGED:
        return state
    state = ok(state, K.DISPATCH, lc=lc)
    if status is DISPATCHED:
        return state
    return ok(state, K.RESOLVE if status is RESOLVED else K.FALSE_ALARM, lc=lc)


def with_dispatch_status(state: AlertState, status: DispatchStatus) -> AlertState:
    assert state.dispatch is not None
    return state.model_copy(update={"dispatch": state.dispatch.model_copy(update={"status": status})})


def busy_of(state: AlertState) -> set[str]:
    """What the service's dispatch board would call busy: the team of an active dispatch."""
    current = state.dispatch
    return {current.team_id} if current is not None and current.status.active else set()


def assert_refused(decision: Decision, act: AlertAction, status: int, reason: str) -> AuditRecord:
    """``decision`` refused ``act`` with ``status`` and ``reason``, changed nothing, audited the refusal."""
    assert decision.refused is not None
    assert (decision.refused.status, decision.refused.reason) == (status, reason)
    assert decision.state is None
    assert decision.dispatches == []
    assert len(decision.audits) == 1
    record = decision.audits[0]
    assert record.outcome == "refused"
    assert record.action == act.action.value
    assert record.subject == act.alert_id
    assert record.actor == act.actor
    assert record.reason == reason
    assert record.details == {"action_id": str(act.action_id), "status": status}
    return record


def active_of(dispatches: dict[str, Dispatch]) -> list[Dispatch]:
    return [d for d in dispatches.values() if d.status.active]


# -- operator moves of the status diagram ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind"), sorted(ALLOWED, key=str), ids=[f"{s}-{k}" for s, k in sorted(ALLOWED, key=str)]
)
def test_allowed_move(source: AlertStatus, kind: ActionKind) -> None:
    """An allowed move leads to the diagram's status, +1 version, who/when in history, an applied audit."""
    state = state_at(source)
    note = None if kind is K.DISPATCH else "checked camera 3"
    act = action(state, kind, SUPERVISOR, expected_version=state.version, note=note)
    decision = LC.on_action(state, act, NOW, busy_of(state))

    assert decision.refused is None
    new = decision.state
    assert new is not None
    target = ALLOWED[(source, kind)]
    assert new.status is target
    assert new.version == state.version + 1
    assert new.updated_at == NOW
    assert new.last_action_id == act.action_id
    assert new.alert == state.alert
    assert new.history[:-1] == state.history
    entry = new.history[-1]
    assert entry.time == NOW  # processing time, not the time the request was made
    assert entry.action is kind
    assert entry.status is target
    assert entry.actor == SUPERVISOR
    assert entry.action_id == act.action_id
    if kind is K.DISPATCH:
        assert entry.note is not None
        assert entry.note.startswith("offered to team ")
    else:
        assert entry.note == "checked camera 3"
    record = decision.audits[0]
    assert record.outcome == "applied"
    assert (record.action, record.subject, record.actor, record.time) == (
        kind.value,
        state.alert.alert_id,
        SUPERVISOR,
        NOW,
    )
    assert record.details == {"status": target.value}


@pytest.mark.parametrize(("source", "kind"), REFUSED, ids=[f"{s}-{k}" for s, k in REFUSED])
def test_refused_move(source: AlertStatus, kind: ActionKind) -> None:
    """A move the diagram does not allow is refused (409) with a reason naming the action and the status."""
    state = state_at(source)
    act = action(state, kind, SUPERVISOR, expected_version=state.version)
    decision = LC.on_action(state, act, NOW, busy_of(state))
    assert_refused(decision, act, 409, f"cannot {words(kind)} an alert that is {words(source)}")


def test_full_life_of_an_alert() -> None:
    """new → acknowledged → dispatched → resolved → reopened → false alarm, each step in history."""
    state = raised(alert())
    actors = [OPERATOR, OPERATOR, OPERATOR, SUPERVISOR, OPERATOR]
    kinds = [K.ACKNOWLEDGE, K.DISPATCH, K.RESOLVE, K.REOPEN, K.FALSE_ALARM]
    for step, (actor, kind) in enumerate(zip(actors, kinds, strict=True), start=1):
        state = ok(state, kind, actor=actor, busy=busy_of(state), now=NOW + dt.timedelta(minutes=step))
    assert state.status is FALSE_ALARM
    assert state.version == 6
    assert [h.status for h in state.history] == [
        NEW,
        ACKNOWLEDGED,
        DISPATCHED,
        RESOLVED,
        ACKNOWLEDGED,
        FALSE_ALARM,
    ]
    assert [h.actor for h in state.history[1:]] == actors
    assert [h.time for h in state.history] == [T0] + [NOW + dt.timedelta(minutes=m) for m in range(1, 6)]


def test_comment_changes_only_version_and_history() -> None:
    """A comment keeps status and dispatch, and records the note with its author."""
    state = state_at(DISPATCHED)
    new = ok(state, K.COMMENT, note="team asked for a drone")
    assert new.status is DISPATCHED
    assert new.dispatch == state.dispatch
    assert new.history[-1].note == "team asked for a drone"
    assert new.history[-1].actor == OPERATOR
    assert new.version == state.version + 1


def test_reopen_keeps_the_ended_dispatch() -> None:
    """Reopening a resolved alert brings it back to acknowledged without reviving its cancelled dispatch."""
    resolved = state_at(RESOLVED)
    assert resolved.dispatch is not None
    reopened = ok(resolved, K.REOPEN, actor=SUPERVISOR)
    assert reopened.status is ACKNOWLEDGED
    assert reopened.dispatch == resolved.dispatch
    assert reopened.dispatch.status is DispatchStatus.CANCELLED


# -- versions and retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-1, 1, -2])
def test_stale_expected_version_is_refused(offset: int) -> None:
    """An action that saw another version than the current one is refused 409, naming both versions."""
    state = state_at(ACKNOWLEDGED)
    seen = state.version + offset
    act = action(state, K.RESOLVE, expected_version=seen)
    decision = LC.on_action(state, act, NOW, ())
    reason = f"stale: the alert is at version {state.version}, the request saw {seen}"
    assert_refused(decision, act, 409, reason)


def test_current_or_no_expected_version_is_applied() -> None:
    """An action naming the current version, or none, is applied."""
    state = state_at(ACKNOWLEDGED)
    assert ok(state, K.COMMENT, expected_version=state.version).version == state.version + 1
    assert ok(state, K.COMMENT).version == state.version + 1


def test_two_operators_acting_at_once() -> None:
    """Of two actions that saw the same version, the second is refused as stale and changes nothing."""
    state = state_at(NEW)
    first = action(state, K.ACKNOWLEDGE, expected_version=state.version)
    second = action(
        state,
        K.FALSE_ALARM,
        Actor(subject="op-co-pedro", role=Role.OPERATOR, country="CO"),
        expected_version=state.version,
    )
    after = LC.on_action(state, first, NOW, ()).state
    assert after is not None
    decision = LC.on_action(after, second, NOW, ())
    assert decision.refused is not None
    assert decision.refused.status == 409
    assert decision.state is None
    assert after.status is ACKNOWLEDGED


def test_an_action_id_is_applied_once() -> None:
    """The same action id again is a no-op: no state, no dispatch, no audit, no refusal."""
    state = state_at(ACKNOWLEDGED)
    act = action(state, K.DISPATCH, expected_version=state.version)
    first = LC.on_action(state, act, NOW, ())
    assert first.state is not None
    assert first.dispatches
    again = LC.on_action(first.state, act, NOW + dt.timedelta(seconds=1), busy_of(first.state))
    assert again == Decision()


def test_a_retried_action_is_not_refused_as_stale_later() -> None:
    """An applied action retried after further changes is still a no-op, not a stale refusal."""
    state = state_at(NEW)
    act = action(state, K.ACKNOWLEDGE, expected_version=state.version)
    after = LC.on_action(state, act, NOW, ()).state
    assert after is not None
    later = ok(ok(after, K.COMMENT), K.DISPATCH)
    assert LC.on_action(later, act, NOW, busy_of(later)) == Decision()


def test_a_refused_action_is_not_remembered() -> None:
    """A refused action leaves no trace in the state, so the same request is refused again the same way."""
    state = state_at(NEW)
    act = action(state, K.REOPEN, SUPERVISOR)
    first = LC.on_action(state, act, NOW, ())
    second = LC.on_action(state, act, NOW, ())
    assert first.refused is not None
    assert second.refused is not None
    assert first.audits == second.audits  # same audit id: a replayed refusal is recognisable


def test_unknown_alert_is_404() -> None:
    """An action on an alert the processor has no state for is refused 404, and audited."""
    act = action("A-nosuchalert", K.ACKNOWLEDGE)
    decision = LC.on_action(None, act, NOW, ())
    assert_refused(decision, act, 404, "unknown alert A-nosuchalert")


def test_audit_ids_are_distinct_per_action_and_outcome() -> None:
    """Two different actions, and an applied and a refused one, never share an audit id."""
    state = state_at(NEW)
    applied = LC.on_action(state, action(state, K.COMMENT), NOW, ())
    other = LC.on_action(state, action(state, K.COMMENT), NOW, ())
    refused = LC.on_action(state, action(state, K.REOPEN), NOW, ())
    ids = {applied.audits[0].audit_id, other.audits[0].audit_id, refused.audits[0].audit_id}
    assert len(ids) == 3


def test_applied_dispatch_audit_names_the_team() -> None:
    """The audit of a dispatch to a named team carries the team and the resulting status."""
    state = state_at(ACKNOWLEDGED)
    decision = LC.on_action(state, action(state, K.DISPATCH, team_id=BRAVO), NOW, ())
    record = decision.audits[0]
    assert record.outcome == "applied"
    assert record.details == {"status": "dispatched", "team_id": BRAVO}


# -- the correlator's revisions ----------------------------------------------------------------------


def test_a_new_alert_is_new_with_a_suggested_team() -> None:
    """A first revision below auto severity: a new state at version 1, the nearest team suggested."""
    item = alert("high")
    decision = LC.on_alert(None, item, T0, ())
    state = decision.state
    assert state is not None
    assert (state.status, state.version, state.updated_at) == (NEW, 1, T0)
    assert state.alert == item
    assert state.history == [
        HistoryEntry(time=T0, action=None, status=NEW, note=f"raised: {item.summary}"[:256])
    ]
    assert state.suggested_team == ALFA
    assert state.dispatch is None
    assert (decision.dispatches, decision.audits, decision.refused) == ([], [], None)


def test_the_raised_note_fits_the_history() -> None:
    """A 300-character summary still makes a valid history note (cut to 256 characters)."""
    item = alert(summary="x" * 300)
    state = raised(item)
    assert state.history[0].note == ("raised: " + "x" * 300)[:256]
    assert AlertState.model_validate(state.model_dump(mode="json")) == state


def test_jurisdiction_decides_the_teams_country() -> None:
    """An alert in Venezuela seen by Colombian sensors is suggested a Venezuelan team."""
    state = raised(make_alert(DEMO, "CO", CO_REGION, severity="high", revision=1, jurisdiction="VE"))
    assert state.suggested_team in teams_of(DEMO, "VE")


def test_without_jurisdiction_the_owners_country_decides() -> None:
    """An alert with no known jurisdiction is suggested a team of its owner's country."""
    state = raised(make_alert(DEMO, "VE", CO_REGION, severity="high", revision=1, jurisdiction=None))
    assert state.suggested_team in teams_of(DEMO, "VE")
    state = raised(make_alert(DEMO, "CO", CO_REGION, severity="high", revision=1, jurisdiction=None))
    assert state.suggested_team in teams_of(DEMO, "CO")


@pytest.mark.parametrize("behind", [0, 1, 4])
def test_an_old_revision_changes_nothing(behind: int) -> None:
    """A revision not newer than the state's (a replay, or late) is ignored, whatever it says."""
    state = ok(raised(alert(revision=5)), K.ACKNOWLEDGE)
    old = Alert.model_validate(
        {**state.alert.model_dump(), "revision": 5 - behind, "severity": "low", "summary": "older"}
    )
    assert LC.on_alert(state, old, NOW, ()) == Decision()


def test_a_newer_revision_replaces_the_alert_quietly() -> None:
    """A newer revision with the same severity: the alert replaced, version +1, no history entry."""
    state = ok(raised(alert()), K.ACKNOWLEDGE)
    newer = revise(state.alert, summary="Person still near the river")
    decision = LC.on_alert(state, newer, NOW, ())
    new = decision.state
    assert new is not None
    assert new.alert == newer
    assert (new.version, new.updated_at, new.status) == (state.version + 1, NOW, ACKNOWLEDGED)
    assert new.history == state.history
    assert (decision.dispatches, decision.audits) == ([], [])


def test_a_severity_change_is_noted() -> None:
    """A revision that changes the severity adds a history note, with the status unchanged."""
    state = ok(raised(alert("high")), K.ACKNOWLEDGE)
    new = LC.on_alert(state, revise(state.alert, severity="medium"), NOW, ()).state
    assert new is not None
    assert new.history[:-1] == state.history
    assert new.history[-1] == HistoryEntry(
        time=NOW, action=None, status=ACKNOWLEDGED, note="severity now medium"
    )


@pytest.mark.parametrize("closed", [RESOLVED, FALSE_ALARM])
@pytest.mark.parametrize("severity", ["high", "low"])
def test_an_update_after_closing_is_noted(closed: AlertStatus, severity: str) -> None:
    """A revision of a closed alert keeps it closed and says it was updated after it was closed."""
    state = state_at(closed)
    newer = revise(state.alert, severity=severity)
    new = LC.on_alert(state, newer, NOW, ()).state
    assert new is not None
    assert new.status is closed
    assert new.version == state.version + 1
    assert new.history[-1].note == f"updated after it was closed (revision {newer.revision})"
    assert new.history[-1].status is closed
    assert new.dispatch == state.dispatch


def test_a_revision_refreshes_the_suggestion_until_dispatched() -> None:
    """Before any dispatch a revision re-suggests around busy teams; after one the suggestion stays."""
    state = raised(alert())
    assert state.suggested_team == ALFA
    new = LC.on_alert(state, revise(state.alert), NOW, {ALFA}).state
    assert new is not None
    assert new.suggested_team == POLICIA
    dispatched = ok(new, K.DISPATCH)
    assert dispatched.suggested_team == ALFA
    later = LC.on_alert(dispatched, revise(dispatched.alert), NOW, {ALFA, POLICIA}).state
    assert later is not None
    assert later.suggested_team == ALFA


@pytest.mark.parametrize(
    ("auto", "severity", "dispatched"),
    [
        ("critical", "critical", True),
        ("critical", "high", False),
        ("high", "high", True),
        ("high", "critical", True),
        ("high", "medium", False),
        ("info", "info", True),
        (None, "critical", False),
    ],
)
def test_automatic_dispatch_at_or_above_the_configured_severity(
    auto: str | None, severity: str, dispatched: bool
) -> None:
    """A new alert at or above dispatch.auto_severity is offered to a team at once; below it, not."""
    lc = LC if auto == "critical" else Lifecycle(variant(auto_severity=auto))
    decision = lc.on_alert(None, alert(severity), T0, ())
    state = decision.state
    assert state is not None
    assert (state.status is DISPATCHED) is dispatched
    assert bool(decision.dispatches) is dispatched
    assert state.version == (2 if dispatched else 1)


def test_automatic_dispatch_is_done_by_the_system() -> None:
    """The automatic dispatch offers the nearest team, by Lindero, with its history and audit."""
    item = alert("critical")
    decision = LC.on_alert(None, item, T0, ())
    state = decision.state
    assert state is not None
    [offer] = decision.dispatches
    assert state.dispatch == offer
    assert (offer.team_id, offer.status, offer.by, offer.escalation) == (ALFA, OFFERED, SYSTEM, 0)
    assert offer.accept_by == T0 + dt.timedelta(seconds=DEMO.dispatch.accept_timeout_s)
    assert [h.status for h in state.history] == [NEW, DISPATCHED]
    assert state.history[1].actor == SYSTEM
    assert state.history[1].action is K.DISPATCH
    [record] = decision.audits
    assert (record.actor, record.action, record.outcome) == (SYSTEM, "dispatch", "applied")
    assert record.details == {"status": "dispatched"}


def test_automatic_dispatch_happens_once() -> None:
    """Later revisions of an automatically dispatched alert do not offer it again."""
    state = raised(alert("critical"))
    decision = LC.on_alert(state, revise(state.alert), NOW, busy_of(state))
    assert decision.dispatches == []
    assert decision.state is not None
    assert decision.state.dispatch == state.dispatch


def test_a_revision_that_raises_the_severity_to_the_threshold_dispatches_automatically() -> None:
    """An open, undispatched alert revised from high to critical is offered to a team by Lindero."""
    state = raised(alert("high"))
    assert state.dispatch is None
    decision = LC.on_alert(state, revise(state.alert, severity="critical"), NOW, ())
    assert decision.state is not None
    [offer] = decision.dispatches
    assert offer.by == SYSTEM
    assert decision.state.status is DISPATCHED
    assert decision.state.history[-1].actor == SYSTEM


def test_no_automatic_dispatch_when_the_severity_was_already_there_or_the_alert_is_handled() -> None:
    """Critical to critical, or an alert already dispatched, acknowledged-and-resolved: no new offer."""
    quiet = raised(alert("critical"), busy=set(CO_TEAMS))
    assert quiet.dispatch is None
    again = LC.on_alert(quiet, revise(quiet.alert), NOW, ())
    assert again.dispatches == []
    handled = raised(alert("high"))
    closed = LC.on_action(handled, action(handled, K.RESOLVE), T0, ()).state
    assert closed is not None
    late = LC.on_alert(closed, revise(closed.alert, severity="critical"), NOW, ())
    assert late.dispatches == []
    assert late.state is not None
    assert late.state.status is RESOLVED


def test_automatic_dispatch_without_a_team_leaves_the_alert_new() -> None:
    """When no team can take a critical alert it stays new (nobody acknowledged it) and says why."""
    decision = LC.on_alert(None, alert("critical"), T0, set(CO_TEAMS))
    state = decision.state
    assert state is not None
    assert state.status is NEW
    assert state.notice == "no available team could be dispatched"
    assert state.dispatch is None
    assert state.suggested_team is None
    assert decision.dispatches == []


def test_a_person_dispatching_without_a_team_acknowledges() -> None:
    """An operator's dispatch of a new alert that finds no team still acknowledges it, with a notice."""
    state = raised(alert())
    new = ok(state, K.DISPATCH, busy=set(CO_TEAMS))
    assert new.status is ACKNOWLEDGED
    assert new.notice == "no available team could be dispatched"
    assert new.history[-1].actor == OPERATOR
    assert new.dispatch is None


# -- team choice -------------------------------------------------------------------------------------


def test_candidates_nearest_first_with_their_distances() -> None:
    """Candidates are the country's teams, nearest base first, with the great-circle distance in metres."""
    item = alert()
    found = LC.candidates(item, ())
    assert [team.id for _, team in found] == CO_TEAMS
    for metres, team in found:
        assert metres == pytest.approx(distance_m(team.base.lat, team.base.lon, item.lat, item.lon))
    assert [m for m, _ in found] == sorted(m for m, _ in found)
    assert LC.suggest(item, ()) == ALFA


def test_other_countries_teams_are_never_candidates() -> None:
    """A Venezuelan team 2 km away is never offered a Colombian alert, nor a Mexican team anything here."""
    found = {team.id for _, team in LC.candidates(alert(), ())}
    assert found == set(teams_of(DEMO, "CO"))
    assert "ve-rrt-1" not in found


def test_the_alerts_region_comes_first() -> None:
    """A team of another region is offered only after the region's own teams, however near it is."""
    item = alert()
    near_elsewhere = co_team("co-rrt-lejos", item.lat, item.lon, region=MX_REGION)
    lc = Lifecycle(variant(teams=[near_elsewhere]))
    found = [team.id for _, team in lc.candidates(item, ())]
    assert found == [*CO_TEAMS, "co-rrt-lejos"]
    assert lc.suggest(item, set(CO_TEAMS)) == "co-rrt-lejos"


def test_equally_near_teams_are_ordered_by_id() -> None:
    """Two teams with the same base are ordered by id, so the choice is deterministic."""
    item = alert()
    twins = [co_team("co-rrt-zz", item.lat, item.lon), co_team("co-rrt-aa", item.lat, item.lon)]
    lc = Lifecycle(variant(teams=twins))
    assert [team.id for _, team in lc.candidates(item, ())][:2] == ["co-rrt-aa", "co-rrt-zz"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("low_slow_flyer", [POLICIA, BRAVO]),  # needs drone or vehicle: alfa has foot and k9
        ("sensor_tamper", CO_TEAMS),  # vehicle or foot: every Colombian team
        ("border_crossing", CO_TEAMS),  # no requirement
    ],
)
def test_capabilities_the_kind_needs(kind: str, expected: list[str]) -> None:
    """A kind listed under dispatch.capabilities goes only to teams with one of those capabilities."""
    item = alert(kind=kind)
    assert [team.id for _, team in LC.candidates(item, ())] == expected
    state = ok(raised(item), K.DISPATCH)
    assert state.dispatch is not None
    assert state.dispatch.team_id == expected[0]


def test_a_capability_nobody_has_finds_no_team() -> None:
    """When no team of the country has a needed capability there is no candidate and no suggestion."""
    lc = Lifecycle(variant(capabilities={"loitering": ["riverine"]}))
    item = alert(kind="loitering")
    assert lc.candidates(item, ()) == []
    assert lc.suggest(item, ()) is None


def test_busy_and_already_offered_teams_are_skipped() -> None:
    """Busy teams and teams already offered this alert are not candidates."""
    item = alert()
    assert [t.id for _, t in LC.candidates(item, {ALFA})] == [POLICIA, BRAVO]
    assert [t.id for _, t in LC.candidates(item, (), {POLICIA})] == [ALFA, BRAVO]
    assert LC.candidates(item, {ALFA}, {POLICIA, BRAVO}) == []
    assert LC.suggest(item, {ALFA}, {POLICIA, BRAVO}) is None


def test_an_unavailable_team_is_never_chosen() -> None:
    """A team marked available: false is never a candidate, never suggested, escalated to or named."""
    lc = Lifecycle(variant(teams=[{"id": ALFA, "available": False}]))
    item = alert()
    assert ALFA not in {team.id for _, team in lc.candidates(item, ())}
    state = raised(item, lc)
    assert state.suggested_team == POLICIA
    dispatched = ok(state, K.DISPATCH, lc=lc)
    assert dispatched.dispatch is not None
    assert dispatched.dispatch.team_id == POLICIA
    escalated = answer(dispatched, K.TEAM_DECLINE, lc=lc)
    assert escalated.dispatch is not None
    assert escalated.dispatch.team_id == BRAVO
    act = action(state, K.DISPATCH, team_id=ALFA)
    assert_refused(lc.on_action(state, act, NOW, ()), act, 409, f"team {ALFA} is not available")


# -- dispatching -------------------------------------------------------------------------------------


def test_an_offer_describes_the_job() -> None:
    """An offer carries the alert's place and facts, the team's distance, a deadline and who sent it."""
    state = state_at(ACKNOWLEDGED)
    act = action(state, K.DISPATCH)
    decision = LC.on_action(state, act, NOW, ())
    new = decision.state
    assert new is not None
    [offer] = decision.dispatches
    item = state.alert
    team = DEMO.teams_by_id[ALFA]
    metres = distance_m(team.base.lat, team.base.lon, item.lat, item.lon)
    assert offer.dispatch_id.startswith("D-")
    assert (offer.alert_id, offer.team_id, offer.status) == (item.alert_id, ALFA, OFFERED)
    assert (offer.lat, offer.lon, offer.region) == (item.lat, item.lon, item.region)
    assert (offer.kind, offer.severity, offer.summary) == (item.kind.value, item.severity.value, item.summary)
    assert offer.distance_m == round(metres, 1)
    assert (offer.offered_at, offer.updated_at) == (NOW, NOW)
    assert offer.accept_by == NOW + dt.timedelta(seconds=120)
    assert (offer.by, offer.escalation, offer.delivery) == (OPERATOR, 0, Delivery.NONE)
    assert offer.history[-1].note == f"offered to {ALFA}"
    assert new.dispatch == offer
    assert new.teams_offered == [ALFA]
    assert new.suggested_team == ALFA
    assert new.notice is None
    assert new.history[-1].note == f"offered to team {ALFA} ({metres / 1000:.1f} km)"
    assert Dispatch.model_validate(offer.model_dump(mode="json")) == offer


def test_an_offer_is_deterministic() -> None:
    """The same action on the same state makes the same dispatch id; another action another id."""
    state = state_at(ACKNOWLEDGED)
    act = action(state, K.DISPATCH)
    first = LC.on_action(state, act, NOW, ())
    second = LC.on_action(state, act, NOW, ())
    third = LC.on_action(state, action(state, K.DISPATCH), NOW, ())
    assert first == second
    assert first.dispatches[0].dispatch_id != third.dispatches[0].dispatch_id


def test_a_team_with_a_webhook_gets_a_pending_delivery() -> None:
    """An offer to a team with a webhook starts with delivery pending."""
    hook = {"url": "https://alfa.example/hook", "secret_env": "ALFA_SECRET"}
    lc = Lifecycle(variant(teams=[{"id": ALFA, "webhook": hook}]))
    state = ok(raised(alert(), lc), K.DISPATCH, lc=lc)
    assert state.dispatch is not None
    assert state.dispatch.delivery is Delivery.PENDING
    assert state.dispatch.delivery_attempts == 0


def test_dispatch_to_a_named_team() -> None:
    """A dispatch naming a team offers that team even when another is nearer."""
    state = state_at(ACKNOWLEDGED)
    new = ok(state, K.DISPATCH, team_id=BRAVO)
    assert new.dispatch is not None
    assert new.dispatch.team_id == BRAVO
    base = DEMO.teams_by_id[BRAVO].base
    assert new.dispatch.distance_m == round(distance_m(base.lat, base.lon, new.alert.lat, new.alert.lon), 1)


@pytest.mark.parametrize(
    ("team", "busy", "status", "reason"),
    [
        ("co-rrt-nadie", (), 404, "unknown team co-rrt-nadie"),
        ("ve-rrt-1", (), 403, "team ve-rrt-1 belongs to VE; the alert is in CO"),
        ("mx-rrt-1", (), 403, "team mx-rrt-1 belongs to MX; the alert is in CO"),
        (BRAVO, (BRAVO,), 409, f"team {BRAVO} is not available"),
    ],
)
def test_dispatch_to_a_named_team_refused(team: str, busy: tuple[str, ...], status: int, reason: str) -> None:
    """A named team that does not exist, belongs to another country or is busy is refused, and audited."""
    state = state_at(ACKNOWLEDGED)
    act = action(state, K.DISPATCH, team_id=team)
    assert_refused(LC.on_action(state, act, NOW, busy), act, status, reason)


def test_dispatching_the_same_team_again_is_refused() -> None:
    """A person naming the team already dispatched is refused 409; the offer stands."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    act = action(state, K.DISPATCH, team_id=ALFA)
    assert_refused(
        LC.on_action(state, act, NOW, ()), act, 409, f"team {ALFA} is already dispatched to this alert"
    )


def test_redispatch_replaces_the_current_offer() -> None:
    """Dispatching a dispatched alert again cancels the current dispatch and offers the next team."""
    state = state_at(DISPATCHED)
    old = state.dispatch
    assert old is not None
    decision = LC.on_action(state, action(state, K.DISPATCH), NOW, busy_of(state))
    new = decision.state
    assert new is not None
    cancelled, offer = decision.dispatches
    assert (cancelled.dispatch_id, cancelled.status) == (old.dispatch_id, DispatchStatus.CANCELLED)
    assert cancelled.history[-1].note == "replaced by a new dispatch"
    assert cancelled.history[-1].actor == OPERATOR
    assert (offer.team_id, offer.status) == (POLICIA, OFFERED)
    assert new.dispatch == offer
    assert new.teams_offered == [ALFA, POLICIA]
    assert new.status is DISPATCHED


def test_redispatch_without_another_team_keeps_the_current_one() -> None:
    """When no other team can be found, a re-dispatch leaves the current dispatch standing and says so."""
    state = answer(state_at(DISPATCHED), K.TEAM_ACCEPT)
    decision = LC.on_action(state, action(state, K.DISPATCH), NOW, set(CO_TEAMS))
    new = decision.state
    assert new is not None
    assert decision.dispatches == []
    assert new.dispatch == state.dispatch
    assert new.dispatch is not None
    assert new.dispatch.status is ACCEPTED
    assert new.status is DISPATCHED
    assert new.notice == "no available team could be dispatched"
    assert new.version == state.version + 1


# -- team answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "source"), TEAM_ALLOWED, ids=[f"{k}-{s}" for k, s in TEAM_ALLOWED])
def test_team_answer_allowed(kind: ActionKind, source: DispatchStatus) -> None:
    """A team's answer from an allowed dispatch status moves the dispatch; the alert stays dispatched."""
    state = with_dispatch_status(state_at(DISPATCHED), source)
    assert state.dispatch is not None
    act = action(state, kind, team_actor(ALFA), dispatch_id=state.dispatch.dispatch_id, note="ETA 10 min")
    decision = LC.on_action(state, act, NOW, busy_of(state))
    new = decision.state
    assert new is not None
    assert decision.refused is None
    target = TEAM_ANSWERS[kind][1]
    stepped = decision.dispatches[0]
    assert (stepped.dispatch_id, stepped.status, stepped.updated_at) == (
        state.dispatch.dispatch_id,
        target,
        NOW,
    )
    assert stepped.history[-1].actor == team_actor(ALFA)
    assert stepped.history[-1].note == "ETA 10 min"
    answered = new.history[len(state.history)]
    assert (answered.action, answered.actor, answered.action_id, answered.time) == (
        kind,
        team_actor(ALFA),
        act.action_id,
        NOW,
    )
    if kind is K.TEAM_DECLINE:
        assert answered.note == f"team {ALFA} declined"
        return
    assert new.status is DISPATCHED
    assert new.dispatch == stepped
    assert decision.dispatches == [stepped]
    assert new.version == state.version + 1
    assert answered.note == f"team {ALFA}: {words(target)}"
    assert decision.audits[0].details == {"status": "dispatched"}


@pytest.mark.parametrize(("kind", "source"), TEAM_REFUSED, ids=[f"{k}-{s}" for k, s in TEAM_REFUSED])
def test_team_answer_refused(kind: ActionKind, source: DispatchStatus) -> None:
    """A team's answer from a dispatch status that does not allow it is refused 409."""
    state = with_dispatch_status(state_at(DISPATCHED), source)
    assert state.dispatch is not None
    act = action(state, kind, team_actor(ALFA), dispatch_id=state.dispatch.dispatch_id)
    reason = f"the dispatch is {source.value}; cannot {words(kind).removeprefix('team ')}"
    assert_refused(LC.on_action(state, act, NOW, ()), act, 409, reason)


def test_another_team_cannot_answer() -> None:
    """A team answering a dispatch offered to another team is refused 403."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    act = action(state, K.TEAM_ACCEPT, team_actor(BRAVO), dispatch_id=state.dispatch.dispatch_id)
    reason = f"dispatch {state.dispatch.dispatch_id} was offered to another team"
    assert_refused(LC.on_action(state, act, NOW, ()), act, 403, reason)


def test_an_operator_may_answer_for_the_team() -> None:
    """An operator relaying the team's radio answer is not a team and may record it."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    new = ok(state, K.TEAM_ACCEPT, dispatch_id=state.dispatch.dispatch_id)
    assert new.dispatch is not None
    assert new.dispatch.status is ACCEPTED


@pytest.mark.parametrize("which", ["replaced", "missing", "none"])
def test_an_answer_to_a_dispatch_that_is_not_current_is_refused(which: str) -> None:
    """An answer naming an old dispatch, no dispatch, or for an alert without dispatch is refused 409."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    dispatch_id: str | None = state.dispatch.dispatch_id
    if which == "replaced":
        state = ok(state, K.DISPATCH, busy=busy_of(state))
    elif which == "missing":
        dispatch_id = None
    else:
        state = state_at(ACKNOWLEDGED)
    act = action(state, K.TEAM_ACCEPT, team_actor(ALFA), dispatch_id=dispatch_id)
    reason = "that dispatch is no longer current for this alert"
    assert_refused(LC.on_action(state, act, NOW, ()), act, 409, reason)


def test_accepted_on_scene_completed() -> None:
    """A team accepts, arrives and completes; the dispatch's history records each step."""
    state = answer(answer(answer(state_at(DISPATCHED), K.TEAM_ACCEPT), K.TEAM_ON_SCENE), K.TEAM_COMPLETED)
    assert state.dispatch is not None
    assert state.dispatch.status is DispatchStatus.COMPLETED
    assert [h.note for h in state.dispatch.history[-3:]] == ["accepted", "on_scene", "completed"]
    assert state.status is DISPATCHED
    assert ok(state, K.RESOLVE).status is RESOLVED


# -- decline, expiry and escalation ------------------------------------------------------------------


def test_a_decline_offers_the_next_team() -> None:
    """A declined offer goes to the next nearest team, one escalation further, both steps in history."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    act = action(state, K.TEAM_DECLINE, team_actor(ALFA), dispatch_id=state.dispatch.dispatch_id)
    decision = LC.on_action(state, act, NOW, busy_of(state))
    new = decision.state
    assert new is not None
    declined, offer = decision.dispatches
    assert (declined.team_id, declined.status) == (ALFA, DispatchStatus.DECLINED)
    assert (offer.team_id, offer.status, offer.escalation, offer.by) == (POLICIA, OFFERED, 1, SYSTEM)
    assert new.dispatch == offer
    assert new.teams_offered == [ALFA, POLICIA]
    assert new.status is DISPATCHED
    assert new.version == state.version + 2
    assert [h.note for h in new.history[-2:]] == [
        f"team {ALFA} declined",
        f"offered to team {POLICIA} ({offer.distance_m / 1000:.1f} km), escalation 1",
    ]
    assert new.history[-1].actor == SYSTEM
    assert [(a.action, a.outcome) for a in decision.audits] == [
        ("team_decline", "applied"),
        ("escalate", "applied"),
    ]
    assert decision.audits[1].details == {"level": 1}


def test_escalation_skips_busy_teams() -> None:
    """An escalation passes over teams that are busy elsewhere."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    act = action(state, K.TEAM_DECLINE, team_actor(ALFA), dispatch_id=state.dispatch.dispatch_id)
    decision = LC.on_action(state, act, NOW, {POLICIA})
    assert decision.state is not None
    assert decision.state.dispatch is not None
    assert decision.state.dispatch.team_id == BRAVO


def five_co_teams(**dispatch: Any) -> Lifecycle:
    """The demo with two more Colombian teams in Cúcuta, farther than the others."""
    item = alert()
    extra = [
        co_team("co-rrt-delta", item.lat + 0.5, item.lon),
        co_team("co-rrt-echo", item.lat + 0.6, item.lon),
    ]
    return Lifecycle(variant(teams=extra, **dispatch))


@pytest.mark.parametrize("max_escalations", [0, 1, 3])
def test_declines_give_up_after_max_escalations(max_escalations: int) -> None:
    """After max_escalations + 1 declines the alert is acknowledged with a notice that no team accepted."""
    lc = five_co_teams(max_escalations=max_escalations)
    state = ok(raised(alert(), lc), K.DISPATCH, lc=lc)
    for level in range(max_escalations + 1):
        assert state.dispatch is not None
        assert state.dispatch.escalation == level
        assert state.status is DISPATCHED
        state = answer(state, K.TEAM_DECLINE, lc=lc)
    offers = max_escalations + 1
    assert len(state.teams_offered) == offers
    assert len(set(state.teams_offered)) == offers
    assert state.status is ACKNOWLEDGED
    assert state.notice == f"no team accepted after {offers} offers"
    assert state.dispatch is not None
    assert state.dispatch.status is DispatchStatus.DECLINED
    assert state.history[-1].actor == SYSTEM
    assert state.history[-1].status is ACKNOWLEDGED


def test_escalation_that_runs_out_of_teams_says_so() -> None:
    """When fewer teams exist than escalations allow, the last decline leaves the alert acknowledged."""
    state = state_at(DISPATCHED)
    for _ in CO_TEAMS:
        state = answer(state, K.TEAM_DECLINE)
    assert state.teams_offered == [ALFA, POLICIA, BRAVO]
    assert state.notice == "no available team could be dispatched after escalation"
    assert state.dispatch is not None
    assert not state.dispatch.status.active
    assert state.status is ACKNOWLEDGED
    assert state.suggested_team is None


def test_escalation_skips_teams_already_offered() -> None:
    """After a named team declines, escalation offers the nearest teams not yet offered, in order."""
    state = ok(state_at(ACKNOWLEDGED), K.DISPATCH, team_id=BRAVO)
    offered = []
    for _ in CO_TEAMS:
        assert state.dispatch is not None
        offered.append(state.dispatch.team_id)
        state = answer(state, K.TEAM_DECLINE)
    assert offered == [BRAVO, ALFA, POLICIA]
    assert state.teams_offered == offered


def test_a_person_can_dispatch_again_after_giving_up() -> None:
    """After escalation gave up, an operator's new dispatch to a named team is offered again."""
    state = state_at(DISPATCHED)
    for _ in CO_TEAMS:
        state = answer(state, K.TEAM_DECLINE)
    again = ok(state, K.DISPATCH, team_id=ALFA)
    assert again.status is DISPATCHED
    assert again.notice is None
    assert again.dispatch is not None
    assert (again.dispatch.team_id, again.dispatch.status, again.dispatch.escalation) == (ALFA, OFFERED, 0)


def test_expired_lists_offers_past_their_deadline() -> None:
    """expired() returns one system action per offer at or past accept_by, none for others."""
    due = state_at(DISPATCHED)
    assert due.dispatch is not None
    deadline = due.dispatch.accept_by
    accepted = answer(state_at(DISPATCHED), K.TEAM_ACCEPT)
    later = state_at(DISPATCHED)
    assert later.dispatch is not None
    later = later.model_copy(
        update={
            "dispatch": later.dispatch.model_copy(update={"accept_by": deadline + dt.timedelta(seconds=1)})
        }
    )
    states = {s.alert.alert_id: s for s in [due, accepted, later, state_at(ACKNOWLEDGED), state_at(RESOLVED)]}

    assert Lifecycle.expired(states, deadline - dt.timedelta(microseconds=1)) == []
    [act] = Lifecycle.expired(states, deadline)
    assert (act.alert_id, act.dispatch_id) == (due.alert.alert_id, due.dispatch.dispatch_id)
    assert (act.action, act.actor, act.time, act.expected_version) == (
        K.EXPIRE_DISPATCH,
        SYSTEM,
        deadline,
        None,
    )
    assert Lifecycle.expired(states, deadline + dt.timedelta(minutes=1))[0].action_id == act.action_id
    assert len(Lifecycle.expired(states, deadline + dt.timedelta(seconds=1))) == 2


def test_an_expired_offer_goes_to_the_next_team() -> None:
    """Applying the expiry marks the offer expired and offers the next team, one escalation further."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    deadline = state.dispatch.accept_by
    [act] = Lifecycle.expired({state.alert.alert_id: state}, deadline)
    decision = LC.on_action(state, act, deadline, busy_of(state))
    new = decision.state
    assert new is not None
    expired, offer = decision.dispatches
    assert (expired.team_id, expired.status) == (ALFA, DispatchStatus.EXPIRED)
    assert expired.history[-1].note == "not accepted in time"
    assert (offer.team_id, offer.status, offer.escalation) == (POLICIA, OFFERED, 1)
    assert offer.accept_by == deadline + dt.timedelta(seconds=120)
    assert new.history[len(state.history)].note == f"offer to team {ALFA} expired"
    assert new.version == state.version + 2
    assert LC.on_action(new, act, deadline, busy_of(new)) == Decision()  # a second timer tick: applied once


def test_expiry_gives_up_after_max_escalations() -> None:
    """Offers that keep expiring end, after max_escalations, in an acknowledged alert with a notice."""
    lc = Lifecycle(variant(max_escalations=1))
    state = ok(raised(alert(), lc), K.DISPATCH, lc=lc)
    now = NOW
    for _ in range(2):
        assert state.dispatch is not None
        now = state.dispatch.accept_by
        [act] = lc.expired({state.alert.alert_id: state}, now)
        result = lc.on_action(state, act, now, busy_of(state)).state
        assert result is not None
        state = result
    assert state.status is ACKNOWLEDGED
    assert state.notice == "no team accepted after 2 offers"
    assert lc.expired({state.alert.alert_id: state}, now + dt.timedelta(hours=1)) == []


def test_an_expiry_before_the_deadline_is_refused() -> None:
    """An expiry request for an offer whose deadline has not passed is refused 409."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    act = action(state, K.EXPIRE_DISPATCH, SYSTEM, dispatch_id=state.dispatch.dispatch_id)
    now = state.dispatch.accept_by - dt.timedelta(seconds=1)
    assert_refused(LC.on_action(state, act, now, ()), act, 409, "the offer has not expired yet")


@pytest.mark.parametrize("case", ["accepted", "replaced", "no-dispatch"])
def test_an_expiry_that_came_too_late_changes_nothing(case: str) -> None:
    """An expiry for an offer that was answered, replaced or never made leaves the state alone."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    dispatch_id = state.dispatch.dispatch_id
    if case == "accepted":
        state = answer(state, K.TEAM_ACCEPT)
    elif case == "replaced":
        state = ok(state, K.DISPATCH, busy=busy_of(state))
    else:
        state = state_at(ACKNOWLEDGED)
    act = action(state, K.EXPIRE_DISPATCH, SYSTEM, dispatch_id=dispatch_id)
    decision = LC.on_action(state, act, NOW + dt.timedelta(hours=1), ())
    assert decision.state is None
    assert decision.dispatches == []
    assert decision.refused is None


# -- webhook delivery reports ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "delivery"), [(K.WEBHOOK_DELIVERED, Delivery.DELIVERED), (K.WEBHOOK_FAILED, Delivery.FAILED)]
)
@pytest.mark.parametrize(("note", "attempts"), [(None, 3), ("5 attempts, last 503", 5), ("gave up", 3)])
def test_a_webhook_report_updates_the_delivery(
    kind: ActionKind, delivery: Delivery, note: str | None, attempts: int
) -> None:
    """A delivery report sets the dispatch's delivery and attempts (from the note, else one more)."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    state = state.model_copy(update={"dispatch": state.dispatch.model_copy(update={"delivery_attempts": 2})})
    decision = LC.on_action(
        state, action(state, kind, SYSTEM, dispatch_id=state.dispatch.dispatch_id, note=note), NOW, ()
    )
    new = decision.state
    assert new is not None
    assert new.dispatch is not None
    assert (new.dispatch.delivery, new.dispatch.delivery_attempts) == (delivery, attempts)
    assert new.dispatch.status is OFFERED
    assert decision.dispatches == [new.dispatch]
    assert new.status is DISPATCHED
    assert new.version == state.version + 1
    assert new.history[-1].note == f"webhook to {ALFA}: {delivery.value}"


def test_a_webhook_report_for_an_old_dispatch_changes_nothing() -> None:
    """A delivery report for a dispatch that is no longer current does not touch the new one."""
    state = state_at(DISPATCHED)
    assert state.dispatch is not None
    old = state.dispatch.dispatch_id
    state = ok(state, K.DISPATCH, busy=busy_of(state))
    decision = LC.on_action(state, action(state, K.WEBHOOK_FAILED, SYSTEM, dispatch_id=old), NOW, ())
    assert decision.state is None
    assert decision.dispatches == []


# -- closing ends the dispatch -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "source", "ended", "status"),
    [
        (K.RESOLVE, OFFERED, DispatchStatus.CANCELLED, RESOLVED),
        (K.RESOLVE, ACCEPTED, DispatchStatus.CANCELLED, RESOLVED),
        (K.RESOLVE, ON_SCENE, DispatchStatus.COMPLETED, RESOLVED),
        (K.FALSE_ALARM, OFFERED, DispatchStatus.CANCELLED, FALSE_ALARM),
        (K.FALSE_ALARM, ON_SCENE, DispatchStatus.CANCELLED, FALSE_ALARM),
        (K.CANCEL_DISPATCH, ACCEPTED, DispatchStatus.CANCELLED, ACKNOWLEDGED),
        (K.CANCEL_DISPATCH, ON_SCENE, DispatchStatus.CANCELLED, ACKNOWLEDGED),
    ],
)
def test_closing_ends_the_active_dispatch(
    kind: ActionKind, source: DispatchStatus, ended: DispatchStatus, status: AlertStatus
) -> None:
    """Closing ends an active dispatch: completed if resolved while on scene, else cancelled."""
    state = with_dispatch_status(state_at(DISPATCHED), source)
    decision = LC.on_action(state, action(state, kind, SUPERVISOR, note="all clear"), NOW, busy_of(state))
    new = decision.state
    assert new is not None
    [closed] = decision.dispatches
    assert new.dispatch == closed
    assert (closed.status, closed.updated_at) == (ended, NOW)
    assert (closed.history[-1].actor, closed.history[-1].note) == (SUPERVISOR, "all clear")
    assert new.status is status
    assert new.version == state.version + 1


@pytest.mark.parametrize("kind", [K.RESOLVE, K.FALSE_ALARM, K.CANCEL_DISPATCH])
def test_closing_leaves_a_finished_dispatch_alone(kind: ActionKind) -> None:
    """A dispatch that already completed is not touched again when the alert is closed."""
    state = answer(answer(state_at(DISPATCHED), K.TEAM_ACCEPT), K.TEAM_COMPLETED)
    decision = LC.on_action(state, action(state, kind, SUPERVISOR), NOW, ())
    assert decision.state is not None
    assert decision.dispatches == []
    assert decision.state.dispatch == state.dispatch


# -- distance ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "metres"),
    [
        ((0.0, 0.0), (0.0, 1.0), math.pi * EARTH_M / 180),  # one degree of the equator: 111.195 km
        ((10.0, 20.0), (11.0, 20.0), math.pi * EARTH_M / 180),  # one degree of a meridian
        ((0.0, 0.0), (0.0, 90.0), math.pi * EARTH_M / 2),  # a quarter of the equator
        ((0.0, 0.0), (90.0, 0.0), math.pi * EARTH_M / 2),  # equator to pole
        ((0.0, 0.0), (0.0, 180.0), math.pi * EARTH_M),  # antipodes
        ((45.0, 10.0), (-45.0, -170.0), math.pi * EARTH_M),  # antipodes off the equator
        ((60.0, 0.0), (60.0, 180.0), math.pi * EARTH_M / 3),  # across the pole: 60° of arc
        ((7.9, -72.5), (7.9, -72.5), 0.0),
    ],
)
def test_distance_against_known_great_circles(
    a: tuple[float, float], b: tuple[float, float], metres: float
) -> None:
    """distance_m matches great-circle distances known in closed form on the 6,371,008.8 m sphere."""
    assert distance_m(*a, *b) == pytest.approx(metres, rel=1e-9, abs=1e-6)
    assert distance_m(*b, *a) == pytest.approx(metres, rel=1e-9, abs=1e-6)


def test_distance_of_one_degree_is_111_km() -> None:
    """One degree of arc on the Earth's mean sphere is the textbook 111.195 km."""
    assert distance_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_195.08, abs=0.01)


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    p, lam = math.radians(lat), math.radians(lon)
    return math.cos(p) * math.cos(lam), math.cos(p) * math.sin(lam), math.sin(p)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.floats(-90, 90),
    st.floats(-180, 180),
)
def test_distance_agrees_with_the_vector_formula(lat1: float, lon1: float, lat2: float, lon2: float) -> None:
    """Haversine agrees with R·atan2(|u×v|, u·v) everywhere (to 0.1 m: it loses digits next to antipodes)."""
    u, v = unit_vector(lat1, lon1), unit_vector(lat2, lon2)
    cross = (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])
    angle = math.atan2(math.hypot(*cross), sum(x * y for x, y in zip(u, v, strict=True)))
    assert distance_m(lat1, lon1, lat2, lon2) == pytest.approx(EARTH_M * angle, abs=0.1)


# -- properties: any sequence of actions -------------------------------------------------------------

ACTORS = [
    OPERATOR,
    SUPERVISOR,
    SYSTEM,
    Actor(subject="op-ve-ana", role=Role.OPERATOR, country="VE", centre="cc-tachira"),
    *[team_actor(team) for team in CO_TEAMS],
]
EXTRA_BUSY = st.sets(st.sampled_from([*CO_TEAMS, "ve-rrt-1"]), max_size=3)
"""Teams busy with other alerts (the dispatch board's view), changing from step to step."""
KINDS = [*ActionKind, K.DISPATCH, K.DISPATCH, K.TEAM_DECLINE, K.TEAM_ACCEPT]
"""Every action kind, dispatches and team answers more often (they lead to the most states)."""
STEP = st.one_of(
    st.tuples(
        st.just("action"),
        st.sampled_from(KINDS),
        st.integers(0, len(ACTORS) - 1),
        st.sampled_from(["none", "none", "current", "current", "older", "newer"]),
        st.sampled_from(["current", "other", "none"]),
        st.sampled_from([None, None, None, *CO_TEAMS, "ve-rrt-1"]),
        st.sampled_from([None, "2 attempts", "looks fine"]),
        st.integers(0, 200),
        EXTRA_BUSY,
        st.booleans(),
    ),
    st.tuples(
        st.just("revision"), st.sampled_from(["low", "medium", "high", "critical"]), st.integers(0, 60)
    ),
    st.tuples(st.just("timer"), st.integers(0, 300)),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    severity=st.sampled_from(["medium", "high", "critical"]),
    max_escalations=st.sampled_from([0, 1, 3]),
    padded=st.booleans(),
    steps=st.lists(STEP, min_size=1, max_size=40),
)
def test_any_sequence_of_actions_keeps_the_invariants(
    severity: str, max_escalations: int, padded: bool, steps: list[tuple[Any, ...]]
) -> None:
    """Version +1 per history step, history capped at 200, known statuses, at most one active dispatch."""
    lc = LC if max_escalations == 3 else Lifecycle(variant(max_escalations=max_escalations))
    now = T0
    decision = lc.on_alert(None, alert(severity), now, ())
    state = decision.state
    assert state is not None
    if padded:  # start near the history cap so that the cap is exercised
        filler = [HistoryEntry(time=T0, action=None, status=NEW, note=f"old {i}") for i in range(197)]
        state = state.model_copy(update={"history": filler + state.history})
    book: dict[str, Dispatch] = {d.dispatch_id: d for d in decision.dispatches}
    applied: list[AlertAction] = []
    other_alerts_busy: set[str] = set()

    def busy() -> set[str]:
        return {d.team_id for d in active_of(book)} | other_alerts_busy

    for step in steps:
        before = state
        if step[0] == "revision":
            _, sev, advance = step
            now += dt.timedelta(seconds=advance)
            decision = lc.on_alert(state, revise(state.alert, severity=sev), now, busy())
            assert decision.state is not None
            state = decision.state
            added = state.version - before.version
            automatic = (
                [h for h in state.history[-added:] if h.action is ActionKind.DISPATCH] if added > 1 else []
            )
            if decision.dispatches or automatic:
                # The revision raised the severity to the automatic threshold: Lindero dispatched.
                assert all(h.actor is not None and h.actor.role is Role.SYSTEM for h in automatic)
                assert state.version >= before.version + 2
                for dispatch in decision.dispatches:
                    book[dispatch.dispatch_id] = dispatch
                check_state(state, book)
                continue
            assert state.version == before.version + 1
            grew = 1 if len(state.history) != len(before.history) or state.history != before.history else 0
            check_history(before, state, grew, now)
            continue
        if step[0] == "timer":
            now += dt.timedelta(seconds=step[1])
            acts = lc.expired({state.alert.alert_id: state}, now)
        else:
            _, kind, who, seen, which, team, note, advance, extra, reuse = step
            now += dt.timedelta(seconds=advance)
            other_alerts_busy = set(extra)
            remembered = [a for a in applied if a.action_id in {h.action_id for h in state.history}]
            if reuse and remembered:
                acts = [remembered[len(remembered) // 2]]
            else:
                current = state.dispatch
                versions = {
                    "none": None,
                    "current": state.version,
                    "older": state.version - 1,
                    "newer": state.version + 1,
                }
                dispatch_id = {
                    "current": current.dispatch_id if current else None,
                    "other": "D-elsewhere",
                    "none": None,
                }[which]
                acts = [
                    AlertAction(
                        action_id=uuid.uuid4(),
                        alert_id=state.alert.alert_id,
                        action=kind,
                        actor=ACTORS[who],
                        time=now,
                        expected_version=versions[seen],
                        team_id=team,
                        dispatch_id=dispatch_id,
                        note=note,
                    )
                ]
        for act in acts:
            before = state
            replay = any(act.action_id == a.action_id for a in applied)
            decision = lc.on_action(state, act, now, busy())
            if replay:
                assert decision == Decision()
                continue
            if decision.refused is not None:
                assert decision.state is None
                assert decision.dispatches == []
                [record] = decision.audits
                assert record.outcome == "refused"
                assert record.details == {"action_id": str(act.action_id), "status": decision.refused.status}
                assert decision.refused.status in {403, 404, 409}
                continue
            assert all(a.outcome == "applied" for a in decision.audits)
            assert decision.audits[0].action == act.action.value
            if decision.state is None:
                assert decision.dispatches == []
                continue
            state = decision.state
            applied.append(act)
            steps_taken = state.version - before.version
            assert 1 <= steps_taken <= 2
            check_history(before, state, steps_taken, now)
            assert act.action_id in {h.action_id for h in state.history[-steps_taken:]}
            for dispatch in decision.dispatches:
                assert dispatch.alert_id == state.alert.alert_id
                book[dispatch.dispatch_id] = dispatch
            check_state(state, book)
    check_state(state, book)


def check_history(before: AlertState, after: AlertState, grew: int, now: dt.datetime) -> None:
    """``after``'s history is ``before``'s plus ``grew`` entries made at ``now``, the oldest cut at 200."""
    expected_length = min(len(before.history) + grew, 200)
    assert len(after.history) == expected_length
    kept = expected_length - grew
    assert after.history[:kept] == before.history[len(before.history) - kept :]
    assert all(h.time == now for h in after.history[kept:])
    assert after.updated_at == now


def check_state(state: AlertState, book: dict[str, Dispatch]) -> None:
    """The invariants of one alert's state and the dispatches published for it."""
    assert state.status in set(AlertStatus)
    assert AlertState.model_validate(state.model_dump(mode="json")) == state
    active = active_of(book)
    assert len(active) <= 1
    if state.dispatch is not None:
        assert book[state.dispatch.dispatch_id] == state.dispatch
    if active:
        assert state.dispatch == active[0]
        assert state.status is DISPATCHED
    if state.status is DISPATCHED:
        assert state.dispatch is not None
        assert state.dispatch.status.active or state.dispatch.status is DispatchStatus.COMPLETED
