"""What every service's HTTP server shares: optional TLS (a certificate and its key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings


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
