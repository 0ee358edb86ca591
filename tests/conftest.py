"""Fixtures and settings shared by every test layer."""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings

from schemas import examples
from services.core import localkafka
from services.core.config import LinderoConfig, load_config
from services.core.kafka import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
DEMO_KEYS = ROOT / "config" / "demo-keys.yaml"

log = logging.getLogger(__name__)

# Property tests check properties, not speed. With a broker and the other suites on 2 cores, drawing
# or running an example can take longer than Hypothesis allows by default: its too_slow health check
# failed test_hub_compact_alerts under load, and passed when run again. A test's own @settings still
# override these.
settings.register_profile("lindero", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("lindero")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Scale every per-test timeout by LINDERO_TEST_TIMEOUT_FACTOR (slow machines set e.g. 3)."""
    factor = float(os.environ.get("LINDERO_TEST_TIMEOUT_FACTOR", "1"))
    base = config.getoption("timeout", None) or float(config.getini("timeout") or 0)
    if base and factor != 1:
        config.option.timeout = float(base) * factor


@pytest.fixture(scope="session")
def demo_config() -> LinderoConfig:
    """The demo configuration shipped in config/demo.yaml."""
    return load_config(DEMO_CONFIG)


@pytest.fixture(scope="session")
def demo_keys() -> dict[str, str]:
    """Plaintext API keys of the demo gateways, by gateway id."""
    return {str(k): str(v) for k, v in yaml.safe_load(DEMO_KEYS.read_text("utf-8")).items()}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


EventFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def make_event() -> EventFactory:
    """Build a fresh, valid event of a given kind (radar, radar_plot, drone, ground, status)."""

    def make(kind: str = "radar", **changes: Any) -> dict[str, Any]:
        base = examples.STATUS if kind == "status" else examples.SENSOR_EVENTS[kind]
        event = {**base, "event_id": str(uuid.uuid4()), "time": rfc3339(utc_now())}
        event.update(changes)
        return {k: v for k, v in event.items() if v is not ...}

    return make


# -- a real Kafka for the integration, end-to-end and browser layers ------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's broker: the project's local Kafka, or LINDERO_KAFKA_BOOTSTRAP."""
    external = os.environ.get("LINDERO_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    cluster = localkafka.LocalCluster(name="pytest-session", root=tmp_path_factory.mktemp("kafka"))
    cluster.start(progress=log.info)
    try:
        yield cluster.bootstrap
    finally:
        cluster.stop()


KafkaFactory = Callable[..., KafkaSettings]


@pytest.fixture
def make_kafka(kafka_bootstrap: str) -> KafkaFactory:
    """KafkaSettings with a fresh topic prefix (one per call unless ``prefix`` is given)."""

    def make(bootstrap: str | None = None, prefix: str | None = None, **changes: Any) -> KafkaSettings:
        return KafkaSettings(
            bootstrap=bootstrap or kafka_bootstrap,
            topic_prefix=prefix if prefix is not None else f"t{uuid.uuid4().hex[:10]}.",
            partitions=changes.pop("partitions", 3),
            **changes,
        )

    return make
