"""The alerts service's REST API: alerts, their actions, tracks, dispatches, teams, audit.

Every route but ``/healthz``, ``/readyz`` and ``/metrics`` needs ``Authorization: Bearer
<token>`` (401 without or with an invalid one, 403 when the token's claims do not fit the
configuration or the role may not do what it asks). What a caller sees is what the sharing policy
lets them see: an alert they may not see answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from schemas.alerts import AlertKind, AlertStatus, Severity
from schemas.api import ActionRequest, TeamAnswer
from schemas.common import Identifier, UtcDateTime
from schemas.lifecycle import ActionKind, AlertState, DispatchStatus, Role
from schemas.tracks import TrackStatus
from services.alerts.domain.sharing import Access
from services.alerts.service import AlertsService, Bearer, Outcome, RequestError

MAX_PAGE = 1_000


class FieldProblem(BaseModel):
    """One invalid parameter or body field."""

    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every error answer: why, as a sentence, or (422) each invalid field and its problem."""

    detail: str | list[FieldProblem]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("no bearer token, or not a valid one (expired, forged, wrong audience...)"),
    403: _error("the token's claims do not fit the configuration, or the role may not do this"),
    422: _error("invalid parameters or body: each field and its problem"),
    503: _error("still reading its state from Kafka, or Kafka unavailable (Retry-After)"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("no such item, or not one you may see")}
NOT_JSON: dict[int | str, dict[str, Any]] = {400: _error("the body is not JSON")}


def service_of(request: Request) -> AlertsService:
    service: AlertsService = request.app.state.service
    return service


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent or another scheme)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def authenticated(request: Request) -> Bearer:
    """The caller (401/403 otherwise)."""
    return service_of(request).bearer(bearer_token(request.headers.get("authorization")))


Caller = Annotated[Bearer, Depends(authenticated)]
Service = Annotated[AlertsService, Depends(service_of)]

_ANSWERS = {
    "accept": ActionKind.TEAM_ACCEPT,
    "decline": ActionKind.TEAM_DECLINE,
    "on_scene": ActionKind.TEAM_ON_SCENE,
    "completed": ActionKind.TEAM_COMPLETED,
}


def _outcome_response(service: AlertsService, caller: Bearer, outcome: Outcome) -> JSONResponse:
    body: dict[str, Any] = {"outcome": outcome.outcome, "action_id": outcome.action_id}
    if outcome.detail:
        body["detail"] = outcome.detail
    if outcome.state is not None:
        body["alert"] = service.alert_view(caller.viewer, outcome.state)
    return JSONResponse(body, status_code=outcome.status)


def _page_key(state: AlertState) -> str:
    return f"{state.alert.time.isoformat()}|{state.alert.alert_id}"


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERRORS)

    @router.get("/me", tags=["identity"], summary="Who the token says you are, and what you may see")
    async def me(caller: Caller) -> dict[str, Any]:
        viewer = caller.viewer
        return {
            "subject": viewer.subject,
            "role": viewer.role.value,
            "country": viewer.country,
            "agency": viewer.agency,
            "centre": viewer.centre,
            "team": viewer.team,
            "regions": sorted(viewer.regions) if viewer.regions is not None else None,
            "expires_at": caller.claims.expires_at.isoformat(),
        }

    @router.get(
        "/alerts", tags=["alerts"], summary="Alerts you may see, newest first, with filters and paging"
    )
    async def list_alerts(
        caller: Caller,
        service: Service,
        region: Annotated[list[Identifier] | None, Query(description="any of these regions")] = None,
        kind: Annotated[list[AlertKind] | None, Query(description="any of these kinds")] = None,
        status: Annotated[list[AlertStatus] | None, Query(description="any of these statuses")] = None,
        min_severity: Severity = Severity.INFO,
        since: Annotated[UtcDateTime | None, Query(description="raised at or after (RFC 3339, UTC)")] = None,
        until: Annotated[UtcDateTime | None, Query(description="raised before (RFC 3339, UTC)")] = None,
        updated_since: Annotated[
            UtcDateTime | None, Query(description="changed (lifecycle or revision) at or after")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
        after: Annotated[
            str | None, Query(max_length=200, description="next_page of the previous page")
        ] = None,
    ) -> dict[str, Any]:
        service.require_ready()
        if since is not None and until is not None and since >= until:
            raise RequestError(422, "query.since must be before query.until")
        viewer = caller.viewer
        regions, kinds, statuses = set(region or ()), set(kind or ()), set(status or ())
        floor = min_severity.rank
        dispatched_to = service.dispatched_to(viewer)
        matching: list[AlertState] = []
        for state in service.store.alerts.values():
            alert = state.alert
            if (
                (regions and alert.region not in regions)
                or (kinds and alert.kind not in kinds)
                or (statuses and state.status not in statuses)
                or Severity(alert.severity).rank < floor
                or (since is not None and alert.time < since)
                or (until is not None and alert.time >= until)
                or (updated_since is not None and state.updated_at < updated_since)
            ):
                continue
            if after is not None and _page_key(state) >= after:
                continue
            if service.policy.alert_grant(viewer, state, dispatched_to) is None:
                continue
            matching.append(state)
        matching.sort(key=_page_key, reverse=True)
        page = matching[:limit]
        items = [view for state in page if (view := service.alert_view(viewer, state)) is not None]
        return {
            "alerts": items,
            "count": len(items),
            "next_page": _page_key(page[-1]) if len(matching) > limit else None,
        }

    @router.get(
        "/alerts/{alert_id}", tags=["alerts"], summary="One alert, as you may see it", responses=NOT_FOUND
    )
    async def get_alert(alert_id: Identifier, caller: Caller, service: Service) -> dict[str, Any]:
        service.require_ready()
        state = service.visible_state(caller.viewer, alert_id)
        view = service.alert_view(caller.viewer, state)
        if view is None:  # pragma: no cover - visible_state checked it
            raise RequestError(404, f"no alert {alert_id!r}")
        return view

    @router.post(
        "/alerts/{alert_id}/actions",
        tags=["alerts"],
        summary="Acknowledge, dispatch, resolve, mark false alarm, comment, reopen, cancel a dispatch",
        responses={
            **NOT_JSON,
            200: {"description": "applied: the alert as it is now"},
            202: {"description": "accepted; the outcome comes on the stream (the lifecycle is slow)"},
            403: _error("your role or the sharing agreements do not allow it (reason given)"),
            404: _error("no such alert (or not one you may see)"),
            409: _error("not allowed from the alert's status, or you saw an older version"),
            503: _error("Kafka unavailable; Retry-After says when to try again"),
        },
    )
    async def act(
        alert_id: Identifier, body: ActionRequest, caller: Caller, service: Service
    ) -> JSONResponse:
        prepared = service.prepare(caller, alert_id, body)
        outcome = prepared if isinstance(prepared, Outcome) else await service.submit(prepared)
        if outcome.status >= 400:
            raise RequestError(outcome.status, outcome.detail or "refused")
        return _outcome_response(service, caller, outcome)

    @router.get("/tracks", tags=["tracks"], summary="Current tracks you may see")
    async def list_tracks(
        caller: Caller,
        service: Service,
        region: Annotated[list[Identifier] | None, Query()] = None,
        status: Annotated[list[TrackStatus] | None, Query()] = None,
    ) -> dict[str, Any]:
        service.require_ready()
        regions, statuses = set(region or ()), set(status or ())
        items = []
        for track in service.store.tracks.values():
            if (regions and track.region not in regions) or (statuses and track.status not in statuses):
                continue
            view = service.policy.track(caller.viewer, track)
            if view is not None:
                items.append(view)
        items.sort(key=lambda item: item["track_id"])
        return {"tracks": items, "count": len(items)}

    @router.get("/dispatches", tags=["dispatch"], summary="Dispatches you may see (a team: its own)")
    async def list_dispatches(
        caller: Caller,
        service: Service,
        status: Annotated[list[DispatchStatus] | None, Query()] = None,
        active: Annotated[bool | None, Query(description="only offered, accepted or on scene")] = None,
    ) -> dict[str, Any]:
        service.require_ready()
        statuses = set(status or ())
        items = []
        for dispatch in service.board.dispatches.values():
            if statuses and dispatch.status not in statuses:
                continue
            if active is not None and dispatch.status.active != active:
                continue
            view = service.policy.dispatch(caller.viewer, dispatch)
            if view is not None:
                items.append(view)
        items.sort(key=lambda item: item["offered_at"], reverse=True)
        return {"dispatches": items, "count": len(items)}

    @router.post(
        "/dispatches/{dispatch_id}/answer",
        tags=["dispatch"],
        summary="A team answers its dispatch: accept, decline, on scene, completed",
        responses={**NOT_JSON, **NOT_FOUND, 409: _error("not allowed from the dispatch's status")},
    )
    async def answer(
        dispatch_id: Identifier, body: TeamAnswer, caller: Caller, service: Service
    ) -> JSONResponse:
        service.require_ready()
        dispatch = service.board.dispatches.get(dispatch_id)
        if dispatch is None or service.policy.dispatch(caller.viewer, dispatch) is None:
            raise RequestError(404, f"no dispatch {dispatch_id!r}")
        if caller.viewer.role is not Role.TEAM:
            raise RequestError(403, "only the dispatched team answers a dispatch")
        request = ActionRequest(
            action=_ANSWERS[body.answer], dispatch_id=dispatch_id, note=body.note, action_id=body.action_id
        )
        prepared = service.prepare(caller, dispatch.alert_id, request)
        outcome = prepared if isinstance(prepared, Outcome) else await service.submit(prepared)
        if outcome.status >= 400:
            raise RequestError(outcome.status, outcome.detail or "refused")
        return _outcome_response(service, caller, outcome)

    @router.get(
        "/map", tags=["identity"], summary="Regions, outlines, borders, your zones, sensors and teams"
    )
    async def map_data(caller: Caller, service: Service) -> dict[str, Any]:
        return service.map_for(caller.viewer)

    @router.get("/teams", tags=["dispatch"], summary="Response teams you may send, and whether each is free")
    async def teams(caller: Caller, service: Service) -> dict[str, Any]:
        service.require_ready()
        return {"teams": service.teams(caller.viewer)}

    @router.get(
        "/audit",
        tags=["audit"],
        summary="Who did what (admins; supervisors: their country's actions on alerts they see in full)",
    )
    async def audit(
        caller: Caller,
        service: Service,
        subject: Annotated[Identifier | None, Query(description="an alert or dispatch id")] = None,
        since: Annotated[UtcDateTime | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
    ) -> dict[str, Any]:
        service.require_ready()
        viewer = caller.viewer
        if viewer.role not in {Role.ADMIN, Role.SUPERVISOR}:
            raise RequestError(403, "the audit log is for supervisors and admins")
        out = []
        cutoff = since or dt.datetime.min.replace(tzinfo=dt.UTC)
        for record in reversed(service.store.audit):
            if record.time < cutoff or (subject is not None and record.subject != subject):
                continue
            if viewer.role is not Role.ADMIN:
                if record.actor.role is not Role.SYSTEM and record.actor.country != viewer.country:
                    continue  # a partner's people stay anonymous
                state = service.store.alerts.get(record.subject)
                grant = service.policy.alert_grant(viewer, state) if state is not None else None
                if grant is None or grant.access is not Access.FULL:
                    continue
            out.append(record.model_dump(mode="json"))
            if len(out) >= limit:
                break
        return {"audit": out, "count": len(out)}

    return router
