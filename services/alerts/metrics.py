"""The alerts service's Prometheus metrics, on a registry given by the caller."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PIPELINE_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
"""Seconds, for the steps of an alert between Kafka topics (tens of milliseconds when all is well)."""


class AlertsMetrics:
    """What the alerts service counts; labels stay low-cardinality."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.clients = Gauge(
            "lindero_alerts_clients", "Connected websocket clients, by role", ["role"], registry=registry
        )
        self.frames = Counter("lindero_alerts_frames_sent", "Websocket frames sent", registry=registry)
        self.messages = Counter(
            "lindero_alerts_messages_sent", "Messages sent (several per frame)", registry=registry
        )
        self.drops = Counter(
            "lindero_alerts_dropped_clients",
            "Clients dropped, by reason (slow, expired, protocol)",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "lindero_alerts_delivery_latency_seconds",
            "From sensor time (alerts: their update, tracks: their time) to the frames sent; "
            "the oldest message of each set of messages sent to identical clients at once",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
            registry=registry,
        )
        self.lifecycle_latency = Histogram(
            "lindero_alerts_lifecycle_latency_seconds",
            "Lifecycle: from an input record's Kafka timestamp (an alert revision or an action, when its "
            "producer wrote it) to the commit of the transaction that applied it",
            buckets=PIPELINE_BUCKETS,
            registry=registry,
        )
        self.lifecycle_commit = Histogram(
            "lindero_alerts_lifecycle_commit_seconds",
            "Lifecycle: how long a transaction took (records, input offsets, commit)",
            buckets=PIPELINE_BUCKETS,
            registry=registry,
        )
        self.state_read_latency = Histogram(
            "lindero_alerts_state_read_latency_seconds",
            "From the lifecycle's decision (an alert state's updated_at) to this instance's store "
            "applying the state: the transaction's commit and the read back (read committed)",
            buckets=PIPELINE_BUCKETS,
            registry=registry,
        )
        self.transitions = Counter(
            "lindero_alerts_lifecycle_transitions",
            "Lifecycle actions processed, by action and outcome",
            ["action", "outcome"],
            registry=registry,
        )
        self.acceptance = Histogram(
            "lindero_alerts_dispatch_acceptance_seconds",
            "From a dispatch offered to its acceptance by the team",
            buckets=(5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600),
            registry=registry,
        )
        self.webhooks = Counter(
            "lindero_alerts_webhook_deliveries",
            "Webhook deliveries, by result",
            ["result"],
            registry=registry,
        )
        self.requests = Counter(
            "lindero_alerts_requests",
            "REST requests, by route and status",
            ["route", "code"],
            registry=registry,
        )
