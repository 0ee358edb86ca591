"""Run the correlator: ``python -m services.correlator`` (or ``lindero correlator``)."""

from __future__ import annotations

from services.core.serving import run_service
from services.correlator.app import create_app
from services.correlator.settings import CorrelatorSettings


def main() -> int:
    return run_service("correlator", CorrelatorSettings, create_app, graceful_s=30)


if __name__ == "__main__":
    raise SystemExit(main())
