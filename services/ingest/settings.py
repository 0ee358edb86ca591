"""The ingest service's settings: environment variables ``LINDERO_INGEST_*`` (plus ``LINDERO_KAFKA_*``).

Every knob says its unit and default. Built once in ``__main__`` and passed down, frozen.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.core.kafka import KafkaSettings
from services.core.serving import ServiceSettings


class IngestSettings(ServiceSettings):
    """Settings of one ingest instance."""

    model_config = SettingsConfigDict(env_prefix="LINDERO_INGEST_", frozen=True, extra="ignore")

    config: Path = Field(
        default=Path("config/demo.yaml"),
        validation_alias=AliasChoices("LINDERO_INGEST_CONFIG", "LINDERO_CONFIG"),
        description="the deployment's YAML configuration",
    )
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8081, ge=0, le=65_535, description="TCP port (0: any free port)")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(default=True, description="JSON log lines (false: plain text)")

    max_event_bytes: int = Field(default=64 * 1024, ge=1024, description="single-event body limit, bytes")
    max_batch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="batch body limit, bytes")
    max_batch_events: int = Field(default=5_000, ge=1, le=100_000, description="events per batch")
    max_event_age_s: float = Field(
        default=86_400.0, gt=0, description="oldest accepted sensor time, seconds behind now"
    )
    max_future_s: float = Field(
        default=30.0, ge=0, description="newest accepted sensor time, seconds ahead of now"
    )
    dedup_window_s: float = Field(
        default=900.0, gt=0, description="a repeated event_id within this many seconds is a duplicate"
    )
    dedup_max_entries: int = Field(
        default=2_000_000,
        ge=1_000,
        description="event ids kept for duplicate detection (~190 B each: 2M = ~380 MB)",
    )
    produce_timeout_s: float = Field(
        default=5.0, gt=0, description="longest wait for Kafka's acknowledgement before a 503"
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After sent with 503 answers, s")
    kafka_stall_s: float = Field(
        default=2.0, gt=0, description="unacknowledged writes older than this make ingest unavailable"
    )
    max_pending_events: int = Field(
        default=100_000, ge=100, description="events waiting for Kafka before new ones get 503"
    )
    rate_events_per_s: float = Field(
        default=2_000.0, gt=0, description="per-gateway sustained rate unless the gateway sets one"
    )
    rate_burst: int = Field(
        default=20_000, ge=1, description="per-gateway burst unless the gateway sets one, events"
    )
    create_topics: bool = Field(default=True, description="create missing topics at start-up")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
