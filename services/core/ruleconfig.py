"""Configuration of tracking and anomaly rules (the ``tracking:`` and ``rules:`` sections).

Both sections exist at the top level (defaults for every region) and inside a region (only the
keys that differ). Every key says its unit; every rule can be switched off with
``enabled: false``; ``cooldown_s`` is how long after a condition ends a recurrence still updates
the same alert instead of raising a new one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SeverityName = Literal["info", "low", "medium", "high", "critical"]
ClassName = Literal["person", "vehicle", "aircraft", "vessel", "animal", "unknown"]


def _classes(*names: ClassName) -> list[ClassName]:
    return list(names)


def _speeds() -> dict[ClassName, float]:
    return {"person": 9.0, "animal": 20.0, "vehicle": 55.0, "vessel": 30.0, "aircraft": 150.0}


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class TrackingConfig(_Section):
    """Tracker parameters (see services/correlator/domain/tracker.py)."""

    quiet_q: float = Field(
        default=0.05,
        gt=0,
        description="IMM quiet-model acceleration noise, m²/s³ (steady walking, driving or "
        "flying: a velocity that wanders by about 1 m/s over 30 s, q ≈ 2 σv² / τ ≈ 0.05)",
    )
    manoeuvre_q: float = Field(
        default=24.0,
        gt=0,
        description="IMM manoeuvre-model acceleration noise, m²/s³ (turns at junctions, stops, "
        "starts: accelerations of 3-5 m/s² sustained for a second or two)",
    )
    gate_probability: float = Field(default=0.9995, gt=0.5, lt=1, description="chi-square gate probability")
    confirm_m: int = Field(default=3, ge=1, description="detections needed among the last confirm_n chances")
    confirm_n: int = Field(default=5, ge=1, le=30)
    tentative_timeout_s: float = Field(
        default=12.0, gt=0, description="drop a tentative track unseen this long"
    )
    coast_after_s: float = Field(
        default=6.0, gt=0, description="confirmed -> coasting after this long unseen"
    )
    max_coast_s: float = Field(
        default=20.0,
        gt=0,
        description="coasting -> lost after this long unseen (persons; other classes scale: vehicles "
        "11 s, aircraft 7 s); ten radar revolutions, after which a walker's track is no longer "
        "where a team should go",
    )
    max_position_sigma_m: float = Field(default=400.0, gt=0, description="lost when more uncertain than this")
    publish_interval_s: float = Field(
        default=0.25,
        ge=0,
        description="at most one update per track per interval, s (an update waits for it: 1 s held "
        "updates 0.4 s on average at 2,000 detections/s; 0.25 s sends ~7% more track messages)",
    )
    reorder_window_s: float = Field(
        default=2.0,
        ge=0,
        description="how long events wait for late ones, event time, s; with reorder_adaptive, the "
        "longest wait",
    )
    reorder_adaptive: bool = Field(
        default=True,
        description="wait only as long as this region's detections needed in the last 5 minutes "
        "(their largest lateness x 1.25 + 0.1 s, at least 0.2 s); a delay larger than any seen "
        "then is dropped as late once and widens the window",
    )


class BorderCrossingRule(_Section):
    enabled: bool = True
    severity: SeverityName = "high"
    hysteresis_m: float = Field(default=25.0, ge=0, description="must be this far on each side, m")
    ignore_classes: list[ClassName] = Field(default_factory=lambda: _classes("animal"))
    cooldown_s: float = Field(default=600.0, ge=0)


class ZoneRule(_Section):
    enabled: bool = True
    ignore_classes: list[ClassName] = Field(default_factory=lambda: _classes("animal"))
    cooldown_s: float = Field(default=300.0, ge=0)


class LoiteringRule(_Section):
    enabled: bool = True
    severity: SeverityName = "medium"
    radius_m: float = Field(default=60.0, gt=0, description="stays within this radius, m")
    min_duration_s: float = Field(default=300.0, gt=0, description="for at least this long, s")
    max_border_distance_m: float = Field(default=500.0, gt=0, description="this close to a border, m")
    classes: list[ClassName] = Field(default_factory=lambda: _classes("person", "vehicle", "unknown"))
    cooldown_s: float = Field(default=600.0, ge=0)


class RendezvousRule(_Section):
    enabled: bool = True
    severity: SeverityName = "high"
    distance_m: float = Field(default=30.0, gt=0, description="two tracks this close, m")
    min_duration_s: float = Field(default=60.0, gt=0, description="for at least this long, s")
    max_border_distance_m: float = Field(default=1_000.0, gt=0)
    classes: list[ClassName] = Field(default_factory=lambda: _classes("person", "vehicle", "unknown"))
    cooldown_s: float = Field(default=600.0, ge=0)


class LowSlowFlyerRule(_Section):
    enabled: bool = True
    severity: SeverityName = "high"
    min_probability: float = Field(default=0.5, ge=0, le=1, description="P(aircraft) at least")
    max_altitude_agl_m: float = Field(default=300.0, gt=0, description="above the region's origin height, m")
    max_speed_mps: float = Field(default=45.0, gt=0)
    min_duration_s: float = Field(default=5.0, ge=0)
    cooldown_s: float = Field(default=600.0, ge=0)


class SpeedRule(_Section):
    enabled: bool = True
    severity: SeverityName = "medium"
    max_speed_mps: dict[ClassName, float] = Field(default_factory=_speeds)
    min_probability: float = Field(default=0.7, ge=0, le=1, description="the class must be this sure")
    min_duration_s: float = Field(default=10.0, ge=0)
    cooldown_s: float = Field(default=600.0, ge=0)


class SurgeRule(_Section):
    enabled: bool = True
    severity: SeverityName = "medium"
    cell_m: float = Field(default=1_000.0, gt=0, description="grid cell size, m")
    bin_s: float = Field(default=300.0, gt=0, description="counting interval, s")
    baseline_bins: int = Field(default=12, ge=2, description="EWMA memory of the baseline, bins")
    k_sigma: float = Field(default=3.0, gt=0)
    min_count: int = Field(default=5, ge=1, description="never alert below this many new tracks")
    cooldown_s: float = Field(default=900.0, ge=0)


class SilentSensorRule(_Section):
    enabled: bool = True
    severity: SeverityName = "medium"
    missed_heartbeats: float = Field(default=3.0, gt=0, description="silent after this many intervals")
    cooldown_s: float = Field(default=0.0, ge=0)


class SensorStatusRule(_Section):
    enabled: bool = True
    tamper_severity: SeverityName = "critical"
    low_battery_pct: float = Field(default=20.0, ge=0, le=100)
    low_battery_severity: SeverityName = "low"
    fault_severity: SeverityName = "medium"
    cooldown_s: float = Field(default=3600.0, ge=0)


class UncorroboratedTripRule(_Section):
    enabled: bool = True
    severity: SeverityName = "low"
    radius_m: float = Field(default=150.0, gt=0, description="no track within this distance of the sensor, m")
    wait_s: float = Field(default=20.0, ge=0, description="how long a track has to show up, s")
    ignore_classes: list[ClassName] = Field(default_factory=lambda: _classes("animal"))
    min_confidence: float = Field(default=0.4, ge=0, le=1)
    cooldown_s: float = Field(default=600.0, ge=0)


class RulesConfig(_Section):
    """Every anomaly rule's parameters."""

    border_crossing: BorderCrossingRule = BorderCrossingRule()
    restricted_zone: ZoneRule = ZoneRule()
    loitering: LoiteringRule = LoiteringRule()
    rendezvous: RendezvousRule = RendezvousRule()
    low_slow_flyer: LowSlowFlyerRule = LowSlowFlyerRule()
    implausible_speed: SpeedRule = SpeedRule()
    activity_surge: SurgeRule = SurgeRule()
    silent_sensor: SilentSensorRule = SilentSensorRule()
    sensor_status: SensorStatusRule = SensorStatusRule()
    uncorroborated_trip: UncorroboratedTripRule = UncorroboratedTripRule()
    update_interval_s: float = Field(
        default=30.0,
        ge=0,
        description="an ongoing alert is republished at most this often (severity changes at once)",
    )


def merged(base: BaseModel, override: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` as a dict with ``override``'s keys applied recursively (for per-region sections)."""
    out = base.model_dump()
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            inner = dict(out[key])
            inner.update(value)
            out[key] = inner
        else:
            out[key] = value
    return out
