"""Sensor health from status reports: tamper, battery, self-test faults and silence (missed heartbeats)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest

from schemas.alerts import AlertKind, Severity
from schemas.events import SelfTest, SensorStatusRecord
from services.core.config import LinderoConfig
from services.correlator.domain.health import SensorHealth
from services.correlator.domain.region import RegionContext
from services.correlator.domain.rules import Finding
from tests.unit.correlator.worlds import CUCUTA, T0, TAPACHULA, context_of, status_record, with_rules

UGS = "co-cuc-ugs-03"
RADAR = "co-cuc-rdr-1"
GT_UGS = "gt-tec-ugs-02"

Watch = Callable[..., SensorHealth]
Report = Callable[..., SensorStatusRecord]


@pytest.fixture
def watch(demo_config: LinderoConfig) -> Watch:
    """A health monitor of both demo regions for some sensors, optionally with changed rules."""

    def make(sensor_ids: Sequence[str] = (UGS,), **rules: Any) -> SensorHealth:
        config = with_rules(demo_config, **rules) if rules else demo_config
        contexts = {region: context_of(config, region) for region in (CUCUTA, TAPACHULA)}
        return SensorHealth(contexts, sensor_ids)

    return make


@pytest.fixture
def report(demo_config: LinderoConfig) -> Report:
    """A status report of a demo sensor at ``T0 + elapsed_s`` (healthy unless told otherwise)."""
    contexts: dict[str, RegionContext] = {}

    def make(sensor_id: str = UGS, elapsed_s: float = 0.0, **fields: Any) -> SensorStatusRecord:
        region = next(s.region for s in demo_config.sensors if s.id == sensor_id)
        if region not in contexts:
            contexts[region] = context_of(demo_config, region)
        return status_record(contexts[region], sensor_id, T0 + elapsed_s, **fields)

    return make


def findings(pairs: list[tuple[str, Finding]], kind: AlertKind | None = None) -> list[Finding]:
    return [f for _, f in pairs if kind is None or f.kind is kind]


def only(pairs: list[tuple[str, Finding]]) -> tuple[str, Finding]:
    assert len(pairs) == 1, pairs
    return pairs[0]


# -- status reports --------------------------------------------------------------------------------


def test_a_healthy_report_raises_nothing(watch: Watch, report: Report) -> None:
    """Battery 90 %, tamper closed, self-test ok: no finding."""
    assert watch().status(report()) == []


def test_a_report_of_an_unwatched_sensor_is_ignored(watch: Watch, report: Report) -> None:
    """Only the sensors of this instance's partitions are watched."""
    health = watch([UGS])
    assert health.status(report("co-cuc-ugs-04", tamper=True)) == []
    health.tick(T0)
    assert [f.key for f in findings(health.tick(T0 + 10_000))] == [UGS]


def test_tamper_is_critical_and_closing_it_clears(watch: Watch, report: Report) -> None:
    """Tamper open: a critical finding at the sensor site with the report as evidence; closed: cleared."""
    health = watch()
    record = report(tamper=True)
    region, finding = only(health.status(record))
    site = health.watched[UGS].site
    assert region == CUCUTA
    assert finding.kind is AlertKind.SENSOR_TAMPER
    assert finding.key == UGS
    assert finding.active
    assert finding.severity is Severity.CRITICAL
    assert finding.time_s == T0
    assert (finding.east_m, finding.north_m) == (site.east_m, site.north_m)
    assert finding.sensor_ids == (UGS,)
    assert finding.owners == (("CO", "ejercito"),)
    assert finding.evidence == (str(record.status.event_id),)
    assert finding.details["sensor_type"] == "ground"
    assert only(health.status(report(elapsed_s=30, tamper=True)))[1].active
    _, closed = only(health.status(report(elapsed_s=60)))
    assert closed.kind is AlertKind.SENSOR_TAMPER
    assert not closed.active
    assert closed.time_s == T0 + 60
    assert health.status(report(elapsed_s=90)) == []


@pytest.mark.parametrize(
    ("battery_pct", "severity"),
    [(19.9, Severity.LOW), (10.0, Severity.LOW), (4.9, Severity.MEDIUM), (0.0, Severity.MEDIUM)],
)
def test_a_battery_below_the_threshold_is_low_and_nearly_empty_is_worse(
    watch: Watch, report: Report, battery_pct: float, severity: Severity
) -> None:
    """Below 20 %: low battery (low severity); below 5 %, empty included: medium."""
    _, finding = only(watch().status(report(battery_pct=battery_pct)))
    assert finding.kind is AlertKind.SENSOR_LOW_BATTERY
    assert finding.severity is severity
    assert finding.details["battery_pct"] == battery_pct


def test_a_battery_at_or_above_the_threshold_is_fine_and_a_recharge_clears(
    watch: Watch, report: Report
) -> None:
    """20 % raises nothing; after a low report, 80 % clears it once."""
    health = watch()
    assert health.status(report(battery_pct=20.0)) == []
    assert only(health.status(report(elapsed_s=60, battery_pct=12.0)))[1].active
    _, recharged = only(health.status(report(elapsed_s=120, battery_pct=80.0)))
    assert recharged.kind is AlertKind.SENSOR_LOW_BATTERY
    assert not recharged.active
    assert health.status(report(elapsed_s=180, battery_pct=80.0)) == []


def test_a_configured_low_battery_severity_is_never_lowered(watch: Watch, report: Report) -> None:
    """With ``low_battery_severity: high``, a nearly empty battery is still high, not medium."""
    health = watch(sensor_status={"low_battery_severity": "high"})
    assert only(health.status(report(battery_pct=15.0)))[1].severity is Severity.HIGH
    assert only(health.status(report(elapsed_s=60, battery_pct=2.0)))[1].severity is Severity.HIGH


def test_reports_without_battery_or_self_test_change_nothing(watch: Watch, report: Report) -> None:
    """A heartbeat that does not say the battery level or the self-test clears neither condition."""
    health = watch()
    health.status(report(battery_pct=10.0, self_test=SelfTest.FAILED))
    assert health.status(report(elapsed_s=30, battery_pct=None, self_test=None)) == []
    cleared = findings(health.status(report(elapsed_s=60, battery_pct=90.0, self_test=SelfTest.OK)))
    assert sorted((f.kind.value, f.active) for f in cleared) == [
        ("sensor_fault", False),
        ("sensor_low_battery", False),
    ]


@pytest.mark.parametrize(
    ("self_test", "severity"), [(SelfTest.FAILED, Severity.MEDIUM), (SelfTest.DEGRADED, Severity.LOW)]
)
def test_a_failed_or_degraded_self_test_is_a_fault_and_ok_clears(
    watch: Watch, report: Report, self_test: SelfTest, severity: Severity
) -> None:
    """Failed: the configured fault severity; degraded: low; the message is in the summary; ok clears."""
    health = watch()
    _, fault = only(health.status(report(self_test=self_test, message="antenna VSWR high")))
    assert fault.kind is AlertKind.SENSOR_FAULT
    assert fault.severity is severity
    assert fault.details["self_test"] == self_test.value
    assert "antenna VSWR high" in fault.summary
    _, ok = only(health.status(report(elapsed_s=60)))
    assert (ok.kind, ok.active) == (AlertKind.SENSOR_FAULT, False)


def test_several_conditions_at_once_are_separate_findings(watch: Watch, report: Report) -> None:
    """Tamper, low battery and a failed self-test in one report: three findings for one sensor."""
    out = watch().status(report(tamper=True, battery_pct=8.0, self_test=SelfTest.FAILED))
    assert sorted(f.kind.value for f in findings(out)) == [
        "sensor_fault",
        "sensor_low_battery",
        "sensor_tamper",
    ]
    assert {f.key for f in findings(out)} == {UGS}


def test_findings_carry_the_sensors_region(watch: Watch, report: Report) -> None:
    """A Guatemalan sensor's finding belongs to the Tapachula region's alert book."""
    region, finding = only(watch([UGS, GT_UGS]).status(report(GT_UGS, tamper=True)))
    assert region == TAPACHULA
    assert finding.owners == (("GT", "ejercito"),)


def test_disabled_status_rule_ignores_tamper(watch: Watch, report: Report) -> None:
    """With ``sensor_status.enabled: false`` tamper, battery and faults raise nothing."""
    health = watch(sensor_status={"enabled": False})
    assert health.status(report(tamper=True, battery_pct=1.0, self_test=SelfTest.FAILED)) == []


# -- silence ---------------------------------------------------------------------------------------


def test_silence_after_the_missed_heartbeats_and_not_before(watch: Watch, report: Report) -> None:
    """A ground sensor (60 s heartbeats, 3 missed): quiet 180 s is fine, 181 s is silent, once."""
    health = watch()
    assert health.tick(T0) == []
    health.status(report(elapsed_s=0))
    assert health.tick(T0 + 120) == []
    assert health.tick(T0 + 180) == []
    region, finding = only(health.tick(T0 + 181))
    assert region == CUCUTA
    assert finding.kind is AlertKind.SILENT_SENSOR
    assert finding.key == UGS
    assert finding.severity is Severity.MEDIUM
    assert finding.time_s == T0 + 181
    assert finding.details["silent_s"] == 181
    assert finding.details["heartbeat_interval_s"] == 60.0
    assert "silent for 181 s" in finding.summary
    assert health.tick(T0 + 300) == []


def test_a_heartbeat_clears_silence_and_silence_can_return(watch: Watch, report: Report) -> None:
    """After silence, any report clears it; another long gap is silent again."""
    health = watch()
    health.tick(T0)
    health.status(report(elapsed_s=0))
    health.tick(T0 + 200)
    region, back = only(health.status(report(elapsed_s=250)))
    assert (region, back.kind, back.key, back.active) == (CUCUTA, AlertKind.SILENT_SENSOR, UGS, False)
    assert back.time_s == T0 + 250
    assert health.tick(T0 + 430) == []
    assert only(health.tick(T0 + 431))[1].active


def test_a_radar_is_silent_sooner_and_more_severe(watch: Watch, report: Report) -> None:
    """A radar (30 s heartbeats): silent after 90 s, with high severity."""
    health = watch([RADAR])
    health.tick(T0)
    health.status(report(RADAR, 0))
    assert health.tick(T0 + 90) == []
    _, finding = only(health.tick(T0 + 91))
    assert finding.severity is Severity.HIGH
    assert finding.details["sensor_type"] == "radar"


def test_a_sensor_never_heard_from_is_silent_from_the_start_of_watching(watch: Watch) -> None:
    """Without any report, silence counts from the first tick."""
    health = watch()
    assert health.tick(T0) == []
    assert health.tick(T0 + 180) == []
    _, finding = only(health.tick(T0 + 181))
    assert "never heard from" in finding.summary


def test_silence_counts_from_the_newest_report_whatever_the_arrival_order(
    watch: Watch, report: Report
) -> None:
    """A late, older report does not move the last heartbeat back."""
    health = watch()
    health.tick(T0)
    health.status(report(elapsed_s=100))
    health.status(report(elapsed_s=40))
    assert health.tick(T0 + 280) == []
    assert len(health.tick(T0 + 281)) == 1


def test_missed_heartbeats_and_disabling_come_from_the_configuration(watch: Watch, report: Report) -> None:
    """``missed_heartbeats: 2`` makes a ground sensor silent after 120 s; ``enabled: false`` never."""
    sooner = watch(silent_sensor={"missed_heartbeats": 2})
    sooner.tick(T0)
    sooner.status(report(elapsed_s=0))
    assert sooner.tick(T0 + 120) == []
    assert len(sooner.tick(T0 + 121)) == 1
    off = watch(silent_sensor={"enabled": False})
    off.tick(T0)
    assert off.tick(T0 + 100_000) == []


def test_each_watched_sensor_is_judged_on_its_own(watch: Watch, report: Report) -> None:
    """Of two sensors, only the one that stopped reporting is silent."""
    health = watch([UGS, GT_UGS])
    health.tick(T0)
    for elapsed in range(0, 241, 60):
        health.status(report(GT_UGS, elapsed))
    health.status(report(UGS, 0))
    assert [(r, f.key) for r, f in health.tick(T0 + 240)] == [(CUCUTA, UGS)]


# -- snapshots -------------------------------------------------------------------------------------


def test_health_state_survives_a_json_snapshot(watch: Watch, report: Report) -> None:
    """Restored from orjson: silence is not re-reported, and the next reports clear what was raised."""
    health = watch([UGS, RADAR])
    health.tick(T0)
    health.status(report(UGS, 0, tamper=True, battery_pct=10.0))
    health.status(report(RADAR, 0))
    assert [f.key for f in findings(health.tick(T0 + 100))] == [RADAR]
    restored = watch([UGS, RADAR])
    restored.restore(orjson.loads(orjson.dumps(health.state())))
    assert restored.tick(T0 + 150) == []
    assert [f.key for f in findings(restored.tick(T0 + 181))] == [UGS]
    radar_back = findings(restored.status(report(RADAR, 190)))
    assert [(f.kind, f.active) for f in radar_back] == [(AlertKind.SILENT_SENSOR, False)]
    ugs_back = findings(restored.status(report(UGS, 200)))
    assert sorted((f.kind.value, f.active) for f in ugs_back) == [
        ("sensor_low_battery", False),
        ("sensor_tamper", False),
        ("silent_sensor", False),
    ]
