"""The websocket endpoints: ``/v1/stream`` (command centres) and ``/v1/teams/{team_id}/stream``.

A connection's life:

1. The server accepts, then waits ``auth_timeout_s`` for a ``hello`` (:class:`schemas.api.StreamHello`)
   carrying the token; none, or an invalid one, closes with 4401 (unauthorised), 4403 (the token's
   role may not use this stream) or 4400 (malformed). Browsers cannot set headers on a websocket,
   and a token in the URL would end up in access logs: hence the first message.
2. The hub queues the opening message (a snapshot, or with ``resume`` what changed since the
   cursor) and streams frames from then on (see :mod:`services.alerts.hub`).
3. The client may send commands (:data:`schemas.api.StreamCommand`): ``ping``, ``auth`` (a fresh
   token), ``subscribe`` and ``action``. Each gets a reply; errors say which field was wrong.
   More than ``commands_per_s`` a second (burst twice that) are answered 429; a client that keeps
   going is closed with 4429.
4. A minute before the token expires the client gets ``auth_expiring``; with no fresh token by
   the expiry, the stream closes with 4401: a revoked person stops seeing alerts within one token
   lifetime at most.

Close codes: 4400 bad request, 4401 unauthorised or expired, 4403 forbidden, 4008 too slow
(see the hub), 4429 too many commands, 1013 not ready yet (try again), 1001 server shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from schemas.api import (
    ActionCommand,
    ActionRequest,
    AuthCommand,
    PingCommand,
    StreamCommand,
    StreamHello,
    StreamSubscription,
    SubscribeCommand,
)
from schemas.lifecycle import Role
from services.alerts.hub import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORISED,
    Client,
    Subscription,
    frame_writer,
)
from services.alerts.service import AlertsService, Bearer, Outcome, RequestError

log = logging.getLogger(__name__)

CLOSE_TOO_MANY = 4429
CLOSE_NOT_READY = 1013
EXPIRY_WARNING_S = 60.0
_COMMANDS: TypeAdapter[Any] = TypeAdapter(StreamCommand)


class StreamClosed(Exception):
    """Close the stream with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _errors(exc: ValidationError) -> str:
    """``field: problem; ...`` for a close reason or an error reply."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(part) for part in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


async def close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with a reason cut to the protocol's 123 bytes; never raises."""
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    encoded = reason.encode()[:123].decode(errors="ignore")
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect, TimeoutError):
        await asyncio.wait_for(websocket.close(code=code, reason=encoded), 2.0)


class Stream:
    """One websocket connection, from hello to close."""

    def __init__(self, service: AlertsService, websocket: WebSocket, team_id: str | None) -> None:
        self.service = service
        self.websocket = websocket
        self.team_id = team_id
        self.connection_id = uuid.uuid4().hex[:12]
        self.client: Client | None = None
        self.bearer: Bearer | None = None
        self.expires_s = 0.0
        self.tokens = 2 * service.settings.commands_per_s
        self.refilled_s = time.monotonic()
        self.violations = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        settings = self.service.settings
        await self.websocket.accept()
        try:
            hello = await self._hello()
            bearer = self._authorise(hello.token)
            await self._wait_ready()
            self._join(bearer, hello)
            await self._commands()
        except StreamClosed as closed:
            if closed.code != CLOSE_NOT_READY:
                self.service.metrics.drops.labels(_reason(closed.code)).inc()
            log.info(
                "stream closed: %s",
                closed.reason,
                extra={"connection": self.connection_id, "code": closed.code},
            )
            await close(self.websocket, closed.code, closed.reason)
        except WebSocketDisconnect:
            pass
        finally:
            for task in self.tasks:
                task.cancel()
            if self.client is not None:
                self.service.hub.leave(self.client, "disconnected")
        del settings

    # -- opening -------------------------------------------------------------------------------

    async def _receive(self, timeout_s: float | None) -> bytes | str:
        try:
            message = await asyncio.wait_for(self.websocket.receive(), timeout_s)
        except TimeoutError:
            raise StreamClosed(
                CLOSE_UNAUTHORISED, f"send a hello with your token within {timeout_s:g} s"
            ) from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if len(data) > self.service.settings.max_message_bytes:
            raise StreamClosed(CLOSE_BAD_REQUEST, "message too large")
        return data

    async def _hello(self) -> StreamHello:
        data = await self._receive(self.service.settings.auth_timeout_s)
        try:
            return StreamHello.model_validate_json(data)
        except ValidationError as exc:
            raise StreamClosed(CLOSE_BAD_REQUEST, f"expected a hello: {_errors(exc)}") from None

    def _authorise(self, token: str) -> Bearer:
        try:
            bearer = self.service.bearer(token)
        except RequestError as exc:
            code = CLOSE_UNAUTHORISED if exc.status == 401 else CLOSE_FORBIDDEN
            raise StreamClosed(code, exc.detail) from None
        role = bearer.viewer.role
        if self.team_id is None:
            if role is Role.TEAM:
                raise StreamClosed(
                    CLOSE_FORBIDDEN, f"teams use /v1/teams/{bearer.viewer.team}/stream, not /v1/stream"
                )
        else:
            if self.team_id not in self.service.config.teams_by_id:
                raise StreamClosed(CLOSE_FORBIDDEN, f"no team {self.team_id!r}")
            if not (role is Role.ADMIN or (role is Role.TEAM and bearer.viewer.team == self.team_id)):
                raise StreamClosed(CLOSE_FORBIDDEN, f"only team {self.team_id} reads its stream")
        self.bearer = bearer
        self.expires_s = time.monotonic() + (bearer.claims.exp - time.time())
        return bearer

    async def _wait_ready(self) -> None:
        ready = self.service.store.ready
        if not ready.is_set():
            try:
                await asyncio.wait_for(ready.wait(), 10.0)
            except TimeoutError:
                raise StreamClosed(CLOSE_NOT_READY, "still reading state from Kafka; try again") from None

    def _subscription(self, bearer: Bearer, request: StreamSubscription | None) -> Subscription:
        if bearer.viewer.role is Role.TEAM:
            return Subscription(tracks=False)
        if request is not None and request.regions:
            for region in request.regions:
                if region not in self.service.config.regions_by_id:
                    raise StreamClosed(CLOSE_BAD_REQUEST, f"subscribe.regions: unknown region {region!r}")
                if not bearer.viewer.sees_region(region):
                    raise StreamClosed(
                        CLOSE_FORBIDDEN, f"subscribe.regions: {region} is not one of your regions"
                    )
        return Subscription.of(request)

    def _join(self, bearer: Bearer, hello: StreamHello) -> None:
        client = Client(
            self.websocket,
            bearer.viewer,
            self._subscription(bearer, hello.subscribe),
            self.connection_id,
            frame_writer(self.websocket, hello.binary),
        )
        self.client = client
        self.service.hub.join(client, hello.resume)
        self.service.hub.reply(
            client,
            {
                "type": "welcome",
                "connection_id": self.connection_id,
                "role": bearer.viewer.role.value,
                "expires_at": bearer.claims.expires_at.isoformat(),
            },
            first=True,
        )
        self._spawn(self._expiry())

    # -- commands ------------------------------------------------------------------------------

    async def _commands(self) -> None:
        while True:
            data = await self._receive(None)
            client = self.client
            if client is None:
                return
            if not self._allowed():
                self.violations += 1
                if self.violations > 50:
                    raise StreamClosed(CLOSE_TOO_MANY, "too many commands")
                self.service.hub.reply(
                    client, {"type": "error", "status": 429, "detail": "too many commands"}
                )
                continue
            try:
                command = _COMMANDS.validate_json(data)
            except ValidationError as exc:
                self.service.hub.reply(client, {"type": "error", "status": 422, "detail": _errors(exc)})
                continue
            if isinstance(command, PingCommand):
                self.service.hub.reply(client, {"type": "pong", "id": command.id, "time": time.time()})
            elif isinstance(command, AuthCommand):
                self._reauthorise(client, command)
            elif isinstance(command, SubscribeCommand):
                self._resubscribe(client, command)
            elif isinstance(command, ActionCommand):
                self._spawn(self._act(client, command))

    def _allowed(self) -> bool:
        rate = self.service.settings.commands_per_s
        now = time.monotonic()
        self.tokens = min(2 * rate, self.tokens + (now - self.refilled_s) * rate)
        self.refilled_s = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def _reauthorise(self, client: Client, command: AuthCommand) -> None:
        current = self.bearer
        try:
            fresh = self.service.bearer(command.token)
        except RequestError as exc:
            self.service.hub.reply(client, {"type": "error", "status": exc.status, "detail": exc.detail})
            return
        policy = self.service.policy
        if (
            current is None
            or fresh.viewer.subject != current.viewer.subject
            or policy.view_key(fresh.viewer) != policy.view_key(current.viewer)
        ):
            raise StreamClosed(
                CLOSE_FORBIDDEN, "the new token is for someone or something else; reconnect with it"
            )
        self.bearer = fresh
        self.expires_s = time.monotonic() + (fresh.claims.exp - time.time())
        self.service.hub.reply(client, {"type": "auth_ok", "expires_at": fresh.claims.expires_at.isoformat()})

    def _resubscribe(self, client: Client, command: SubscribeCommand) -> None:
        if self.bearer is None:
            return
        try:
            subscription = self._subscription(self.bearer, command.subscribe)
        except StreamClosed as refused:
            self.service.hub.reply(client, {"type": "error", "status": 422, "detail": refused.reason})
            return
        self.service.hub.move(client, subscription)

    async def _act(self, client: Client, command: ActionCommand) -> None:
        bearer = self.bearer
        if bearer is None:
            return
        reply: dict[str, Any] = {"type": "action_result", "id": command.id, "alert_id": command.alert_id}
        request = ActionRequest.model_validate(command.model_dump(include=set(ActionRequest.model_fields)))
        try:
            prepared = self.service.prepare(bearer, command.alert_id, request)
            outcome = prepared if isinstance(prepared, Outcome) else await self.service.submit(prepared)
        except RequestError as exc:
            reply.update(status=exc.status, outcome="refused", detail=exc.detail)
        else:
            reply.update(status=outcome.status, outcome=outcome.outcome, action_id=outcome.action_id)
            if outcome.detail:
                reply["detail"] = outcome.detail
            if outcome.state is not None:
                reply["version"] = outcome.state.version
        self.service.hub.reply(client, reply)

    # -- expiry --------------------------------------------------------------------------------

    async def _expiry(self) -> None:
        warned_for = 0.0
        while True:
            left_s = self.expires_s - time.monotonic()
            if left_s <= 0:
                break
            if left_s <= EXPIRY_WARNING_S and warned_for != self.expires_s and self.client is not None:
                warned_for = self.expires_s
                self.service.hub.reply(self.client, {"type": "auth_expiring", "in_s": round(left_s, 1)})
            await asyncio.sleep(min(left_s, max(1.0, left_s - EXPIRY_WARNING_S)))
        self.service.metrics.drops.labels("expired").inc()
        if self.client is not None:
            self.service.hub.leave(self.client, "expired")
        await close(self.websocket, CLOSE_UNAUTHORISED, "token expired; reconnect with a fresh one")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _reason(code: int) -> str:
    return {
        CLOSE_UNAUTHORISED: "unauthorised",
        CLOSE_FORBIDDEN: "forbidden",
        CLOSE_BAD_REQUEST: "protocol",
        CLOSE_TOO_MANY: "too_many_commands",
    }.get(code, "other")


def _json(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)
