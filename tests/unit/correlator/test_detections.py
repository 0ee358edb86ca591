"""Sensor event records turned into detections in a region's local frame."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from schemas.events import SensorEventRecord
from schemas.examples import SENSOR_EVENTS
from services.core.config import LinderoConfig
from services.correlator.domain.detections import Detection, from_record
from services.correlator.domain.region import RegionContext
from tests.unit.correlator.worlds import context_of

STAMP: dict[str, Any] = {
    "received_at": "2026-11-22T03:14:08Z",
    "region": "co-ve-cucuta",
    "owner": {"country": "CO", "agency": "ejercito"},
    "gateway_id": "gw-1",
    "sensor_site": {"lat": 7.98124, "lon": -72.476, "alt_m": 12.0},
}


@pytest.fixture
def cucuta(demo_config: LinderoConfig) -> RegionContext:
    """The Cúcuta region of the demo configuration."""
    return context_of(demo_config)


def _record(event: dict[str, Any]) -> SensorEventRecord:
    return SensorEventRecord.model_validate({**STAMP, "event": event})


@pytest.mark.parametrize("example", sorted(SENSOR_EVENTS))
def test_a_detection_is_what_its_constructor_makes_and_immutable(
    demo_config: LinderoConfig, cucuta: RegionContext, example: str
) -> None:
    """from_record's detection equals Detection(**its fields), field by field, and stays frozen."""
    detection = from_record(_record(SENSOR_EVENTS[example]), cucuta.frame, demo_config.sensors_by_id)
    fields = {f.name: getattr(detection, f.name) for f in dataclasses.fields(Detection)}
    built = Detection(**fields)
    assert repr(built) == repr(detection)
    assert detection.event_id == SENSOR_EVENTS[example]["event_id"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        detection.time_s = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        detection.covariance[0, 0] = 1.0


def test_detections_of_one_sensor_share_their_covariance_and_site(
    demo_config: LinderoConfig, cucuta: RegionContext
) -> None:
    """Two polar detections with the same sigmas share one read-only covariance; the radar site
    is where the frame puts it, the first time and from memory."""
    first = from_record(_record(SENSOR_EVENTS["radar"]), cucuta.frame, demo_config.sensors_by_id)
    other = {**SENSOR_EVENTS["radar"], "event_id": "0b9a8f2e-4c61-4d3a-9f1e-6a2b7c8d9eff", "range_m": 900.0}
    second = from_record(_record(other), cucuta.frame, demo_config.sensors_by_id)
    assert second.covariance is first.covariance
    assert np.allclose(np.diag(first.covariance), [15.0**2, math.radians(0.6) ** 2, 1.0])
    site = STAMP["sensor_site"]
    east, north, _ = cucuta.frame.point_to_enu(site["lat"], site["lon"], site["alt_m"])
    assert first.sensor_en == second.sensor_en == (east, north)
    assert all(type(v) is float for v in first.sensor_en or ())
