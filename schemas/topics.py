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

from schemas.events import SensorEventRecord, SensorStatusRecord

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


_DAY_MS = 24 * 3600 * 1000

SENSOR_EVENTS = Topic(
    name="sensor.events",
    model=SensorEventRecord,
    key="region id",
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    doc="Validated sensor detections (radar, drone, ground) stamped by ingest.",
)
SENSOR_STATUS = Topic(
    name="sensor.status",
    model=SensorStatusRecord,
    key="sensor id",
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    doc="Sensor heartbeats and status reports (battery, tamper, self-test).",
)

REGISTRY: tuple[Topic, ...] = (SENSOR_EVENTS, SENSOR_STATUS)
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
