"""The simulator's pure core: scene, script, kinematics, sensor models, expected anomalies.

No I/O, no clock, no global random state: everything comes in as arguments (configuration,
geography, seed, start time) and :func:`simulate` returns a :class:`Simulation`.
"""

from services.simulator.domain.scenario import ScenarioParams
from services.simulator.domain.simulation import SimEvent, Simulation, combine, simulate
from services.simulator.domain.truth import TruthSample, TruthSamples

__all__ = [
    "ScenarioParams",
    "SimEvent",
    "Simulation",
    "TruthSample",
    "TruthSamples",
    "combine",
    "simulate",
]
