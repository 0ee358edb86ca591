"""The Python runtime's own metrics, shared by every service: CPU and memory of the process, and how
long the garbage collector stops the world.

A full collection walks every live object; with hundreds of thousands of tracks, alerts and
duplicate-index entries that is tens of milliseconds during which no websocket frame is written and
no Kafka record is read. ``lindero_gc_pause_seconds`` shows when that happens.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

GC_PAUSES = Histogram(
    "lindero_gc_pause_seconds",
    "time the garbage collector stopped the process, by generation (2: a full collection)",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=None,
)

_started: float | None = None


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
    elif _started is not None:
        GC_PAUSES.labels(str(info["generation"])).observe(time.perf_counter() - _started)
        _started = None


def register_runtime(registry: CollectorRegistry) -> None:
    """Add the process's CPU, memory and garbage-collection metrics to a service's registry."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(GC_PAUSES)
