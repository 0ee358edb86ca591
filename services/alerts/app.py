"""Assemble the alerts service: ``create_app(settings, config)`` returns its ASGI application.

Routes: the REST API (:mod:`services.alerts.api`), the websocket streams
(:mod:`services.alerts.streams`), ``/healthz``, ``/readyz``, ``/metrics`` and, when built, the
dashboard's static files. The lifespan runs the instance's Kafka parts (store, lifecycle,
webhooks, action producer; see :class:`~services.alerts.service.AlertsService`) and, on
shutdown, closes every websocket with 1001 before stopping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.alerts.api import build_router
from services.alerts.service import AlertsService, RequestError
from services.alerts.settings import AlertsSettings
from services.alerts.streams import Stream
from services.core.config import LinderoConfig

log = logging.getLogger(__name__)

DEFAULT_STATIC = Path(__file__).resolve().parents[2] / "web" / "dist"


class _CountRequests:
    """Counts REST responses by route template and status (low cardinality: no ids)."""

    def __init__(self, app: ASGIApp, service: AlertsService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "other")
            self.service.metrics.requests.labels(path, str(status)).inc()


def _error(status: int, detail: Any, retry_after_s: int | None = None) -> JSONResponse:
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="lindero"'
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def create_app(
    settings: AlertsSettings, config: LinderoConfig, registry: CollectorRegistry | None = None
) -> FastAPI:
    """The alerts service's ASGI application."""
    service = AlertsService(settings, config, registry)
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop.clear()
        task = asyncio.create_task(service.run(stop), name="alerts-service")
        task.add_done_callback(service.report_failure)
        try:
            yield
        finally:
            await service.close()
            stop.set()
            try:
                await asyncio.wait_for(task, 30)
            except TimeoutError:
                log.error("the alerts service did not stop within 30 s")
                task.cancel()

    app = FastAPI(
        title="Lindero alerts",
        version="1",
        summary="Live alert and track feeds for command centres, the alert lifecycle, dispatch to "
        "response teams, all within the sharing agreements.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, exc.detail, exc.retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
            for error in exc.errors()
        ]
        return _error(422, problems)

    app.include_router(build_router())

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await Stream(service, websocket, None).run()

    @app.websocket("/v1/teams/{team_id}/stream")
    async def team_stream(websocket: WebSocket, team_id: str) -> None:
        await Stream(service, websocket, team_id).run()

    @app.get(
        "/healthz",
        tags=["operations"],
        responses={503: {"description": "the service's Kafka parts failed: restart the process"}},
    )
    async def healthz() -> JSONResponse:
        if service.failure is not None:
            return JSONResponse({"status": "failed", "reason": service.failure}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "not ready: still reading its state from Kafka"}},
    )
    async def readyz() -> JSONResponse:
        body = service.readiness()
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    static = settings.static_dir or (DEFAULT_STATIC if DEFAULT_STATIC.is_dir() else None)
    if static is not None:
        app.mount("/", StaticFiles(directory=static, html=True), name="dashboard")

    app.add_middleware(_CountRequests, service=service)
    return app
