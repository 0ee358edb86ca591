"""Scenarios shared by the simulator's unit tests (generated once per session: they are pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pytest

from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.correlator.domain.frames import LocalFrame
from services.simulator.domain import Simulation, simulate

REGION = "co-ve-cucuta"
START = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def geography(demo_config: LinderoConfig) -> Geography:
    """The demo geography (country outlines and borders)."""
    assert demo_config.geography_path is not None
    return Geography.load(demo_config.geography_path)


@pytest.fixture(scope="session")
def quarter_hour(demo_config: LinderoConfig, geography: Geography) -> Simulation:
    """The default 15-minute scenario near Cúcuta, seed 7."""
    return simulate(demo_config, geography, REGION, seed=7, start=START, duration_s=900)


@pytest.fixture(scope="session")
def quarter_hour_tapachula(demo_config: LinderoConfig, geography: Geography) -> Simulation:
    """The default 15-minute scenario at the Mexico-Guatemala border, seed 11."""
    return simulate(demo_config, geography, "mx-gt-tapachula", seed=11, start=START, duration_s=900)


@pytest.fixture(scope="session")
def frame(demo_config: LinderoConfig) -> LocalFrame:
    """The Cúcuta region's local frame."""
    origin = demo_config.regions_by_id[REGION].frame_origin
    return LocalFrame(origin.lat, origin.lon)


def truth_en(sim: Simulation, frame: LocalFrame, truth_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (s) and local east/north (m) of one truth's 1 Hz samples."""
    rows = sim.truth.of(truth_id)
    east, north, _ = frame.to_enu(rows.lat, rows.lon)
    return rows.time_s, east, north


@dataclass(frozen=True)
class Played:
    """A 15-minute scenario with what the tests need to judge it."""

    sim: Simulation
    region: str
    frame: LocalFrame
    geography: Geography
    """Only this region's outlines and border."""
    countries: frozenset[str]


@pytest.fixture(scope="session", params=[REGION, "mx-gt-tapachula"])
def played(
    request: pytest.FixtureRequest,
    demo_config: LinderoConfig,
    geography: Geography,
    quarter_hour: Simulation,
    quarter_hour_tapachula: Simulation,
) -> Played:
    """Each demo region's default scenario (the tests below run once per region)."""
    region = demo_config.regions_by_id[request.param]
    sim = quarter_hour if region.id == REGION else quarter_hour_tapachula
    origin = region.frame_origin
    return Played(
        sim,
        region.id,
        LocalFrame(origin.lat, origin.lon),
        geography.in_region(region.id),
        frozenset(region.countries),
    )
