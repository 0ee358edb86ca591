"""The correlator's metrics helpers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from services.correlator.metrics import observe_all

BUCKETS = (0.05, 0.1, 0.2, 0.5, 1, 2, 5)


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("held_seconds", "held", buckets=BUCKETS, registry=registry)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for metric in registry.collect()
        for s in metric.samples
    }


@given(
    st.lists(st.lists(st.sampled_from([0.0, 0.05, 0.1, 1.0, 5.0, 7.5]) | st.floats(-1.0, 20.0), max_size=30))
)
def test_observe_all_counts_what_observe_counts(batches: list[list[float]]) -> None:
    """Bucket counts and count equal, the sum equal but for float rounding, over several calls."""
    one, all_at_once = CollectorRegistry(), CollectorRegistry()
    singles, batched = _histogram(one), _histogram(all_at_once)
    for batch in batches:
        for amount in batch:
            singles.observe(amount)
        observe_all(batched, batch)
    expected, found = _samples(one), _samples(all_at_once)
    assert expected.keys() == found.keys()
    for name, value in expected.items():
        if "_sum" in name:
            assert math.isclose(found[name], value, rel_tol=1e-12, abs_tol=1e-9)
        elif "_created" not in name:
            assert found[name] == value, name


def test_a_labelled_histogram_still_needs_its_labels() -> None:
    """As with observe: a histogram with labels is observed through .labels(...)."""
    histogram = Histogram("h", "h", ["kind"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="missing label values"):
        observe_all(histogram, [1.0])
