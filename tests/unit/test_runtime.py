"""The runtime metrics every service exposes: the process, and the garbage collector's pauses."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from services.core.runtime import register_runtime


def test_a_full_collection_is_counted_as_a_pause_of_generation_2() -> None:
    registry = CollectorRegistry()
    register_runtime(registry)
    register_runtime(CollectorRegistry())  # a second service in the same process (tests): one callback

    def pauses() -> float:
        return registry.get_sample_value("lindero_gc_pause_seconds_count", {"generation": "2"}) or 0.0

    before = pauses()
    gc.collect()
    assert pauses() == before + 1
    assert (registry.get_sample_value("lindero_gc_pause_seconds_sum", {"generation": "2"}) or 0.0) > 0
    assert registry.get_sample_value("process_cpu_seconds_total") is not None
