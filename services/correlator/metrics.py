"""The correlator's Prometheus metrics, on a registry given by the caller."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CorrelatorMetrics:
    """What the correlator counts; labels stay low-cardinality (never a track or sensor id)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.records = Counter(
            "lindero_correlator_records", "Records consumed, by input topic", ["topic"], registry=registry
        )
        self.detections = Counter(
            "lindero_correlator_detections", "Detections given to the tracker", registry=registry
        )
        self.late = Counter(
            "lindero_correlator_late_events",
            "Detections older than the reorder window allowed (counted and dropped)",
            registry=registry,
        )
        self.duplicates = Counter(
            "lindero_correlator_duplicate_events", "Repeated event ids dropped", registry=registry
        )
        self.dead_letters = Counter(
            "lindero_correlator_dead_letters",
            "Records sent to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )
        self.alerts = Counter(
            "lindero_correlator_alerts", "Alert revisions published, by kind", ["kind"], registry=registry
        )
        self.track_updates = Counter(
            "lindero_correlator_track_updates",
            "Track messages published (tombstones included)",
            registry=registry,
        )
        self.tracks = Gauge(
            "lindero_correlator_tracks", "Live tracks, by status", ["status"], registry=registry
        )
        self.rule_errors = Counter(
            "lindero_correlator_rule_errors",
            "Rule evaluations that failed, by rule",
            ["rule"],
            registry=registry,
        )
        self.step_seconds = Histogram(
            "lindero_correlator_step_seconds",
            "Time to track one batch of detections and run the rules (association included)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "lindero_correlator_commit_seconds",
            "Time to commit one transaction (outputs + state + offsets)",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=registry,
        )
        self.state_bytes = Histogram(
            "lindero_correlator_state_bytes",
            "Size of one partition snapshot",
            buckets=(1e3, 1e4, 1e5, 3e5, 1e6, 3e6, 1e7),
            registry=registry,
        )
        self.held = Histogram(
            "lindero_correlator_publish_held_seconds",
            "Event time from a track's latest detection to the update's publication, beyond the reorder "
            "window: the release cursor's step, plus the time the per-track publish interval held it",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10),
            registry=registry,
        )
        self.promises = Counter(
            "lindero_correlator_gateway_promises",
            "Gateway promises (Lindero-Complete-Through) taken by a region",
            registry=registry,
        )
        self.promise_behind = Histogram(
            "lindero_correlator_promise_behind_seconds",
            "At each step of a region, how far each of its gateways' promises is behind the region's "
            "newest event time: the oldest promise is what releases a promising region, so a gateway "
            "with a long tail here holds the region's tracks back",
            ["region", "gateway"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 5),
            registry=registry,
        )
        self.reorder_window = Gauge(
            "lindero_correlator_reorder_window_seconds",
            "How long detections wait for late ones now, by region (the adaptive window, or the fixed one)",
            ["region"],
            registry=registry,
        )
        self.lag = Gauge(
            "lindero_correlator_consumer_lag",
            "Records behind the end of the input, by topic",
            ["topic"],
            registry=registry,
        )
        self.restore_seconds = Histogram(
            "lindero_correlator_restore_seconds",
            "Time to restore one input partition's state from correlator.state (reading the records, "
            "rebuilding the engines) when the partition is assigned",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.partitions = Gauge("lindero_correlator_partitions", "Input partitions owned", registry=registry)
        self.aborts = Counter(
            "lindero_correlator_aborted_transactions",
            "Transactions aborted (state rolled back)",
            registry=registry,
        )


def observe_all(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe(amount)`` for each amount, in one pass: the same bucket counts and (up
    to the order of a float sum) the same sum.

    ``observe`` takes a lock for the sum and another for a bucket per value; the correlator
    observes a value per track update it publishes (2% of its time in a backlog). This counts
    each bucket's values first (``amount <= bound``: the first bound not below it) and increments
    each bucket and the sum once. It uses the histogram's own value holders (``_sum``,
    ``_buckets``, ``_upper_bounds``: prometheus_client's internals; tests/unit/correlator/
    test_metrics.py compares it with ``observe``)."""
    if not amounts:
        return
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    bounds = histogram._upper_bounds
    counts = np.bincount(np.searchsorted(bounds, amounts, side="left"), minlength=len(bounds)).tolist()
    histogram._sum.inc(float(sum(amounts)))
    for bucket, count in zip(histogram._buckets, counts, strict=False):
        if count:
            bucket.inc(count)
