"""What every service's HTTP server shares: optional TLS (a certificate and its key), and the
start-up of ``python -m services.<name>`` (settings, logging, configuration, uvicorn)."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings

from services.core import logging as lindero_logging
from services.core.config import ConfigError, LinderoConfig, load_config


class ServerTls(BaseSettings):
    """HTTPS for a service (``<PREFIX>TLS_CERTFILE`` and ``<PREFIX>TLS_KEYFILE``; both or neither).

    Without them the service speaks plain HTTP, which is right behind a TLS-terminating proxy or
    ingress and on loopback; anything that crosses a network should set them.
    """

    tls_certfile: Path | None = Field(
        default=None, description="PEM certificate chain: serve HTTPS (and WSS)"
    )
    tls_keyfile: Path | None = Field(default=None, description="PEM private key of that certificate")

    @model_validator(mode="after")
    def _both_or_neither(self) -> ServerTls:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both or neither")
        for path in (self.tls_certfile, self.tls_keyfile):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file not found: {path}")
        return self


def uvicorn_tls(settings: ServerTls) -> dict[str, Any]:
    """uvicorn keyword arguments for the settings' TLS (empty: plain HTTP)."""
    if settings.tls_certfile is None or settings.tls_keyfile is None:
        return {}
    return {"ssl_certfile": str(settings.tls_certfile), "ssl_keyfile": str(settings.tls_keyfile)}


class ServiceSettings(ServerTls):
    """The fields :func:`run_service` reads (each service's settings declare them with their own
    defaults and descriptions)."""

    config: Path
    host: str
    port: int
    log_level: str
    log_json: bool


Settings = TypeVar("Settings", bound=ServiceSettings)


def run_service(
    name: str,
    load_settings: Callable[[], Settings],
    create_app: Callable[[Settings, LinderoConfig], Any],
    *,
    graceful_s: int,
    options: Callable[[Settings], dict[str, Any]] = lambda _: {},
) -> int:
    """Run one service until it is stopped; 2 (after saying why on stderr) for bad settings or
    configuration. ``options``: extra uvicorn arguments from the settings (e.g. websockets)."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        sys.stderr.write(f"{name} settings: {problems}\n")
        return 2
    lindero_logging.configure(settings.log_level, json=settings.log_json)
    try:
        config = load_config(settings.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    # Fewer, larger young-generation collections: the services allocate many short-lived objects
    # per event; the default threshold (700) makes the collector run thousands of times a second.
    gc.set_threshold(50_000, 20, 100)
    app = create_app(settings, config)
    logging.getLogger(f"services.{name}").info(
        f"{name} listening", extra={"host": settings.host, "port": settings.port}
    )
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
        proxy_headers=False,
        timeout_graceful_shutdown=graceful_s,
        **uvicorn_tls(settings),
        **options(settings),
    )
    return 0
