"""The correlator process: the Kafka loop plus a small HTTP endpoint for health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiokafka.errors import KafkaError
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.core.config import LinderoConfig
from services.core.kafka import KafkaSetupError
from services.core.runtime import register_runtime
from services.correlator.metrics import CorrelatorMetrics
from services.correlator.runner import Correlator
from services.correlator.settings import CorrelatorSettings

log = logging.getLogger(__name__)


def create_app(
    settings: CorrelatorSettings, config: LinderoConfig, registry: CollectorRegistry | None = None
) -> FastAPI:
    """The correlator as an ASGI app whose lifespan runs the Kafka loop."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = CorrelatorMetrics(registry)
    register_runtime(registry)
    correlator = Correlator(settings, config, metrics)
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop.clear()
        task = asyncio.create_task(_supervise(correlator, stop), name="correlator-loop")
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 60)

    app = FastAPI(title="Lindero correlator", version="1", lifespan=lifespan)
    app.state.correlator = correlator

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        body = {"ready": correlator.ready, "partitions": sorted(t.key for t in correlator.tasks)}
        return JSONResponse(body, status_code=200 if correlator.ready else 503)

    @app.get("/metrics", tags=["operations"])
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _supervise(correlator: Correlator, stop: asyncio.Event) -> None:
    """Start the loop, restarting it with backoff when Kafka fails it."""
    backoff_s = 0.5
    while not stop.is_set():
        try:
            await correlator.start()
            backoff_s = 0.5
            await correlator.run(stop)
        except (KafkaError, KafkaSetupError, OSError) as exc:
            log.error("correlator loop failed: %s; restarting in %.1f s", exc, backoff_s)
            with contextlib.suppress(KafkaError, OSError):
                await correlator.stop()
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 10.0)
            continue
        break
    with contextlib.suppress(KafkaError, OSError):
        await correlator.stop()
