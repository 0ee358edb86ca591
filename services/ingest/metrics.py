"""Ingest's Prometheus metrics, on a registry given by the caller (one per app, none global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.events import SensorType

OUTCOMES = ("accepted", "duplicate")
KINDS = (*(t.value for t in SensorType), "status")


class IngestMetrics:
    """Everything ingest counts. Labels stay low-cardinality: never a sensor or gateway id."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "lindero_ingest_requests",
            "HTTP requests to the event endpoints, by endpoint and status code",
            ["endpoint", "code"],
            registry=registry,
        )
        self.events = Counter(
            "lindero_ingest_events",
            "Events by sensor type and outcome (accepted: written to Kafka now; duplicate: already written)",
            ["sensor_type", "outcome"],
            registry=registry,
        )
        self.rejected = Counter(
            "lindero_ingest_rejected_events",
            "Events refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "lindero_ingest_produce_seconds",
            "Time from handing a Kafka batch to the producer to its acknowledgement (acks=all)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
            registry=registry,
        )
        self.request_seconds = Histogram(
            "lindero_ingest_request_seconds",
            "Time to answer an event request, by endpoint",
            ["endpoint"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
            registry=registry,
        )
        self.batch_events = Histogram(
            "lindero_ingest_batch_events",
            "Events per batch request",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=registry,
        )
        self.kafka_batch_records = Histogram(
            "lindero_ingest_kafka_batch_records",
            "Records per Kafka batch written",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
            registry=registry,
        )
        self.inflight = Gauge(
            "lindero_ingest_inflight_events",
            "Events handed to Kafka and not acknowledged yet",
            registry=registry,
        )
        self.kafka_available = Gauge(
            "lindero_ingest_kafka_available",
            "1 when Kafka takes writes promptly, else 0 (ingest answers 503)",
            registry=registry,
        )
        self.dedup_entries = Gauge(
            "lindero_ingest_dedup_entries",
            "Event ids remembered for duplicate detection",
            registry=registry,
        )
        self.promises = Counter(
            "lindero_ingest_progress_records",
            "Gateway promises (Lindero-Complete-Through) written to sensor.events, one per region",
            registry=registry,
        )
        self.accepted = {kind: self.events.labels(kind, "accepted") for kind in KINDS}
        self.duplicates = {kind: self.events.labels(kind, "duplicate") for kind in KINDS}

    def observe_kafka_batch(self, records: int, seconds: float) -> None:
        self.kafka_batch_records.observe(records)
        self.produce_seconds.observe(seconds)
