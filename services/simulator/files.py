"""A simulation on disk: five files in one folder, written and read back.

``events.ndjson``
    one message per line, in time order:
    ``{"time_s": 12.5, "gateway_id": "gw-...", "stream": "events" | "status", "payload": {...}}``
    (``payload`` is the wire message exactly as it would be posted).
``truth.ndjson``
    ground truth at 1 Hz, in time order: ``{"time_s", "truth_id", "class", "lat", "lon",
    "alt_m", "velocity_east_mps", "velocity_north_mps"}`` (``alt_m`` above the ground).
``origin.json``
    ``{event_id: truth_id | null}``: what caused each message (``null``: clutter, false
    alarm or status report).
``expected.json``
    the anomalies the scenario contains (see :mod:`services.simulator.domain.expected`).
``scenario.json``
    ``{"format", "seed", "regions", "start", "end", "duration_s", "density", "truths",
    "counts"}`` (``truths``: ``[[truth_id, class], ...]``).

Same simulation, same bytes: keys are written in a fixed order and floats by ``orjson``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from services.simulator.domain import SimEvent, Simulation, TruthSamples

FORMAT = 1
EVENTS_FILE = "events.ndjson"
TRUTH_FILE = "truth.ndjson"
ORIGIN_FILE = "origin.json"
EXPECTED_FILE = "expected.json"
SCENARIO_FILE = "scenario.json"

_CHUNK_LINES = 10_000


class ScenarioFileError(ValueError):
    """A scenario folder is incomplete or a file in it is not what it should be."""


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_lines(path: Path, lines: Iterable[bytes]) -> None:
    with path.open("wb") as handle:
        chunk: list[bytes] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= _CHUNK_LINES:
                handle.write(b"".join(chunk))
                chunk.clear()
        handle.write(b"".join(chunk))


def _event_lines(events: Iterable[SimEvent]) -> Iterator[bytes]:
    for event in events:
        record = {
            "time_s": event.time_s,
            "gateway_id": event.gateway_id,
            "stream": event.stream,
            "payload": event.payload,
        }
        yield orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def _truth_lines(truth: TruthSamples) -> Iterator[bytes]:
    for row in truth.rows():
        record = {
            "time_s": row.time_s,
            "truth_id": row.truth_id,
            "class": row.target_class,
            "lat": row.lat,
            "lon": row.lon,
            "alt_m": row.alt_m,
            "velocity_east_mps": row.velocity_east_mps,
            "velocity_north_mps": row.velocity_north_mps,
        }
        yield orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def scenario_document(simulation: Simulation) -> dict[str, Any]:
    """What ``scenario.json`` holds."""
    return {
        "format": FORMAT,
        "seed": simulation.seed,
        "regions": list(simulation.regions),
        "start": _iso(simulation.start),
        "end": _iso(simulation.end),
        "duration_s": simulation.duration_s,
        "density": simulation.density,
        "truths": [
            [truth_id, cls]
            for truth_id, cls in zip(simulation.truth.ids, simulation.truth.classes, strict=True)
        ],
        "counts": simulation.counts(),
    }


def write(simulation: Simulation, directory: Path) -> list[Path]:
    """Write the five files into ``directory`` (created if needed); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    pretty = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    paths = [
        directory / name for name in (EVENTS_FILE, TRUTH_FILE, ORIGIN_FILE, EXPECTED_FILE, SCENARIO_FILE)
    ]
    _write_lines(paths[0], _event_lines(simulation.events))
    _write_lines(paths[1], _truth_lines(simulation.truth))
    paths[2].write_bytes(orjson.dumps(simulation.origin, option=orjson.OPT_APPEND_NEWLINE))
    paths[3].write_bytes(orjson.dumps(simulation.expected, option=pretty))
    paths[4].write_bytes(orjson.dumps(scenario_document(simulation), option=pretty))
    return paths


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ScenarioFileError(f"{path}: missing") from exc
    except orjson.JSONDecodeError as exc:
        raise ScenarioFileError(f"{path}: not JSON ({exc})") from exc


def _read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise ScenarioFileError(f"{path}: missing") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ScenarioFileError(f"{path}:{number}: not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise ScenarioFileError(f"{path}:{number}: not a JSON object")
            yield number, record


def load_events(directory: Path) -> list[SimEvent]:
    """Only the messages of a scenario folder (what the poster needs)."""
    path = directory / EVENTS_FILE
    events = []
    for number, record in _read_lines(path):
        try:
            stream = record["stream"]
            if stream not in ("events", "status"):
                raise ScenarioFileError(f"{path}:{number}: unknown stream {stream!r}")
            events.append(
                SimEvent(float(record["time_s"]), str(record["gateway_id"]), stream, record["payload"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ScenarioFileError):
                raise
            raise ScenarioFileError(f"{path}:{number}: bad record ({exc!r})") from exc
    return events


def _load_truth(path: Path, declared: list[list[str]]) -> TruthSamples:
    ids = [truth_id for truth_id, _ in declared]
    classes = [cls for _, cls in declared]
    index = {truth_id: i for i, truth_id in enumerate(ids)}
    columns: dict[str, list[float]] = {
        name: [] for name in ("time_s", "lat", "lon", "alt_m", "velocity_east_mps", "velocity_north_mps")
    }
    entity: list[int] = []
    for number, record in _read_lines(path):
        truth_id = record.get("truth_id")
        if truth_id not in index:
            raise ScenarioFileError(f"{path}:{number}: truth id {truth_id!r} is not in {SCENARIO_FILE}")
        entity.append(index[truth_id])
        for name, values in columns.items():
            values.append(float(record[name]))
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    return TruthSamples(
        ids=tuple(ids),
        classes=tuple(classes),
        entity=np.asarray(entity, dtype=np.int64),
        **arrays,
    )


def load(directory: Path) -> Simulation:
    """Read back what :func:`write` wrote."""
    scenario = _read_json(directory / SCENARIO_FILE)
    if not isinstance(scenario, dict) or scenario.get("format") != FORMAT:
        raise ScenarioFileError(f"{directory / SCENARIO_FILE}: not a scenario of format {FORMAT}")
    origin = _read_json(directory / ORIGIN_FILE)
    expected = _read_json(directory / EXPECTED_FILE)
    return Simulation(
        regions=tuple(scenario["regions"]),
        seed=int(scenario["seed"]),
        start=dt.datetime.fromisoformat(scenario["start"]),
        duration_s=float(scenario["duration_s"]),
        density=float(scenario["density"]),
        events=load_events(directory),
        truth=_load_truth(directory / TRUTH_FILE, scenario["truths"]),
        origin=origin,
        expected=expected,
    )
