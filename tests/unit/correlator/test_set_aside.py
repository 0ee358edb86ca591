"""What the correlator writes instead of an output record the broker refused."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from schemas.topics import SENSOR_DEAD_LETTERS, TRACKS
from services.core.config import load_config
from services.core.kafka import KafkaSettings
from services.core.processor import OutRecord
from services.correlator.metrics import CorrelatorMetrics
from services.correlator.runner import REFUSED_VALUE_BYTES, Correlator
from services.correlator.settings import CorrelatorSettings
from tests.conftest import DEMO_CONFIG


def _correlator() -> tuple[Correlator, CollectorRegistry]:
    settings = CorrelatorSettings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:1", topic_prefix="p."), config=DEMO_CONFIG
    )
    registry = CollectorRegistry()
    return Correlator(settings, load_config(DEMO_CONFIG), CorrelatorMetrics(registry)), registry


def test_a_refused_record_becomes_a_dead_letter_that_names_it() -> None:
    correlator, registry = _correlator()
    record = OutRecord("p.tracks", b"trk-1", b"{}", (("h", b"1"),))
    letter = correlator._set_aside(record, ValueError("MESSAGE_SIZE_TOO_LARGE"))
    assert letter.topic == "p." + SENSOR_DEAD_LETTERS.name
    assert (letter.key, letter.value) == (b"trk-1", b"{}")
    headers = dict(letter.headers)
    assert headers["lindero-error"].startswith(b"refused-output: 2 bytes for p.tracks: ValueError(")
    assert headers["lindero-source"] == b"output/p.tracks"
    assert headers["h"] == b"1"
    counted = registry.get_sample_value("lindero_correlator_dead_letters_total", {"reason": "refused-output"})
    assert counted == 1


def test_a_value_too_large_to_go_is_left_out() -> None:
    correlator, _ = _correlator()
    record = OutRecord("p." + TRACKS.name, b"trk-2", b"x" * (REFUSED_VALUE_BYTES + 1))
    letter = correlator._set_aside(record, ValueError("too large"))
    assert letter.value is None
    assert dict(letter.headers)["lindero-error"].startswith(
        f"refused-output: {REFUSED_VALUE_BYTES + 1} bytes".encode()
    )
