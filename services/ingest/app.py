"""Assemble the ingest service: ``create_app(settings, config)`` returns its ASGI application.

The four event endpoints are plain ASGI (:mod:`services.ingest.api`); everything else is a
FastAPI app: ``/healthz``, ``/readyz``, ``/metrics``, ``/v1/whoami``, ``/docs`` and
``/openapi.json``. Start-up connects the Kafka producer in the background, creates missing
topics and rebuilds the duplicate index from the log; until that is done the event endpoints
answer 503 with ``Retry-After`` (and so does every request while Kafka is away).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from schemas.topics import SENSOR_EVENTS, SENSOR_STATUS
from services.core.config import LinderoConfig
from services.core.kafka import KafkaSetupError, ensure_topics
from services.core.runtime import register_runtime
from services.ingest import openapi, recovery
from services.ingest.api import EventsEndpoint, Receive, Scope, Send, _token
from services.ingest.domain.admission import GatewayInfo
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.service import EVENTS, STATUS, IngestCore
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


class IngestApp:
    """Routes the event endpoints straight to their handlers and the rest to FastAPI."""

    def __init__(self, core: IngestCore, api: FastAPI) -> None:
        self.core = core
        self.api = api
        self.routes = {
            endpoint.name: endpoint
            for endpoint in (
                EventsEndpoint(core, EVENTS, batch=False),
                EventsEndpoint(core, EVENTS, batch=True),
                EventsEndpoint(core, STATUS, batch=False),
                EventsEndpoint(core, STATUS, batch=True),
            )
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.api(scope, receive, send)


def current_gateway(request: Request) -> GatewayInfo:
    """The gateway whose API key came with the request (401 otherwise)."""
    core: IngestCore = request.app.state.core
    found = core.authenticate(_token(dict(request.scope["headers"])))
    if found is None:
        raise HTTPException(
            status_code=401,
            detail="a valid gateway API key is required",
            headers={"WWW-Authenticate": 'Bearer realm="lindero-ingest"'},
        )
    return found


CurrentGateway = Annotated[GatewayInfo, Depends(current_gateway)]


async def _prepare(core: IngestCore) -> None:
    """Create topics and rebuild the duplicate index, retrying until Kafka answers."""
    settings = core.settings
    names = settings.kafka.topics
    backoff_s = 0.5
    while True:
        try:
            if settings.create_topics:
                await ensure_topics(settings.kafka, [SENSOR_EVENTS, SENSOR_STATUS])
            await recovery.rebuild(
                settings.kafka, [names(SENSOR_EVENTS), names(SENSOR_STATUS)], core.dedup, core.clock()
            )
        except (KafkaError, OSError, KafkaSetupError) as exc:
            log.warning("start-up needs Kafka (%s); retrying in %.1f s", exc, backoff_s)
            await asyncio.sleep(backoff_s)
            backoff_s = min(2 * backoff_s, 5.0)
            continue
        # The duplicate index holds millions of entries in one dict; without this every full
        # garbage collection would walk all of them (~50 ms per million) under load.
        gc.freeze()
        core.ready = True
        core.metrics.dedup_entries.set(len(core.dedup))
        log.info("ingest ready", extra={"dedup_entries": len(core.dedup)})
        return


async def _housekeeping(core: IngestCore) -> None:
    while True:
        await asyncio.sleep(5.0)
        core.expire()
        core.metrics.kafka_available.set(1 if core.publisher.available else 0)
        core.metrics.inflight.set(core.publisher.pending)


def create_app(
    settings: IngestSettings, config: LinderoConfig, registry: CollectorRegistry | None = None
) -> IngestApp:
    """The ingest ASGI application for ``settings`` and ``config``."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = IngestMetrics(registry)
    register_runtime(registry)
    publisher = Publisher(
        settings.kafka,
        max_pending=settings.max_pending_events,
        stall_s=settings.kafka_stall_s,
        on_batch=metrics.observe_kafka_batch,
    )
    core = IngestCore(settings, config, publisher, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        tasks = [
            asyncio.create_task(_prepare(core), name="ingest-prepare"),
            asyncio.create_task(_housekeeping(core), name="ingest-housekeeping"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await publisher.stop()

    api = FastAPI(
        title="Lindero ingest",
        version="1",
        summary="Sensor gateways post radar, drone and ground-sensor events; they land in Kafka.",
        lifespan=lifespan,
    )

    api.state.core = core

    @api.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: Kafka takes writes",
        responses={503: {"description": "not ready: starting up, or Kafka does not take writes"}},
    )
    async def readyz() -> JSONResponse:
        available = publisher.available
        body: dict[str, Any] = {
            "ready": core.ready and available,
            "started": core.ready,
            "kafka": "available" if available else publisher.unavailable_reason(),
            "bootstrap": settings.kafka.bootstrap,
            "pending_events": publisher.pending,
            "dedup_entries": len(core.dedup),
        }
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @api.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics_endpoint() -> Response:
        metrics.kafka_available.set(1 if publisher.available else 0)
        metrics.inflight.set(publisher.pending)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @api.get(
        "/v1/whoami",
        tags=["gateways"],
        summary="Which gateway this API key belongs to",
        responses={401: {"description": "No API key, or not a valid one"}},
        openapi_extra={"security": [{"ApiKey": []}, {"Bearer": []}]},
    )
    async def whoami(found: CurrentGateway) -> dict[str, Any]:
        return {
            "gateway_id": found.gateway_id,
            "owner": found.owner.model_dump(),
            "sensors": sorted(found.sensors),
        }

    def document() -> dict[str, Any]:
        if api.openapi_schema is None:
            base = get_openapi(title=api.title, version=api.version, summary=api.summary, routes=api.routes)
            api.openapi_schema = openapi.extend(base)
        return api.openapi_schema

    api.openapi = document  # type: ignore[method-assign]
    return IngestApp(core, api)
