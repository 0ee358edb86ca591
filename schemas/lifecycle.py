"""The alert lifecycle on the wire: actions in, state, dispatches and audit out.

``alert.actions`` (key: alert id) carries every request to change an alert: an operator's
acknowledgement, a dispatch, a team's answer, a webhook's delivery report. The alerts service's
lifecycle processor applies them one alert at a time and publishes the result: the current
:class:`AlertState` of the alert (``alert.state``, compacted), the :class:`Dispatch` records of
rapid response teams (``dispatches``, key: team id) and an :class:`AuditRecord` for everything
that was done or refused (``audit``, append-only).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.alerts import Alert, AlertStatus
from schemas.common import (
    SCHEMA_VERSION,
    CountryCode,
    Identifier,
    Latitude,
    Longitude,
    ShortText,
    UtcDateTime,
    WireModel,
)


class Role(StrEnum):
    """Who someone is to Lindero (a claim of their signed token)."""

    OPERATOR = "operator"
    """Works an alert queue in a command centre."""
    SUPERVISOR = "supervisor"
    """An operator who may also cancel dispatches and reopen closed alerts."""
    TEAM = "team"
    """A rapid response team: sees and answers its own dispatches."""
    ADMIN = "admin"
    """Sees everything, reads the audit log."""
    SYSTEM = "system"
    """Lindero itself (automatic dispatch, escalation, webhook delivery)."""


class Actor(WireModel):
    """Who did something."""

    subject: Identifier = Field(description="the user, team or service id (the token's sub)")
    role: Role
    country: CountryCode | None = None
    centre: Identifier | None = Field(default=None, description="the command centre, for operators")
    team: Identifier | None = Field(default=None, description="the team, for team members")


class ActionKind(StrEnum):
    """What an action asks for."""

    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"
    RESOLVE = "resolve"
    FALSE_ALARM = "false_alarm"
    REOPEN = "reopen"
    COMMENT = "comment"
    CANCEL_DISPATCH = "cancel_dispatch"
    TEAM_ACCEPT = "team_accept"
    TEAM_DECLINE = "team_decline"
    TEAM_ON_SCENE = "team_on_scene"
    TEAM_COMPLETED = "team_completed"
    WEBHOOK_DELIVERED = "webhook_delivered"
    WEBHOOK_FAILED = "webhook_failed"
    EXPIRE_DISPATCH = "expire_dispatch"


class AlertAction(WireModel):
    """A request to change one alert (topic ``alert.actions``, key: alert id)."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    action_id: uuid.UUID = Field(description="unique; the processor applies an action id once")
    alert_id: Identifier
    action: ActionKind
    actor: Actor
    time: UtcDateTime = Field(description="when it was requested")
    expected_version: int | None = Field(
        default=None,
        ge=0,
        description="the state version the requester saw; a newer one makes it stale (409)",
    )
    team_id: Identifier | None = Field(
        default=None, description="for dispatch: the team (None: the suggested one)"
    )
    dispatch_id: Identifier | None = Field(default=None, description="for team answers and webhook reports")
    note: ShortText | None = None


class HistoryEntry(WireModel):
    """One step of an alert's life."""

    time: UtcDateTime
    action: ActionKind | None = Field(description="None for the correlator's own updates")
    status: AlertStatus
    actor: Actor | None = None
    note: ShortText | None = None
    action_id: uuid.UUID | None = Field(default=None, description="the action that made this step")


class DispatchStatus(StrEnum):
    """Where a dispatch is."""

    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    ON_SCENE = "on_scene"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """The team is (or may soon be) committed to this dispatch."""
        return self in {DispatchStatus.OFFERED, DispatchStatus.ACCEPTED, DispatchStatus.ON_SCENE}


class Delivery(StrEnum):
    """How a webhook delivery went."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    NONE = "none"
    """The team has no webhook."""


class Dispatch(WireModel):
    """A rapid response team sent to an alert (topic ``dispatches``, key: team id)."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    dispatch_id: Identifier
    alert_id: Identifier
    team_id: Identifier
    status: DispatchStatus
    lat: Latitude = Field(description="where to go")
    lon: Longitude
    region: Identifier
    kind: str = Field(max_length=40, description="the alert's kind")
    severity: str = Field(max_length=10)
    summary: str = Field(max_length=300)
    distance_m: float = Field(ge=0, description="from the team's base when offered")
    escalation: int = Field(default=0, ge=0, description="0 for the first team offered, +1 per escalation")
    offered_at: UtcDateTime
    accept_by: UtcDateTime = Field(description="an offer not accepted by then goes to the next team")
    updated_at: UtcDateTime
    by: Actor | None = None
    delivery: Delivery = Delivery.NONE
    delivery_attempts: int = Field(default=0, ge=0)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=100)


class AlertState(WireModel):
    """The current state of one alert (topic ``alert.state``, compacted, key: alert id)."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    alert: Alert = Field(description="the correlator's latest revision")
    status: AlertStatus
    version: int = Field(ge=1, description="+1 at every change; actions may name the version they saw")
    updated_at: UtcDateTime
    history: list[HistoryEntry] = Field(default_factory=list, max_length=200)
    dispatch: Dispatch | None = Field(default=None, description="the current (latest) dispatch")
    last_action_id: uuid.UUID | None = Field(default=None, description="the action that made this version")
    suggested_team: Identifier | None = Field(default=None, description="nearest available suitable team")
    teams_offered: list[Identifier] = Field(
        default_factory=list, max_length=50, description="teams this alert was offered to, in order"
    )
    notice: ShortText | None = Field(default=None, description="e.g. why a dispatch could not be made")


class AuditRecord(WireModel):
    """Who did what, when, and whether it was allowed (topic ``audit``, append-only)."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    audit_id: uuid.UUID
    time: UtcDateTime
    actor: Actor
    action: str = Field(max_length=60)
    subject: Identifier = Field(description="alert id, dispatch id or policy id")
    outcome: str = Field(max_length=20, description="applied | refused")
    reason: ShortText | None = None
    details: dict[str, Any] = Field(default_factory=dict)
