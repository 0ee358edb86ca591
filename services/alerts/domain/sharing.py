"""The sharing policy: what each viewer may see of alerts, tracks and dispatches, and what they may do.

These rules are Lindero's promise to the partner countries. They are enforced here, on the
server, before anything is sent: every view is built from the full object by removing what
the viewer may not see, never by trusting a client to hide it. Pure code, no I/O.

Viewers (:class:`Viewer`, built from a signed token's claims by :meth:`Viewer.from_claims`):

- **admin**: sees everything (``access: full``); may do every command-centre action
  (acknowledge, dispatch, resolve, false_alarm, comment, reopen, cancel_dispatch), never a
  team's answer.
- **operator / supervisor** of centre C (country K, regions R):

  - nothing outside R (``alert.region``, ``track.region``, ``dispatch.region``), whatever the
    data says;
  - an alert is **full** when its jurisdiction is K, or K's sensors saw it (K is the owner's or
    any contributor's country);
  - otherwise it is **shared** when an agreement has K among its parties, has the alert's
    jurisdiction (when None: the owner's country) among its parties, the alert's
    ``border_distance_m`` is known and at most ``max_border_distance_m``, its severity is at
    least ``min_severity`` (info < low < medium < high < critical) and its kind is among
    ``kinds`` (None: every kind). Each agreement is a grant: when several match, the viewer
    gets the least redacted view a single one of them grants (fewest redactions that apply to
    the alert; ties broken by agreement id). Grants are never combined;
  - otherwise it is **hidden** (None).
  - A track is full when its jurisdiction is K or any owner's country is K; shared when an
    agreement with ``share_tracks`` has K and the track's jurisdiction (when None: every
    owner's country) among its parties and ``border_distance_m <= max_border_distance_m``;
    otherwise hidden.
  - A dispatch is shown only when its team is one of K's teams and it is in R.
- **team**: sees only the alerts it is or was dispatched to (``dispatched_to``, or the alert's
  current dispatch being its own), with ``access: team`` and only position, kind, severity,
  summary, times and status, plus its own dispatch; no tracks; only its own dispatches.
- **system** (Lindero itself, never a token): sees nothing through this policy; may only
  dispatch automatically, expire offers and report webhook deliveries.

Redactions an agreement may apply (the view lists those applied in ``redacted``):

- ``sensor_ids``: ``alert.sensor_ids`` and ``track.sensor_ids`` emptied; details entries whose
  key names a sensor (contains "sensor") or that mention a sensor id removed;
- ``evidence``: ``alert.evidence`` emptied;
- ``owner_agency``: the agency of the owner, of every contributor and of every track owner set
  to null (countries stay);
- ``track_ids``: ``alert.track_ids`` emptied;
- ``details``: ``alert.details`` emptied;
- ``sensor_sites``: for the sensor kinds (silent_sensor, sensor_tamper, sensor_low_battery,
  sensor_fault, uncorroborated_trip), whose position *is* a sensor's site, the position is
  rounded to 0.01° (~1 km), ``border_distance_m`` to 1 km, and the details are removed. It
  applies to no other alert and to no track (a track's position is its target's).

Free text (the summary, history notes, dispatch summaries, details' strings) is scrubbed of
every withheld identifier (sensor ids, evidence ids, track ids, agencies, foreign team ids and
operator names), which are replaced by ``[withheld]``: the correlator writes sensor ids into its
summaries ("Ground sensor co-cuc-ugs-03 tripped"), and the lifecycle copies summaries into notes.

Always, in every operator or supervisor view: the subject of a history actor of another country
is replaced by its role and its team removed (a partner never learns who your operators are),
and the dispatch details of another country (the current dispatch of a foreign team, a foreign
suggested team, foreign teams in ``teams_offered``) are removed. In a shared view the current
dispatch, the suggested team, the offered teams and the notice are always removed (they are the
jurisdiction's operations, not a partner's business), and only the fields this module knows are
kept: a field added to the schemas later stays hidden from partners and teams until it is
classified here (fail closed).

Actions (:meth:`SharingPolicy.may_act`, which answers ``(allowed, reason)``):

- operators: acknowledge, dispatch, resolve, false_alarm, comment; supervisors also reopen and
  cancel_dispatch; only on alerts they see in full;
- a dispatch sends a team onto a country's land: only the jurisdiction's centres dispatch (a
  centre whose sensors saw an alert across the border may acknowledge or resolve it, not send a
  team there), and only their own country's teams (:meth:`SharingPolicy.may_dispatch_team`);
  a supervisor cancels only dispatches of their own country's teams;
- a team may only answer (team_accept, team_decline, team_on_scene, team_completed) its own
  dispatch, when it is the alert's current one and still active;
- webhook_delivered, webhook_failed and expire_dispatch are Lindero's own (system) and refused
  to every person.

``actionable`` in an alert view is true when the viewer may do at least one action on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas.alerts import AlertKind, Severity
from schemas.lifecycle import ActionKind, AlertState, Dispatch, Role
from schemas.tracks import Track
from services.core.config import Agreement, LinderoConfig

WITHHELD = "[withheld]"
"""What a withheld identifier is replaced with in free text."""

SITE_DECIMALS = 2
"""Sensor sites are rounded to this many decimals of a degree (0.01° ≈ 1.1 km)."""

SITE_DISTANCE_M = 1_000.0
"""The border distance of a sensor site is rounded to this many metres."""

REDACTIONS = ("sensor_ids", "sensor_sites", "evidence", "owner_agency", "track_ids", "details")
"""Every redaction an agreement may name, in the order a view lists them."""

TRACK_REDACTIONS = frozenset({"sensor_ids", "owner_agency"})
"""The redactions that apply to tracks."""

SENSOR_KINDS = frozenset(
    {
        AlertKind.SILENT_SENSOR,
        AlertKind.SENSOR_TAMPER,
        AlertKind.SENSOR_LOW_BATTERY,
        AlertKind.SENSOR_FAULT,
        AlertKind.UNCORROBORATED_TRIP,
    }
)
"""Alert kinds whose position is a sensor's site."""

OPERATOR_ACTIONS = frozenset(
    {
        ActionKind.ACKNOWLEDGE,
        ActionKind.DISPATCH,
        ActionKind.RESOLVE,
        ActionKind.FALSE_ALARM,
        ActionKind.COMMENT,
    }
)
SUPERVISOR_ACTIONS = OPERATOR_ACTIONS | {ActionKind.REOPEN, ActionKind.CANCEL_DISPATCH}
TEAM_ACTIONS = frozenset(
    {ActionKind.TEAM_ACCEPT, ActionKind.TEAM_DECLINE, ActionKind.TEAM_ON_SCENE, ActionKind.TEAM_COMPLETED}
)
SYSTEM_ONLY_ACTIONS = frozenset(
    {ActionKind.WEBHOOK_DELIVERED, ActionKind.WEBHOOK_FAILED, ActionKind.EXPIRE_DISPATCH}
)
SYSTEM_ACTIONS = SYSTEM_ONLY_ACTIONS | {ActionKind.DISPATCH}
"""What Lindero itself does: automatic dispatch and escalation, offer expiry, webhook reports."""

# Fields a shared view may carry (after redaction). Anything else is dropped (fail closed).
SHARED_STATE_FIELDS = frozenset(
    {"schema_version", "alert", "status", "version", "updated_at", "history", "last_action_id"}
    | {"dispatch", "suggested_team", "teams_offered", "notice"}  # present, always emptied
)
SHARED_ALERT_FIELDS = frozenset(
    {"schema_version", "alert_id", "revision", "kind", "severity", "time", "updated_at", "lat", "lon"}
    | {"region", "jurisdiction", "owner", "contributors", "track_ids", "sensor_ids", "border_distance_m"}
    | {"summary", "evidence", "details", "status"}
)
HISTORY_FIELDS = frozenset({"time", "action", "status", "actor", "note", "action_id"})
ACTOR_FIELDS = frozenset({"subject", "role", "country", "centre", "team"})
OWNER_FIELDS = frozenset({"country", "agency"})
SHARED_TRACK_FIELDS = frozenset(
    {"schema_version", "track_id", "region", "time", "lat", "lon", "alt_m", "velocity_east_mps"}
    | {"velocity_north_mps", "speed_mps", "heading_deg", "position_sigma_m", "covariance_en_m2"}
    | {"status", "class", "class_probabilities", "sensor_ids", "owners", "jurisdiction"}
    | {"border_distance_m", "update_count", "first_seen", "last_update"}
)
# What a team sees of an alert it is dispatched to.
TEAM_STATE_FIELDS = frozenset({"schema_version", "alert", "status", "version", "updated_at", "history"})
TEAM_ALERT_FIELDS = frozenset(
    {"schema_version", "alert_id", "revision", "kind", "severity", "time", "updated_at", "lat", "lon"}
    | {"region", "summary", "status"}
)
TEAM_HISTORY_FIELDS = frozenset({"time", "action", "status"})


class PolicyError(ValueError):
    """A token's claims are inconsistent with the configuration (who it says the bearer is)."""


class Access(StrEnum):
    """How much of an object a viewer sees."""

    FULL = "full"
    SHARED = "shared"
    TEAM = "team"


@dataclass(frozen=True)
class Grant:
    """Why a viewer sees an object: the access, the agreement that grants it and its redactions."""

    access: Access
    agreement: str | None = None
    redactions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Viewer:
    """Someone looking at Lindero, as their token's claims say (checked against the configuration)."""

    subject: str
    role: Role
    country: str | None
    agency: str | None
    centre: str | None
    team: str | None
    regions: frozenset[str] | None
    """The regions they watch; None: every region (admin)."""

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], config: LinderoConfig) -> Viewer:
        """The viewer a token's claims describe; :class:`PolicyError` when they are inconsistent.

        An operator's or supervisor's country and regions are their centre's (a ``regions`` claim
        may only narrow them); a team member's are their team's.
        """
        subject = _claim(claims, "sub")
        if subject is None:
            raise PolicyError("the token names no subject (claim 'sub')")
        raw_role = claims.get("role")
        try:
            role = Role(str(raw_role))
        except ValueError:
            raise PolicyError(f"unknown role {raw_role!r}") from None
        if role is Role.SYSTEM:
            raise PolicyError("no token may claim the system role")
        country = _claim(claims, "country")
        agency = _claim(claims, "agency")
        centre_id = _claim(claims, "centre")
        team_id = _claim(claims, "team")
        claimed_regions = _regions_claim(claims, config)
        if country is not None and country not in config.countries_by_code:
            raise PolicyError(f"unknown country {country!r}")
        if role in {Role.OPERATOR, Role.SUPERVISOR}:
            if centre_id is None:
                raise PolicyError(f"{role.value} tokens must name a centre")
            if team_id is not None:
                raise PolicyError(f"{role.value}s belong to a centre, not to a team ({team_id!r})")
        if role is Role.TEAM:
            if team_id is None:
                raise PolicyError("a team token must name a team")
            if centre_id is not None:
                raise PolicyError(f"a team belongs to no centre ({centre_id!r})")
        centre = None
        if centre_id is not None:
            centre = config.centres_by_id.get(centre_id)
            if centre is None:
                raise PolicyError(f"unknown centre {centre_id!r}")
            if country is not None and centre.country != country:
                raise PolicyError(f"centre {centre_id!r} is {centre.country}'s, not {country}'s")
            country = centre.country
        team = None
        if team_id is not None:
            team = config.teams_by_id.get(team_id)
            if team is None:
                raise PolicyError(f"unknown team {team_id!r}")
            if country is not None and team.country != country:
                raise PolicyError(f"team {team_id!r} is {team.country}'s, not {country}'s")
            country = team.country
        home = centre if centre is not None else team
        if home is not None:
            if agency is not None and agency != home.agency:
                raise PolicyError(f"{home.id!r} belongs to agency {home.agency!r}, not {agency!r}")
            agency = home.agency
        elif agency is not None:
            if country is None:
                raise PolicyError(f"agency {agency!r} is claimed without a country")
            if agency not in {a.id for a in config.countries_by_code[country].agencies}:
                raise PolicyError(f"country {country} has no agency {agency!r}")
        regions = claimed_regions
        if centre is not None:
            regions = _narrowed(frozenset(centre.regions), claimed_regions, f"centre {centre.id!r}")
        elif team is not None:
            regions = _narrowed(frozenset({team.region}), claimed_regions, f"team {team.id!r}")
        return cls(
            subject=subject,
            role=role,
            country=country,
            agency=agency,
            centre=centre_id,
            team=team_id,
            regions=regions,
        )

    def sees_region(self, region: str) -> bool:
        """True when ``region`` is one of the viewer's regions."""
        return self.regions is None or region in self.regions


def _claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PolicyError(f"claim {name!r} must be a string, not {type(value).__name__}")
    return value


def _regions_claim(claims: Mapping[str, Any], config: LinderoConfig) -> frozenset[str] | None:
    value = claims.get("regions")
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise PolicyError("claim 'regions' must be a list of region ids")
    regions = frozenset(value)
    if not regions:
        raise PolicyError("claim 'regions' is empty")
    for region in sorted(map(str, regions)):
        if region not in config.regions_by_id:
            raise PolicyError(f"unknown region {region!r} in claim 'regions'")
    return regions


def _narrowed(allowed: frozenset[str], claimed: frozenset[str] | None, whose: str) -> frozenset[str]:
    if claimed is None:
        return allowed
    extra = claimed - allowed
    if extra:
        raise PolicyError(f"claim 'regions' names {sorted(extra)}, which {whose} does not watch")
    return claimed


class SharingPolicy:
    """The sharing rules of one deployment (see the module's documentation)."""

    def __init__(self, config: LinderoConfig) -> None:
        self.config = config
        self._team_country = {team.id: team.country for team in config.teams}
        self._agreements: dict[str, list[Agreement]] = {}
        for agreement in sorted(config.agreements, key=lambda a: a.id):
            for party in agreement.parties:
                self._agreements.setdefault(party, []).append(agreement)
        self._sensor_owner = {sensor.id: sensor.owner.country for sensor in config.sensors}

    # -- who sees what -------------------------------------------------------------------------

    def view_key(self, viewer: Viewer) -> Hashable:
        """Equal keys, equal views: the fan-out computes each view once per key."""
        if viewer.role is Role.ADMIN:
            return ("admin", viewer.regions)
        if viewer.role is Role.TEAM:
            return ("team", viewer.team, viewer.country)
        if viewer.role in {Role.OPERATOR, Role.SUPERVISOR}:
            return ("centre", viewer.role.value, viewer.country, viewer.regions)
        return ("nobody",)

    def alert_grant(
        self, viewer: Viewer, state: AlertState, dispatched_to: Iterable[str] | None = None
    ) -> Grant | None:
        """How ``viewer`` may see the alert of ``state`` (None: not at all)."""
        alert = state.alert
        if viewer.role is Role.ADMIN:
            return Grant(Access.FULL) if viewer.sees_region(alert.region) else None
        if viewer.role is Role.TEAM:
            current = state.dispatch
            mine = current is not None and viewer.team is not None and current.team_id == viewer.team
            if mine or alert.alert_id in set(dispatched_to or ()):
                return Grant(Access.TEAM)
            return None
        if viewer.role not in {Role.OPERATOR, Role.SUPERVISOR} or viewer.country is None:
            return None
        if not viewer.sees_region(alert.region):
            return None
        country = viewer.country
        seen_by = {alert.owner.country, *(owner.country for owner in alert.contributors)}
        if alert.jurisdiction == country or country in seen_by:
            return Grant(Access.FULL)
        subject = alert.jurisdiction if alert.jurisdiction is not None else alert.owner.country
        distance = alert.border_distance_m
        if distance is None:
            return None
        grants = []
        for agreement in self._agreements.get(country, []):
            if subject not in agreement.parties or distance > agreement.max_border_distance_m:
                continue
            if alert.severity.rank < Severity(agreement.min_severity).rank:
                continue
            if agreement.kinds is not None and alert.kind.value not in agreement.kinds:
                continue
            applied = tuple(
                name
                for name in REDACTIONS
                if name in agreement.redact and (name != "sensor_sites" or alert.kind in SENSOR_KINDS)
            )
            grants.append(Grant(Access.SHARED, agreement.id, applied))
        return _least_redacted(grants)

    def track_grant(self, viewer: Viewer, track: Track) -> Grant | None:
        """How ``viewer`` may see ``track`` (None: not at all)."""
        if viewer.role is Role.ADMIN:
            return Grant(Access.FULL) if viewer.sees_region(track.region) else None
        if viewer.role not in {Role.OPERATOR, Role.SUPERVISOR} or viewer.country is None:
            return None
        if not viewer.sees_region(track.region):
            return None
        country = viewer.country
        if track.jurisdiction == country or any(owner.country == country for owner in track.owners):
            return Grant(Access.FULL)
        if track.border_distance_m is None:
            return None
        subjects = (
            {track.jurisdiction} if track.jurisdiction is not None else {o.country for o in track.owners}
        )
        if not subjects:
            return None
        grants = []
        for agreement in self._agreements.get(country, []):
            if not agreement.share_tracks or not subjects <= set(agreement.parties):
                continue
            if track.border_distance_m > agreement.max_border_distance_m:
                continue
            applied = tuple(
                name for name in REDACTIONS if name in agreement.redact and name in TRACK_REDACTIONS
            )
            grants.append(Grant(Access.SHARED, agreement.id, applied))
        return _least_redacted(grants)

    def alert(
        self, viewer: Viewer, state: AlertState, dispatched_to: set[str] | None = None
    ) -> dict[str, Any] | None:
        """What ``viewer`` sees of ``state`` as a JSON-ready dict, or None when it is hidden.

        The dict is the state dumped by alias in JSON mode, with the redactions applied, plus
        ``access``, ``agreement``, ``redacted`` (the redactions applied) and ``actionable``.
        """
        grant = self.alert_grant(viewer, state, dispatched_to)
        if grant is None:
            return None
        data = state.model_dump(mode="json", by_alias=True)
        if viewer.role is Role.ADMIN:
            redacted: list[str] = []
        elif grant.access is Access.TEAM:
            data, redacted = self._team_alert(viewer, state, data)
        elif grant.access is Access.FULL:
            data = self._full_alert(viewer, state, data)
            redacted = []
        else:
            data = self._shared_alert(viewer, state, data, grant)
            redacted = list(grant.redactions)
        actionable = any(self._may_act(viewer, state, action, None, grant)[0] for action in ActionKind)
        data.update(
            access=grant.access.value, agreement=grant.agreement, redacted=redacted, actionable=actionable
        )
        return data

    def track(self, viewer: Viewer, track: Track) -> dict[str, Any] | None:
        """What ``viewer`` sees of ``track`` as a JSON-ready dict (plus ``access``, ``agreement``,
        ``redacted``), or None when it is hidden."""
        grant = self.track_grant(viewer, track)
        if grant is None:
            return None
        data = track.model_dump(mode="json", by_alias=True)
        if grant.access is Access.SHARED:
            data = _only(data, SHARED_TRACK_FIELDS)
            if "sensor_ids" in grant.redactions:
                data["sensor_ids"] = []
            hide_agency = "owner_agency" in grant.redactions
            data["owners"] = [_owner(owner, hide_agency) for owner in data["owners"]]
        data.update(access=grant.access.value, agreement=grant.agreement, redacted=list(grant.redactions))
        return data

    def dispatch(self, viewer: Viewer, dispatch: Dispatch) -> dict[str, Any] | None:
        """What ``viewer`` sees of ``dispatch`` (plus ``access``), or None when it is hidden.

        Admins see every dispatch, a team its own, an operator or supervisor those of their own
        country's teams in their regions.
        """
        data = dispatch.model_dump(mode="json", by_alias=True)
        if viewer.role is Role.ADMIN:
            if not viewer.sees_region(dispatch.region):
                return None
            data["access"] = Access.FULL.value
            return data
        if viewer.role is Role.TEAM:
            if viewer.team is None or dispatch.team_id != viewer.team:
                return None
            data["access"] = Access.TEAM.value
            return self._anonymise_dispatch(viewer, data)
        if viewer.role not in {Role.OPERATOR, Role.SUPERVISOR} or viewer.country is None:
            return None
        if not viewer.sees_region(dispatch.region):
            return None
        if self._team_country.get(dispatch.team_id) != viewer.country:
            return None
        data["access"] = Access.FULL.value
        return self._anonymise_dispatch(viewer, data)

    # -- who does what -------------------------------------------------------------------------

    def may_act(
        self,
        viewer: Viewer,
        state: AlertState,
        action: ActionKind,
        dispatch: Dispatch | None = None,
        dispatched_to: Iterable[str] | None = None,
    ) -> tuple[bool, str]:
        """Whether ``viewer`` may do ``action`` on the alert of ``state``; when not, the reason.

        ``dispatch`` is the dispatch the action is about (a team's answer, a cancellation, a
        proposed dispatch); None: the alert's current one. ``dispatched_to`` is, for a team, the
        alerts it is or was dispatched to (as for :meth:`alert`).
        """
        grant = self.alert_grant(viewer, state, dispatched_to)
        return self._may_act(viewer, state, action, dispatch, grant)

    def may_dispatch_team(self, viewer: Viewer, state: AlertState, team_id: str) -> tuple[bool, str]:
        """Whether ``viewer`` may send team ``team_id`` to the alert of ``state``; when not, why.

        A team is only sent onto its own country's land (the alert's jurisdiction, when known),
        and an operator or supervisor only sends their own country's teams.
        """
        allowed, reason = self.may_act(viewer, state, ActionKind.DISPATCH)
        if not allowed:
            return allowed, reason
        return self._team_rule(viewer, state, team_id)

    def _team_rule(self, viewer: Viewer, state: AlertState, team_id: str) -> tuple[bool, str]:
        team_country = self._team_country.get(team_id)
        if team_country is None:
            return False, f"unknown team {team_id!r}"
        jurisdiction = state.alert.jurisdiction
        if jurisdiction is not None and team_country != jurisdiction:
            return (
                False,
                f"team {team_id} is {team_country}'s and may not be sent into {jurisdiction}'s territory",
            )
        if viewer.role in {Role.OPERATOR, Role.SUPERVISOR} and team_country != viewer.country:
            return (
                False,
                f"team {team_id} is {team_country}'s; a {viewer.country} centre sends only its own teams",
            )
        return True, ""

    def _may_act(
        self,
        viewer: Viewer,
        state: AlertState,
        action: ActionKind,
        dispatch: Dispatch | None,
        grant: Grant | None,
    ) -> tuple[bool, str]:
        alert_id = state.alert.alert_id
        if viewer.role is Role.SYSTEM:
            if action in SYSTEM_ACTIONS:
                return (True, "") if dispatch is None else self._team_rule(viewer, state, dispatch.team_id)
            return False, f"{action.value} is a person's decision; Lindero itself may not take it"
        if action in SYSTEM_ONLY_ACTIONS:
            return False, f"{action.value} is reported by Lindero itself (system), never by a person"
        if grant is None:
            return False, f"alert {alert_id} is not visible to this {viewer.role.value}"
        if viewer.role is Role.TEAM:
            return self._team_may(viewer, state, action, dispatch)
        if grant.access is Access.SHARED:
            return False, (
                f"alert {alert_id} is shared with {viewer.country} under agreement {grant.agreement} "
                "for information only; only the countries whose land or sensors it concerns act on it"
            )
        if action in TEAM_ACTIONS:
            return False, f"{action.value} is the dispatched team's answer; only that team may give it"
        if viewer.role is Role.ADMIN:
            return self._dispatch_rules(viewer, state, action, dispatch)
        if viewer.role not in {Role.OPERATOR, Role.SUPERVISOR}:
            return False, f"role {viewer.role.value} may not act on alerts"
        if viewer.role is Role.OPERATOR and action not in OPERATOR_ACTIONS:
            return False, f"only a supervisor may {action.value}"
        jurisdiction = state.alert.jurisdiction
        if action is ActionKind.DISPATCH and jurisdiction is not None and jurisdiction != viewer.country:
            return False, (
                f"alert {alert_id} is in {jurisdiction}'s territory: only {jurisdiction}'s centres send "
                "teams there"
            )
        return self._dispatch_rules(viewer, state, action, dispatch)

    def _dispatch_rules(
        self, viewer: Viewer, state: AlertState, action: ActionKind, dispatch: Dispatch | None
    ) -> tuple[bool, str]:
        if action is ActionKind.DISPATCH and dispatch is not None:
            if dispatch.alert_id != state.alert.alert_id:
                return False, f"dispatch {dispatch.dispatch_id} is for another alert"
            return self._team_rule(viewer, state, dispatch.team_id)
        if action is ActionKind.CANCEL_DISPATCH:
            target = dispatch if dispatch is not None else state.dispatch
            if target is None:
                return False, f"alert {state.alert.alert_id} has no dispatch to cancel"
            if target.alert_id != state.alert.alert_id:
                return False, f"dispatch {target.dispatch_id} is for another alert"
            country = self._team_country.get(target.team_id)
            if viewer.role is not Role.ADMIN and country != viewer.country:
                return (
                    False,
                    f"dispatch {target.dispatch_id} is another country's; only its own centres cancel it",
                )
        return True, ""

    def _team_may(
        self, viewer: Viewer, state: AlertState, action: ActionKind, dispatch: Dispatch | None
    ) -> tuple[bool, str]:
        if action not in TEAM_ACTIONS:
            return False, f"a team only answers its own dispatch; {action.value} is a command centre's action"
        target = dispatch if dispatch is not None else state.dispatch
        if target is None:
            return False, f"alert {state.alert.alert_id} has no dispatch to answer"
        if target.team_id != viewer.team:
            return False, f"dispatch {target.dispatch_id} is for another team"
        if target.alert_id != state.alert.alert_id:
            return False, f"dispatch {target.dispatch_id} is for another alert"
        current = state.dispatch
        if current is None or current.dispatch_id != target.dispatch_id:
            return False, f"dispatch {target.dispatch_id} is no longer the alert's current dispatch"
        if not target.status.active:
            return False, f"dispatch {target.dispatch_id} is {target.status.value}; it takes no more answers"
        return True, ""

    # -- building views ------------------------------------------------------------------------

    def _foreign_sensors(self, viewer: Viewer) -> set[str]:
        return {sensor for sensor, country in self._sensor_owner.items() if country != viewer.country}

    def _foreign_teams(self, viewer: Viewer) -> set[str]:
        return {team for team, country in self._team_country.items() if country != viewer.country}

    def _is_foreign_team(self, viewer: Viewer, team_id: str | None) -> bool:
        return team_id is not None and self._team_country.get(team_id) != viewer.country

    def _anonymise_history(self, viewer: Viewer, history: list[dict[str, Any]]) -> tuple[list[Any], set[str]]:
        """Foreign actors lose their subject (replaced by their role) and team; returns the names hidden."""
        hidden: set[str] = set()
        out = []
        for entry in history:
            entry = dict(entry)
            actor = entry.get("actor")
            if isinstance(actor, dict):
                entry["actor"], names = _anonymised_actor(viewer, actor)
                hidden |= names
            out.append(entry)
        return out, hidden

    def _anonymise_dispatch(self, viewer: Viewer, data: dict[str, Any]) -> dict[str, Any]:
        data["history"], hidden = self._anonymise_history(viewer, data.get("history", []))
        if isinstance(data.get("by"), dict):
            data["by"], names = _anonymised_actor(viewer, data["by"])
            hidden |= names
        return _scrub_text(data, hidden)

    def _full_alert(self, viewer: Viewer, state: AlertState, data: dict[str, Any]) -> dict[str, Any]:
        data["history"], hidden = self._anonymise_history(viewer, data["history"])
        if state.dispatch is not None and self._is_foreign_team(viewer, state.dispatch.team_id):
            data["dispatch"] = None
        elif data.get("dispatch") is not None:
            data["dispatch"] = self._anonymise_dispatch(viewer, data["dispatch"])
        if self._is_foreign_team(viewer, state.suggested_team):
            data["suggested_team"] = None
        if "teams_offered" in data:
            data["teams_offered"] = [t for t in data["teams_offered"] if not self._is_foreign_team(viewer, t)]
        return _scrub_text(data, hidden | self._foreign_teams(viewer))

    def _shared_alert(
        self, viewer: Viewer, state: AlertState, data: dict[str, Any], grant: Grant
    ) -> dict[str, Any]:
        alert = state.alert
        data = _only(data, SHARED_STATE_FIELDS)
        body = _only(data["alert"], SHARED_ALERT_FIELDS)
        data["alert"] = body
        data["dispatch"] = None
        data["suggested_team"] = None
        data["notice"] = None
        if "teams_offered" in data:
            data["teams_offered"] = []
        history, hidden = self._anonymise_history(viewer, data.get("history", []))
        data["history"] = [_only(entry, HISTORY_FIELDS) for entry in history]
        secrets = hidden | self._foreign_teams(viewer)
        if state.dispatch is not None:
            secrets.add(state.dispatch.team_id)
        if state.suggested_team is not None:
            secrets.add(state.suggested_team)
        redactions = set(grant.redactions)
        hide_agency = "owner_agency" in redactions
        body["owner"] = _owner(body["owner"], hide_agency)
        body["contributors"] = [_owner(o, hide_agency) for o in body["contributors"]]
        if hide_agency:
            secrets |= {alert.owner.agency, *(o.agency for o in alert.contributors)}
        if "sensor_ids" in redactions:
            sensors = set(alert.sensor_ids) | self._foreign_sensors(viewer)
            secrets |= sensors
            body["sensor_ids"] = []
            body["details"] = {
                key: value
                for key, value in body["details"].items()
                if "sensor" not in key.lower()
                and not _mentions(key, sensors)
                and not _mentions(value, sensors)
            }
        if "evidence" in redactions:
            secrets |= set(alert.evidence)
            body["evidence"] = []
        if "track_ids" in redactions:
            secrets |= set(alert.track_ids)
            body["track_ids"] = []
        if "details" in redactions:
            body["details"] = {}
        if "sensor_sites" in redactions:  # only granted for the sensor kinds
            body["lat"] = round(alert.lat, SITE_DECIMALS)
            body["lon"] = round(alert.lon, SITE_DECIMALS)
            if alert.border_distance_m is not None:
                body["border_distance_m"] = round(alert.border_distance_m / SITE_DISTANCE_M) * SITE_DISTANCE_M
            body["details"] = {}
        return _scrub_text(data, secrets)

    def _team_alert(
        self, viewer: Viewer, state: AlertState, data: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        removed = sorted(set(data) - TEAM_STATE_FIELDS - {"dispatch"})
        removed += sorted(set(data["alert"]) - TEAM_ALERT_FIELDS)
        out = _only(data, TEAM_STATE_FIELDS)
        out["alert"] = _only(data["alert"], TEAM_ALERT_FIELDS)
        out["history"] = [_only(entry, TEAM_HISTORY_FIELDS) for entry in data.get("history", [])]
        removed += ["history.actor", "history.note"]
        if state.dispatch is not None and state.dispatch.team_id == viewer.team:
            out["dispatch"] = self._anonymise_dispatch(viewer, data["dispatch"])
        else:
            out["dispatch"] = None
            if state.dispatch is not None:
                removed.append("dispatch")
        secrets = (
            set(self._sensor_owner)
            | set(state.alert.sensor_ids)
            | set(state.alert.evidence)
            | set(state.alert.track_ids)
            | {owner.agency for owner in (state.alert.owner, *state.alert.contributors)}
            | self._foreign_teams(viewer)
        )
        return _scrub_text(out, secrets), removed


def _least_redacted(grants: list[Grant]) -> Grant | None:
    """The grant that reveals the most: fewest redactions applied, then the agreement id."""
    if not grants:
        return None
    return min(grants, key=lambda g: (len(g.redactions), g.agreement or ""))


def _only(data: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key in fields}


def _owner(owner: dict[str, Any], hide_agency: bool) -> dict[str, Any]:
    out = _only(owner, OWNER_FIELDS)
    if hide_agency:
        out["agency"] = None
    return out


def _anonymised_actor(viewer: Viewer, actor: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    if viewer.role is Role.ADMIN or (viewer.country is not None and actor.get("country") == viewer.country):
        return actor, set()
    out = _only(actor, ACTOR_FIELDS)
    names = {str(actor["subject"])} if actor.get("subject") else set()
    if actor.get("team"):
        names.add(str(actor["team"]))
    out["subject"] = str(actor.get("role") or "unknown")
    out["team"] = None
    # the role's own word ("operator") stays readable; a subject equal to it hides nothing
    return out, names - {out["subject"]}


def _mentions(value: Any, words: set[str]) -> bool:
    if isinstance(value, str):
        return any(word and word.lower() in value.lower() for word in words)
    if isinstance(value, Mapping):
        return any(_mentions(k, words) or _mentions(v, words) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_mentions(v, words) for v in value)
    return False


_FREE_TEXT = frozenset({"summary", "note", "notice"})
"""Keys whose string values are free text (scrubbed); ``details`` is scrubbed entirely."""


def _pattern(words: Iterable[str]) -> Callable[[str], str] | None:
    ordered = sorted({word for word in words if word}, key=len, reverse=True)
    if not ordered:
        return None
    compiled = re.compile(
        r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, ordered)) + r")(?![A-Za-z0-9])", re.IGNORECASE
    )
    return lambda text: compiled.sub(WITHHELD, text)


def _scrub_text(data: dict[str, Any], secrets: set[str]) -> dict[str, Any]:
    """Replace every secret in the free-text fields (and anywhere inside ``details``)."""
    replace = _pattern(secrets)
    if replace is None:
        return data
    scrubbed: dict[str, Any] = _walk(data, replace, in_details=False)
    return scrubbed


def _walk(value: Any, replace: Callable[[str], str], in_details: bool) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            deep = in_details or key == "details"
            if deep:
                out[replace(key) if in_details else key] = _walk(item, replace, True)
            elif isinstance(item, str):
                out[key] = replace(item) if key in _FREE_TEXT else item
            else:
                out[key] = _walk(item, replace, False)
        return out
    if isinstance(value, list):
        return [_walk(item, replace, in_details) for item in value]
    if isinstance(value, str) and in_details:
        return replace(value)
    return value
