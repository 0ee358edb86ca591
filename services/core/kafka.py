"""Kafka connection settings and the few helpers every service needs around aiokafka.

Settings come from the environment (``LINDERO_KAFKA_*``): the bootstrap address, an optional
topic prefix, security (TLS / SASL passed straight through to aiokafka) and how topics are
created. Topic names come only from :mod:`schemas.topics`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import Topic, TopicNames
from services.core.localkafka import DEFAULT_PORT

log = logging.getLogger(__name__)

_TOPIC_EXISTS = 36
_LEADER_NOT_AVAILABLE = 5


class KafkaSetupError(Exception):
    """A topic could not be created or configured; the message names the topic and the reason."""


class KafkaSettings(BaseSettings):
    """How to reach Kafka and how Lindero's topics are laid out on it."""

    model_config = SettingsConfigDict(env_prefix="LINDERO_KAFKA_", frozen=True, extra="ignore")

    bootstrap: str = Field(
        default=f"127.0.0.1:{DEFAULT_PORT}",
        description="host:port[,host:port]; default: the cluster `lindero kafka up` starts",
    )
    topic_prefix: str = Field(default="", max_length=100, description="prepended to every topic")
    client_id: str = Field(default="lindero", description="prefix of the Kafka client ids")
    partitions: int = Field(default=6, ge=1, le=10_000, description="for topics Lindero creates")
    replication_factor: int = Field(default=1, ge=1, le=10, description="for topics Lindero creates")
    min_insync_replicas: int | None = Field(
        default=None, ge=1, le=10, description="topic min.insync.replicas"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @property
    def topics(self) -> TopicNames:
        """Resolves registry topics to this deployment's names."""
        return TopicNames(self.topic_prefix)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in {"SSL", "SASL_SSL"}:
            context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
            if self.ssl_certfile:
                context.load_cert_chain(
                    str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
                )
            options["ssl_context"] = context
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return options


def topic_configs(topic: Topic, settings: KafkaSettings) -> dict[str, str]:
    """Broker-side configuration of a registry topic."""
    configs: dict[str, str] = {"cleanup.policy": topic.cleanup}
    if topic.retention_ms is not None:
        configs["retention.ms"] = str(topic.retention_ms)
    if topic.cleanup == "compact":
        configs["min.cleanable.dirty.ratio"] = "0.1"
        configs["segment.ms"] = str(3600 * 1000)
    if settings.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(settings.min_insync_replicas)
    configs.update(topic.configs)
    return configs


async def ensure_topics(settings: KafkaSettings, topics: list[Topic]) -> list[str]:
    """Create the registry topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(client_id=f"{settings.client_id}-admin", **settings.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = settings.topics
        missing = [topic for topic in topics if names(topic) not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=names(topic),
                    num_partitions=settings.partitions,
                    replication_factor=settings.replication_factor,
                    topic_configs=topic_configs(topic, settings),
                )
                for topic in missing
            ]
        )
        created = []
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != _TOPIC_EXISTS:
                message = rest[0] if rest else ""
                raise KafkaSetupError(f"cannot create topic {name}: error {code} {message}")
        if created:
            log.info("created topics %s", created)
        return created
    finally:
        await admin.close()


async def topic_partitions(
    settings: KafkaSettings, topics: Iterable[str], settle_s: float = 15.0
) -> dict[str, list[int]]:
    """Partition numbers of each existing topic (topics that do not exist are left out).

    A topic created a moment ago can be described before its partitions have leaders (error 5,
    LEADER_NOT_AVAILABLE, or a partition without a leader); it is described again, for up to
    ``settle_s``, rather than reported absent or partly there.
    """
    wanted = list(topics)
    admin = AIOKafkaAdminClient(client_id=f"{settings.client_id}-admin", **settings.client_options())
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + settle_s
        while True:
            described = await admin.describe_topics(wanted)
            settling = [
                entry["topic"]
                for entry in described
                if entry["error_code"] == _LEADER_NOT_AVAILABLE
                or (
                    entry["error_code"] == 0
                    and any(p["error_code"] != 0 or p["leader"] < 0 for p in entry["partitions"])
                )
            ]
            if not settling or asyncio.get_running_loop().time() > deadline:
                break
            log.info("topics without partition leaders yet: %s; describing again", settling)
            await asyncio.sleep(0.25)
    finally:
        await admin.close()
    return {
        entry["topic"]: sorted(p["partition"] for p in entry["partitions"])
        for entry in described
        if entry["error_code"] == 0
    }


async def delete_prefixed_topics(settings: KafkaSettings) -> list[str]:
    """Delete every topic whose name starts with ``settings.topic_prefix`` (a demo's clean slate).

    Refuses an empty prefix: that would be every topic of the cluster.
    """
    prefix = settings.topic_prefix
    if not prefix:
        raise ValueError("refusing to delete topics without a topic prefix")
    admin = AIOKafkaAdminClient(client_id=f"{settings.client_id}-admin", **settings.client_options())
    await admin.start()
    try:
        doomed = sorted(name for name in await admin.list_topics() if name.startswith(prefix))
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()
