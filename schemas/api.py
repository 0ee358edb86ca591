"""What clients send the alerts service: REST request bodies and websocket messages.

REST (``Authorization: Bearer <token>`` on every call):

- ``POST /v1/alerts/{alert_id}/actions`` takes an :class:`ActionRequest`;
- ``POST /v1/dispatches/{dispatch_id}/answer`` takes a :class:`TeamAnswer`.

Websockets (``/v1/stream`` for command centres, ``/v1/teams/{team_id}/stream`` for a team): the
first message must be a :class:`StreamHello` (the token travels in it, never in the URL, so it
does not end up in access logs); after it, the client may send :class:`StreamCommand` messages.
The server sends JSON frames described in :mod:`services.alerts.hub`.

Unknown fields are refused (a typo in ``expected_version`` must not silently turn a guarded
action into an unguarded one).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from schemas.alerts import AlertKind, Severity
from schemas.common import Identifier, ShortText, WireModel
from schemas.lifecycle import ActionKind

Token = Annotated[str, StringConstraints(min_length=1, max_length=8_192)]
Cursor = dict[Annotated[str, StringConstraints(max_length=80)], Annotated[int, Field(ge=0)]]


class _Request(WireModel):
    model_config = ConfigDict(extra="forbid")


class ActionRequest(_Request):
    """One step in an alert's life, asked for by a person."""

    action: ActionKind = Field(
        description="acknowledge, dispatch, resolve, false_alarm, comment, reopen, cancel_dispatch; "
        "teams: team_accept, team_decline, team_on_scene, team_completed"
    )
    expected_version: int | None = Field(
        default=None, ge=1, description="the alert version you saw: a newer one makes the request stale (409)"
    )
    team_id: Identifier | None = Field(
        default=None, description="dispatch: the team (default: the suggested one)"
    )
    dispatch_id: Identifier | None = Field(
        default=None, description="team answers and cancel_dispatch: the dispatch (default: the current one)"
    )
    note: ShortText | None = None
    action_id: uuid.UUID | None = Field(
        default=None, description="idempotency key: a retried request with the same id is applied once"
    )


class TeamAnswer(_Request):
    """A team's answer to its dispatch."""

    answer: Literal["accept", "decline", "on_scene", "completed"]
    note: ShortText | None = None
    action_id: uuid.UUID | None = Field(default=None, description="idempotency key")


TRACK_MOVED_FIELDS = (
    "time",
    "lat",
    "lon",
    "alt_m",
    "velocity_east_mps",
    "velocity_north_mps",
    "speed_mps",
    "heading_deg",
    "position_sigma_m",
    "covariance_en_m2",
    "border_distance_m",
    "update_count",
    "last_update",
    "class_probabilities",
)
"""The positions in a ``track_moved`` message's ``m`` array (compact tracks).

``{"type": "track_moved", "track_id": "co-ve-cucuta.T000042", "m": [...]}`` carries, in this
order, the track's fields that change at every update; the rest of the track is the last whole
``track`` message about it. Times (``time``, ``last_update``) are epoch seconds with millisecond
decimals, ``last_update`` is null when it equals ``time``. Positions are rounded to 7 decimals
(1 cm), altitude, sigma, headings and covariance to 0.1, velocities and speed to 0.01,
``border_distance_m`` to 1 m. ``class_probabilities`` is an object ``{"person": 0.912, ...}``
(3 decimals, classes under 0.005 left out), or null when unchanged since the previous message
about this track on the stream. A consumer ignores positions beyond those it knows (later
versions may append fields).
"""


def apply_alert_changes(view: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The alert view after an ``alert_changed`` message (compact alerts): ``view`` with ``changes``
    (the message's ``set``) applied.

    ``{"type": "alert_changed", "alert_id": "...", "version": 7, "set": {...}}`` carries only what
    differs from the last whole or changed view of that alert on the stream. A top-level field in
    ``set`` replaces the field, except where both the old and the new value are objects: then it
    holds the object's changed fields only, which replace those fields (e.g. ``{"alert":
    {"summary": "...", "updated_at": "..."}, "version": 7}``). Fields are never removed this way (a
    change that removes a field comes as a whole ``alert_update``). An ``alert_changed`` about an
    alert the client does not hold cannot be applied; the stream never sends one (every client gets
    the whole alert first, in its snapshot, its resume or an ``alert`` message).
    """
    merged = dict(view)
    for name, value in changes.items():
        before = merged.get(name)
        if isinstance(value, dict) and isinstance(before, dict):
            merged[name] = {**before, **value}
        else:
            merged[name] = value
    return merged


class StreamSubscription(_Request):
    """What a stream should carry, within what the token may see."""

    regions: list[Identifier] | None = Field(default=None, max_length=100, description="None: all yours")
    kinds: list[AlertKind] | None = Field(default=None, max_length=20, description="None: every kind")
    min_severity: Severity = Severity.INFO
    tracks: bool = Field(default=True, description="also live track updates")
    compact_tracks: bool = Field(
        default=False,
        description="send a track's movement as a small track_moved message (an array of numbers: "
        "time, position, velocity, uncertainty, and class probabilities when they change; see "
        "schemas.api.TRACK_MOVED_FIELDS) and the whole track only when anything else changes or "
        "every 60 s: about a fifth of a whole track's bytes",
    )
    compact_alerts: bool = Field(
        default=False,
        description="send a revision of an alert the stream already carried as an alert_changed "
        "message holding only the fields that changed (see schemas.api.apply_alert_changes) instead "
        "of the whole alert_update; team streams always get whole alerts",
    )


class StreamHello(_Request):
    """The first message on a websocket."""

    type: Literal["hello"]
    token: Token
    subscribe: StreamSubscription | None = None
    resume: Cursor | None = Field(
        default=None,
        description="the cursor merged from the frames received before: what changed after it "
        "comes first (none twice, none missing); without it, a snapshot",
    )
    binary: bool = Field(default=False, description="frames as binary messages (UTF-8 JSON)")


class PingCommand(_Request):
    type: Literal["ping"]
    id: Annotated[str, StringConstraints(max_length=64)] | None = None


class AuthCommand(_Request):
    """A fresh token before the current one expires (same person, same role)."""

    type: Literal["auth"]
    token: Token


class SubscribeCommand(_Request):
    """Change the subscription: the answer is a fresh snapshot."""

    type: Literal["subscribe"]
    subscribe: StreamSubscription


class ActionCommand(ActionRequest):
    """An action over the websocket; the answer is an ``action_result`` with the same ``id``."""

    type: Literal["action"]
    id: Annotated[str, StringConstraints(max_length=64)] | None = None
    alert_id: Identifier


StreamCommand = Annotated[
    PingCommand | AuthCommand | SubscribeCommand | ActionCommand, Field(discriminator="type")
]
