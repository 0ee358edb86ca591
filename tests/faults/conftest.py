"""Fault tests: brokers, correlators and alerts instances killed under load, slow and stuck clients.

Every test ends in a count that proves nothing was lost or duplicated. The factories come from the
integration layer (re-exported here so that pytest sees them for this directory).
"""

from __future__ import annotations

from tests.integration.alerts_fixtures import start_alerts  # noqa: F401
from tests.integration.conftest import start_ingest  # noqa: F401
