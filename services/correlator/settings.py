"""The correlator's settings: environment variables ``LINDERO_CORRELATOR_*`` (plus ``LINDERO_KAFKA_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.core.kafka import KafkaSettings
from services.core.serving import ServiceSettings


class CorrelatorSettings(ServiceSettings):
    """Settings of one correlator instance (several instances share the work by consumer group)."""

    model_config = SettingsConfigDict(env_prefix="LINDERO_CORRELATOR_", frozen=True, extra="ignore")

    config: Path = Field(
        default=Path("config/demo.yaml"),
        validation_alias=AliasChoices("LINDERO_CORRELATOR_CONFIG", "LINDERO_CONFIG"),
        description="the deployment's YAML configuration",
    )
    host: str = Field(default="127.0.0.1", description="address of the health and metrics endpoint")
    port: int = Field(
        default=8082, ge=0, le=65_535, description="port of /healthz, /readyz, /metrics (0: any)"
    )
    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=True)
    group_id: str = Field(
        default="lindero-correlator", description="Kafka consumer group (prefixed like topics)"
    )
    commit_interval_s: float = Field(
        default=0.2, gt=0, description="outputs, state and offsets are committed together this often, s"
    )
    max_batch: int = Field(default=5_000, ge=1, description="records taken from Kafka per poll")
    idle_lag: int = Field(
        default=50,
        ge=0,
        description="a partition this close to its end is caught up: the wall clock drives time",
    )
    create_topics: bool = Field(default=True, description="create missing topics at start-up")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
