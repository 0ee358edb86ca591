"""The topics registry: the only place a Kafka topic name is spelled.

Each :class:`Topic` says what it carries (the model), what the key is, and how the log is
kept (``delete`` for history, ``compact`` for current state). Services never write a topic
name by hand; they ask :class:`TopicNames` for it, which also applies the deployment's
optional prefix (tests use a fresh prefix per test so topics never collide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from schemas.alerts import Alert
from schemas.events import SensorEventRecord, SensorStatusRecord
from schemas.lifecycle import AlertAction, AlertState, AuditRecord, Dispatch
from schemas.tracks import Track

Cleanup = Literal["delete", "compact"]


@dataclass(frozen=True, slots=True)
class Topic:
    """One Kafka topic of the Lindero contract."""

    name: str
    model: type[BaseModel] | None
    key: str
    cleanup: Cleanup
    retention_ms: int | None
    doc: str
    configs: tuple[tuple[str, str], ...] = ()
    """Further broker-side settings of the topic."""


_DAY_MS = 24 * 3600 * 1000

SENSOR_EVENTS = Topic(
    name="sensor.events",
    model=SensorEventRecord,
    key="region id",
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    doc="Validated sensor detections (radar, drone, ground) stamped by ingest, and the gateways' "
    "promises (GatewayProgressRecord, header lindero-record: progress) that they have posted "
    "everything up to a time.",
)
SENSOR_STATUS = Topic(
    name="sensor.status",
    model=SensorStatusRecord,
    key="sensor id",
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    doc="Sensor heartbeats and status reports (battery, tamper, self-test).",
)

SENSOR_DEAD_LETTERS = Topic(
    name="sensor.deadletter",
    model=None,
    key="the original key",
    cleanup="delete",
    retention_ms=30 * _DAY_MS,
    doc="Records the correlator could not process, unchanged, with headers lindero-error and "
    "lindero-source (topic/partition/offset).",
)
TRACKS = Topic(
    name="tracks",
    model=Track,
    key="track id",
    cleanup="compact",
    retention_ms=None,
    doc="The current state of every track; a track that ends gets status lost, then a tombstone.",
)
ALERTS = Topic(
    name="alerts",
    model=Alert,
    key="alert id",
    cleanup="delete",
    retention_ms=90 * _DAY_MS,
    doc="Anomalies as the correlator raises and updates them (same alert id, higher revision).",
)
CORRELATOR_STATE = Topic(
    name="correlator.state",
    model=None,
    key="input partition (sensor.events-<n> or sensor.status-<n>): its header; "
    "<partition>/rules/<region>, <partition>/track/<region>/<track id>: its changelog",
    cleanup="compact",
    retention_ms=None,
    doc="The correlator's state per input partition as a changelog, written in the same transaction "
    "as its outputs and offsets: a header each commit, a region's rules when they changed, a track "
    "when it changed (a tombstone when it ended); a restarted or reassigned correlator resumes from it.",
    configs=(
        ("segment.ms", str(10 * 60 * 1000)),
        # The uncompacted tail (the open segment) is what a restore reads beyond the live state:
        # at a few MB/s of changelog a 1 GiB default segment would take minutes to read.
        ("segment.bytes", str(128 * 1024 * 1024)),
        ("max.message.bytes", str(32 * 1024 * 1024)),
    ),
)

ALERT_ACTIONS = Topic(
    name="alert.actions",
    model=AlertAction,
    key="alert id",
    cleanup="delete",
    retention_ms=90 * _DAY_MS,
    doc="Requests to change alerts: operators' actions, teams' answers, webhook reports, timers.",
)
ALERT_STATE = Topic(
    name="alert.state",
    model=AlertState,
    key="alert id",
    cleanup="compact",
    retention_ms=None,
    doc="The current state of every alert (lifecycle status, history, dispatch).",
)
DISPATCHES = Topic(
    name="dispatches",
    model=Dispatch,
    key="team id",
    cleanup="delete",
    retention_ms=90 * _DAY_MS,
    doc="Every change of every dispatch of a rapid response team.",
)
AUDIT = Topic(
    name="audit",
    model=AuditRecord,
    key="subject (alert, dispatch or policy id)",
    cleanup="delete",
    retention_ms=365 * _DAY_MS,
    doc="Who did what, when, and whether it was allowed. Append-only.",
)

REGISTRY: tuple[Topic, ...] = (
    SENSOR_EVENTS,
    SENSOR_STATUS,
    SENSOR_DEAD_LETTERS,
    TRACKS,
    ALERTS,
    CORRELATOR_STATE,
    ALERT_ACTIONS,
    ALERT_STATE,
    DISPATCHES,
    AUDIT,
)
"""Every topic Lindero uses, in data-flow order."""


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Resolves registry topics to the names used in one deployment (optional prefix)."""

    prefix: str = ""

    def __call__(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.name}"

    def all(self) -> dict[str, Topic]:
        """Every registry topic by its deployed name."""
        return {self(topic): topic for topic in REGISTRY}
