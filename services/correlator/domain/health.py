"""Sensor health from status reports: silence (missed heartbeats), tamper, low battery, faults.

Fed with the ``sensor.status`` records of the partitions a correlator owns and with the time
(the caller passes the wall clock when it is caught up with its input, else the latest status
time it has read, so that a correlator catching up after downtime does not call every sensor
silent). Findings are per sensor and carry the region whose alert book turns them into alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.alerts import AlertKind, Severity
from schemas.events import SelfTest, SensorStatusRecord
from services.correlator.domain.region import RegionContext, SensorSite
from services.correlator.domain.rules import Finding, cleared


@dataclass(frozen=True)
class Watched:
    """A sensor this instance watches, and where it is."""

    region: str
    site: SensorSite
    east_m: float
    north_m: float


class SensorHealth:
    """Per-sensor state machines for the sensors of some ``sensor.status`` partitions."""

    def __init__(self, contexts: Mapping[str, RegionContext], sensor_ids: Iterable[str]) -> None:
        self.contexts = contexts
        self.watched: dict[str, Watched] = {}
        wanted = set(sensor_ids)
        for region, context in contexts.items():
            for sensor_id, site in context.sensors.items():
                if sensor_id in wanted:
                    east = site.east_m if site.east_m is not None else 0.0
                    north = site.north_m if site.north_m is not None else 0.0
                    self.watched[sensor_id] = Watched(region, site, east, north)
        self.last_heartbeat: dict[str, float] = {}
        self.silent: set[str] = set()
        self.flags: dict[str, set[str]] = {}
        self.started_s: float | None = None

    def status(self, record: SensorStatusRecord) -> list[tuple[str, Finding]]:
        """One status report: heartbeat, tamper switch, battery, self-test."""
        status = record.status
        watched = self.watched.get(status.sensor_id)
        if watched is None:
            return []
        time_s = status.time.timestamp()
        self.last_heartbeat[status.sensor_id] = max(self.last_heartbeat.get(status.sensor_id, time_s), time_s)
        rules = self.contexts[watched.region].rules.sensor_status
        out: list[tuple[str, Finding]] = []
        if status.sensor_id in self.silent:
            self.silent.discard(status.sensor_id)
            out.append((watched.region, cleared(AlertKind.SILENT_SENSOR, status.sensor_id, time_s)))
        if not rules.enabled:
            return out
        flags = self.flags.setdefault(status.sensor_id, set())
        battery_severity = Severity(rules.low_battery_severity)
        if status.battery_pct is not None and status.battery_pct < 5:
            # Nearly empty: at least medium, never below what the configuration asks for.
            battery_severity = max(battery_severity, Severity.MEDIUM, key=lambda s: s.rank)
        # (kind, holds: None when the report does not say, severity, summary, details)
        checks: list[tuple[AlertKind, bool | None, Severity, str, dict[str, Any]]] = [
            (
                AlertKind.SENSOR_TAMPER,
                status.tamper,
                Severity(rules.tamper_severity),
                f"Tamper switch open on {watched.site.sensor_type} sensor {status.sensor_id}",
                {},
            ),
            (
                AlertKind.SENSOR_LOW_BATTERY,
                None if status.battery_pct is None else status.battery_pct < rules.low_battery_pct,
                battery_severity,
                f"Battery of {status.sensor_id} at {status.battery_pct or 0:.0f}%",
                {"battery_pct": status.battery_pct},
            ),
            (
                AlertKind.SENSOR_FAULT,
                None
                if status.self_test is None
                else status.self_test in {SelfTest.FAILED, SelfTest.DEGRADED},
                Severity(rules.fault_severity) if status.self_test == SelfTest.FAILED else Severity.LOW,
                f"Self-test of {status.sensor_id}: {status.self_test.value if status.self_test else ''}"
                + (f" ({status.message})" if status.message else ""),
                {"self_test": status.self_test.value if status.self_test else None},
            ),
        ]
        for kind, holds, severity, summary, details in checks:
            if holds is None:
                continue  # not reported: the condition stays as it was
            if holds:
                flags.add(kind.value)
                out.append(
                    (
                        watched.region,
                        self._finding(
                            kind, watched, severity, time_s, summary, str(status.event_id), details
                        ),
                    )
                )
            elif kind.value in flags:
                flags.discard(kind.value)
                out.append((watched.region, cleared(kind, status.sensor_id, time_s)))
        return out

    def tick(self, now_s: float) -> list[tuple[str, Finding]]:
        """Sensors whose heartbeats stopped: silent after ``missed_heartbeats`` intervals."""
        if self.started_s is None:
            self.started_s = now_s
        out: list[tuple[str, Finding]] = []
        for sensor_id, watched in self.watched.items():
            rule = self.contexts[watched.region].rules.silent_sensor
            if not rule.enabled or sensor_id in self.silent:
                continue
            last = self.last_heartbeat.get(sensor_id, self.started_s)
            limit = rule.missed_heartbeats * watched.site.heartbeat_interval_s
            quiet = now_s - last
            if quiet <= limit:
                continue
            self.silent.add(sensor_id)
            severity = Severity.HIGH if watched.site.sensor_type == "radar" else Severity(rule.severity)
            heard = (
                "never heard from" if sensor_id not in self.last_heartbeat else f"silent for {quiet:.0f} s"
            )
            summary = (
                f"{watched.site.sensor_type.capitalize()} sensor {sensor_id} {heard} "
                f"({quiet / watched.site.heartbeat_interval_s:.0f} heartbeats missed)"
            )
            details = {"silent_s": round(quiet), "heartbeat_interval_s": watched.site.heartbeat_interval_s}
            out.append(
                (
                    watched.region,
                    self._finding(AlertKind.SILENT_SENSOR, watched, severity, now_s, summary, None, details),
                )
            )
        return out

    @staticmethod
    def _finding(
        kind: AlertKind,
        watched: Watched,
        severity: Severity,
        time_s: float,
        summary: str,
        event_id: str | None,
        details: dict[str, Any],
    ) -> Finding:
        return Finding(
            kind=kind,
            key=watched.site.sensor_id,
            severity=severity,
            time_s=time_s,
            east_m=watched.east_m,
            north_m=watched.north_m,
            summary=summary,
            sensor_ids=(watched.site.sensor_id,),
            owners=(watched.site.owner,),
            evidence=(event_id,) if event_id else (),
            details={"sensor_type": watched.site.sensor_type, **details},
        )

    def state(self) -> dict[str, Any]:
        return {
            "last_heartbeat": self.last_heartbeat,
            "silent": sorted(self.silent),
            "flags": {k: sorted(v) for k, v in self.flags.items()},
            "started_s": self.started_s,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.last_heartbeat = dict(state.get("last_heartbeat", {}))
        self.silent = set(state.get("silent", []))
        self.flags = {k: set(v) for k, v in state.get("flags", {}).items()}
        self.started_s = state.get("started_s")
