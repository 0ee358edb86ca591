"""The alerts service's settings: environment variables ``LINDERO_ALERTS_*`` (plus Kafka and auth)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.core.kafka import KafkaSettings
from services.core.serving import ServiceSettings
from services.core.tokens import TokenSettings


class AlertsSettings(ServiceSettings):
    """Settings of one alerts-service instance (several run behind a load balancer)."""

    model_config = SettingsConfigDict(env_prefix="LINDERO_ALERTS_", frozen=True, extra="ignore")

    config: Path = Field(
        default=Path("config/demo.yaml"),
        validation_alias=AliasChoices("LINDERO_ALERTS_CONFIG", "LINDERO_CONFIG"),
        description="the deployment's YAML configuration",
    )
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8083, ge=0, le=65_535, description="HTTP and websocket port (0: any free port)")
    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=True)
    flush_interval_s: float = Field(
        default=0.02, gt=0, le=5, description="shortest gap between two frames to one client, s"
    )
    max_flush_interval_s: float = Field(
        default=0.2, gt=0, le=5, description="longest gap the frame budget may stretch that to, s"
    )
    frame_budget_per_s: float = Field(
        default=50_000,
        gt=0,
        description="frames per second all clients together should get at most; the gap between frames "
        "grows with the number of clients (clients / budget), between the two bounds above: 20 ms up "
        "to 1,000 clients, 100 ms at 5,000 (a frame costs the gateway about 25-40 us of CPU)",
    )
    track_frame_budget_per_s: float = Field(
        default=10_000,
        gt=0,
        description="the same for frames that hold only track updates: such a frame waits clients / this "
        "after the client's previous one (20 ms up to 200 clients, 100 ms at 1,000, at most the longest "
        "gap); alerts, dispatches and command results go at the gap above and take the waiting tracks along",
    )
    heartbeat_s: float = Field(
        default=15.0, gt=0, description="an idle stream gets a heartbeat frame this often, s"
    )
    fetch_max_wait_ms: int = Field(
        default=20, ge=1, le=1_000, description="how long a Kafka fetch waits for data (latency), ms"
    )
    ws_send_buffer_bytes: int = Field(
        default=131_072,
        ge=0,
        description="kernel send buffer of each websocket (SO_SNDBUF; Linux doubles it), bytes; 0 leaves "
        "it to the kernel's autotuning (megabytes): with a cap a slow client soon stops taking frames and "
        "then gets one frame with each track's latest state instead of seconds of stale small ones",
    )
    max_message_bytes: int = Field(default=65_536, ge=1_024, description="largest websocket message accepted")
    ws_compression: bool = Field(
        default=False,
        description="accept permessage-deflate when a client offers it (browsers always do): about a "
        "tenth of the bytes, but every frame compressed once per client; at 1,000 dashboards with "
        "live tracks the fan-out fell from 4,368 to 317 frames/s (bench/fanout.py --deflate)",
    )
    commands_per_s: float = Field(default=20.0, gt=0, description="websocket commands per client per second")
    max_backlog: int = Field(
        default=20_000, ge=100, description="messages a client may lag before it is dropped"
    )
    auth_timeout_s: float = Field(
        default=5.0, gt=0, description="a websocket must authenticate within this, s"
    )
    action_timeout_s: float = Field(
        default=5.0, gt=0, description="REST actions wait this long for their outcome, s"
    )
    commit_interval_s: float = Field(
        default=0.05,
        gt=0,
        description="lifecycle transactions at most this often per partition, s: an alert goes into a "
        "transaction at once when its partition's last one is older, else when it is this old; no gateway "
        "can read its state before (a transaction costs a few ms, only when there is input)",
    )
    lifecycle_group: str = Field(default="lindero-alerts-lifecycle", description="consumer group (prefixed)")
    webhook_group: str = Field(default="lindero-alerts-webhooks", description="consumer group (prefixed)")
    run_lifecycle: bool = Field(default=True, description="this instance also processes the lifecycle")
    run_webhooks: bool = Field(default=True, description="this instance also delivers team webhooks")
    webhook_allow_http: bool = Field(
        default=False, description="allow plain-http webhooks to non-loopback hosts"
    )
    static_dir: Path | None = Field(
        default=None, description="the built dashboard (default: web/dist if present)"
    )
    create_topics: bool = Field(default=True)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    auth: TokenSettings = Field(default_factory=TokenSettings)
