"""The accuracy benchmark's feeding loop: nothing it feeds may arrive late, whatever window the
engine has learnt (bench/correlator.py raises otherwise)."""

from __future__ import annotations

from bench._scenarios import accuracy_scenario, demo
from bench.correlator import REGION, run_lindero
from services.correlator.domain.engine import RegionEngine


def test_the_accuracy_feed_releases_every_detection_on_time() -> None:
    config, geography = demo()
    scenario = accuracy_scenario(config, geography, REGION, seed=7, duration_s=120, density=0.5)
    run = run_lindero(scenario, "Lindero RegionEngine", RegionEngine)
    assert run.detections == len(scenario.detections) > 500
    assert any(points for points in run.tracks)
