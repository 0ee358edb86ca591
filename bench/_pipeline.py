"""The whole pipeline under load, shared by bench/e2e.py and bench/soak.py.

- :func:`scenario`: the simulator's seeded scenario of every demo region at the density that gives
  the asked rate of detections (thinned at random to the rate exactly), cached in bench/out. It is
  played in a loop: each pass shifts the times by the scenario's length and gives every event a
  fresh id, so a run can be longer than the scenario.
- :class:`Poster`: the gateways. Events are handed to their gateway's lane at their scenario time
  (real time, speed 1) and stamped with that moment as their sensor time; each lane batches like
  the simulator's poster (up to 50 events, or whatever waited 0.5 s, one request in flight) and
  records, per request, when it was sent and the sensor times it carried.
- :class:`Dashboard`: a websocket client like the dashboard (admin token, tracks and alerts), which
  records for every track and alert message the sensor time it refers to and when it arrived.
- :func:`latencies`: per message, receive time − the moment the gateways had posted every event up
  to the message's sensor time (see :func:`latencies`), and receive time − the sensor time.
- :func:`start_stack`: ingest, correlator and alerts as processes (services/stack.py) on a fresh
  topic prefix, with the settings of a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import pickle
import time
import uuid
from array import array
from collections import Counter, deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import yaml
from aiokafka.errors import KafkaError
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench._common import OUT, ROOT, cpu_seconds
from schemas.events import COMPLETE_THROUGH_HEADER
from services.core.config import load_config
from services.core.geography import Geography
from services.core.kafka import KafkaSettings, delete_prefixed_topics
from services.core.localkafka import free_port
from services.core.ruleconfig import UncorroboratedTripRule
from services.core.tokens import TokenSettings, issue
from services.simulator.client import PATHS, RETRIABLE_STATUS, load_keys
from services.simulator.domain import simulate
from services.stack import Stack

DEMO_CONFIG = ROOT / "config" / "demo.yaml"
DEMO_KEYS = ROOT / "config" / "demo-keys.yaml"
SECRET = "bench-pipeline-only-0123456789abcdef0123456789abcdef"  # noqa: S105 (throwaway services)
BATCH_SIZE = 50
MAX_DELAY_S = 0.5
"""As the simulator's poster (PosterSettings): a gateway's batch and batching delay."""
HEARTBEAT_S = 0.1
"""With promises: how often a gateway with nothing to post repeats its promise."""
SCENARIO_S = 300.0
SCENARIO_START = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
RATE_PER_DENSITY = 31.6
RATE_AT_ZERO = 14.0
"""Detections/s of both demo regions ≈ RATE_AT_ZERO + RATE_PER_DENSITY × density (measured at 1 and
20): the first guess of the density for a rate."""

TRACK, ALERT = 0, 1
HELD_S = {"uncorroborated_trip": UncorroboratedTripRule().wait_s}
"""Alerts a rule raises only after holding its evidence this long (a ground-sensor trip no track took
for ``wait_s``): their ``updated_at`` is the trip's time, so they are timed from that plus the wait."""


# -- the scenario ----------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One pass of the looped scenario: (time s, gateway, stream, payload), sorted by time."""

    events: list[tuple[float, str, str, dict[str, Any]]]
    length_s: float
    density: float
    seed: int
    detections: int
    status: int
    truths: int
    kept: float
    """The share of the simulated detections kept to hit the rate exactly."""

    @property
    def rate(self) -> float:
        return self.detections / self.length_s


def scenario(rate: float, seed: int = 7, length_s: float = SCENARIO_S) -> Scenario:
    """The demo regions' scenario giving ``rate`` detections/s (cached in bench/out)."""
    path = OUT / f"pipeline-scenario-{rate:g}-{length_s:g}-{seed}.pickle"
    if path.is_file():
        with path.open("rb") as handle:
            cached: Scenario = pickle.load(handle)  # noqa: S301 - our own cache file
        return cached
    config = load_config(DEMO_CONFIG)
    if config.geography_path is None:
        raise RuntimeError("the demo configuration names no geography file")
    geography = Geography.load(config.geography_path)
    density = min(100.0, max(0.1, (rate - RATE_AT_ZERO) / RATE_PER_DENSITY * 1.08))
    print(f"simulating {length_s:g} s of every demo region at density {density:.1f} (cached in {path})")
    events: list[tuple[float, str, str, dict[str, Any]]] = []
    truths = 0
    for region in config.regions:
        sim = simulate(
            config,
            geography,
            region.id,
            seed=seed,
            start=SCENARIO_START,
            duration_s=length_s,
            density=density,
        )
        truths += sim.counts()["truths"]
        events += [(e.time_s, e.gateway_id, e.stream, e.payload) for e in sim.events]
    detections = sum(1 for e in events if e[2] == "events")
    keep = min(1.0, rate * length_s / detections)
    rng = np.random.default_rng(seed)
    events = [e for e in events if e[2] != "events" or rng.random() < keep]
    events.sort(key=lambda e: e[0])
    found = Scenario(
        events=events,
        length_s=length_s,
        density=density,
        seed=seed,
        detections=sum(1 for e in events if e[2] == "events"),
        status=sum(1 for e in events if e[2] == "status"),
        truths=truths,
        kept=keep,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(found, handle)
    return found


# -- the gateways ----------------------------------------------------------------------------------


def _stamp(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Lane:
    gateway: str
    stream: str
    headers: dict[str, str]
    queue: deque[tuple[float, float, dict[str, Any]]] = field(default_factory=deque)
    """(handed at, wall; sensor time; payload)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Poster:
    """The gateways: paced hand-off, batching per gateway and stream, and what each request carried."""

    base_url: str
    keys: Mapping[str, str]
    max_delay_s: float = MAX_DELAY_S
    """How long a lane's first event waits for the batch to fill before it is posted anyway."""
    promise: bool = False
    """Each gateway promises (``Lindero-Complete-Through``) with every batch of detections how far
    it has posted them, and an idle one repeats it every ``HEARTBEAT_S`` with an empty batch."""
    position: float = -math.inf
    """Sensor time of the latest event handed to a lane: every later one is at least as new."""
    heartbeats: int = 0
    sent: array[float] = field(default_factory=lambda: array("d"))
    """Per request of detections: wall time it was sent (first attempt)."""
    acked: array[float] = field(default_factory=lambda: array("d"))
    """... and when its final answer came."""
    first: array[float] = field(default_factory=lambda: array("d"))
    """... the earliest sensor time it carried."""
    last: array[float] = field(default_factory=lambda: array("d"))
    count: array[int] = field(default_factory=lambda: array("l"))
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    status_events: int = 0
    retries: int = 0
    handed: int = 0
    behind_s: float = 0.0
    """The largest delay between an event's due time and its hand-off (the pacer falling behind)."""
    responses: Counter[str] = field(default_factory=Counter)
    stopping: bool = False

    async def run(self, plan: Scenario, until: float, start: float | None = None) -> None:
        """Hand the looped scenario to the lanes from ``start`` (wall) until ``until``, then drain."""
        start = time.time() if start is None else start
        self.position = start
        lanes: dict[tuple[str, str], _Lane] = {}
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=30.0, limits=httpx.Limits(max_connections=64)
        ) as client:
            senders: list[asyncio.Task[None]] = []

            def lane_of(gateway: str, stream: str) -> _Lane:
                lane = lanes.get((gateway, stream))
                if lane is None:
                    headers = {"Authorization": f"Bearer {self.keys[gateway]}"}
                    headers["Content-Type"] = "application/json"
                    lane = lanes[gateway, stream] = _Lane(gateway, stream, headers)
                    senders.append(asyncio.create_task(self._send(client, lane)))
                return lane

            if self.promise:  # every gateway promises from the start, also one with nothing to post yet
                for gateway in sorted(self.keys):
                    lane_of(gateway, "events")
            try:
                for rank in range(10**9):
                    offset = start + rank * plan.length_s
                    if offset >= until:
                        break
                    for time_s, gateway, stream, payload in plan.events:
                        due = offset + time_s
                        if due >= until:
                            break
                        delay = due - time.time()
                        if delay > 0.01:
                            await asyncio.sleep(delay)
                        else:
                            self.behind_s = max(self.behind_s, -delay)
                        lane = lane_of(gateway, stream)
                        fresh = {**payload, "time": _stamp(due), "event_id": str(uuid.uuid4())}
                        lane.queue.append((time.time(), due, fresh))
                        self.position = due
                        self.handed += 1
                        if len(lane.queue) == 1 or len(lane.queue) >= BATCH_SIZE:
                            lane.wake.set()
            finally:
                self.stopping = True
                for lane in lanes.values():
                    lane.wake.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*senders, return_exceptions=True), 30)
                for task in senders:
                    task.cancel()

    async def _send(self, client: httpx.AsyncClient, lane: _Lane) -> None:
        promising = self.promise and lane.stream == "events"
        while True:
            lane.wake.clear()
            if not lane.queue:
                if self.stopping:
                    return
                if not promising:
                    await lane.wake.wait()
                    continue
                try:
                    await asyncio.wait_for(lane.wake.wait(), HEARTBEAT_S)
                except TimeoutError:
                    self.heartbeats += 1
                    await self._deliver(client, lane, [])
                continue
            if len(lane.queue) < BATCH_SIZE and not self.stopping:
                remaining = lane.queue[0][0] + self.max_delay_s - time.time()
                if remaining > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.wake.wait(), remaining)
                    continue
            batch = [lane.queue.popleft() for _ in range(min(BATCH_SIZE, len(lane.queue)))]
            await self._deliver(client, lane, batch)

    async def _deliver(
        self, client: httpx.AsyncClient, lane: _Lane, batch: list[tuple[float, float, dict[str, Any]]]
    ) -> None:
        body = orjson.dumps([payload for _, _, payload in batch])
        headers = lane.headers
        if self.promise and lane.stream == "events":
            # Everything still queued, and everything handed later, is at least this new.
            through = (lane.queue[0][1] if lane.queue else self.position) - 0.001
            headers = {**headers, COMPLETE_THROUGH_HEADER: _stamp(through)}
        sent = time.time()
        for attempt in range(20):
            try:
                response = await client.post(PATHS[lane.stream], content=body, headers=headers)
            except httpx.TransportError as exc:
                self.responses[type(exc).__name__] += 1
            else:
                self.responses[str(response.status_code)] += 1
                if response.status_code not in RETRIABLE_STATUS:
                    if batch:
                        self._settle(lane, batch, response, sent)
                    return
            self.retries += 1
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        self.rejected += len(batch)

    def _settle(
        self,
        lane: _Lane,
        batch: list[tuple[float, float, dict[str, Any]]],
        response: httpx.Response,
        sent: float,
    ) -> None:
        if lane.stream == "status":
            self.status_events += len(batch)
            return
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code < 300 and isinstance(answer, dict):
            refused = len(answer.get("rejected_events", []))
            repeated = len(answer.get("duplicate_events", []))
        else:
            refused, repeated = len(batch), 0
        self.rejected += refused
        self.duplicates += repeated
        self.accepted += len(batch) - refused - repeated
        self.sent.append(sent)
        self.acked.append(time.time())
        self.first.append(min(due for _, due, _ in batch))
        self.last.append(max(due for _, due, _ in batch))
        self.count.append(len(batch) - refused)


# -- the dashboard ---------------------------------------------------------------------------------


def token(role: str = "admin") -> str:
    return issue(TokenSettings(secret=SecretStr(SECRET)), subject=f"bench-{role}", role=role, ttl_s=86_400)


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@dataclass
class Dashboard:
    """A dashboard's websocket: every track and alert message's sensor time and arrival."""

    url: str
    kind: array[int] = field(default_factory=lambda: array("b"))
    reference: array[float] = field(default_factory=lambda: array("d"))
    """Tracks: ``last_update`` (sensor time of the latest detection); alerts: ``updated_at``."""
    received: array[float] = field(default_factory=lambda: array("d"))
    newest: dict[str, float] = field(default_factory=dict)
    """Per track, the newest ``last_update`` received."""
    unchanged: int = 0
    """Track messages without a newer detection than the previous one (coasting, lost, ...): not timed."""
    label: array[int] = field(default_factory=lambda: array("h"))
    """Alerts: index of the kind in ``labels`` (tracks: -1)."""
    labels: list[str] = field(default_factory=list)
    frames: int = 0
    bytes: int = 0
    types: Counter[str] = field(default_factory=Counter)
    alert_kinds: Counter[str] = field(default_factory=Counter)
    closed: str | None = None

    async def run(self, ready: asyncio.Event) -> None:
        async with connect(self.url, max_size=256 * 1024 * 1024, open_timeout=30) as connection:
            hello = {"type": "hello", "token": token(), "subscribe": {"tracks": True}}
            await connection.send(orjson.dumps(hello).decode())
            ready.set()
            try:
                async for data in connection:
                    now = time.time()
                    self.frames += 1
                    self.bytes += len(data)
                    frame = orjson.loads(data)
                    if frame.get("type") != "batch":
                        continue
                    for message in frame["messages"]:
                        kind = message.get("type")
                        self.types[kind] += 1
                        if kind == "track":
                            data = message["data"]
                            update = _seconds(data["last_update"])
                            if update <= self.newest.get(data["track_id"], -math.inf):
                                self.unchanged += 1  # a status change or prediction: no new detection
                                continue
                            self.newest[data["track_id"]] = update
                            self.kind.append(TRACK)
                            self.label.append(-1)
                            self.reference.append(update)
                            self.received.append(now)
                        elif kind in {"alert", "alert_update"}:
                            alert = message["data"]["alert"]
                            name = alert["kind"]
                            self.alert_kinds[name] += 1
                            if name not in self.labels:
                                self.labels.append(name)
                            self.kind.append(ALERT)
                            self.label.append(self.labels.index(name))
                            self.reference.append(_seconds(alert["updated_at"]) + HELD_S.get(name, 0.0))
                            self.received.append(now)
            except ConnectionClosed as exc:
                self.closed = f"{exc.rcvd.code if exc.rcvd else '?'} {exc.rcvd.reason if exc.rcvd else ''}"


# -- latencies -------------------------------------------------------------------------------------


@dataclass
class Latencies:
    kind: np.ndarray[Any, Any]
    received: np.ndarray[Any, Any]
    from_post: np.ndarray[Any, Any]
    from_sensor: np.ndarray[Any, Any]
    label: np.ndarray[Any, Any]
    labels: list[str]

    def select(self, kind: int, start: float = -math.inf, end: float = math.inf) -> Latencies:
        keep = (self.kind == kind) & (self.received >= start) & (self.received < end)
        return self._keep(keep)

    def _keep(self, keep: np.ndarray[Any, Any]) -> Latencies:
        return Latencies(
            self.kind[keep],
            self.received[keep],
            self.from_post[keep],
            self.from_sensor[keep],
            self.label[keep],
            self.labels,
        )

    def by_label(self) -> dict[str, dict[str, float]]:
        """Percentiles per alert kind."""
        return {name: self._keep(self.label == i).percentiles() for i, name in enumerate(self.labels)}

    def percentiles(self, which: str = "from_post") -> dict[str, float]:
        values = getattr(self, which)
        values = values[np.isfinite(values)]
        if not len(values):
            return {"n": 0, "p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan}
        p50, p95, p99 = np.percentile(values, [50, 95, 99]) * 1000
        return {"n": len(values), "p50": p50, "p95": p95, "p99": p99, "max": float(values.max()) * 1000}


def latencies(poster: Poster, dashboard: Dashboard) -> Latencies:
    """Per message, receive time − the moment the gateways had posted every detection up to the
    message's sensor time T (the latest send of a request whose earliest event is at or before T:
    the newest data the message can reflect had left the gateways then; T itself when that is
    later), and receive time − T.
    Messages about sensor times before the first request (the connect snapshot) get NaN."""
    first = np.frombuffer(poster.first, dtype=np.float64) if len(poster.first) else np.zeros(0)
    sent = np.frombuffer(poster.sent, dtype=np.float64) if len(poster.sent) else np.zeros(0)
    order = np.argsort(first, kind="stable")
    first, frontier = first[order], np.maximum.accumulate(sent[order]) if len(sent) else sent
    kind = np.array(dashboard.kind, dtype=np.int8)
    reference = np.array(dashboard.reference, dtype=np.float64)
    received = np.array(dashboard.received, dtype=np.float64)
    index = np.searchsorted(first, reference, side="right") - 1
    posted = np.where(index >= 0, frontier[np.clip(index, 0, None)] if len(frontier) else np.nan, np.nan)
    # A message cannot exist before its own sensor time either: an alert about a moment after the
    # last post (a trip whose wait ended after the load stopped, event time then driven by the
    # wall clock) is timed from that moment, not from the last post seconds earlier.
    posted = np.maximum(posted, reference)
    before = reference < (first[0] if len(first) else math.inf)
    posted[before] = np.nan
    label = np.array(dashboard.label, dtype=np.int16)
    from_sensor = np.where(before, np.nan, received - reference)
    return Latencies(kind, received, received - posted, from_sensor, label, list(dashboard.labels))


# -- the stack -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """A row's configuration: the tracking section's reorder window and the commit intervals."""

    name: str
    reorder_window_s: float | None = None
    """None: the configuration's default (2 s)."""
    env: Mapping[str, str] = field(default_factory=dict)
    publish_interval_s: float | None = None
    """None: the configuration's default (0.25 s)."""
    adaptive: bool | None = None
    """The tracking section's ``reorder_adaptive``; None: the default (adaptive)."""
    gateway_wait_s: float = MAX_DELAY_S
    """The gateways' batching: a lane posts what has waited this long (or a full batch)."""
    promise: bool = False
    """The gateways promise how far they have posted (``Lindero-Complete-Through``)."""

    def describe(self) -> str:
        window = "2 s (default)" if self.reorder_window_s is None else f"{self.reorder_window_s:g} s"
        window = f"adaptive, at most {window}" if self.adaptive is not False else f"fixed {window}"
        extra = ", ".join(f"`{k}={v}`" for k, v in self.env.items())
        publish = (
            "" if self.publish_interval_s is None else f", publish interval {self.publish_interval_s:g} s"
        )
        gateways = f"gateways post within {self.gateway_wait_s:g} s, "
        if self.promise:
            gateways += f"promise how far they have posted (idle: every {HEARTBEAT_S:g} s), "
        return (
            gateways
            + f"reorder window {window}{publish}"
            + (f", {extra}" if extra else ", default commit intervals")
        )


DEFAULTS = Setting("defaults")
# The low-latency row's reorder window is a little more than a gateway's batching (MAX_DELAY_S):
# a detection can reach the correlator up to that much after newer ones from other gateways, so
# a shorter window would drop some as late (0.25 s dropped ~16% at 2,000/s).
LOW_LATENCY = Setting(
    "low latency",
    reorder_window_s=MAX_DELAY_S + 0.1,
    env={"LINDERO_CORRELATOR_COMMIT_INTERVAL_S": "0.05", "LINDERO_ALERTS_COMMIT_INTERVAL_S": "0.05"},
)


def config_file(setting: Setting) -> Path:
    """The demo configuration, with the setting's reorder window and publish interval (written to
    bench/out)."""
    if setting.reorder_window_s is None and setting.publish_interval_s is None and setting.adaptive is None:
        return DEMO_CONFIG
    document = yaml.safe_load(DEMO_CONFIG.read_text("utf-8"))
    document["geography"] = str((DEMO_CONFIG.parent / document["geography"]).resolve())
    tracking = document.setdefault("tracking", {})
    if setting.reorder_window_s is not None:
        tracking["reorder_window_s"] = setting.reorder_window_s
    if setting.publish_interval_s is not None:
        tracking["publish_interval_s"] = setting.publish_interval_s
    if setting.adaptive is not None:
        tracking["reorder_adaptive"] = setting.adaptive
    label = f"{setting.reorder_window_s}-{setting.publish_interval_s}-{setting.adaptive}"
    path = OUT / f"pipeline-config-{label}.yaml"
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    load_config(path)
    return path


def start_stack(bootstrap: str, setting: Setting, label: str) -> Stack:
    """Ingest, correlator and alerts on a fresh topic prefix (per-gateway rate limit lifted)."""
    stack = Stack(
        config=config_file(setting),
        bootstrap=bootstrap,
        secret=SECRET,
        logs=OUT / f"{label}-logs",
        topic_prefix=f"bench{label}{uuid.uuid4().hex[:6]}.",
        ports={"ingest": free_port(), "correlator": free_port(), "alerts": free_port()},
        env={
            "LINDERO_INGEST_RATE_EVENTS_PER_S": "100000",
            "LINDERO_INGEST_RATE_BURST": "1000000",
            **setting.env,
        },
    )
    stack.start(progress=print)
    return stack


def stop_stack(stack: Stack) -> None:
    """Stop the services, then delete the run's topics from the broker.

    The later rows of a run then share the broker with no earlier row's partitions, and an external
    cluster (LINDERO_KAFKA_BOOTSTRAP) is left as it was found. Leftover topics cost: the shared
    local broker, which these benchmarks used until bad01bb, had kept 1,759 partitions (9.9 GB),
    idled at 7.7% of a core against 3.9% empty, and took 12.7 s to start instead of 5.0.
    """
    stack.stop()
    settings = KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=stack.topic_prefix)
    try:
        with ThreadPoolExecutor(1) as pool:  # (the soak calls this from its event loop)
            deleted = pool.submit(asyncio.run, delete_prefixed_topics(settings)).result(timeout=60)
    except (KafkaError, OSError, TimeoutError) as exc:
        print(f"the topics of {stack.topic_prefix} stay: {exc!r}")
        return
    print(f"deleted the run's {len(deleted)} topics ({stack.topic_prefix}*)")


def keys() -> dict[str, str]:
    return load_keys(DEMO_KEYS)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (VmRSS from /proc: psutil is not a dependency)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def safe_cpu_seconds(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return math.nan


def service_pids(stack: Stack, broker: int | None) -> dict[str, int]:
    pids = {name: process.pid for name, process in stack.processes.items()}
    if broker is not None:
        pids["broker"] = broker
    return pids


def load_average() -> float:
    return os.getloadavg()[0]


def ms(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:,.0f}"


def pct(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.0%}"


def scrape(url: str) -> dict[str, float]:
    """The correlator's counters and gauges that tell whether it kept up (summed over labels; the
    reorder window: the widest region's)."""
    widest = {"lindero_correlator_reorder_window_seconds": "window"}
    wanted = {
        "lindero_correlator_detections_total": "detections",
        "lindero_correlator_late_events_total": "late",
        "lindero_correlator_tracks": "tracks",
        "lindero_correlator_consumer_lag": "lag",
        "lindero_correlator_alerts_total": "alerts",
    }
    found = dict.fromkeys([*wanted.values(), *widest.values()], 0.0)
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {name: math.nan for name in found}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        with contextlib.suppress(ValueError):
            if name in wanted:
                found[wanted[name]] += float(line.rsplit(" ", 1)[1])
            elif name in widest:
                found[widest[name]] = max(found[widest[name]], float(line.rsplit(" ", 1)[1]))
    return found
