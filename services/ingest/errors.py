"""Ingest's exceptions: one base, one class per kind of failure."""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error the ingest service raises on purpose."""


class KafkaUnavailable(IngestError):
    """Kafka cannot take writes right now (down, stalled or backlogged); answer 503 and retry."""
