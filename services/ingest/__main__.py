"""Run the ingest service: ``python -m services.ingest`` (or ``lindero ingest``)."""

from __future__ import annotations

import gc
import logging
import sys

import uvicorn
from pydantic import ValidationError

from services.core import logging as lindero_logging
from services.core.config import ConfigError, load_config
from services.core.serving import uvicorn_tls
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings

log = logging.getLogger("services.ingest")


def main() -> int:
    try:
        settings = IngestSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        sys.stderr.write(f"ingest settings: {problems}\n")
        return 2
    lindero_logging.configure(settings.log_level, json=settings.log_json)
    try:
        config = load_config(settings.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    # Fewer, larger young-generation collections: ingest allocates many short-lived objects per
    # event; the default threshold (700) makes the collector run thousands of times a second.
    gc.set_threshold(50_000, 20, 100)
    app = create_app(settings, config)
    log.info("ingest listening", extra={"host": settings.host, "port": settings.port})
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        **uvicorn_tls(settings),
        proxy_headers=False,
        timeout_graceful_shutdown=15,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
