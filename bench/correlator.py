"""Correlator benchmarks: tracking accuracy beside Stone Soup; throughput of the pure core and of one process.

    .venv/bin/python bench/correlator.py [--duration 600] [--density 0.5] [--seed 7] \
        [--tracks 100 1000] [--cutoff 100] [--no-write] [--no-reference] [--only process|core] \
        [--py-spy DIR]

1. **Accuracy.** The simulator's seeded scenario in co-ve-cucuta (people on foot, vehicles, a
   low and slow aircraft, road traffic, animals; two radars with noise, misses and clutter, two
   drones, sixteen ground sensors with animal false alarms). Every detection event becomes a
   ``Detection`` exactly as in the correlator (ingest's admission code writes the record,
   ``SensorEventRecord`` parses it, ``from_record`` converts it). The same detections, in the
   same time order, go to Lindero's ``RegionEngine`` and to the Stone Soup GNN reference
   (bench/reference_tracker.py). Each second both report their confirmed tracks (Lindero:
   confirmed and coasting) predicted to that second; GOSPA, OSPA and the track statistics of
   bench/metrics.py score them against the truth some sensor detected in the last 10 s.
2. **Speed.** (a) The pure core: a ``Tracker`` fed pre-built scans of N synthetic targets under
   two radars (one scan per revolution holds ~0.9 N plots) plus drone and ground-sensor streams,
   timed in steady state after the tracks are confirmed. (a') One correlator process through a
   real broker: the same loads as the records ingest writes, preloaded into ``sensor.events``,
   and ``python -m services.correlator`` timed (its own CPU seconds) from its first consumed
   record until its outputs and input offset are committed (``--only process`` runs just this;
   its broker is its own, on port 9392). (b) On the accuracy scenario: the engine
   loop; the tracker replaying the engine's exact calls, with and without the 1 Hz read-out that
   Stone Soup's run also does; and Stone Soup. The 50× goal compares like with like: tracker and
   1 Hz read-out on both sides.
3. **Goals** are checked against the measurements; when a throughput goal is missed the core is
   profiled (cProfile) and the hotspots are listed.

Throughput is detections per CPU second of this process (``time.process_time``), so that other
work on the machine disturbs it less; wall times and the load average are reported too. The
results replace the "correlator" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import cProfile
import datetime as dt
import math
import os
import pstats
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, ROOT, cpu_seconds, fresh_cluster, git_revision, machine_busy, write_section
from bench._scenarios import (
    DEMO_CONFIG,
    AccuracyScenario,
    Admission,
    SyntheticLoad,
    accuracy_scenario,
    demo,
    synthetic_load,
)
from bench.metrics import run_statistics
from schemas.events import SensorType
from schemas.topics import REGISTRY, SENSOR_EVENTS
from schemas.tracks import TrackStatus
from services.core import localkafka
from services.core.config import GroundSensor, LinderoConfig
from services.core.kafka import KafkaSettings, ensure_topics, topic_partitions
from services.core.localkafka import free_port
from services.core.processor import partition_of
from services.correlator.domain.detections import Detection, MeasurementKind
from services.correlator.domain.engine import RegionEngine, tracker_config
from services.correlator.domain.region import RegionContext
from services.correlator.domain.tracker import Coverage, Scan, Tracker
from services.stack import Stack

REGION = "co-ve-cucuta"
LIVE = (TrackStatus.CONFIRMED, TrackStatus.COASTING)
GOAL_RATIO = 50.0
GOAL_RATE = 20_000.0
SENSITIVITY_C = (50.0, 200.0)
MEASURED = ("services/correlator", "services/simulator", "services/ingest/domain", "schemas")
"""The code whose behaviour these numbers measure."""
PROFILE_S = 12.0
"""Seconds of the largest synthetic load profiled (after its warm-up)."""

TrackPoints = list[tuple[Hashable, float, float]]


class Clock:
    """CPU and wall seconds spent inside ``with`` blocks, summed."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.wall_s = 0.0

    def __enter__(self) -> Clock:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu_s += time.process_time() - self._cpu
        self.wall_s += time.perf_counter() - self._wall


# -- accuracy -------------------------------------------------------------------------------------


Call = tuple[str, float, Scan | None]
"""A tracker call the engine made: ("process", scan time, scan), ("advance", time, None), or the
benchmark's ("read", time, None) read-out of the live tracks."""


@dataclass
class Run:
    """One tracker's outputs on the scenario and what it cost."""

    name: str
    tracks: list[TrackPoints]
    detections: int
    cpu_s: float
    wall_s: float
    calls: list[Call] = field(default_factory=list)
    """Lindero only: the tracker calls, in order."""

    @property
    def rate(self) -> float:
        return self.detections / self.cpu_s if self.cpu_s > 0 else math.nan

    @property
    def scan_size(self) -> float:
        sizes = [len(scan.detections) for kind, _, scan in self.calls if scan is not None]
        return float(np.mean(sizes)) if sizes else math.nan


class _NoMissEngine(RegionEngine):
    """Diagnostic only: the engine with radar scans that carry no coverage (no M-of-N misses)."""

    def _coverage(self, detections: Any) -> Coverage | None:
        return None


def run_lindero(scenario: AccuracyScenario, name: str, engine_type: type[RegionEngine]) -> Run:
    """Feed the engine second by second; after each step read the live tracks at that second.

    Detections up to evaluation time ``t`` are added, then ``step(t + the engine's reorder window)``
    releases exactly those (nothing arrives late, nothing is held back) and runs tracker, rules and
    publishing as the Kafka loop would. The clock covers add, step and the 1 Hz read-out.
    """
    engine = engine_type(scenario.context)
    calls: list[Call] = []
    tracker = engine.tracker
    process, advance = tracker.process, tracker.advance

    def recorded_process(scan: Scan) -> Any:
        calls.append(("process", scan.time_s, scan))
        return process(scan)

    def recorded_advance(now_s: float) -> Any:
        calls.append(("advance", now_s, None))
        return advance(now_s)

    tracker.process = recorded_process  # type: ignore[method-assign]
    tracker.advance = recorded_advance  # type: ignore[method-assign]
    detections = scenario.detections
    outputs: list[TrackPoints] = []
    used = 0
    clock = Clock()
    for time_s in scenario.times_s:
        with clock:
            while used < len(detections) and detections[used].time_s <= time_s:
                engine.add(detections[used])
                used += 1
            engine.step(time_s + engine.window.seconds)  # (adaptive: what it learnt so far)
            live = engine.tracker.estimates(at_s=time_s, statuses=LIVE)
        calls.append(("read", time_s, None))
        outputs.append([(e.track_id, e.east_m, e.north_m) for e in live])
    if engine.late_total:
        raise RuntimeError(f"{engine.late_total} detections arrived late: the feeding loop is wrong")
    return Run(name, outputs, used, clock.cpu_s, clock.wall_s, calls)


def replay(scenario: AccuracyScenario, calls: Sequence[Call], read_out: bool) -> Clock:
    """A fresh tracker on the engine's exact calls: no rules, no publishing; with or without the
    1 Hz read-out of the live tracks (what Stone Soup's run also does)."""
    tracker = Tracker(scenario.context.region, tracker_config(scenario.context))
    clock = Clock()
    with clock:
        for kind, time_s, scan in calls:
            if scan is not None:
                tracker.process(scan)
            elif kind == "advance":
                tracker.advance(time_s)
            elif read_out:
                tracker.estimates(at_s=time_s, statuses=LIVE)
    return clock


def run_reference(scenario: AccuracyScenario) -> Run:
    from bench.reference_tracker import run_stonesoup

    clock = Clock()
    with clock:
        result = run_stonesoup(scenario.detections, scenario.times_s)
    last = scenario.times_s[-1]
    used = sum(1 for d in scenario.detections if d.time_s <= last)
    tracks: list[TrackPoints] = [list(step) for step in result.tracks]
    return Run("Stone Soup 1.9.1 GNN (reference)", tracks, used, clock.cpu_s, clock.wall_s)


@dataclass
class Scores:
    run: Run
    summary: dict[str, Any]
    error_p50_m: float
    error_p95_m: float
    sensitivity: dict[float, float]


def score(scenario: AccuracyScenario, run: Run, c: float) -> Scores:
    stats = run_statistics(scenario.times_s, scenario.truth, run.tracks, c=c, p=2, alpha=2)
    errors: list[float] = []
    for truth, tracks, links in zip(scenario.truth, run.tracks, stats.assigned_ids, strict=True):
        where = {i: (e, n) for i, e, n in truth}
        track_at = {i: (e, n) for i, e, n in tracks}
        errors.extend(math.dist(where[t], track_at[k]) for t, k in links.items())
    sensitivity = {
        other: float(np.mean(run_statistics(scenario.times_s, scenario.truth, run.tracks, c=other).gospa_m))
        for other in SENSITIVITY_C
    }
    p50, p95 = (float(np.percentile(errors, q)) if errors else math.nan for q in (50, 95))
    return Scores(run, stats.summary(), p50, p95, sensitivity)


# -- speed ----------------------------------------------------------------------------------------


@dataclass
class CoreSpeed:
    targets: int
    detections: int
    cpu_s: float
    wall_s: float
    confirmed: float
    """Mean confirmed + coasting tracks over the measured seconds."""
    tentative: float
    scan_size: float
    """Mean detections per radar scan."""

    @property
    def rate(self) -> float:
        return self.detections / self.cpu_s


def _feed(tracker: Tracker, steps: Sequence[Any]) -> None:
    for step in steps:
        if step.scan is None:
            tracker.advance(step.time_s)
        else:
            tracker.process(step.scan)


def core_speed(context: RegionContext, load: SyntheticLoad, repeats: int = 2) -> CoreSpeed:
    """Warm up until the tracks are confirmed, then time the rest (counts sampled outside the
    clock); the fastest of ``repeats`` independent runs, so that a burst of other work on the
    machine does not count."""
    best: CoreSpeed | None = None
    radar = [len(s.scan.detections) for s in load.steps if s.scan is not None and s.scan.coverage]
    for _ in range(repeats):
        tracker = Tracker(context.region, tracker_config(context))
        _feed(tracker, load.steps[: load.measure_from])
        clock = Clock()
        confirmed, tentative = [], []
        for step in load.steps[load.measure_from :]:
            with clock:
                _feed(tracker, [step])
            if step.scan is None:
                counts = tracker.counts()
                confirmed.append(counts["confirmed"] + counts["coasting"])
                tentative.append(counts["tentative"])
        result = CoreSpeed(
            load.targets,
            load.detections(slice(load.measure_from, None)),
            clock.cpu_s,
            clock.wall_s,
            float(np.mean(confirmed)),
            float(np.mean(tentative)),
            float(np.mean(radar)),
        )
        if best is None or result.cpu_s < best.cpu_s:
            best = result
    assert best is not None  # noqa: S101 - repeats >= 1
    return best


def profile(work: Callable[[], object], top: int = 12) -> list[tuple[str, float, float]]:
    """(function, own %, cumulative %) of the functions with the most own time, and Tracker's own."""
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    rows = []
    for (path, line, function), (_, _, own, cumulative, _) in stats.items():
        where = Path(path)
        if where.is_relative_to(ROOT):
            label = f"{where.relative_to(ROOT)}:{line} {function}"
        elif path.startswith(("~", "<")):
            label = function
        else:
            label = f"{where.parent.name}/{where.name} {function}"
        rows.append((label, 100.0 * own / total, 100.0 * cumulative / total))
    mine = [r for r in rows if r[0].startswith("services/correlator/")]
    by_own = sorted(rows, key=lambda r: -r[1])[:top]
    by_cumulative = sorted(mine, key=lambda r: -r[2])[:top]
    seen: set[str] = set()
    out = []
    for row in by_cumulative + by_own:
        if row[0] not in seen:
            seen.add(row[0])
            out.append(row)
    return out


# -- one correlator process -----------------------------------------------------------------------


PROCESS_BROKER_PORT = 9392
"""The process measurement's own single-node broker (not the shared 9192, nor bench/fanout.py's 9292)."""
PROCESS_SECRET = "bench-correlator-only-0123456789abcdef0123456789abcdef"  # noqa: S105 (throwaway process)
DRONE_ALT_M = 120.0
_EVENT_IDS = uuid.UUID("6c1f3a52-6d0e-4f4e-9d5b-5b1d0a0c0f00")


@dataclass
class ProcessSpeed:
    """One correlator process through its backlog of the synthetic load."""

    targets: int
    records: int
    """Records of sensor.events preloaded."""
    detections: int
    """Records consumed and committed inside the timed window."""
    cpu_s: float
    """CPU seconds of the correlator process in the window (user + system, /proc/PID/stat)."""
    wall_s: float
    live: float
    """Confirmed + coasting tracks at the end (the process's own gauge)."""
    tentative: float
    commits: float
    snapshot_bytes: float
    """Mean size of one snapshot of the busy partition."""
    machine: float
    """Busy cores of the whole machine during the window (of os.cpu_count())."""
    restore_s: float = math.nan
    """After the run, the process SIGKILLed and started again: the mean time one partition's
    restore took (``lindero_correlator_restore_seconds``; the partitions restore side by side)."""
    restart_s: float = math.nan
    """... and from the new process's start to every partition restored (Python start-up, the
    group's rebalance, which waits for the killed member's session to expire, the restores)."""

    @property
    def rate(self) -> float:
        return self.detections / self.cpu_s if self.cpu_s > 0 else math.nan

    @property
    def wall_rate(self) -> float:
        return self.detections / self.wall_s if self.wall_s > 0 else math.nan


def _stamp(time_s: float) -> str:
    moment = dt.datetime.fromtimestamp(time_s, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LoadRecords:
    """The synthetic load's detections as the records ingest writes to sensor.events.

    Radar plots become polar radar events of the same two radars (range, bearing, radial velocity
    and the load's sigmas); the load's two drones become the region's drones (a geolocated point,
    the drone above it); its sixteen ground sensors become the region's ground sensors, each trip
    at the sensor's registered site (a real trip carries no position of its own). Ingest's
    admission code writes each record (bench/_scenarios.py ``Admission``).
    """

    def __init__(self, config: LinderoConfig, context: RegionContext) -> None:
        self.context = context
        self.admission = Admission(config)
        by_type: dict[str, list[str]] = {}
        for sensor in config.sensors:
            if sensor.region == context.region:
                by_type.setdefault(sensor.type.value, []).append(sensor.id)
        self.drones = sorted(by_type.get(SensorType.DRONE.value, []))
        self.grounds = sorted(by_type.get(SensorType.GROUND.value, []))
        self.modality = {s.id: s.ground.modality.value for s in config.sensors if isinstance(s, GroundSensor)}

    def _sensor(self, detection: Detection) -> str:
        name = detection.sensor_id
        if name.startswith("bench-uav-"):
            return self.drones[int(name.rsplit("-", 1)[1]) % len(self.drones)]
        if name.startswith("bench-ugs-"):
            return self.grounds[int(name.rsplit("-", 1)[1]) % len(self.grounds)]
        return name

    def payload(self, detection: Detection) -> dict[str, Any]:
        sensor = self._sensor(detection)
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid5(_EVENT_IDS, detection.event_id)),
            "sensor_id": sensor,
            "time": _stamp(detection.time_s),
        }
        sigmas = np.sqrt(np.diag(detection.covariance)).tolist()
        if detection.kind is MeasurementKind.POLAR:
            range_m, bearing_rad, radial_mps = detection.z.tolist()
            event.update(
                sensor_type="radar",
                range_m=max(0.0, range_m),
                bearing_deg=math.degrees(bearing_rad) % 360.0 % 360.0,
                radial_velocity_mps=radial_mps,
                range_sigma_m=sigmas[0],
                bearing_sigma_deg=math.degrees(sigmas[1]),
                radial_velocity_sigma_mps=sigmas[2],
            )
        elif detection.kind is MeasurementKind.POINT:
            lat, lon, _ = self.context.frame.to_wgs84(detection.z[0], detection.z[1], 0.0)
            where = {"lat": float(lat), "lon": float(lon)}
            event.update(
                sensor_type="drone",
                drone={**where, "alt_m": DRONE_ALT_M},
                detection={**where, "sigma_m": sigmas[0]},
                confidence=detection.confidence,
            )
            event["class"] = detection.target_class
        else:
            event.update(
                sensor_type="ground", modality=self.modality[sensor], confidence=detection.confidence
            )
            event["class"] = detection.target_class
        return event

    def build(self, load: SyntheticLoad) -> tuple[list[float], list[bytes]]:
        """(event times, record values) in the load's order (time order)."""
        times: list[float] = []
        values: list[bytes] = []
        for step in load.steps:
            if step.scan is None:
                continue
            for detection in step.scan.detections:
                times.append(detection.time_s)
                values.append(self.admission.record(self.payload(detection)))
        return times, values


def _scrape(url: str) -> dict[str, float]:
    """The correlator's /metrics, summed over labels (plus ``tracks:<status>`` per status)."""
    found: dict[str, float] = {}
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        base = name.split("{", 1)[0]
        found[base] = found.get(base, 0.0) + float(value)
        if base == "lindero_correlator_tracks":
            status = name.split('status="', 1)[1].split('"', 1)[0]
            found[f"tracks:{status}"] = float(value)
    return found


async def _preload(kafka: KafkaSettings, topic: str, key: bytes, values: Sequence[bytes]) -> None:
    await ensure_topics(kafka, list(REGISTRY))
    await topic_partitions(kafka, [topic])  # until its partitions have leaders
    producer = AIOKafkaProducer(
        linger_ms=20, max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024, **kafka.client_options()
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for value in values]
        await producer.flush()
        for future in futures:
            await future
    finally:
        await producer.stop()


class _Committed:
    """The committed offset of one partition for a consumer group, asked again and again."""

    def __init__(self, kafka: KafkaSettings, group: str, tp: TopicPartition) -> None:
        self.kafka, self.group, self.tp = kafka, group, tp
        self.loop = asyncio.new_event_loop()
        self.admin = self.loop.run_until_complete(self._start())

    async def _start(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(**self.kafka.client_options())
        await admin.start()
        return admin

    def offset(self) -> int:
        found = self.loop.run_until_complete(
            self.admin.list_consumer_group_offsets(self.group, partitions=[self.tp])
        )
        entry = found.get(self.tp)
        return -1 if entry is None or entry.offset is None else int(entry.offset)

    def close(self) -> None:
        self.loop.run_until_complete(self.admin.close())
        self.loop.close()


def process_broker() -> tuple[str, localkafka.LocalCluster | None]:
    """LINDERO_KAFKA_BOOTSTRAP, or this measurement's own single-node broker (port 9392, started
    here and stopped at the end: the shared broker and bench/fanout.py's are left alone)."""
    external = os.environ.get("LINDERO_KAFKA_BOOTSTRAP")
    if external:
        return external, None
    cluster = fresh_cluster("bench-correlator", PROCESS_BROKER_PORT)
    running = all(node.pid() is not None for node in cluster.nodes)
    bootstrap = cluster.start(progress=print)
    return bootstrap, None if running else cluster


def process_speed(
    config: LinderoConfig,
    context: RegionContext,
    load: SyntheticLoad,
    bootstrap: str,
    profile_to: Path | None,
) -> ProcessSpeed:
    """One correlator process (``python -m services.correlator``) through the load preloaded in
    sensor.events of a fresh topic prefix.

    Timed from the process's first consumed record (its records counter leaves 0; the records it
    had consumed by then are not counted) until its committed input offset covers every record
    it can release (all but the last reorder window, which waits for later data or for the wall
    clock). CPU is the process's own (/proc/PID/stat); the count of live tracks is its gauge at
    the end.
    """
    times, values = LoadRecords(config, context).build(load)
    prefix = f"benchproc{uuid.uuid4().hex[:8]}."
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix)
    topic = kafka.topics(SENSOR_EVENTS)
    asyncio.run(_preload(kafka, topic, context.region.encode(), values))
    window = context.tracking.reorder_window_s
    target = bisect.bisect_right(times, times[-1] - window)
    tp = TopicPartition(topic, partition_of(context.region.encode(), kafka.partitions))
    port = free_port()
    stack = Stack(
        config=DEMO_CONFIG,
        bootstrap=bootstrap,
        secret=PROCESS_SECRET,
        logs=OUT / "correlator-process-logs",
        topic_prefix=prefix,
        ports={"correlator": port},
        env={"LINDERO_CORRELATOR_LOG_LEVEL": "WARNING"},
    )
    stack.logs.mkdir(parents=True, exist_ok=True)
    url = stack.url("correlator")

    def start() -> subprocess.Popen[bytes]:
        with (stack.logs / "correlator.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "services.correlator"],
                env=stack.environment("correlator"),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )

    process = start()
    committed = _Committed(kafka, f"{prefix}lindero-correlator", tp)
    spy = None
    try:
        deadline = time.monotonic() + 120
        consumed = 0.0
        while consumed <= 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the correlator did not start consuming:\n{stack.tail('correlator')}")
            with contextlib.suppress(httpx.HTTPError):
                consumed = _scrape(url).get("lindero_correlator_records_total", 0.0)
            if consumed <= 0:
                time.sleep(0.01)
        wall0, cpu0, machine0 = time.perf_counter(), cpu_seconds(process.pid), machine_busy()
        if profile_to is not None:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-o",
                    str(profile_to),
                    "-f",
                    "raw",
                    "-r",
                    "200",
                    "--pid",
                    str(process.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        while committed.offset() < target:
            if process.poll() is not None or time.monotonic() > deadline + 3600:
                raise RuntimeError(f"the correlator stopped or stalled:\n{stack.tail('correlator')}")
            time.sleep(0.05)
        wall1, cpu1, machine1 = time.perf_counter(), cpu_seconds(process.pid), machine_busy()
        at_end = _scrape(url)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        time.sleep(1.2)  # the track gauges are refreshed once a second
        metrics = _scrape(url)
        process.kill()
        process.wait(10)
        started = time.perf_counter()
        process = start()
        restored: dict[str, float] = {}
        # every partition of sensor.events and sensor.status
        while restored.get("lindero_correlator_restore_seconds_count", 0) < 2 * kafka.partitions:
            if process.poll() is not None or time.perf_counter() > started + 600:
                raise RuntimeError(f"the restarted correlator did not restore:\n{stack.tail('correlator')}")
            with contextlib.suppress(httpx.HTTPError):
                restored = _scrape(url)
            time.sleep(0.01)
        restart_s = time.perf_counter() - started
    finally:
        committed.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    if metrics.get("lindero_correlator_aborted_transactions_total", 0.0):
        raise RuntimeError("the correlator aborted transactions during the run")
    busy = (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1]) * (os.cpu_count() or 1)
    commits = at_end.get("lindero_correlator_state_bytes_count", 0.0)
    return ProcessSpeed(
        targets=load.targets,
        records=len(values),
        detections=target - int(consumed),
        cpu_s=cpu1 - cpu0,
        wall_s=wall1 - wall0,
        live=metrics.get("tracks:confirmed", 0.0) + metrics.get("tracks:coasting", 0.0),
        tentative=metrics.get("tracks:tentative", 0.0),
        commits=commits,
        snapshot_bytes=at_end.get("lindero_correlator_state_bytes_sum", 0.0) / max(1.0, commits),
        machine=busy,
        restore_s=restored["lindero_correlator_restore_seconds_sum"]
        / restored["lindero_correlator_restore_seconds_count"],
        restart_s=restart_s,
    )


# -- report ---------------------------------------------------------------------------------------


def _f(value: float, digits: int = 1) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:,.{digits}f}"


def accuracy_table(scores: Sequence[Scores], c: float) -> str:
    half = c**2 / 2
    head = (
        "| tracker | mean GOSPA m | localisation m² | missed m² | false m² | missed / s | false / s "
        "| OSPA m | RMSE m | error p95 m | tracks / s | truths / s | tracks | false tracks "
        "| id switches | fragmentations |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for s in scores:
        m = s.summary
        lines.append(
            f"| {s.run.name} | {_f(m['mean_gospa_m'])} | {_f(m['mean_gospa_localisation'], 0)} "
            f"| {_f(m['mean_gospa_missed'], 0)} | {_f(m['mean_gospa_false'], 0)} "
            f"| {_f(m['mean_gospa_missed'] / half, 2)} | {_f(m['mean_gospa_false'] / half, 2)} "
            f"| {_f(m['mean_ospa_m'])} | {_f(m['position_rmse_m'])} | {_f(s.error_p95_m)} "
            f"| {_f(m['mean_tracks'])} | {_f(m['mean_truths'])} | {m['tracks_total']} | {m['false_tracks']} "
            f"| {m['id_switches']} | {m['fragmentations']} |"
        )
    return head + "\n".join(lines)


def sensitivity_table(scores: Sequence[Scores], c: float) -> str:
    cuts = sorted({c, *SENSITIVITY_C})
    head = "| tracker | " + " | ".join(f"c = {x:.0f} m" for x in cuts) + " |\n"
    head += "|---|" + "---:|" * len(cuts) + "\n"
    lines = []
    for s in scores:
        values = {**s.sensitivity, c: s.summary["mean_gospa_m"]}
        lines.append(f"| {s.run.name} | " + " | ".join(_f(values[x]) for x in cuts) + " |")
    return head + "\n".join(lines)


def speed_table(core: Sequence[CoreSpeed]) -> str:
    head = (
        "| targets | radar scan size | live tracks (confirmed + coasting) | tentative "
        "| detections timed | CPU s | detections/s (CPU) | detections/s (wall) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    return head + "\n".join(
        f"| {c.targets:,} | {c.scan_size:,.0f} | {c.confirmed:,.0f} | {c.tentative:,.1f} | {c.detections:,} "
        f"| {c.cpu_s:.2f} | {c.rate:,.0f} | {c.detections / c.wall_s:,.0f} |"
        for c in core
    )


@dataclass(frozen=True)
class Throughput:
    what: str
    detections: int
    cpu_s: float
    wall_s: float

    @property
    def rate(self) -> float:
        return self.detections / self.cpu_s if self.cpu_s > 0 else math.nan


def scenario_speed_table(rows: Sequence[Throughput], reference: float) -> str:
    head = (
        "| what | detections | CPU s | detections/s (CPU) | detections/s (wall) | × Stone Soup |\n"
        "|---|---:|---:|---:|---:|---:|\n"
    )
    return head + "\n".join(
        f"| {r.what} | {r.detections:,} | {r.cpu_s:.2f} | {r.rate:,.0f} | {r.detections / r.wall_s:,.0f} "
        f"| {r.rate / reference:,.0f} |"
        for r in rows
    )


def process_table(rows: Sequence[ProcessSpeed]) -> str:
    head = (
        "| targets | records | live tracks at the end (confirmed + coasting) | tentative "
        "| detections timed | CPU s | wall s | detections/s (CPU) | detections/s (wall) "
        "| machine busy, cores | transactions | snapshot kB | restart after SIGKILL s (mean partition "
        "restore s) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    return head + "\n".join(
        f"| {r.targets:,} | {r.records:,} | {r.live:,.0f} | {r.tentative:,.0f} | {r.detections:,} "
        f"| {r.cpu_s:.2f} | {r.wall_s:.2f} | {r.rate:,.0f} | {r.wall_rate:,.0f} | {r.machine:.2f} "
        f"| {r.commits:,.0f} | {r.snapshot_bytes / 1e3:,.0f} | {r.restart_s:.1f} ({r.restore_s:.2f}) |"
        for r in rows
    )


def rate_goal(core: Sequence[CoreSpeed], processes: Sequence[ProcessSpeed]) -> Goal:
    """The issue's goal is per correlator process: judged on the process (CPU seconds), the pure
    core shown beside it."""
    process_part = ", ".join(
        f"{p.rate:,.0f}/s per CPU second ({p.wall_rate:,.0f}/s wall) with {p.live:,.0f} tracks"
        for p in processes
    )
    core_part = ", ".join(f"{k.rate:,.0f}/s with {k.confirmed:,.0f} tracks" for k in core)
    return Goal(
        f"≥ {GOAL_RATE:,.0f} detections/s per process (one correlator process through Kafka, at every load)",
        bool(processes) and min(p.rate for p in processes) >= GOAL_RATE,
        f"the process: {process_part or 'not measured'}; the pure core alone: {core_part}",
    )


def profile_table(rows: Sequence[tuple[str, float, float]]) -> str:
    head = "| function | own % | cumulative % |\n|---|---:|---:|\n"
    return head + "\n".join(f"| `{name}` | {own:.1f} | {cum:.1f} |" for name, own, cum in rows)


@dataclass(frozen=True)
class Goal:
    name: str
    met: bool
    measured: str


@dataclass
class Results:
    scenario: AccuracyScenario
    scores: list[Scores]
    scan_size: float
    throughput: list[Throughput]
    reference_rate: float
    core: list[CoreSpeed]
    goals: list[Goal]
    profiles: list[tuple[str, list[tuple[str, float, float]]]]
    load: tuple[float, float]
    """One-minute load average at the start and at the end."""
    by_seed: list[tuple[int, float, float]] = field(default_factory=list)
    """(seed, Lindero's mean GOSPA, Stone Soup's) for the main seed and each ``--more-seeds``."""
    processes: list[ProcessSpeed] = field(default_factory=list)


def seed_accuracy(seed: int, duration_s: float, density: float, cutoff: float) -> tuple[int, float, float]:
    """Mean GOSPA of Lindero's engine and of Stone Soup on the scenario of another seed (run in a
    worker process beside the main measurements; no timing)."""
    config, geography = demo()
    scenario = accuracy_scenario(config, geography, REGION, seed=seed, duration_s=duration_s, density=density)
    lindero = run_lindero(scenario, "Lindero RegionEngine", RegionEngine)
    reference = run_reference(scenario)
    gospa = [float(score(scenario, run, cutoff).summary["mean_gospa_m"]) for run in (lindero, reference)]
    print(f"-- seed {seed}: mean GOSPA Lindero {gospa[0]:.1f} m, Stone Soup {gospa[1]:.1f} m", flush=True)
    return seed, gospa[0], gospa[1]


def seeds_table(rows: Sequence[tuple[int, float, float]]) -> str:
    lines = ["| seed | Lindero RegionEngine m | Stone Soup GNN m |", "|---:|---:|---:|"]
    lines += [f"| {seed} | {lindero:.1f} | {reference:.1f} |" for seed, lindero, reference in rows]
    means = np.mean([[r[1], r[2]] for r in rows], axis=0)
    lines.append(f"| mean | {means[0]:.1f} | {means[1]:.1f} |")
    return "\n".join(lines)


def accuracy(args: argparse.Namespace) -> tuple[AccuracyScenario, list[Scores], list[Throughput], float]:
    """Both trackers on the simulated scenario: scores and throughput."""
    config, geography = demo()
    print(f"-- accuracy: {REGION}, seed {args.seed}, {args.duration:.0f} s, density {args.density}")
    scenario = accuracy_scenario(
        config, geography, REGION, seed=args.seed, duration_s=args.duration, density=args.density
    )
    counts = scenario.simulation.counts()
    kept = sum(len(step) for step in scenario.truth)
    print(
        f"   {len(scenario.detections):,} detections ({counts['false_detections']:,} false), "
        f"{counts['truths']} truths {counts['truths_by_class']}, {len(scenario.times_s)} evaluation "
        f"times, {kept:,} of {scenario.truth_samples:,} truth samples detectable"
    )
    tries = [run_lindero(scenario, "Lindero RegionEngine", RegionEngine) for _ in range(3)]
    if any(t.tracks != tries[0].tracks for t in tries):
        raise RuntimeError("the engine is not deterministic on the same input")
    lindero = min(tries, key=lambda t: t.cpu_s)
    print(f"   Lindero engine (best of 3): {lindero.cpu_s:.2f} CPU s, {lindero.rate:,.0f} detections/s")
    runs = [lindero]
    if hasattr(RegionEngine, "_coverage"):
        runs.append(
            run_lindero(scenario, "Lindero, radar scans without coverage (diagnostic)", _NoMissEngine)
        )
    alone = min((replay(scenario, lindero.calls, read_out=False) for _ in range(3)), key=lambda k: k.cpu_s)
    read = min((replay(scenario, lindero.calls, read_out=True) for _ in range(3)), key=lambda k: k.cpu_s)
    reference = None
    if not args.no_reference:
        print("   Stone Soup (a few minutes)...", flush=True)
        reference = run_reference(scenario)
        print(f"   Stone Soup: {reference.cpu_s:.1f} CPU s, {reference.rate:,.1f} detections/s")
        runs.insert(1, reference)
    scores = [score(scenario, run, args.cutoff) for run in runs]
    n = lindero.detections
    throughput = [
        Throughput(
            "Lindero engine: tracker, rules, publishing, 1 Hz read-out", n, lindero.cpu_s, lindero.wall_s
        ),
        Throughput(
            "Lindero tracker + 1 Hz read-out (the engine's calls replayed)", n, read.cpu_s, read.wall_s
        ),
        Throughput("Lindero tracker alone (the engine's calls replayed)", n, alone.cpu_s, alone.wall_s),
    ]
    if reference is not None:
        throughput.append(
            Throughput(
                "Stone Soup GNN: conversion, tracking, 1 Hz read-out",
                reference.detections,
                reference.cpu_s,
                reference.wall_s,
            )
        )
    print(accuracy_table(scores, args.cutoff))
    print(sensitivity_table(scores, args.cutoff))
    print(scenario_speed_table(throughput, reference.rate if reference is not None else math.nan))
    return scenario, scores, throughput, lindero.scan_size


def loads(context: RegionContext, targets: Sequence[int], seed: int) -> list[SyntheticLoad]:
    """The synthetic load at each target count (at least 40 s or ~20,000 detections measured)."""
    return [
        synthetic_load(context, count, seed=seed, measure_s=max(40.0, 20_000.0 / (0.9 * count)))
        for count in sorted(targets)
    ]


def speed(context: RegionContext, built: Sequence[SyntheticLoad]) -> list[CoreSpeed]:
    """The pure core at each load."""
    core: list[CoreSpeed] = []
    for load in built:
        result = core_speed(context, load)
        core.append(result)
        print(
            f"-- core, {load.targets:,} targets: {result.confirmed:,.0f} live tracks, {result.detections:,} "
            f"detections in {result.cpu_s:.2f} CPU s: {result.rate:,.0f} detections/s"
        )
    print(speed_table(core))
    return core


def process(
    config: LinderoConfig, context: RegionContext, built: Sequence[SyntheticLoad], py_spy: Path | None
) -> list[ProcessSpeed]:
    """One correlator process at each load, on this measurement's own broker."""
    bootstrap, cluster = process_broker()
    found: list[ProcessSpeed] = []
    try:
        for load in built:
            profile_to = None
            if py_spy is not None:
                py_spy.mkdir(parents=True, exist_ok=True)
                profile_to = py_spy / f"correlator-process-{load.targets}.txt"
            result = process_speed(config, context, load, bootstrap, profile_to)
            found.append(result)
            print(
                f"-- process, {load.targets:,} targets: {result.live:,.0f} live tracks at the end, "
                f"{result.detections:,} detections in {result.cpu_s:.2f} CPU s ({result.wall_s:.2f} s wall, "
                f"machine {result.machine:.2f} cores busy): {result.rate:,.0f} detections/s (CPU), "
                f"{result.wall_rate:,.0f} (wall); {result.commits:,.0f} commits, snapshot "
                f"{result.snapshot_bytes / 1e3:,.0f} kB" + (f"; profile {profile_to}" if profile_to else "")
            )
    finally:
        if cluster is not None:
            cluster.stop()
    print(process_table(found))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="scenario seconds (accuracy)")
    parser.add_argument("--density", type=float, default=0.5, help="simulator density knob (accuracy)")
    parser.add_argument("--seed", type=int, default=7, help="scenario and synthetic-load seed")
    parser.add_argument("--tracks", type=int, nargs="+", default=[100, 1000], help="synthetic targets")
    parser.add_argument("--cutoff", type=float, default=100.0, help="GOSPA/OSPA cut-off c, metres")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip Stone Soup (minutes of CPU) and its comparisons: a quick check of Lindero's "
        "accuracy and speed; implies --no-write and no --more-seeds",
    )
    parser.add_argument(
        "--more-seeds",
        type=int,
        nargs="*",
        default=[],
        help="further scenario seeds for accuracy only (Lindero and Stone Soup, in a worker process); "
        "the GOSPA goal is then judged on the mean over all seeds",
    )
    parser.add_argument(
        "--only",
        choices=("process", "core"),
        help="measure only one correlator process through Kafka, or only the pure core (implies --no-write)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="record a py-spy profile (raw, folded stacks) of the correlator process into this folder",
    )
    args = parser.parse_args()
    if args.no_reference:
        args.no_write, args.more_seeds = True, []
    if args.only:
        config, geography = demo()
        context = RegionContext.build(config, geography, REGION)
        built = loads(context, args.tracks, args.seed)
        if args.only == "core":
            speed(context, built)
        else:
            process(config, context, built, args.py_spy)
        return 0
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    pool = ProcessPoolExecutor(max_workers=1) if args.more_seeds else None
    more = [
        pool.submit(seed_accuracy, seed, args.duration, args.density, args.cutoff)
        for seed in args.more_seeds
        if pool is not None
    ]
    scenario, scores, throughput, scan_size = accuracy(args)
    config, _ = demo()
    built = loads(scenario.context, args.tracks, args.seed)
    core = speed(scenario.context, built)
    processes = process(config, scenario.context, built, args.py_spy)
    largest = built[-1]
    if args.no_reference:
        print(f"   Lindero mean GOSPA: {scores[0].summary['mean_gospa_m']:.1f} m (no reference run)")
        print(f"   goal: {rate_goal(core, processes).measured}")
        return 0
    reference_rate = throughput[-1].rate
    like_for_like = throughput[1].rate / reference_rate
    engine_ratio = throughput[0].rate / reference_rate
    gospa = [s.summary["mean_gospa_m"] for s in scores[:2]]
    by_seed = [(args.seed, float(gospa[0]), float(gospa[1]))] + [future.result() for future in more]
    if pool is not None:
        pool.shutdown()
    mean = np.mean([[row[1], row[2]] for row in by_seed], axis=0)
    seeds = ", ".join(
        f"seed {seed}: {lindero:,.1f} m vs {reference:,.1f} m" for seed, lindero, reference in by_seed
    )
    goals = [
        Goal(
            "mean GOSPA no worse than Stone Soup's" + (" (mean over the seeds)" if len(by_seed) > 1 else ""),
            bool(mean[0] <= mean[1]),
            f"{mean[0]:,.1f} m vs {mean[1]:,.1f} m" + (f" ({seeds})" if len(by_seed) > 1 else ""),
        ),
        Goal(
            f"≥ {GOAL_RATIO:.0f}× Stone Soup's throughput (tracker + 1 Hz read-out, as Stone Soup's run)",
            like_for_like >= GOAL_RATIO,
            f"{like_for_like:,.0f}× (the whole engine, rules and publishing included: {engine_ratio:,.0f}×)",
        ),
        rate_goal(core, processes),
    ]
    for goal in goals:
        print(f"   goal: {goal.name}: {goal.measured}: {'met' if goal.met else 'MISSED'}")

    profiles = []
    if not all(goal.met for goal in goals[1:]):
        tracker = Tracker(scenario.context.region, tracker_config(scenario.context))
        _feed(tracker, largest.steps[: largest.measure_from])
        begin = largest.measure_from
        until = largest.steps[begin].time_s + PROFILE_S
        end = next((i for i in range(begin, len(largest.steps)) if largest.steps[i].time_s >= until), None)
        rows = profile(lambda: _feed(tracker, largest.steps[begin:end]))
        profiles.append((f"pure core, {largest.targets:,} targets, {PROFILE_S:.0f} s of steady state", rows))
        rows = profile(lambda: run_lindero(scenario, "profiled", RegionEngine))
        profiles.append(("engine on the accuracy scenario (as timed above)", rows))
        for title, rows in profiles:
            print(f"-- profile: {title}")
            print(profile_table(rows))
    load = (load_start, os.getloadavg()[0])
    results = Results(
        scenario,
        scores,
        scan_size,
        throughput,
        reference_rate,
        core,
        goals,
        profiles,
        load,
        by_seed,
        processes,
    )
    print(
        f"-- done in {time.perf_counter() - started:.0f} s (load average {load[0]:.2f}, then {load[1]:.2f})"
    )
    if not args.no_write:
        write_section("correlator", report(args, results))
        print("updated docs/benchmarks.md")
    return 0


def revision() -> str:
    """The git revision, flagged when the code measured has uncommitted changes."""
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", *MEASURED],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    ).stdout.strip()
    return git_revision() + (f" with uncommitted changes in {', '.join(MEASURED)}" if changed else "")


def report(args: argparse.Namespace, results: Results) -> str:
    scenario, c = results.scenario, args.cutoff
    counts = scenario.simulation.counts()
    kept = sum(len(step) for step in scenario.truth)
    classes = ", ".join(f"{n} {k}" for k, n in counts["truths_by_class"].items())
    sensors = ", ".join(f"{n:,} {k}" for k, n in counts["by_type"].items() if k != "status")
    goals = "\n".join(f"- {g.name}: {g.measured} — **{'met' if g.met else 'missed'}**" for g in results.goals)
    profiles = "\n\n".join(
        f"**Where the time goes: {title}** (cProfile; own and cumulative share of the profiled run; "
        f"the correlator's functions by cumulative share, then the hottest functions anywhere)\n\n"
        f"{profile_table(rows)}"
        for title, rows in results.profiles
    )
    command = (
        f".venv/bin/python bench/correlator.py --duration {args.duration:.0f} --density {args.density} "
        f"--seed {args.seed} --tracks {' '.join(str(t) for t in args.tracks)} --cutoff {c:.0f}"
        + (f" --more-seeds {' '.join(str(seed) for seed in args.more_seeds)}" if args.more_seeds else "")
    )
    seeds = ""
    if len(results.by_seed) > 1:
        seeds = (
            f"\n\nMean GOSPA (m, c = {c:.0f} m) of the same comparison on the scenarios of other seeds "
            f"(the same duration and density; accuracy only):\n\n{seeds_table(results.by_seed)}"
        )
    return f"""## Correlator (`bench/correlator.py`)

`{command}`, revision {revision()}. Throughput is detections per CPU second of the benchmark
process (`time.process_time`, so that other work on the machine disturbs it less; load average
{results.load[0]:.2f} at the start, {results.load[1]:.2f} at the end).

**Accuracy.** The simulator's scenario in {REGION}, seed {args.seed}, {args.duration:.0f} s at
density {args.density} (the default, ten minutes at half the demo density, keeps Stone Soup's run
to a few minutes, as it slows sharply with the number of targets, while the scenario still holds
border crossers, a rendezvous, the aircraft, road traffic and animals): {counts["truths"]} truths ({classes}),
{len(scenario.detections):,} detections ({sensors}), {counts["false_detections"]:,} of them false
(radar clutter, ground-sensor false alarms). Every event becomes a `Detection` as in the
correlator (ingest's admission code writes the record, `SensorEventRecord` parses it,
`from_record` converts it) and both trackers get the same detections in the same order. Lindero
runs its `RegionEngine` (scan grouping, tracker, rules, publishing), fed second by second so that
nothing is late; Stone Soup runs the GNN reference of bench/reference_tracker.py (EKF, constant
velocity, 3-point initiation). At every second from {scenario.warmup_s:.0f} s on, each reports its
confirmed tracks (Lindero: confirmed and coasting) predicted to that second.

*Fairness.* A truth counts at a second only if some sensor detected it in the
{scenario.lookback_s:.0f} s before (the simulation's `origin` map): targets not yet seen or out of
every sensor's reach cannot be tracked by anyone ({kept:,} of {scenario.truth_samples:,} truth
samples kept). The same truth, the same rule and the same scoring for both trackers.

*Cut-off.* GOSPA with p = 2, α = 2 and c = {c:.0f} m. A radar plot's cross-range σ is 0.6° × range,
50–100 m at 5–10 km; a track that has integrated a few revolutions (and two radars where they
overlap) is good to a few tens of metres (see RMSE and the 95th percentile of matched errors), so
an estimate farther than c from every target is of no use for sending a team there and counts as
missed plus false. The second table shows how the comparison moves with c. Components:
localisation, missed and false in m² (their sum is GOSPA²), missed and false also as targets per
second (component / (c²/2)); "false tracks" never came within c of a detectable truth; id switches
and fragmentations as in bench/metrics.py.

{accuracy_table(results.scores, c)}

Mean GOSPA (m) by cut-off:

{sensitivity_table(results.scores, c)}{seeds}

The diagnostic row runs the same engine with radar scans that carry no coverage, so that a scan
never counts a miss against a track (M-of-N sees only hits); it is not a configuration to deploy.

**Throughput on the accuracy scenario** (the same detections; the engine's scans hold
{results.scan_size:.1f} detections on average):

{scenario_speed_table(results.throughput, results.reference_rate)}

**Throughput of the pure core** (`Tracker` alone, pre-built scans): N targets at least 150 m apart
under both radars of {REGION} (70 % walking, 30 % driving; constant velocity with small random
accelerations). Each radar revolution (2 s) is one scan: a plot per target with probability 0.9
(σ 15 m, 0.6°, 0.5 m/s) plus clutter, with the radar's disc as coverage. Two drones report three
tasked targets each per second, sixteen ground sensors trip now and then (half of the trips false
alarms), and `advance` runs once a second. Timed after a 20 s warm-up, once the tracks are confirmed.

{speed_table(results.core)}

**Throughput of one correlator process** (`python -m services.correlator`, the real thing: Kafka
consumer, record parsing (polar radar records by the correlator's fast path,
services/correlator/domain/records.py; any other by `SensorEventRecord` and `from_record`, which
give the same detections), the `RegionEngine`, one transaction per
commit interval with the track updates, alerts, the partition's full snapshot and the input
offset). The same synthetic loads, turned into the records ingest writes (radar plots as polar
radar events of the same radars, the drones' points and the ground sensors' trips as events of
the region's drones and ground sensors, each trip at its sensor's site; ingest's admission code
writes every record), are preloaded into `sensor.events` of a fresh topic prefix on a
single-node broker of this machine; then one correlator process starts with the demo
configuration and works through the backlog. Timed from its first consumed record (records it
had consumed by then not counted) until its committed input offset covers every record it can
release (all but the last reorder window, which waits for newer data or for the wall clock);
CPU seconds are the process's own (/proc/PID/stat), live tracks its own gauge at the end. Then
the process is SIGKILLed and started again: **restart** is the time from the new process's start
until every input partition is restored (Python start-up, the consumer group's rebalance, which
waits for the killed member's session to expire, and the restores, side by side); the mean
partition restore is `lindero_correlator_restore_seconds` (reading the partition of
`correlator.state`, rebuilding the engines).

{process_table(results.processes) if results.processes else "(not measured)"}

**Goals**

{goals}

{profiles}
"""


if __name__ == "__main__":
    raise SystemExit(main())
