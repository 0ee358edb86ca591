"""Run the ingest service: ``python -m services.ingest`` (or ``lindero ingest``)."""

from __future__ import annotations

from services.core.serving import run_service
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings


def main() -> int:
    return run_service("ingest", IngestSettings, create_app, graceful_s=15)


if __name__ == "__main__":
    raise SystemExit(main())
