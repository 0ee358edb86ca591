"""One alerts-service instance: store, hub, lifecycle, notifier, and how requests become actions.

The HTTP and websocket layers (:mod:`services.alerts.api`, :mod:`services.alerts.streams`) stay
thin: they authenticate a bearer (:meth:`AlertsService.viewer`), ask this module whether the
request is allowed (:meth:`AlertsService.prepare`, which answers with the precise 4xx), and
submit the action (:meth:`AlertsService.submit`). An action goes to ``alert.actions``; its
outcome is whatever the lifecycle processor (on whichever instance owns the alert's partition)
publishes: the alert's next state (applied) or a refused audit record (409 with the reason).
The request waits for that outcome up to ``action_timeout_s`` and answers 202 (pending) after.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from schemas.alerts import AlertStatus
from schemas.api import ActionRequest
from schemas.lifecycle import (
    ActionKind,
    Actor,
    AlertAction,
    AlertState,
    AuditRecord,
    Dispatch,
    DispatchStatus,
    Role,
)
from schemas.topics import ALERT_ACTIONS, AUDIT, REGISTRY
from services.alerts.domain.lifecycle import Decision
from services.alerts.domain.sharing import SYSTEM_ONLY_ACTIONS, PolicyError, SharingPolicy, Viewer
from services.alerts.hub import Hub
from services.alerts.lifecycle import LifecycleProcessor, TeamBoard
from services.alerts.metrics import AlertsMetrics
from services.alerts.notifier import Notifier
from services.alerts.settings import AlertsSettings
from services.alerts.store import Change, Store
from services.alerts.webhooks import WebhookSender
from services.core.config import DroneSensor, LinderoConfig, RadarSensor
from services.core.geography import Geography
from services.core.kafka import KafkaSetupError, ensure_topics
from services.core.runtime import register_runtime
from services.core.tokens import Claims, TokenError, verify

log = logging.getLogger(__name__)

_FORBIDDEN_NAMESPACE = uuid.UUID("a61c1f0e-52a4-4c8f-8f57-6c3f0f1f8c2d")


class RequestError(Exception):
    """A request that cannot go on: ``status`` is the HTTP status, ``detail`` says why."""

    def __init__(self, status: int, detail: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Bearer:
    """An authenticated caller: the verified claims and the viewer they describe."""

    claims: Claims
    viewer: Viewer

    @property
    def actor(self) -> Actor:
        return self.claims.actor()


@dataclass(frozen=True)
class Outcome:
    """How an action ended: applied (200), refused (4xx), or still pending (202)."""

    status: int
    action_id: str
    detail: str | None = None
    state: AlertState | None = None

    @property
    def outcome(self) -> str:
        return {200: "applied", 202: "pending"}.get(self.status, "refused")


class AlertsService:
    """Everything one alerts instance runs, wired together."""

    def __init__(
        self, settings: AlertsSettings, config: LinderoConfig, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = AlertsMetrics(self.registry)
        register_runtime(self.registry)
        self.board = TeamBoard()
        self.store = Store(settings.kafka, self.board, fetch_max_wait_ms=settings.fetch_max_wait_ms)
        self.policy = SharingPolicy(config)
        self.hub = Hub(
            self.store,
            self.policy,
            self.metrics,
            min_flush_s=settings.flush_interval_s,
            max_flush_s=settings.max_flush_interval_s,
            frame_budget_per_s=settings.frame_budget_per_s,
            track_frame_budget_per_s=settings.track_frame_budget_per_s,
            max_backlog=settings.max_backlog,
            heartbeat_s=settings.heartbeat_s,
        )
        self.lifecycle = (
            LifecycleProcessor(
                settings.kafka,
                config,
                self.board,
                group_id=settings.lifecycle_group,
                commit_interval_s=settings.commit_interval_s,
                create_topics=False,
                on_applied=self._applied,
                metrics=self.metrics,
            )
            if settings.run_lifecycle
            else None
        )
        has_webhooks = any(team.webhook is not None for team in config.teams)
        self.notifier = (
            Notifier(
                settings.kafka,
                config,
                self.metrics,
                group_id=settings.webhook_group,
                sender=WebhookSender(allow_http=settings.webhook_allow_http),
            )
            if settings.run_webhooks and has_webhooks
            else None
        )
        self.producer: AIOKafkaProducer | None = None
        self.waiters: dict[str, asyncio.Future[Outcome]] = {}
        self.store.listeners.append(self._on_change)
        self.started = False
        self.failure: str | None = None
        """Why the Kafka parts died, if they did (/healthz then answers 503)."""
        path = config.geography_path
        self.geography: dict[str, Any] = (
            orjson.loads(path.read_bytes())
            if path is not None
            else {"type": "FeatureCollection", "features": []}
        )
        self.areas = Geography.load(path) if path is not None else Geography([], [])

    # -- readiness ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Caught up with Kafka, able to send actions, and (when it runs one) the lifecycle running."""
        lifecycle_ok = self.lifecycle is None or self.lifecycle.processor.ready
        return self.store.ready.is_set() and self.producer is not None and lifecycle_ok

    def report_failure(self, task: asyncio.Task[None]) -> None:
        """``run`` ended by an unexpected error: log it and fail /healthz so the process is restarted
        (a liveness probe, a supervisor) rather than answering 503 forever."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        self.failure = f"{type(error).__name__}: {error}"
        log.critical("the alerts service's Kafka parts failed: %s", self.failure, exc_info=error)

    def readiness(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "store": self.store.ready.is_set(),
            "producer": self.producer is not None,
            "lifecycle": None if self.lifecycle is None else self.lifecycle.processor.ready,
            "alerts_known": len(self.store.alerts),
            "tracks_known": len(self.store.tracks),
            "clients": len(self.hub.clients),
        }

    def require_ready(self) -> None:
        if not self.store.ready.is_set():
            raise RequestError(
                503, "the alerts service is still reading its state from Kafka", retry_after_s=2
            )

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Prepare topics, then run every part until ``stop``, restarting parts Kafka fails."""
        await self._prepare(stop)
        if stop.is_set():
            return
        parts = [
            asyncio.create_task(self._supervise("store", self.store.follow, stop), name="alerts-store"),
            asyncio.create_task(
                self._supervise("producer", self._keep_producer, stop), name="alerts-producer"
            ),
        ]
        if self.lifecycle is not None:
            parts.append(asyncio.create_task(self._supervise("lifecycle", self._run_lifecycle, stop)))
        if self.notifier is not None:
            parts.append(asyncio.create_task(self._supervise("webhooks", self.notifier.run, stop)))
        self.started = True
        try:
            await asyncio.gather(*parts)
        finally:
            for task in parts:
                task.cancel()
            await asyncio.gather(*parts, return_exceptions=True)

    async def _prepare(self, stop: asyncio.Event) -> None:
        backoff_s = 0.5
        while not stop.is_set():
            try:
                if self.settings.create_topics:
                    await ensure_topics(self.settings.kafka, list(REGISTRY))
                return
            except (KafkaError, OSError, KafkaSetupError) as exc:
                log.warning("start-up needs Kafka (%s); retrying in %.1f s", exc, backoff_s)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff_s)
                backoff_s = min(2 * backoff_s, 5.0)

    async def _supervise(self, name: str, part: Any, stop: asyncio.Event) -> None:
        backoff_s = 0.5
        while not stop.is_set():
            started = time.monotonic()
            try:
                await part(stop)
                return
            except (KafkaError, OSError, KafkaSetupError) as exc:
                if time.monotonic() - started > 30:
                    backoff_s = 0.5
                log.error("%s failed: %s; restarting in %.1f s", name, exc, backoff_s)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff_s)
                backoff_s = min(2 * backoff_s, 10.0)

    async def _keep_producer(self, stop: asyncio.Event) -> None:
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            client_id=f"{self.settings.kafka.client_id}-alerts-actions",
            **self.settings.kafka.client_options(),
        )
        await producer.start()
        self.producer = producer
        try:
            await stop.wait()
        finally:
            self.producer = None
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()

    async def _run_lifecycle(self, stop: asyncio.Event) -> None:
        if self.lifecycle is None:
            return
        try:
            await self.lifecycle.start()
            await self.lifecycle.run(stop)
        finally:
            with contextlib.suppress(KafkaError, OSError):
                await self.lifecycle.stop()

    async def close(self) -> None:
        await self.hub.close_all()
        for waiter in self.waiters.values():
            waiter.cancel()

    # -- who is asking ------------------------------------------------------------------------

    def bearer(self, token: str | None) -> Bearer:
        """The caller a bearer token names: 401 when it is missing or invalid, 403 when its
        claims do not fit the configuration (unknown centre, a team of another country...)."""
        if not token:
            raise RequestError(401, "a bearer token is required (Authorization: Bearer <token>)")
        try:
            claims = verify(self.settings.auth, token)
        except TokenError as exc:
            raise RequestError(401, f"invalid token: {exc.reason}") from None
        try:
            viewer = Viewer.from_claims(claims.model_dump(), self.config)
        except PolicyError as exc:
            raise RequestError(403, f"token not accepted: {exc}") from None
        return Bearer(claims, viewer)

    def dispatched_to(self, viewer: Viewer) -> set[str] | None:
        """For a team: the alerts it is or was dispatched to."""
        if viewer.role is not Role.TEAM or viewer.team is None:
            return None
        return {d.alert_id for d in self.board.of_team(viewer.team)}

    def alert_view(self, viewer: Viewer, state: AlertState) -> dict[str, Any] | None:
        return self.policy.alert(viewer, state, self.dispatched_to(viewer))

    def visible_state(self, viewer: Viewer, alert_id: str) -> AlertState:
        """The alert's state when ``viewer`` may see it; 404 otherwise (hidden looks like unknown)."""
        state = self.store.alerts.get(alert_id)
        if state is None or self.alert_view(viewer, state) is None:
            raise RequestError(404, f"no alert {alert_id!r}")
        return state

    # -- actions ------------------------------------------------------------------------------

    def prepare(self, bearer: Bearer, alert_id: str, request: ActionRequest) -> AlertAction | Outcome:
        """The action to submit, or the outcome already known (a retried request).

        Raises :class:`RequestError`: 404 for an alert or dispatch the caller cannot see, 403
        for an action their role or the sharing agreements do not allow (with the reason), 409
        when they saw an older version of the alert than the current one.
        """
        self.require_ready()
        viewer = bearer.viewer
        state = self.visible_state(viewer, alert_id)
        if request.action in SYSTEM_ONLY_ACTIONS:
            raise RequestError(
                403, f"{request.action.value} is reported by Lindero itself, never by a person"
            )
        if request.action_id is not None and any(h.action_id == request.action_id for h in state.history):
            return Outcome(200, str(request.action_id), state=state)
        dispatch: Dispatch | None = None
        dispatch_id = request.dispatch_id
        if dispatch_id is None and viewer.role is Role.TEAM and state.dispatch is not None:
            dispatch_id = state.dispatch.dispatch_id
        if dispatch_id is not None:
            dispatch = self.board.dispatches.get(dispatch_id)
            if dispatch is None and state.dispatch is not None and state.dispatch.dispatch_id == dispatch_id:
                dispatch = state.dispatch
            if dispatch is None or dispatch.alert_id != alert_id:
                raise RequestError(404, f"alert {alert_id} has no dispatch {dispatch_id!r}")
        allowed, reason = self.policy.may_act(
            viewer, state, request.action, dispatch, self.dispatched_to(viewer)
        )
        if allowed and request.action is ActionKind.DISPATCH and request.team_id is not None:
            if request.team_id not in self.config.teams_by_id:
                raise RequestError(404, f"no team {request.team_id!r}")
            allowed, reason = self.policy.may_dispatch_team(viewer, state, request.team_id)
        if not allowed:
            self._forbidden(bearer, alert_id, request, reason)
            raise RequestError(403, reason)
        if request.expected_version is not None and request.expected_version < state.version:
            raise RequestError(
                409,
                f"stale: alert {alert_id} is at version {state.version}, "
                f"the request saw {request.expected_version}",
            )
        return AlertAction(
            action_id=request.action_id or uuid.uuid4(),
            alert_id=alert_id,
            action=request.action,
            actor=bearer.actor,
            time=dt.datetime.now(dt.UTC),
            expected_version=request.expected_version,
            team_id=request.team_id,
            dispatch_id=dispatch_id if request.action in _NAMES_DISPATCH else None,
            note=request.note,
        )

    async def submit(self, action: AlertAction) -> Outcome:
        """Send ``action`` to ``alert.actions`` and wait for its outcome (202 after the timeout)."""
        producer = self.producer
        if producer is None:
            raise RequestError(503, "Kafka is unavailable; try again shortly", retry_after_s=2)
        key = str(action.action_id)
        waiter = self.waiters.get(key)
        if waiter is None or waiter.done():
            waiter = self.waiters[key] = asyncio.get_running_loop().create_future()
        try:
            try:
                await asyncio.wait_for(
                    producer.send_and_wait(
                        self.settings.kafka.topics(ALERT_ACTIONS),
                        orjson.dumps(action.model_dump(mode="json", by_alias=True)),
                        key=action.alert_id.encode(),
                    ),
                    self.settings.action_timeout_s,
                )
            except (TimeoutError, KafkaError) as exc:
                log.warning("could not send an action: %s", exc, extra={"alert_id": action.alert_id})
                raise RequestError(503, "Kafka did not take the action; try again", retry_after_s=2) from None
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), self.settings.action_timeout_s)
            except TimeoutError:
                return Outcome(202, key, detail="accepted; the outcome will arrive on the alert's stream")
        finally:
            if self.waiters.get(key) is waiter and not waiter.done():
                waiter.cancel()
            self.waiters.pop(key, None)

    def _on_change(self, change: Change) -> None:
        """Resolve the waiters of actions whose outcome this record is."""
        value = change.value
        if isinstance(value, AlertState):
            self.metrics.state_read_latency.observe(max(0.0, time.time() - value.updated_at.timestamp()))
        if not self.waiters:
            return
        if isinstance(value, AlertState):
            for entry in reversed(value.history[-20:]):
                if entry.action_id is not None:
                    self._resolve(Outcome(200, str(entry.action_id), state=value))
        elif isinstance(value, AuditRecord) and value.outcome == "refused":
            action_id = value.details.get("action_id")
            status = value.details.get("status")
            if isinstance(action_id, str):
                code = status if isinstance(status, int) and 400 <= status < 500 else 409
                self._resolve(Outcome(code, action_id, detail=value.reason))

    def _resolve(self, outcome: Outcome) -> None:
        waiter = self.waiters.get(outcome.action_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def _forbidden(self, bearer: Bearer, alert_id: str, request: ActionRequest, reason: str) -> None:
        """Audit a refused attempt (best effort: the refusal itself never waits on Kafka)."""
        producer = self.producer
        if producer is None:
            return
        now = dt.datetime.now(dt.UTC)
        record = AuditRecord(
            audit_id=uuid.uuid5(
                _FORBIDDEN_NAMESPACE, f"{bearer.claims.jti}|{alert_id}|{request.action}|{now}"
            ),
            time=now,
            actor=bearer.actor,
            action=request.action.value,
            subject=alert_id,
            outcome="forbidden",
            reason=reason[:256],
            details={"team_id": request.team_id} if request.team_id else {},
        )
        task = asyncio.get_running_loop().create_task(
            producer.send(
                self.settings.kafka.topics(AUDIT),
                orjson.dumps(record.model_dump(mode="json", by_alias=True)),
                key=alert_id.encode(),
            )
        )
        task.add_done_callback(_ignore_result)

    def _applied(self, decisions: Sequence[tuple[Any, Decision]]) -> None:
        """Count the lifecycle's transitions and the teams' acceptance times."""
        for item, decision in decisions:
            if isinstance(item, AlertAction):
                outcome = "refused" if decision.refused is not None else "applied"
                self.metrics.transitions.labels(item.action.value, outcome).inc()
            elif decision.state is not None and decision.state.version == 1:
                self.metrics.transitions.labels("raise", "applied").inc()
            for dispatch in decision.dispatches:
                if dispatch.status is DispatchStatus.ACCEPTED:
                    waited = (dispatch.updated_at - dispatch.offered_at).total_seconds()
                    self.metrics.acceptance.observe(max(0.0, waited))

    # -- queries ------------------------------------------------------------------------------

    def map_for(self, viewer: Viewer) -> dict[str, Any]:
        """What the dashboard draws under the live picture, for ``viewer``: regions, outlines and
        borders, restricted zones and sensor sites of the viewer's own country (a partner's sensor
        sites and zones are theirs to share, and no agreement shares them), teams, tiles."""
        everything = viewer.role is Role.ADMIN

        def own(lon: float, lat: float) -> bool:
            return everything or self.areas.country_at(lon, lat) == viewer.country

        regions = [r for r in self.config.regions if viewer.sees_region(r.id)]
        names = {r.id for r in regions}
        features = [f for f in self.geography.get("features", []) if f["properties"].get("region") in names]
        zones = []
        for zone in self.config.zones:
            if zone.region not in names:
                continue
            lons, lats = [p[0] for p in zone.area], [p[1] for p in zone.area]
            if own(sum(lons) / len(lons), sum(lats) / len(lats)):
                zones.append(
                    {
                        "id": zone.id,
                        "name": zone.name,
                        "region": zone.region,
                        "area": zone.area,
                        "severity": zone.severity,
                    }
                )
        sensors = []
        for sensor in self.config.sensors:
            if sensor.region not in names or not (everything or sensor.owner.country == viewer.country):
                continue
            site = sensor.base if isinstance(sensor, DroneSensor) else sensor.position
            sensors.append(
                {
                    "id": sensor.id,
                    "name": sensor.name,
                    "type": sensor.type.value,
                    "region": sensor.region,
                    "owner": {"country": sensor.owner.country, "agency": sensor.owner.agency},
                    "lat": site.lat,
                    "lon": site.lon,
                    "range_m": sensor.radar.max_range_m if isinstance(sensor, RadarSensor) else None,
                }
            )
        return {
            "regions": [
                {
                    "id": r.id,
                    "name": r.name,
                    "countries": r.countries,
                    "area": r.area,
                    "origin": {"lat": r.frame_origin.lat, "lon": r.frame_origin.lon},
                }
                for r in regions
            ],
            "geography": {"type": "FeatureCollection", "features": features},
            "zones": zones,
            "sensors": sensors,
            "teams": self.teams(viewer),
            "centres": [
                {"id": c.id, "name": c.name, "country": c.country, "regions": c.regions}
                for c in self.config.centres
                if everything or c.country == viewer.country
            ],
            "tiles": (
                {"url": self.config.display.tile_url, "attribution": self.config.display.tile_attribution}
                if self.config.display.tile_url
                else None
            ),
        }

    def teams(self, viewer: Viewer) -> list[dict[str, Any]]:
        """The teams a viewer may know about, with whether each is busy right now."""
        busy = self.board.busy()
        out = []
        for team in self.config.teams:
            if viewer.role is Role.TEAM and team.id != viewer.team:
                continue
            if viewer.role in {Role.OPERATOR, Role.SUPERVISOR} and team.country != viewer.country:
                continue
            if not viewer.sees_region(team.region) and viewer.role is not Role.TEAM:
                continue
            out.append(
                {
                    "team_id": team.id,
                    "name": team.name,
                    "country": team.country,
                    "region": team.region,
                    "base": {"lat": team.base.lat, "lon": team.base.lon},
                    "capabilities": list(team.capabilities),
                    "available": team.available and team.id not in busy,
                    "on_duty": team.available,
                    "busy": team.id in busy,
                }
            )
        return out


_NAMES_DISPATCH = frozenset(
    {
        ActionKind.TEAM_ACCEPT,
        ActionKind.TEAM_DECLINE,
        ActionKind.TEAM_ON_SCENE,
        ActionKind.TEAM_COMPLETED,
        ActionKind.CANCEL_DISPATCH,
    }
)
"""Actions about one dispatch (the others are about the alert)."""

CLOSED = frozenset({AlertStatus.RESOLVED, AlertStatus.FALSE_ALARM})


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not audit a refused attempt: %s", task.exception())
