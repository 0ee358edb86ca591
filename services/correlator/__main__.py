"""Run the correlator: ``python -m services.correlator`` (or ``lindero correlator``)."""

from __future__ import annotations

import gc
import logging
import sys

import uvicorn
from pydantic import ValidationError

from services.core import logging as lindero_logging
from services.core.config import ConfigError, load_config
from services.core.serving import uvicorn_tls
from services.correlator.app import create_app
from services.correlator.settings import CorrelatorSettings

log = logging.getLogger("services.correlator")


def main() -> int:
    try:
        settings = CorrelatorSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        sys.stderr.write(f"correlator settings: {problems}\n")
        return 2
    lindero_logging.configure(settings.log_level, json=settings.log_json)
    try:
        config = load_config(settings.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    gc.set_threshold(50_000, 20, 100)
    app = create_app(settings, config)
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
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
