"""Example messages, one per sensor type, for the API documentation, the README and tests.

The sensor ids are those of the demo configuration (``config/demo.yaml``); the tests check that
every example validates against its model.
"""

from __future__ import annotations

from typing import Any

RADAR_POLAR: dict[str, Any] = {
    "event_id": "0b9a8f2e-4c61-4d3a-9f1e-6a2b7c8d9e01",
    "sensor_id": "co-cuc-rdr-1",
    "sensor_type": "radar",
    "time": "2026-11-22T03:14:07.250Z",
    "range_m": 2140.5,
    "bearing_deg": 118.2,
    "radial_velocity_mps": -1.4,
    "rcs_dbsm": -2.0,
    "range_sigma_m": 15.0,
    "bearing_sigma_deg": 0.6,
    "class": "person",
    "confidence": 0.7,
}
RADAR_PLOT: dict[str, Any] = {
    "event_id": "0b9a8f2e-4c61-4d3a-9f1e-6a2b7c8d9e02",
    "sensor_id": "co-cuc-rdr-1",
    "sensor_type": "radar",
    "time": "2026-11-22T03:14:09.250Z",
    "plot": {"lat": 7.9702, "lon": -72.4603, "sigma_m": 25.0},
    "radar_track_id": "T-0042",
}
DRONE: dict[str, Any] = {
    "event_id": "5d7c1a3b-2e4f-4a6b-8c9d-0e1f2a3b4c02",
    "sensor_id": "co-cuc-uav-1",
    "sensor_type": "drone",
    "time": "2026-11-22T03:15:41Z",
    "drone": {"lat": 7.9015, "lon": -72.4810, "alt_m": 420.0, "heading_deg": 75.0},
    "detection": {"lat": 7.9049, "lon": -72.4702, "sigma_m": 12.0},
    "class": "vehicle",
    "confidence": 0.86,
    "media_ref": "urn:lindero:media:co-cuc-uav-1:000381",
}
GROUND: dict[str, Any] = {
    "event_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c03",
    "sensor_id": "co-cuc-ugs-03",
    "sensor_type": "ground",
    "time": "2026-11-22T03:16:02.500Z",
    "modality": "pir",
    "class": "person",
    "confidence": 0.6,
    "bearing_deg": 80.0,
    "bearing_sigma_deg": 20.0,
}
STATUS: dict[str, Any] = {
    "event_id": "3c2b1a0f-9e8d-4c7b-a6f5-e4d3c2b1a004",
    "sensor_id": "co-cuc-ugs-03",
    "time": "2026-11-22T03:20:00Z",
    "battery_pct": 71.5,
    "tamper": False,
    "self_test": "ok",
    "temperature_c": 29.0,
}

SENSOR_EVENTS: dict[str, dict[str, Any]] = {
    "radar": RADAR_POLAR,
    "radar_plot": RADAR_PLOT,
    "drone": DRONE,
    "ground": GROUND,
}
"""One example per sensor type (plus the radar's geolocated-plot form)."""
