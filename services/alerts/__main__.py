"""Run the alerts service: ``python -m services.alerts`` (or ``lindero alerts``)."""

from __future__ import annotations

from typing import Any

from services.alerts.app import create_app
from services.alerts.settings import AlertsSettings
from services.core.serving import run_service


def _websockets(settings: AlertsSettings) -> dict[str, Any]:
    return {
        "ws": "websockets-sansio",
        "ws_max_size": settings.max_message_bytes,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
    }


def main() -> int:
    return run_service("alerts", AlertsSettings, create_app, graceful_s=10, options=_websockets)


if __name__ == "__main__":
    raise SystemExit(main())
