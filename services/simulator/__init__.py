"""The seeded, deterministic sensor scenario simulator (``lindero simulate``).

- :mod:`services.simulator.domain`: the pure core; :func:`~services.simulator.domain.simulate`
  plays a scenario in a region and returns its messages, ground truth, causes and expected
  anomalies;
- :mod:`services.simulator.files`: writes a simulation to a folder and reads it back;
- :mod:`services.simulator.client`: posts the messages to ingest like real gateways do
  (batched, paced, retried);
- :mod:`services.simulator.cli`: the command line.
"""
