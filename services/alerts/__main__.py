"""Run the alerts service: ``python -m services.alerts`` (or ``lindero alerts``)."""

from __future__ import annotations

from typing import Any

from services.alerts.app import create_app
from services.alerts.settings import AlertsSettings
from services.alerts.wsprotocol import frame_writer_protocol
from services.core.serving import run_service


def websocket_options(settings: AlertsSettings) -> dict[str, Any]:
    """uvicorn's websocket settings for the alerts service (the tests' servers use them too)."""
    return {
        "ws": frame_writer_protocol(settings.ws_send_buffer_bytes),
        "ws_max_size": settings.max_message_bytes,
        "ws_per_message_deflate": settings.ws_compression,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
    }


def main() -> int:
    return run_service("alerts", AlertsSettings, create_app, graceful_s=10, options=websocket_options)


if __name__ == "__main__":
    raise SystemExit(main())
