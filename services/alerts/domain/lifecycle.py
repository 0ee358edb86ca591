"""The alert lifecycle as a pure state machine, and the choice of a response team.

One alert at a time: the correlator's revisions and people's actions come in, the next
:class:`~schemas.lifecycle.AlertState`, the :class:`~schemas.lifecycle.Dispatch` changes and the
:class:`~schemas.lifecycle.AuditRecord` of each decision come out. Nothing here does I/O or reads
the clock: the time arrives with the input.

Statuses::

    new ──acknowledge──▶ acknowledged ──dispatch──▶ dispatched ──resolve──▶ resolved
     │                        │                          │  └──false_alarm──▶ false_alarm
     └──dispatch / resolve / false_alarm (directly)      └─cancel_dispatch─▶ acknowledged
    resolved / false_alarm ──reopen (supervisor)──▶ acknowledged

An action names the state version it saw (``expected_version``); a newer state makes it
stale (refused, HTTP 409), so two operators acting at once never overwrite each other. An
action id is applied once: a retried request is answered with the state it produced.

Dispatch: the nearest available team of the alert's country (its jurisdiction, else the
owner's), in the alert's region first, with a capability the alert's kind needs (when the
configuration says it needs one), that has not been offered this alert before. An offer not
accepted within ``accept_timeout_s``, or declined, goes to the next team; after
``max_escalations`` the alert says that no team could be found.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.alerts import Alert, AlertStatus, Severity
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
from services.core.config import LinderoConfig, Team

SYSTEM = Actor(subject="lindero", role=Role.SYSTEM)
_HISTORY = 200
_EARTH_M = 6_371_008.8
_AUDIT_NAMESPACE = uuid.UUID("0c3c2a8e-8f7d-4e87-b7c3-2b0f5e8f2a44")

_MOVES: dict[ActionKind, tuple[frozenset[AlertStatus], AlertStatus | None]] = {
    ActionKind.ACKNOWLEDGE: (frozenset({AlertStatus.NEW}), AlertStatus.ACKNOWLEDGED),
    ActionKind.DISPATCH: (
        frozenset({AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.DISPATCHED}),
        AlertStatus.DISPATCHED,
    ),
    ActionKind.RESOLVE: (
        frozenset({AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.DISPATCHED}),
        AlertStatus.RESOLVED,
    ),
    ActionKind.FALSE_ALARM: (
        frozenset({AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.DISPATCHED}),
        AlertStatus.FALSE_ALARM,
    ),
    ActionKind.REOPEN: (frozenset({AlertStatus.RESOLVED, AlertStatus.FALSE_ALARM}), AlertStatus.ACKNOWLEDGED),
    ActionKind.CANCEL_DISPATCH: (frozenset({AlertStatus.DISPATCHED}), AlertStatus.ACKNOWLEDGED),
    ActionKind.COMMENT: (frozenset(AlertStatus), None),
}
"""For each operator action: the statuses it is allowed from and the status it leads to (None: unchanged)."""

_TEAM_MOVES: dict[ActionKind, tuple[frozenset[DispatchStatus], DispatchStatus]] = {
    ActionKind.TEAM_ACCEPT: (frozenset({DispatchStatus.OFFERED}), DispatchStatus.ACCEPTED),
    ActionKind.TEAM_DECLINE: (frozenset({DispatchStatus.OFFERED}), DispatchStatus.DECLINED),
    ActionKind.TEAM_ON_SCENE: (frozenset({DispatchStatus.ACCEPTED}), DispatchStatus.ON_SCENE),
    ActionKind.TEAM_COMPLETED: (
        frozenset({DispatchStatus.ACCEPTED, DispatchStatus.ON_SCENE}),
        DispatchStatus.COMPLETED,
    ),
}


class Refused(Exception):
    """An action that cannot be applied; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Decision:
    """What one input did."""

    state: AlertState | None = None
    """The new state (None: nothing changed)."""
    dispatches: list[Dispatch] = field(default_factory=list)
    audits: list[AuditRecord] = field(default_factory=list)
    refused: Refused | None = None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine on a sphere of radius 6,371 km), metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(a)))


def _audit(
    actor: Actor, action: str, subject: str, outcome: str, time: dt.datetime, key: str, **details: Any
) -> AuditRecord:
    reason = details.pop("reason", None)
    return AuditRecord(
        audit_id=uuid.uuid5(_AUDIT_NAMESPACE, f"{key}|{action}|{subject}|{outcome}"),
        time=time,
        actor=actor,
        action=action,
        subject=subject,
        outcome=outcome,
        reason=reason,
        details=details,
    )


class Lifecycle:
    """The lifecycle rules and the team registry of one deployment."""

    def __init__(self, config: LinderoConfig) -> None:
        self.config = config
        self.teams = config.teams_by_id
        self.dispatch_config = config.dispatch

    # -- team choice -------------------------------------------------------------------------

    def candidates(
        self, alert: Alert, busy: Collection[str], tried: Collection[str] = ()
    ) -> list[tuple[float, Team]]:
        """Suitable available teams for ``alert``, nearest first (region's teams before others)."""
        country = alert.jurisdiction or alert.owner.country
        needed = set(self.dispatch_config.capabilities.get(alert.kind.value, []))
        out = []
        for team in self.config.teams:
            if team.country != country or not team.available or team.id in busy or team.id in tried:
                continue
            if needed and not needed & set(team.capabilities):
                continue
            metres = distance_m(team.base.lat, team.base.lon, alert.lat, alert.lon)
            out.append((0.0 if team.region == alert.region else 1.0, metres, team))
        out.sort(key=lambda entry: (entry[0], entry[1], entry[2].id))
        return [(metres, team) for _, metres, team in out]

    def suggest(self, alert: Alert, busy: Collection[str], tried: Collection[str] = ()) -> str | None:
        found = self.candidates(alert, busy, tried)
        return found[0][1].id if found else None

    # -- correlator revisions ----------------------------------------------------------------

    def on_alert(
        self, state: AlertState | None, alert: Alert, now: dt.datetime, busy: Collection[str]
    ) -> Decision:
        """A new revision of an alert from the correlator."""
        if state is not None and alert.revision <= state.alert.revision:
            return Decision()
        if state is None:
            entry = HistoryEntry(
                time=now, action=None, status=AlertStatus.NEW, note=f"raised: {alert.summary}"[:256]
            )
            fresh = AlertState(
                alert=alert,
                status=AlertStatus.NEW,
                version=1,
                updated_at=now,
                history=[entry],
                suggested_team=self.suggest(alert, busy),
            )
            decision = Decision(state=fresh)
            if self._automatic(alert):
                self._auto_dispatch(decision, fresh, f"auto-dispatch|{alert.alert_id}", now, busy)
            return decision
        note = None
        if state.status in {AlertStatus.RESOLVED, AlertStatus.FALSE_ALARM}:
            note = f"updated after it was closed (revision {alert.revision})"
        history = state.history
        if note is not None or alert.severity != state.alert.severity:
            history = [
                *history,
                HistoryEntry(
                    time=now,
                    action=None,
                    status=state.status,
                    note=note or f"severity now {alert.severity.value}",
                ),
            ]
        updated = state.model_copy(
            update={
                "alert": alert,
                "version": state.version + 1,
                "updated_at": now,
                "history": history[-_HISTORY:],
                "suggested_team": self.suggest(alert, busy, self._tried(state))
                if state.dispatch is None
                else state.suggested_team,
            }
        )
        decision = Decision(state=updated)
        rose = self._automatic(alert) and not self._automatic(state.alert)
        undispatched = state.dispatch is None or not state.dispatch.status.active
        if rose and undispatched and state.status in {AlertStatus.NEW, AlertStatus.ACKNOWLEDGED}:
            key = f"auto-dispatch|{alert.alert_id}|{alert.revision}"
            self._auto_dispatch(decision, updated, key, now, busy)
        return decision

    def _automatic(self, alert: Alert) -> bool:
        """Whether ``alert``'s severity is at or above the automatic dispatch threshold."""
        auto = self.dispatch_config.auto_severity
        return auto is not None and Severity(alert.severity).rank >= Severity(auto).rank

    def _auto_dispatch(
        self, decision: Decision, state: AlertState, key: str, now: dt.datetime, busy: Collection[str]
    ) -> None:
        """Dispatch automatically (Lindero itself), folding the outcome into ``decision``."""
        action = AlertAction(
            action_id=uuid.uuid5(_AUDIT_NAMESPACE, key),
            alert_id=state.alert.alert_id,
            action=ActionKind.DISPATCH,
            actor=SYSTEM,
            time=now,
            note=f"automatic: severity {state.alert.severity.value}",
        )
        follow = self.on_action(state, action, now, busy)
        if follow.state is not None:
            decision.state = follow.state
        decision.dispatches += follow.dispatches
        decision.audits += follow.audits

    # -- actions -----------------------------------------------------------------------------

    def on_action(
        self, state: AlertState | None, action: AlertAction, now: dt.datetime, busy: Collection[str]
    ) -> Decision:
        """An action on an alert: applied, or refused with a reason (both audited)."""
        key = str(action.action_id)
        if state is None:
            return self._refuse(action, now, Refused(404, f"unknown alert {action.alert_id}"))
        if any(h.action_id == action.action_id for h in state.history):
            return Decision()  # a retried request: applied already
        if action.expected_version is not None and action.expected_version != state.version:
            return self._refuse(
                action,
                now,
                Refused(
                    409,
                    f"stale: the alert is at version {state.version}, "
                    f"the request saw {action.expected_version}",
                ),
            )
        try:
            if action.action in _TEAM_MOVES:
                decision = self._team(state, action, now, busy)
            elif action.action in {ActionKind.WEBHOOK_DELIVERED, ActionKind.WEBHOOK_FAILED}:
                decision = self._delivery(state, action, now)
            elif action.action is ActionKind.EXPIRE_DISPATCH:
                decision = self._expire(state, action, now, busy)
            else:
                decision = self._operator(state, action, now, busy)
        except Refused as refused:
            return self._refuse(action, now, refused)
        detail: dict[str, Any] = {
            "status": decision.state.status.value if decision.state else state.status.value
        }
        if action.team_id:
            detail["team_id"] = action.team_id
        decision.audits.insert(
            0, _audit(action.actor, action.action.value, action.alert_id, "applied", now, key, **detail)
        )
        return decision

    def _refuse(self, action: AlertAction, now: dt.datetime, refused: Refused) -> Decision:
        record = _audit(
            action.actor,
            action.action.value,
            action.alert_id,
            "refused",
            now,
            str(action.action_id),
            reason=refused.reason[:256],
            action_id=str(action.action_id),
            status=refused.status,
        )
        return Decision(audits=[record], refused=refused)

    def _stamp(
        self,
        state: AlertState,
        action: AlertAction,
        now: dt.datetime,
        status: AlertStatus,
        note: str | None,
        **changes: Any,
    ) -> AlertState:
        entry = HistoryEntry(
            time=now,
            action=action.action,
            status=status,
            actor=action.actor,
            note=note[:256] if note else None,
            action_id=action.action_id,
        )
        return state.model_copy(
            update={
                "status": status,
                "version": state.version + 1,
                "updated_at": now,
                "history": [*state.history, entry][-_HISTORY:],
                "last_action_id": action.action_id,
                **changes,
            }
        )

    def _operator(
        self, state: AlertState, action: AlertAction, now: dt.datetime, busy: Collection[str]
    ) -> Decision:
        allowed, target = _MOVES[action.action]
        if state.status not in allowed:
            raise Refused(
                409,
                f"cannot {action.action.value.replace('_', ' ')} "
                f"an alert that is {state.status.value.replace('_', ' ')}",
            )
        status = target or state.status
        if action.action is ActionKind.DISPATCH:
            return self._dispatch(state, action, now, busy, escalation=0)
        changes: dict[str, Any] = {}
        dispatches: list[Dispatch] = []
        if action.action in {ActionKind.RESOLVE, ActionKind.FALSE_ALARM, ActionKind.CANCEL_DISPATCH}:
            current = state.dispatch
            if current is not None and current.status.active:
                ended = (
                    DispatchStatus.CANCELLED
                    if action.action is not ActionKind.RESOLVE
                    else (
                        DispatchStatus.COMPLETED
                        if current.status is DispatchStatus.ON_SCENE
                        else DispatchStatus.CANCELLED
                    )
                )
                closed = self._dispatch_step(current, ended, action.actor, now, action.note)
                dispatches.append(closed)
                changes["dispatch"] = closed
        return Decision(
            state=self._stamp(state, action, now, status, action.note, **changes), dispatches=dispatches
        )

    @staticmethod
    def _tried(state: AlertState) -> set[str]:
        return set(state.teams_offered)

    def _dispatch(
        self, state: AlertState, action: AlertAction, now: dt.datetime, busy: Collection[str], escalation: int
    ) -> Decision:
        alert = state.alert
        dispatches: list[Dispatch] = []
        current = state.dispatch
        active = current if current is not None and current.status.active else None
        if active is not None and action.actor.role is not Role.SYSTEM and action.team_id == active.team_id:
            raise Refused(409, f"team {active.team_id} is already dispatched to this alert")
        tried = self._tried(state) if escalation else set()
        if action.team_id is not None:
            team = self.teams.get(action.team_id)
            if team is None:
                raise Refused(404, f"unknown team {action.team_id}")
            country = alert.jurisdiction or alert.owner.country
            if team.country != country:
                raise Refused(403, f"team {team.id} belongs to {team.country}; the alert is in {country}")
            if not team.available or team.id in busy:
                raise Refused(409, f"team {team.id} is not available")
            metres = distance_m(team.base.lat, team.base.lon, alert.lat, alert.lon)
        else:
            found = self.candidates(alert, busy, tried)
            if not found:
                note = "no available team could be dispatched" + (" after escalation" if escalation else "")
                updated = self._stamp(
                    state,
                    action,
                    now,
                    # An escalation whose offer was declined or expired leaves no team on the
                    # way: the alert is no longer dispatched (as when it gives up below). A
                    # person's dispatch of a new alert acknowledges it; Lindero's own automatic
                    # dispatch does not, so a new alert nobody has seen stays new.
                    AlertStatus.ACKNOWLEDGED
                    if escalation
                    or (state.status is AlertStatus.NEW and action.actor.role is not Role.SYSTEM)
                    else state.status,
                    note,
                    notice=note,
                    suggested_team=None,
                )
                return Decision(state=updated)  # an active dispatch, if any, stands: nothing replaces it
            metres, team = found[0]
        if active is not None:
            replaced = self._dispatch_step(
                active, DispatchStatus.CANCELLED, action.actor, now, "replaced by a new dispatch"
            )
            dispatches.append(replaced)
        timeout = dt.timedelta(seconds=self.dispatch_config.accept_timeout_s)
        dispatch_id = (
            f"D-{uuid.uuid5(_AUDIT_NAMESPACE, f'{alert.alert_id}|{action.action_id}|{team.id}').hex[:20]}"
        )
        offer = Dispatch(
            dispatch_id=dispatch_id,
            alert_id=alert.alert_id,
            team_id=team.id,
            status=DispatchStatus.OFFERED,
            lat=alert.lat,
            lon=alert.lon,
            region=alert.region,
            kind=alert.kind.value,
            severity=alert.severity.value,
            summary=alert.summary,
            distance_m=round(metres, 1),
            escalation=escalation,
            offered_at=now,
            accept_by=now + timeout,
            updated_at=now,
            by=action.actor,
            delivery=Delivery.PENDING if team.webhook is not None else Delivery.NONE,
            history=[
                HistoryEntry(
                    time=now,
                    action=action.action,
                    status=AlertStatus.DISPATCHED,
                    actor=action.actor,
                    note=f"offered to {team.id}",
                )
            ],
        )
        dispatches.append(offer)
        note = f"offered to team {team.id} ({metres / 1000:.1f} km)" + (
            f", escalation {escalation}" if escalation else ""
        )
        updated = self._stamp(
            state,
            action,
            now,
            AlertStatus.DISPATCHED,
            note,
            dispatch=offer,
            notice=None,
            suggested_team=team.id,
            teams_offered=[*state.teams_offered, team.id][-50:],
        )
        return Decision(state=updated, dispatches=dispatches)

    @staticmethod
    def _dispatch_step(
        dispatch: Dispatch, status: DispatchStatus, actor: Actor, now: dt.datetime, note: str | None
    ) -> Dispatch:
        entry = HistoryEntry(
            time=now,
            action=None,
            status=AlertStatus.DISPATCHED,
            actor=actor,
            note=(note or status.value)[:256],
        )
        return dispatch.model_copy(
            update={"status": status, "updated_at": now, "history": [*dispatch.history, entry][-100:]}
        )

    def _team(
        self, state: AlertState, action: AlertAction, now: dt.datetime, busy: Collection[str]
    ) -> Decision:
        current = state.dispatch
        if current is None or action.dispatch_id != current.dispatch_id:
            raise Refused(409, "that dispatch is no longer current for this alert")
        if action.actor.role is Role.TEAM and action.actor.team != current.team_id:
            raise Refused(403, f"dispatch {current.dispatch_id} was offered to another team")
        allowed, target = _TEAM_MOVES[action.action]
        if current.status not in allowed:
            raise Refused(
                409,
                f"the dispatch is {current.status.value}; "
                f"cannot {action.action.value.removeprefix('team_').replace('_', ' ')}",
            )
        stepped = self._dispatch_step(current, target, action.actor, now, action.note)
        if target is DispatchStatus.DECLINED:
            declined = self._stamp(
                state, action, now, state.status, f"team {current.team_id} declined", dispatch=stepped
            )
            follow = self._escalate(declined, now, busy, current.escalation + 1)
            follow.dispatches.insert(0, stepped)
            return follow
        note = f"team {current.team_id}: {target.value.replace('_', ' ')}"
        return Decision(
            state=self._stamp(state, action, now, state.status, note, dispatch=stepped), dispatches=[stepped]
        )

    def _escalate(self, state: AlertState, now: dt.datetime, busy: Collection[str], level: int) -> Decision:
        if level > self.dispatch_config.max_escalations:
            note = f"no team accepted after {level} offers"
            system = AlertAction(
                action_id=uuid.uuid5(_AUDIT_NAMESPACE, f"giveup|{state.alert.alert_id}|{level}"),
                alert_id=state.alert.alert_id,
                action=ActionKind.EXPIRE_DISPATCH,
                actor=SYSTEM,
                time=now,
            )
            return Decision(
                state=self._stamp(state, system, now, AlertStatus.ACKNOWLEDGED, note, notice=note)
            )
        system = AlertAction(
            action_id=uuid.uuid5(_AUDIT_NAMESPACE, f"escalate|{state.alert.alert_id}|{level}"),
            alert_id=state.alert.alert_id,
            action=ActionKind.DISPATCH,
            actor=SYSTEM,
            time=now,
            note=f"escalation {level}",
        )
        decision = self._dispatch(state, system, now, busy, escalation=level)
        decision.audits.append(
            _audit(
                SYSTEM, "escalate", state.alert.alert_id, "applied", now, str(system.action_id), level=level
            )
        )
        return decision

    def _expire(
        self, state: AlertState, action: AlertAction, now: dt.datetime, busy: Collection[str]
    ) -> Decision:
        current = state.dispatch
        if (
            current is None
            or current.dispatch_id != action.dispatch_id
            or current.status is not DispatchStatus.OFFERED
        ):
            return Decision()
        if now < current.accept_by:
            raise Refused(409, "the offer has not expired yet")
        expired = self._dispatch_step(current, DispatchStatus.EXPIRED, SYSTEM, now, "not accepted in time")
        base = self._stamp(
            state, action, now, state.status, f"offer to team {current.team_id} expired", dispatch=expired
        )
        follow = self._escalate(base, now, busy, current.escalation + 1)
        follow.dispatches.insert(0, expired)
        return follow

    def _delivery(self, state: AlertState, action: AlertAction, now: dt.datetime) -> Decision:
        current = state.dispatch
        if current is None or current.dispatch_id != action.dispatch_id:
            return Decision()
        delivery = Delivery.DELIVERED if action.action is ActionKind.WEBHOOK_DELIVERED else Delivery.FAILED
        attempts = (
            int(action.note.split(" ")[0])
            if action.note and action.note.split(" ")[0].isdigit()
            else current.delivery_attempts + 1
        )
        stepped = current.model_copy(
            update={"delivery": delivery, "delivery_attempts": attempts, "updated_at": now}
        )
        note = f"webhook to {current.team_id}: {delivery.value}"
        return Decision(
            state=self._stamp(state, action, now, state.status, note, dispatch=stepped), dispatches=[stepped]
        )

    # -- timers ------------------------------------------------------------------------------

    @staticmethod
    def expired(states: Mapping[str, AlertState], now: dt.datetime) -> list[AlertAction]:
        """System actions for offers whose acceptance deadline passed."""
        out = []
        for state in states.values():
            current = state.dispatch
            if current is not None and current.status is DispatchStatus.OFFERED and now >= current.accept_by:
                out.append(
                    AlertAction(
                        action_id=uuid.uuid5(_AUDIT_NAMESPACE, f"expire|{current.dispatch_id}"),
                        alert_id=state.alert.alert_id,
                        action=ActionKind.EXPIRE_DISPATCH,
                        actor=SYSTEM,
                        time=now,
                        dispatch_id=current.dispatch_id,
                    )
                )
        return out
