"""Websocket fan-out: how many frames and messages the alerts service delivers, and how late.

    .venv/bin/python bench/fanout.py [--quick] [--clients 100 1000 5000] [--rates 10 20 100]
        [--tracks-per-s 200] [--seconds 20] [--warmup 6] [--broker-warmup 30] [--client-processes 2]
        [--no-compact] [--no-lifecycle-process] [--old-layout-clients 1000] [--no-write]
    .venv/bin/python bench/fanout.py --render bench/out/fanout-results.json   # docs from saved numbers

For each number of clients (all operators of centre cc-cucuta, region co-ve-cucuta):

1. **Bare ceiling.** A minimal Python ``websockets`` server (``python bench/fanout.py
   bare-server``) broadcasts ~300-byte text frames with ``websockets.broadcast()`` to the same
   clients as fast as they take them (it waits while a socket has more than 64 KiB queued, so
   that what is counted was delivered, not buffered). Frames/s are counted by the clients.
2. **Alerts service**, in the production layout for heavy fan-out (``--lifecycle-process``, the
   default): a *lifecycle* instance (``python -m services.alerts`` with
   ``LINDERO_ALERTS_RUN_LIFECYCLE=true``, its own port, no clients) turns each alert into an
   ``alert.state`` record in a Kafka transaction, and a *gateway* instance
   (``LINDERO_ALERTS_RUN_LIFECYCLE=false``, ``LINDERO_ALERTS_RUN_WEBHOOKS=false``) that the
   clients connect to reads the states and tracks back and fans them out. With
   ``--no-lifecycle-process`` one instance does both (the layout of the first runs). Both get a
   fresh topic prefix and ``config/demo.yaml``. The clients connect and say hello with a token
   and, with ``--compact`` (the default), ``"subscribe": {"compact_tracks": true,
   "compact_alerts": true}``: a revision of an alert the client holds then arrives as an
   ``alert_changed`` message with the changed fields only, and a track's
   movement as a small ``track_moved`` message, the whole ``track`` only when
   something else changed or every 60 s. This process then feeds load the way production does:
   ``Alert`` records on ``alerts`` (key = alert id, a third new alerts, two thirds revisions of
   recent ones, ``updated_at`` = now) at 10, 20 and 100 alerts/s, and ``Track`` records on
   ``tracks`` (300 tracks, ``--tracks-per-s`` updates in all) at the same time. As the
   correlator, it writes what fell due every ``--feed-every-s`` (0.2 s, the correlator's commit
   interval) in one transaction; 0 writes each record as it falls due, without transactions (the
   runs before 5f85ddc). Each rate runs ``--warmup`` seconds, then is measured for ``--seconds``.
3. **Old layout, for comparison** (``--old-layout-clients``): the same rates again at those
   numbers of clients with one instance and whole tracks, against the same bare ceiling.

The clients are Node.js processes (``bench/node/clients.mjs``, the ``ws`` package, installed by
``npm ci``): every client counts frames, bytes and messages (from the frames' ``seq``); about
40 of them (spread over the processes) parse every frame and record, per message, the latency
= receive wall time - the alert revision's ``updated_at`` (alerts: the end-to-end path through
Kafka and the lifecycle) or - the track's time (``data.time`` of a ``track``, ``m[0]`` of a
``track_moved``). For alerts, the latency from the lifecycle's decision (the state's
``updated_at``) is reported too: the fan-out's own share. They also size the first messages of each type.

Everything runs on this machine: broker, both alerts processes, load generator (this process)
and the clients share its cores, so the CPU columns say who used what (the gateway and the
lifecycle process separately). The results replace the "fanout" section of docs/benchmarks.md
and are saved to bench/out/fanout-results.json (``--render`` rewrites the section from them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import resource
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bench._common import OUT, ROOT, Window, broker, git_revision, listening_pid, write_section
from schemas.topics import ALERTS, TRACKS
from services.alerts.settings import AlertsSettings
from services.core.kafka import KafkaSettings
from services.core.localkafka import free_port
from services.core.tokens import TokenSettings, issue
from tests.unit.alerts.builders import DEMO, make_alert, make_track

NODE_DIR = ROOT / "bench" / "node"
SECRET = "bench-fanout-only-0123456789abcdef0123456789abcdef"  # noqa: S105 (a throwaway server)
REGION = "co-ve-cucuta"
CENTRE = "cc-cucuta"
BARE_FRAME_BYTES = 300
BARE_QUEUE_LIMIT = 64 * 1024
SAMPLED_CLIENTS = 40
NEW_ALERT_SHARE = 1 / 3
ALERT_POOL = 200
TRACK_POOL = 300
TRACKS_PER_S = 200.0
GOAL_RATIO = 0.6
GOAL_P99_MS = {(1000, 20): 100.0, (5000, 10): 250.0}
RESULTS_JSON = OUT / "fanout-results.json"


# -- load -----------------------------------------------------------------------------------------


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat()


FEED_EVERY_S = 0.2
"""The correlator's default ``commit_interval_s``: it writes a region's tracks and alerts of that
long in one transaction, and the alerts service (read committed) sees them when it commits."""


class Feed:
    """Writes alerts and tracks to Kafka at given rates, as the correlator would: what fell due in
    ``every_s`` in one transaction (0: each record on its own as it falls due, no transactions)."""

    def __init__(self, kafka: KafkaSettings, every_s: float = FEED_EVERY_S, seed: int = 7) -> None:
        from aiokafka import AIOKafkaProducer

        self.kafka = kafka
        self.every_s = every_s
        self.rng = random.Random(seed)
        transactional = {"transactional_id": f"bench-feed-{uuid.uuid4().hex[:12]}"} if every_s > 0 else {}
        self.producer = AIOKafkaProducer(acks="all", linger_ms=2, **transactional, **kafka.client_options())
        self.alert_template = make_alert(DEMO, "CO", REGION, severity="high", revision=1).model_dump(
            mode="json", by_alias=True
        )
        self.track_template = make_track(DEMO, "CO", REGION).model_dump(mode="json", by_alias=True)
        self.alerts: list[dict[str, Any]] = []
        self.tracks: list[dict[str, Any]] = []
        self.next_track = 0
        self.alerts_sent = 0
        self.tracks_sent = 0

    async def __aenter__(self) -> Feed:
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    def _alert(self, now: float) -> tuple[str, bytes]:
        rng = self.rng
        if len(self.alerts) < 20 or rng.random() < NEW_ALERT_SHARE:
            entry: dict[str, Any] = {
                "alert_id": f"A-bench-{uuid.uuid4().hex[:20]}",
                "revision": 1,
                "kind": rng.choice(["border_crossing", "loitering", "restricted_zone", "rendezvous"]),
                "severity": rng.choice(["medium", "high", "high"]),
                "time": _iso(now),
            }
            self.alerts.append(entry)
            if len(self.alerts) > ALERT_POOL:
                self.alerts.pop(0)
        else:
            entry = rng.choice(self.alerts[-ALERT_POOL:])
            entry["revision"] += 1
        record = {**self.alert_template, **entry, "updated_at": _iso(now)}
        record["summary"] = f"{record['summary']} (revision {entry['revision']})"
        return entry["alert_id"], orjson.dumps(record)

    def _track(self, now: float) -> tuple[str, bytes]:
        if len(self.tracks) < TRACK_POOL:
            number = len(self.tracks)
            self.tracks.append(
                {
                    "track_id": f"{REGION}.T{100_000 + number:06d}",
                    "first_seen": _iso(now),
                    "update_count": 0,
                    "lat": self.track_template["lat"] + self.rng.uniform(-0.05, 0.05),
                    "lon": self.track_template["lon"] + self.rng.uniform(-0.05, 0.05),
                }
            )
        entry = self.tracks[self.next_track % len(self.tracks)]
        self.next_track += 1
        entry["update_count"] += 1
        entry["lat"] += self.rng.uniform(-2e-5, 2e-5)
        entry["lon"] += self.rng.uniform(-2e-5, 2e-5)
        stamp = _iso(now)
        record = {**self.track_template, **entry, "time": stamp, "last_update": stamp}
        return entry["track_id"], orjson.dumps(record)

    async def run(self, alerts_per_s: float, tracks_per_s: float, seconds: float) -> None:
        """Send at the given rates for ``seconds`` (records are spread evenly over time, or
        written every ``every_s`` in a transaction)."""
        if self.every_s > 0:
            await self._run_transactions(alerts_per_s, tracks_per_s, seconds)
            return
        alerts_topic = self.kafka.topics(ALERTS)
        tracks_topic = self.kafka.topics(TRACKS)
        started = time.monotonic()
        alerts = tracks = 0
        pending: list[asyncio.Future[Any]] = []
        while (elapsed := time.monotonic() - started) < seconds:
            now = time.time()
            while alerts < int(elapsed * alerts_per_s):
                key, value = self._alert(now)
                pending.append(await self.producer.send(alerts_topic, value, key=key.encode()))
                alerts += 1
                self.alerts_sent += 1
            while tracks < int(elapsed * tracks_per_s):
                key, value = self._track(now)
                pending.append(await self.producer.send(tracks_topic, value, key=key.encode()))
                tracks += 1
                self.tracks_sent += 1
            if len(pending) > 200:
                await asyncio.gather(*pending)
                pending = []
            await asyncio.sleep(0.004)
        await asyncio.gather(*pending)

    async def _run_transactions(self, alerts_per_s: float, tracks_per_s: float, seconds: float) -> None:
        alerts_topic = self.kafka.topics(ALERTS)
        tracks_topic = self.kafka.topics(TRACKS)
        started = time.monotonic()
        alerts = tracks = 0
        tick = 0
        while (elapsed := time.monotonic() - started) < seconds:
            now = time.time()
            due_alerts = int(elapsed * alerts_per_s) - alerts
            due_tracks = int(elapsed * tracks_per_s) - tracks
            if due_alerts or due_tracks:
                async with self.producer.transaction():
                    for _ in range(due_alerts):
                        key, value = self._alert(now)
                        await self.producer.send(alerts_topic, value, key=key.encode())
                    for _ in range(due_tracks):
                        key, value = self._track(now)
                        await self.producer.send(tracks_topic, value, key=key.encode())
                alerts, tracks = alerts + due_alerts, tracks + due_tracks
                self.alerts_sent += due_alerts
                self.tracks_sent += due_tracks
            tick += 1
            await asyncio.sleep(max(0.0, started + tick * self.every_s - time.monotonic()))


# -- clients --------------------------------------------------------------------------------------


def _feed_text(every_s: float) -> str:
    if every_s > 0:
        return (
            f", what falls due in {every_s:g} s written in one transaction, as the correlator "
            "commits a region's outputs (the alerts service reads committed records only)"
        )
    return ", each record on its own as it falls due"


def _merge_histograms(reports: Sequence[dict[str, Any]], key: str) -> dict[int, int]:
    merged: dict[int, int] = {}
    for report in reports:
        for tenth, count in report[key].items():
            merged[int(tenth)] = merged.get(int(tenth), 0) + count
    return merged


def percentile(histogram: dict[int, int], q: float) -> float:
    """The q-quantile (0..1) of a histogram of tenths of milliseconds, in ms (nan when empty)."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank = max(1, round(q * total))
    seen = 0
    for tenth in sorted(histogram):
        seen += histogram[tenth]
        if seen >= rank:
            return tenth / 10
    return max(histogram) / 10


class Fleet:
    """Websocket clients in a few Node.js processes, driven over their stdin and stdout."""

    def __init__(
        self,
        url: str,
        count: int,
        tokens: list[str],
        processes: int,
        *,
        deflate: bool = False,
        subscribe: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.count = count
        self.tokens = tokens
        self.processes = max(1, min(processes, count))
        self.deflate = deflate
        self.subscribe = subscribe
        self.procs: list[asyncio.subprocess.Process] = []
        self.logs: list[Any] = []

    async def start(self) -> dict[str, int]:
        """Start the processes and wait until every client connected (or failed to)."""
        sample_every = max(1, self.count // SAMPLED_CLIENTS)
        share, first = self.count // self.processes, 0
        for i in range(self.processes):
            count = share if i < self.processes - 1 else self.count - first
            options = {
                "url": self.url,
                "count": count,
                "first": first,
                "tokens": self.tokens,
                "sampleEvery": sample_every,
                "concurrency": 64,
                "deflate": self.deflate,
                "subscribe": self.subscribe,
            }
            first += count
            log = (OUT / f"fanout-clients-{i}.log").open("ab")
            self.logs.append(log)
            proc = await asyncio.create_subprocess_exec(
                "node",
                "clients.mjs",
                orjson.dumps(options).decode(),
                cwd=NODE_DIR,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=256 * 1024 * 1024,
            )
            self.procs.append(proc)
        found = await asyncio.gather(*(self._read(proc, "connected", 600) for proc in self.procs))
        return {"open": sum(f["open"] for f in found), "failed": sum(f["failed"] for f in found)}

    async def _read(self, proc: asyncio.subprocess.Process, event: str, timeout_s: float) -> dict[str, Any]:
        if proc.stdout is None:
            raise RuntimeError("no pipe to the client process")
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
            if not line:
                raise RuntimeError("a client process ended; see bench/out/fanout-clients-*.log")
            message: dict[str, Any] = orjson.loads(line)
            if message.get("event") == event:
                return message

    async def _command(self, cmd: str, event: str) -> list[dict[str, Any]]:
        for proc in self.procs:
            if proc.stdin is None:
                raise RuntimeError("no pipe to the client process")
            proc.stdin.write(orjson.dumps({"cmd": cmd}) + b"\n")
            await proc.stdin.drain()
        return list(await asyncio.gather(*(self._read(proc, event, 120) for proc in self.procs)))

    async def mark(self) -> None:
        await self._command("mark", "marked")

    async def report(self) -> dict[str, Any]:
        reports = await self._command("report", "report")
        merged: dict[str, Any] = {
            name: sum(r[name] for r in reports)
            for name in ("frames", "bytes", "messages", "cpuSeconds", "open", "silent", "seqGaps")
        }
        merged["seconds"] = max(r["seconds"] for r in reports)
        merged["sampledMessages"] = sum(r["sampledMessages"] for r in reports)
        merged["sampledClients"] = sum(r["sampledClients"] for r in reports)
        if merged["frames"] < 2 * merged["open"] and merged["sampledClients"]:
            # Most clients got at most one frame in the window, so "seq" cannot count their
            # messages: scale what the parsing clients counted exactly.
            merged["messages"] = merged["sampledMessages"] * merged["open"] / merged["sampledClients"]
        for key in ("alertMs", "alertFromStateMs", "trackMs", "bareMs"):
            merged[key] = _merge_histograms(reports, key)
        for key in ("closed", "types", "typeBytes", "typeSized"):
            merged[key] = {}
            for report in reports:
                for name, count in report[key].items():
                    merged[key][name] = merged[key].get(name, 0) + count
        return merged

    async def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None and proc.returncode is None:
                with contextlib.suppress(OSError, RuntimeError):
                    proc.stdin.write(b'{"cmd":"close"}\n')
                    await proc.stdin.drain()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for log in self.logs:
            log.close()


# -- servers --------------------------------------------------------------------------------------


def wait_ready(proc: subprocess.Popen[bytes], url: str, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{what} did not become ready; see bench/out/fanout-*.log")
        time.sleep(0.3)


def start_alerts(
    bootstrap: str, prefix: str, extra_env: dict[str, str], root: Path = ROOT, name: str = "alerts"
) -> tuple[subprocess.Popen[bytes], int]:
    """A ``python -m services.alerts`` process on a free port, once ready; its log is
    bench/out/fanout-<name>.log."""
    port = free_port()
    env = {
        **os.environ,
        "LINDERO_AUTH_SECRET": SECRET,
        "LINDERO_KAFKA_BOOTSTRAP": bootstrap,
        "LINDERO_KAFKA_TOPIC_PREFIX": prefix,
        "LINDERO_CONFIG": str(ROOT / "config" / "demo.yaml"),
        "LINDERO_ALERTS_PORT": str(port),
        "LINDERO_ALERTS_LOG_JSON": "true",
        "LINDERO_ALERTS_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    log = (OUT / f"fanout-{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.alerts"], env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}/readyz", f"the alerts service ({name})")
    except BaseException:
        stop(proc)
        raise
    return proc, port


def start_bare(clients: int, frame_bytes: int = BARE_FRAME_BYTES) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = (OUT / "fanout-bare.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "bare-server",
            "--port",
            str(port),
            "--expect",
            str(clients),
            "--frame-bytes",
            str(frame_bytes),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_ready(proc, f"http://127.0.0.1:{port}/", "the bare websockets server", 30)
    return proc, port


async def gc_pauses(ports: dict[str, int], save_as: str = "") -> dict[str, dict[str, list[float]]]:
    """Per process: its garbage collector's pauses so far, by generation: [count, seconds, over 25 ms].
    With ``save_as``, each process's whole /metrics page goes to
    bench/out/fanout-metrics-<save_as>-<name>.txt (for histogram deltas: lifecycle, state read)."""
    found: dict[str, dict[str, list[float]]] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for name, port in ports.items():
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            if save_as:
                (OUT / f"fanout-metrics-{save_as}-{name}.txt").write_text(text)
            pauses = found[name] = {}
            for family in text_string_to_metric_families(text):
                if family.name != "lindero_gc_pause_seconds":
                    continue
                for sample in family.samples:
                    entry = pauses.setdefault(sample.labels["generation"], [0.0, 0.0, 0.0])
                    if sample.name.endswith("_count"):
                        entry[0] += sample.value
                        entry[2] += sample.value
                    elif sample.name.endswith("_sum"):
                        entry[1] += sample.value
                    elif sample.name.endswith("_bucket") and sample.labels["le"] == "0.025":
                        entry[2] -= sample.value
    return found


def pause_delta(
    before: dict[str, dict[str, list[float]]], after: dict[str, dict[str, list[float]]]
) -> dict[str, dict[str, list[float]]]:
    zero = [0.0, 0.0, 0.0]
    return {
        name: {
            gen: [a - b for a, b in zip(values, before.get(name, {}).get(gen, zero), strict=True)]
            for gen, values in gens.items()
        }
        for name, gens in after.items()
    }


def kafka_troubles(prefix: str, names: Sequence[str]) -> dict[str, int]:
    """What the alerts processes of one measurement (topic prefix ``prefix``) logged about Kafka:
    retriable produce errors (each costs aiokafka's retry backoff, 100 ms by default) and
    expired consumer-group sessions (the lifecycle stops until it has rejoined)."""
    found = {"produce_retries": 0, "sessions_expired": 0}
    for name in names:
        path = OUT / f"fanout-{name}.log"
        with contextlib.suppress(OSError), path.open(encoding="utf-8", errors="replace") as lines:
            expired = False  # the line before said the session expired (it names no group)
            for line in lines:
                if prefix in line and "Got error produce response" in line:
                    found["produce_retries"] += 1
                elif expired and prefix in line and "lindero-alerts-lifecycle" in line:
                    found["sessions_expired"] += 1
                expired = "Heartbeat session expired" in line
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def bare_server(port: int, expect: int, frame_bytes: int) -> None:
    """Broadcast ~300-byte frames to every connected client, as fast as they are taken."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.http11 import Request, Response

    connections: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        connections.add(connection)
        try:
            await connection.wait_closed()
        finally:
            connections.discard(connection)

    def health(connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return connection.respond(200, "ok\n")
        return None

    async with serve(
        handler, "127.0.0.1", port, compression=None, ping_interval=None, process_request=health, backlog=4096
    ):
        while len(connections) < expect:  # noqa: ASYNC110 (polling a count is simplest here)
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        seq = 0
        pad = "x" * frame_bytes
        while True:
            head = f'{{"type":"bare","seq":{seq},"time":{time.time():.6f},"pad":"'
            frame = head + pad[: max(0, frame_bytes - len(head) - 2)] + '"}'
            broadcast(connections, frame)
            seq += 1
            await asyncio.sleep(0)
            while any(c.transport.get_write_buffer_size() > BARE_QUEUE_LIMIT for c in connections):  # noqa: ASYNC110
                await asyncio.sleep(0.001)  # no event tells when a socket buffer drained


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How the alerts service runs and what the clients ask for."""

    compact: bool = True
    """Clients subscribe with ``compact_tracks`` and ``compact_alerts``."""
    lifecycle_process: bool = True
    """The lifecycle runs in its own alerts process; the clients' instance only fans out."""

    @property
    def name(self) -> str:
        processes = "gateway + lifecycle process" if self.lifecycle_process else "one process"
        tracks = "compact tracks and alerts" if self.compact else "whole tracks and alerts"
        return f"{processes}, {tracks}"

    def subscribe(self) -> dict[str, Any] | None:
        return {"compact_tracks": True, "compact_alerts": True} if self.compact else None


@dataclass
class Bare:
    clients: int
    open: int
    frames_per_s: float
    mb_per_s: float
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]


@dataclass
class Row:
    clients: int
    target_alerts_per_s: float
    alerts_per_s: float
    tracks_per_s: float
    frames_per_s: float
    messages_per_s: float
    mb_per_s: float
    alert_p50_ms: float
    alert_p99_ms: float
    state_p50_ms: float
    state_p99_ms: float
    track_p50_ms: float
    track_p99_ms: float
    cpu: dict[str, float]
    dropped: int
    open: int
    alert_samples: int
    seq_gaps: int
    layout: Layout = field(default_factory=Layout)
    types: dict[str, int] = field(default_factory=dict)
    """Messages by type at the parsing clients."""
    type_bytes: dict[str, float] = field(default_factory=dict)
    """Mean size of a message of each type (the first ones of the window), bytes."""
    kafka: dict[str, int] = field(default_factory=dict)
    """:func:`kafka_troubles` of the alerts processes over the whole measurement (every rate)."""
    gc: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """Per alerts process and collector generation: [pauses, seconds paused, pauses over 25 ms]
    in the window (``lindero_gc_pause_seconds``)."""
    ceiling: float = float("nan")

    @property
    def ratio(self) -> float:
        return self.messages_per_s / self.ceiling if self.ceiling else float("nan")

    @property
    def offered_per_s(self) -> float:
        return self.clients * (self.alerts_per_s + self.tracks_per_s)

    @property
    def bytes_per_message(self) -> float:
        return self.mb_per_s * 1e6 / self.messages_per_s if self.messages_per_s else float("nan")


def _cpu(cpu: dict[str, float]) -> str:
    lifecycle = f"lifecycle {cpu['lifecycle']:.0%} " if "lifecycle" in cpu else ""
    return (
        f"CPU server {cpu['server']:.0%} {lifecycle}clients {cpu['clients']:.0%} load generator "
        f"{cpu['feed']:.0%} broker {cpu['broker']:.0%} others {cpu['others']:.0%} "
        f"(machine {cpu['machine']:.0%})"
    )


def _groups(
    server: int, clients: Fleet, broker_pid: int | None, lifecycle: int | None = None
) -> dict[str, list[int]]:
    groups = {"server": [server], "clients": [p.pid for p in clients.procs]}
    if lifecycle is not None:
        groups["lifecycle"] = [lifecycle]
    groups["broker"] = [broker_pid] if broker_pid else []
    return groups


async def measure_bare(clients: int, bootstrap: str, args: argparse.Namespace) -> Bare:
    proc, port = start_bare(clients)
    fleet = Fleet(f"ws://127.0.0.1:{port}/", clients, [], args.client_processes)
    try:
        connected = await fleet.start()
        await asyncio.sleep(3.0)
        await fleet.mark()
        window = Window(_groups(proc.pid, fleet, listening_pid(_port(bootstrap))))
        await asyncio.sleep(args.bare_seconds)
        report = await fleet.report()
        cpu = window.close()
    finally:
        await fleet.close()
        stop(proc)
    seconds = report["seconds"]
    bare = Bare(
        clients=clients,
        open=connected["open"],
        frames_per_s=report["frames"] / seconds,
        mb_per_s=report["bytes"] / seconds / 1e6,
        p50_ms=percentile(report["bareMs"], 0.5),
        p99_ms=percentile(report["bareMs"], 0.99),
        cpu=cpu,
    )
    print(
        f"   {bare.frames_per_s:,.0f} frames/s ({bare.mb_per_s:.1f} MB/s) to {bare.open:,} clients, "
        f"p50 {bare.p50_ms:.0f} / p99 {bare.p99_ms:.0f} ms; {_cpu(cpu)}"
    )
    return bare


def _port(bootstrap: str) -> int:
    return int(bootstrap.split(",")[0].rsplit(":", 1)[1])


def plan(clients: int, args: argparse.Namespace) -> list[tuple[float, float]]:
    """(alerts/s, tracks/s) to run, in order: first the goal's alert rate without tracks (the
    fan-out of alerts alone), then every rate with tracks."""
    steps: list[tuple[float, float]] = []
    if not args.no_alerts_only:
        goal = next((rate for (n, rate) in GOAL_P99_MS if n == clients), 20)
        steps.append((float(goal), 0.0))
    steps += [(rate, args.tracks_per_s) for rate in args.rates]
    return steps


def start_service(
    bootstrap: str, prefix: str, args: argparse.Namespace, layout: Layout
) -> tuple[subprocess.Popen[bytes], int, subprocess.Popen[bytes] | None, int | None]:
    """The alerts process the clients use (and its port) and, in the split layout, the
    lifecycle process (started first, so that it creates the topics and joins its group) and its port."""
    extra = dict(item.split("=", 1) for item in args.server_env)
    if not layout.lifecycle_process:
        proc, port = start_alerts(bootstrap, prefix, extra, args.server_root, "alerts")
        return proc, port, None, None
    lifecycle, lifecycle_port = start_alerts(
        bootstrap, prefix, {**extra, "LINDERO_ALERTS_RUN_LIFECYCLE": "true"}, args.server_root, "lifecycle"
    )
    gateway_env = {
        **extra,
        "LINDERO_ALERTS_RUN_LIFECYCLE": "false",
        "LINDERO_ALERTS_RUN_WEBHOOKS": "false",
    }
    try:
        proc, port = start_alerts(bootstrap, prefix, gateway_env, args.server_root, "gateway")
    except BaseException:
        stop(lifecycle)
        raise
    return proc, port, lifecycle, lifecycle_port


async def measure_alerts(
    clients: int, bootstrap: str, args: argparse.Namespace, layout: Layout, broker_warmup: float = 0.0
) -> list[Row]:
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    auth = TokenSettings(secret=SecretStr(SECRET))
    tokens = [
        issue(auth, subject=f"op-bench-{i}", role="operator", centre=CENTRE, country="CO")
        for i in range(min(clients, 200))
    ]
    proc, port, lifecycle, lifecycle_port = start_service(bootstrap, kafka.topic_prefix, args, layout)
    processes = {"gateway" if lifecycle else "alerts": port}
    if lifecycle_port is not None:
        processes["lifecycle"] = lifecycle_port
    rows = []
    broker_pid = listening_pid(_port(bootstrap))
    try:
        fleet = Fleet(
            f"ws://127.0.0.1:{port}/v1/stream",
            clients,
            tokens,
            args.client_processes,
            subscribe=layout.subscribe(),
            deflate=args.deflate,
        )
        try:
            connected = await fleet.start()
            print(f"   {connected['open']:,} clients connected ({connected['failed']} failed)")
            async with Feed(kafka, args.feed_every_s) as feed:
                for rate, tracks in plan(clients, args):
                    warmup = args.warmup + broker_warmup
                    broker_warmup = 0.0
                    feeding = asyncio.create_task(feed.run(rate, tracks, warmup + args.seconds))
                    await asyncio.sleep(warmup)
                    await fleet.mark()
                    window = Window(
                        _groups(proc.pid, fleet, broker_pid, lifecycle.pid if lifecycle else None)
                    )
                    sent = (feed.alerts_sent, feed.tracks_sent)
                    label = f"{clients}-{rate:g}-{'tracks' if tracks else 'alerts'}"
                    pauses = await gc_pauses(processes, f"{label}-start")
                    await asyncio.sleep(args.seconds)
                    report = await fleet.report()
                    cpu = window.close()
                    pauses = pause_delta(pauses, await gc_pauses(processes, f"{label}-end"))
                    await feeding
                    seconds = report["seconds"]
                    row = Row(
                        clients=clients,
                        target_alerts_per_s=rate,
                        alerts_per_s=(feed.alerts_sent - sent[0]) / cpu["seconds"],
                        tracks_per_s=(feed.tracks_sent - sent[1]) / cpu["seconds"],
                        frames_per_s=report["frames"] / seconds,
                        messages_per_s=report["messages"] / seconds,
                        mb_per_s=report["bytes"] / seconds / 1e6,
                        alert_p50_ms=percentile(report["alertMs"], 0.5),
                        alert_p99_ms=percentile(report["alertMs"], 0.99),
                        state_p50_ms=percentile(report["alertFromStateMs"], 0.5),
                        state_p99_ms=percentile(report["alertFromStateMs"], 0.99),
                        track_p50_ms=percentile(report["trackMs"], 0.5),
                        track_p99_ms=percentile(report["trackMs"], 0.99),
                        cpu=cpu,
                        dropped=sum(report["closed"].values()),
                        open=report["open"],
                        alert_samples=sum(report["alertMs"].values()),
                        seq_gaps=report["seqGaps"],
                        gc=pauses,
                        layout=layout,
                        types=dict(report["types"]),
                        type_bytes={
                            name: report["typeBytes"][name] / count
                            for name, count in report["typeSized"].items()
                            if count
                        },
                    )
                    rows.append(row)
                    print(
                        f"   {rate:g} alerts/s, {tracks:g} tracks/s: {row.frames_per_s:,.0f} frames/s, "
                        f"{row.messages_per_s:,.0f} messages/s ({row.mb_per_s:,.1f} MB/s, "
                        f"{row.bytes_per_message:,.0f} B/message); alert p50 "
                        f"{row.alert_p50_ms:.0f} / p99 {row.alert_p99_ms:.0f} ms (fan-out share p50 "
                        f"{row.state_p50_ms:.0f} / p99 {row.state_p99_ms:.0f}), track p50 "
                        f"{row.track_p50_ms:.0f} / p99 {row.track_p99_ms:.0f} ms; {_cpu(cpu)}; "
                        f"dropped {row.dropped}, {row.open} open, {row.alert_samples} alert samples, "
                        f"{row.seq_gaps} seq gaps, sent {row.alerts_per_s:.1f} alerts/s "
                        f"{row.tracks_per_s:.0f} tracks/s; types {row.types}; gc pauses {row.gc}"
                    )
        finally:
            await fleet.close()
    finally:
        stop(proc)
        if lifecycle is not None:
            stop(lifecycle)
    names = ["lifecycle", "gateway"] if layout.lifecycle_process else ["alerts"]
    troubles = kafka_troubles(kafka.topic_prefix, names)
    print(f"   Kafka, in the alerts processes' logs: {troubles}")
    for row in rows:
        row.kafka = troubles
    return rows


# -- report ---------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "–" if value != value else f"{value:,.0f}"


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _bare_table(bares: dict[int, Bare]) -> str:
    head = (
        "| clients | frames/s | MB/s | p50 / p99 ms | server CPU | clients CPU | others' CPU |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {b.clients:,} | {b.frames_per_s:,.0f} | {b.mb_per_s:,.1f} | {_ms(b.p50_ms)} / {_ms(b.p99_ms)} "
        f"| {_pct(b.cpu['server'])} | {_pct(b.cpu['clients'])} | {_pct(b.cpu['others'])} |"
        for b in bares.values()
    ]
    return head + "\n".join(lines)


def _rows_table(rows: list[Row]) -> str:
    head = (
        "| clients | alerts/s | tracks/s | frames/s | messages/s | MB/s | bytes/message "
        "| alert p50 / p99 ms | fan-out share p50 / p99 ms | track p50 / p99 ms | gateway CPU "
        "| lifecycle CPU | clients CPU | broker CPU | others' CPU | dropped | messages/s ÷ bare frames/s |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r.clients:,} | {r.alerts_per_s:.0f} | {r.tracks_per_s:.0f} | {r.frames_per_s:,.0f} "
        f"| {r.messages_per_s:,.0f} | {r.mb_per_s:,.1f} | {_ms(r.bytes_per_message)} "
        f"| {_ms(r.alert_p50_ms)} / {_ms(r.alert_p99_ms)} "
        f"| {_ms(r.state_p50_ms)} / {_ms(r.state_p99_ms)} | {_ms(r.track_p50_ms)} / {_ms(r.track_p99_ms)} "
        f"| {_pct(r.cpu['server'])} | {_pct(r.cpu['lifecycle']) if 'lifecycle' in r.cpu else 'in gateway'} "
        f"| {_pct(r.cpu['clients'])} | {_pct(r.cpu['broker'])} "
        f"| {_pct(r.cpu['others'])} | {r.dropped} | {r.ratio:.2f} |"
        for r in rows
    ]
    return head + "\n".join(lines)


def layouts(rows: list[Row]) -> dict[Layout, list[Row]]:
    """The rows of each layout, in the order they were measured."""
    found: dict[Layout, list[Row]] = {}
    for row in rows:
        found.setdefault(row.layout, []).append(row)
    return found


def sizes(rows: list[Row]) -> str:
    """Mean size of each message type over the rows with tracks, and the share of track_moved."""
    loaded = [r for r in rows if r.tracks_per_s > 0]
    means = []
    for name in ("track_moved", "track", "alert", "alert_update", "alert_changed"):
        values = [r.type_bytes[name] for r in loaded if name in r.type_bytes]
        if values:
            means.append(f"`{name}` {sum(values) / len(values):,.0f} B")
    moved = sum(r.types.get("track_moved", 0) for r in loaded)
    whole = sum(r.types.get("track", 0) for r in loaded)
    share = f"; {moved / (moved + whole):.0%} of track messages were `track_moved`" if moved else ""
    return f"Mean message size: {', '.join(means)}{share}." if means else ""


def table(rows: list[Row], bares: dict[int, Bare]) -> str:
    parts = []
    if bares:
        parts.append(
            "**Bare ceiling**: `websockets.broadcast()` of 300-byte frames from one Python process\n\n"
            + _bare_table(bares)
        )
    for number, (layout, of_layout) in enumerate(layouts(rows).items()):
        title = "Alerts service" if number == 0 else "For comparison, the old layout"
        parts.append(f"**{title}**: {layout.name}\n\n" + _rows_table(of_layout) + "\n\n" + sizes(of_layout))
    return "\n\n".join(parts)


def _find(rows: list[Row], clients: int, rate: float, with_tracks: bool) -> Row | None:
    return next(
        (
            r
            for r in rows
            if r.clients == clients and r.target_alerts_per_s == rate and (r.tracks_per_s > 0) == with_tracks
        ),
        None,
    )


def goals(rows: list[Row]) -> list[str]:
    """The goal verdicts for the first layout measured, then the old layout's for comparison."""
    groups = list(layouts(rows).items())
    if not groups:
        return []
    main_layout, main = groups[0]
    found = []
    loaded = [r for r in main if r.tracks_per_s > 0 and r.ratio == r.ratio]
    if loaded:
        best = max(loaded, key=lambda r: r.ratio)
        verdict = "Met" if best.ratio >= GOAL_RATIO else "Not met"
        found.append(
            f"- {verdict}: the gateway process delivers at least {GOAL_RATIO:.0%} of the bare-broadcast "
            f"ceiling (messages/s delivered ÷ frames/s of the bare broadcast to as many clients, same "
            f"run): best {best.ratio:.0%} ({best.clients:,} clients, {best.target_alerts_per_s:g} alerts/s "
            f"with tracks). In frames/s (each alerts frame carries many messages) the best is "
            f"{max(r.frames_per_s / r.ceiling for r in loaded):.0%}."
        )
    for layout, of_layout in groups:
        for (clients, rate), limit in GOAL_P99_MS.items():
            for with_tracks in (True, False):
                row = _find(of_layout, clients, rate, with_tracks)
                what = "with tracks flowing" if with_tracks else "alerts only (no tracks), for comparison"
                if layout != main_layout:
                    what += f"; old layout ({layout.name}), for comparison"
                if row is None:
                    if with_tracks and layout == main_layout:
                        found.append(f"- Not measured: {clients:,} clients at {rate} alerts/s.")
                    continue
                met = row.alert_p99_ms < limit and row.dropped == 0
                found.append(
                    f"- {'Met' if met else 'Not met'}: {clients:,} clients at {rate} alerts/s, {what}: alert "
                    f"p99 {_ms(row.alert_p99_ms)} ms end to end against a goal of {limit:.0f} ms (the "
                    f"fan-out's share, from the lifecycle's decision: p99 {_ms(row.state_p99_ms)} ms); "
                    f"{row.dropped} clients dropped."
                )
    return found


PREVIOUS_REVISION = "6c67dc4"
PREVIOUS_WHAT = (
    "the load written record by record as it fell due, without transactions, and each websocket's "
    "send buffer left to the kernel's autotuning"
)
PREVIOUS: dict[tuple[int, int, bool], dict[str, float | None]] = {
    (1000, 20, False): {"mb": 15.4, "alert_p99": 68, "share_p99": 57, "track_p99": None, "cpu": 0.46},
    (1000, 20, True): {"mb": 49.2, "alert_p99": 98, "share_p99": 87, "track_p99": 99, "cpu": 0.56},
    (5000, 10, False): {"mb": 37.9, "alert_p99": 195, "share_p99": 186, "track_p99": None, "cpu": 0.80},
    (5000, 10, True): {"mb": 197.0, "alert_p99": 329, "share_p99": 318, "track_p99": 303, "cpu": 0.63},
}
"""The goal rows of the previous full run (see PREVIOUS_WHAT; gateway CPU), as docs/benchmarks.md
gave them at that revision."""


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None or value != value else f"{value:,.{digits}f}"


def changes(rows: list[Row]) -> str:
    """The goal rows of this run beside those of the previous full run."""
    groups = list(layouts(rows).values())
    if not groups:
        return ""
    lines = []
    for (clients, rate, with_tracks), before in PREVIOUS.items():
        row = _find(groups[0], clients, rate, with_tracks)
        if row is None:
            continue
        what = f"{clients:,} clients, {rate} alerts/s" + (", tracks" if with_tracks else ", alerts only")
        lifecycle = row.cpu.get("lifecycle")
        cpu_now = _pct(row.cpu["server"]) + (f" + {_pct(lifecycle)}" if lifecycle is not None else "")
        lines.append(
            f"| {what} | {_num(before['mb'], 1)} → {row.mb_per_s:,.1f} "
            f"| {_num(before['alert_p99'])} → {_ms(row.alert_p99_ms)} "
            f"| {_num(before['share_p99'])} → {_ms(row.state_p99_ms)} "
            f"| {_num(before['track_p99'])} → {_ms(row.track_p99_ms)} "
            f"| {_pct(before['cpu'] or 0)} → {cpu_now} |"
        )
    if not lines:
        return ""
    return (
        "| row | MB/s | alert p99 ms | fan-out share p99 ms | track p99 ms | gateway CPU "
        "(this run: + lifecycle) |\n|---|---:|---:|---:|---:|---:|\n" + "\n".join(lines)
    )


# -- saved results --------------------------------------------------------------------------------


def _nan(value: Any) -> Any:
    return float("nan") if value is None else value


def save(path: Path, rows: list[Row], bares: dict[int, Bare], meta: dict[str, Any]) -> None:
    data = {"meta": meta, "bares": [asdict(b) for b in bares.values()], "rows": [asdict(r) for r in rows]}
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))


def load(path: Path) -> tuple[list[Row], dict[int, Bare], dict[str, Any]]:
    """Rows, bare ceilings and run details saved by :func:`save` (NaN was saved as null)."""
    data = orjson.loads(path.read_bytes())
    bares = {}
    for item in data["bares"]:
        bare = Bare(**{k: _nan(v) for k, v in item.items()})
        bares[bare.clients] = bare
    rows = []
    for item in data["rows"]:
        values = {k: _nan(v) for k, v in item.items()}
        values["layout"] = Layout(**item["layout"])
        rows.append(Row(**values))
    return rows, bares, data["meta"]


# -- main -----------------------------------------------------------------------------------------


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_clients() -> None:
    if (NODE_DIR / "node_modules" / "ws").is_dir():
        return
    if shutil.which("npm") is None:
        raise SystemExit("Node.js 18+ and npm are required for the websocket clients")
    print("==> npm ci (bench/node)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)


async def run(args: argparse.Namespace, bootstrap: str) -> tuple[list[Row], dict[int, Bare]]:
    rows: list[Row] = []
    bares: dict[int, Bare] = {}
    layout = Layout(compact=args.compact, lifecycle_process=args.lifecycle_process)
    old = Layout(compact=False, lifecycle_process=False)
    for clients in args.clients:
        bare = None
        if not args.skip_bare:
            print(f"-- {clients:,} clients: bare websockets.broadcast() ceiling")
            bare = bares[clients] = await measure_bare(clients, bootstrap, args)
        print(f"-- {clients:,} clients: alerts service ({layout.name})")
        warm = args.broker_warmup if clients == args.clients[0] else 0.0
        for row in await measure_alerts(clients, bootstrap, args, layout, warm):
            row.ceiling = bare.frames_per_s if bare is not None else float("nan")
            rows.append(row)
    if layout != old:
        for clients in args.old_layout_clients:
            bare = bares.get(clients)
            if bare is None and not args.skip_bare:
                print(f"-- {clients:,} clients: bare websockets.broadcast() ceiling")
                bare = bares[clients] = await measure_bare(clients, bootstrap, args)
            print(f"-- {clients:,} clients: alerts service ({old.name}), for comparison")
            for row in await measure_alerts(clients, bootstrap, args, old):
                row.ceiling = bare.frames_per_s if bare is not None else float("nan")
                rows.append(row)
    return rows, bares


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    bare = sub.add_parser("bare-server", help="(internal) the bare broadcast server")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--expect", type=int, required=True)
    bare.add_argument("--frame-bytes", type=int, default=BARE_FRAME_BYTES)
    parser.add_argument(
        "--quick", action="store_true", help="100 and 1,000 clients at 20 alerts/s, short windows"
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 20, 100], help="alerts per second")
    parser.add_argument("--tracks-per-s", type=float, default=TRACKS_PER_S, help="track updates per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds of load before measuring")
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="the clients offer permessage-deflate, as browsers do (the server compresses every "
        "frame for every client)",
    )
    parser.add_argument(
        "--broker-warmup",
        type=float,
        default=30.0,
        help="more seconds of load before the run's first measurement: the broker starts cold with "
        "the run, and its JVM compiles its hot paths (fetch, produce, transactions) in the first "
        "tens of seconds under load, using a core meanwhile",
    )
    parser.add_argument(
        "--bare-seconds", type=float, default=10.0, help="measured seconds of the bare ceiling"
    )
    parser.add_argument("--client-processes", type=int, default=2, help="Node.js client processes")
    parser.add_argument("--no-alerts-only", action="store_true", help="skip the alerts-only (no tracks) run")
    parser.add_argument(
        "--compact",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clients subscribe with compact_tracks and compact_alerts (track_moved and alert_changed "
        "messages); --no-compact: whole tracks and alerts",
    )
    parser.add_argument(
        "--lifecycle-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the lifecycle in a second alerts process, the clients' instance only fans out; "
        "--no-lifecycle-process: one process does both",
    )
    parser.add_argument(
        "--old-layout-clients",
        type=int,
        nargs="*",
        default=[],
        metavar="CLIENTS",
        help="after the matrix, measure these numbers of clients again with one process and whole "
        "tracks, for comparison",
    )
    parser.add_argument(
        "--server-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="extra settings for the alerts processes",
    )
    parser.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="run the alerts service from this checkout (e.g. a git worktree of an older revision)",
    )
    parser.add_argument(
        "--feed-every-s",
        type=float,
        default=FEED_EVERY_S,
        help="write the load in one transaction this often, as the correlator commits (0: each record "
        "on its own as it falls due, as runs before 5f85ddc did)",
    )
    parser.add_argument("--skip-bare", action="store_true", help="do not measure the bare ceiling")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--note", help="a remark about this run, printed below the analysis (kept in the results)"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: rewrite the docs section from results saved by an earlier run",
    )
    args = parser.parse_args()
    raise_file_limit()
    if args.command == "bare-server":
        import uvloop

        uvloop.run(bare_server(args.port, args.expect, args.frame_bytes))
        return 0
    if args.render is not None:
        rows, bares, meta = load(args.render)
        if args.note is not None:
            meta["note"] = args.note
            save(args.render, rows, bares, meta)
        report(rows, bares, meta, write=not args.no_write)
        return 0
    if args.quick:
        args.clients, args.rates, args.seconds, args.warmup, args.bare_seconds = (
            [100, 1000],
            [20],
            8.0,
            4.0,
            5.0,
        )
    OUT.mkdir(parents=True, exist_ok=True)
    install_clients()
    bootstrap, cluster = broker()
    started = time.monotonic()
    meta = {
        "command": command_line(sys.argv[1:]),
        "revision": git_revision(),
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "client_processes": args.client_processes,
        "tracks_per_s": args.tracks_per_s,
        "feed_every_s": args.feed_every_s,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "broker_warmup": args.broker_warmup,
        "note": args.note,
    }
    try:
        rows, bares = asyncio.run(run(args, bootstrap))
    finally:
        if cluster is not None:
            cluster.stop()
    meta["minutes"] = round((time.monotonic() - started) / 60, 1)
    save(RESULTS_JSON, rows, bares, meta)
    print(f"saved {RESULTS_JSON.relative_to(ROOT)}")
    report(rows, bares, meta, write=not args.no_write)
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


def command_line(argv: Sequence[str]) -> str:
    """The command that measured the run, without the options that only change the report."""
    shown, skip = ["python bench/fanout.py"], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--note":
            skip = True
        elif item != "--no-write" and not item.startswith("--note="):
            shown.append(item)
    return " ".join(shown)


def report(rows: list[Row], bares: dict[int, Bare], meta: dict[str, Any], *, write: bool) -> None:
    print(table(rows, bares))
    found = goals(rows)
    print("\n".join(found))
    if write:
        write_section("fanout", markdown(rows, bares, found, meta))
        print("updated docs/benchmarks.md")


def markdown(rows: list[Row], bares: dict[int, Bare], found: list[str], meta: dict[str, Any]) -> str:
    main_layout = next(iter(layouts(rows)), Layout())
    if main_layout.lifecycle_process:
        layout = (
            "**Layout.** The clients connect to a *gateway*: a `python -m services.alerts` with "
            "`LINDERO_ALERTS_RUN_LIFECYCLE=false` and `LINDERO_ALERTS_RUN_WEBHOOKS=false`, which only "
            "reads `alert.state`, `tracks` and dispatches from Kafka and fans them out. A second instance "
            "with `LINDERO_ALERTS_RUN_LIFECYCLE=true` (its own port, no clients) runs the lifecycle: it "
            "turns each alert into an `alert.state` record in a Kafka transaction (at once when the "
            "partition's last transaction is 0.05 s old, else when it is; the partitions' transactions "
            "side by side, the input read meanwhile). This is the production layout for heavy "
            "fan-out: the lifecycle no longer waits for a loop busy with websockets."
        )
    else:
        layout = (
            "**Layout.** One `python -m services.alerts` runs the lifecycle (each alert becomes an "
            "`alert.state` record in a Kafka transaction) and fans the states and tracks out to the "
            "clients, on one event loop."
        )
    if main_layout.compact:
        layout += (
            ' The clients subscribe with `"compact_tracks": true, "compact_alerts": true`: a track\'s '
            "movement arrives as a small `track_moved` message (track id and an array of numbers: "
            "time in epoch seconds, rounded position, velocity, uncertainty, class probabilities when "
            "they changed), the whole `track` only when anything else changed or every 60 s; a "
            "revision of an alert the client holds arrives as an `alert_changed` message with the "
            "changed fields only (schemas.api.apply_alert_changes)."
        )
    else:
        layout += (
            " The clients get every track update as a whole `track` message, every alert revision "
            "as a whole `alert_update`."
        )
    layout = _wrap(layout)
    compared = changes(rows)
    previous = (
        _wrap(
            f"**What changed since the previous full run** (revision {PREVIOUS_REVISION}: {PREVIOUS_WHAT}; "
            "the machine's other load differs between runs"
            + (
                ", so the old layout measured again in this run, below the main table, is the fairer "
                "comparison):"
                if len(layouts(rows)) > 1
                else "):"
            )
        )
        + "\n\n"
        + compared
        if compared
        else ""
    )
    command = command_line(meta["command"].split()[2:])
    intro = _wrap(
        f"`{command}`, revision {meta['revision']}, started {meta['started']}, "
        f"{meta.get('minutes', '?')} minutes. Websocket clients (Node.js, the `ws` package, in "
        f"{meta['client_processes']} processes) are all operators of centre {CENTRE} and see everything "
        f"of region {REGION}. This process feeds Kafka the way the correlator does: `Alert` records "
        "on `alerts` (a third new alerts, the rest revisions of recent ones, `updated_at` = the time "
        f"of sending) and `Track` records on `tracks` (300 tracks, {meta['tracks_per_s']:g} updates/s "
        f"in all){_feed_text(meta.get('feed_every_s', 0.0))}. Each rate is measured for "
        f"{meta['seconds']:g} s after {meta['warmup']:g} s of load, "
        "one after the other on the same connections"
        + (
            f" (the first after {meta['warmup'] + meta['broker_warmup']:g} s: the broker starts cold "
            "with the run, and its JVM compiles its hot paths under the first load)"
            if meta.get("broker_warmup")
            else ""
        )
        + "; for each number of clients the first row is "
        "the goal's alert rate alone (no tracks), for comparison. Everything (broker, alerts "
        "processes, clients, this load generator) shares one machine of 2 cores that other people's "
        "work also uses: expect noise of tens of percent between runs, more where others' CPU is high."
    )
    return f"""## Websocket fan-out (`bench/fanout.py`)

{intro}

{layout}

{previous}

- **frames/s, messages/s, MB/s**: what all clients together received (messages counted from the
  frames' `seq`). A client would get all of them: offered load = clients × (alerts/s + tracks/s).
  **bytes/message**: MB/s ÷ messages/s (frame headers included).
- **alert p50 / p99**: per alert message, client receive time − the revision's `updated_at`, so
  it includes Kafka, the lifecycle's transaction (committed every 0.05 s) and the fan-out;
  **fan-out share**: receive time − the state's `updated_at` (the lifecycle's decision), i.e.
  transaction commit, the gateway's read and the fan-out. **track**: receive time − the track's
  time (`track` and `track_moved` alike). Latencies come from ~{SAMPLED_CLIENTS} clients spread
  over the processes that parse every frame.
- **CPU** in cores (100% = one core): the gateway (the process the clients use), the lifecycle
  process, the client processes, the broker; **others' CPU** is the rest of the machine apart
  from this load generator: whatever else ran on it meanwhile (a high value means the row's
  numbers are pessimistic).
- **messages/s ÷ bare frames/s**: messages delivered against the frames per second the bare
  broadcast delivered to as many clients in the same run (one message per bare frame).

{table(rows, bares)}

**Goals**

{chr(10).join(found)}

{analysis(rows, bares)}
{f"{chr(10)}Note on this run: {meta['note']}{chr(10)}" if meta.get("note") else ""}"""


def _range(values: Sequence[float], percent: bool = False) -> str:
    """``low–high`` of some values (percent of a core, or whole numbers)."""
    shown = [v for v in values if v == v]
    if not shown:
        return "–"
    low, high = min(shown), max(shown)
    if percent:
        return _pct(low) if f"{low:.0%}" == f"{high:.0%}" else f"{low:.0%}–{high:.0%}"
    return _ms(low) if f"{low:,.0f}" == f"{high:,.0f}" else f"{low:,.0f}–{high:,.0f}"


def _mean_size(rows: list[Row], name: str) -> float:
    values = [r.type_bytes[name] for r in rows if name in r.type_bytes]
    return sum(values) / len(values) if values else float("nan")


def _track_bytes(rows: list[Row]) -> float:
    """Mean bytes of a track message (whole or moved) as the clients got them."""
    moved = sum(r.types.get("track_moved", 0) for r in rows)
    whole = sum(r.types.get("track", 0) for r in rows)
    if not moved + whole:
        return float("nan")
    mean = whole * _mean_size(rows, "track")
    if moved:
        mean += moved * _mean_size(rows, "track_moved")
    return mean / (moved + whole)


def _alert_bytes(rows: list[Row]) -> float:
    """Mean bytes of an alert message (new, whole revision or changed fields) as the clients got them."""
    names = ("alert", "alert_update", "alert_changed")
    counts = {name: sum(r.types.get(name, 0) for r in rows) for name in names}
    total = sum(counts.values())
    if not total:
        return float("nan")
    return sum(count * _mean_size(rows, name) for name, count in counts.items() if count) / total


def _where(rows: list[Row]) -> str:
    """``100 clients at 10, 20 alerts/s; 1,000 clients at 10 alerts/s``."""
    rates: dict[int, list[str]] = {}
    for row in rows:
        rates.setdefault(row.clients, []).append(f"{row.target_alerts_per_s:g}")
    return "; ".join(f"{n:,} clients at {', '.join(r)} alerts/s" for n, r in rates.items()) or "none"


def _wrap(text: str) -> str:
    """A paragraph or a ``- `` bullet wrapped at 100 characters."""
    indent = "  " if text.startswith("- ") else ""
    return textwrap.fill(text, 100, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def analysis(rows: list[Row], bares: dict[int, Bare]) -> str:
    """The explanation below the tables, with this run's numbers filled in."""
    groups = list(layouts(rows).items())
    if not groups:
        return ""
    main = groups[0][1]
    old = groups[1][1] if len(groups) > 1 else []
    loaded = [r for r in main if r.tracks_per_s > 0]
    parts = ["**What limits it**", ""]

    machine, others = (
        _range([r.cpu["machine"] for r in rows], True),
        _range([r.cpu["others"] for r in rows], True),
    )
    gateway = _range([r.cpu["server"] for r in main], True)
    if max((r.cpu["others"] for r in rows if r.cpu["others"] == r.cpu["others"]), default=1.0) < QUIET_OTHERS:
        parts.append(
            f"- *The machine, in this run,* ran nothing else of note (others' CPU {others}); the "
            f"benchmark's own processes (broker, gateway, lifecycle, clients, load generator) kept it "
            f"{machine} of 200% busy, and the gateway got {gateway} of a core."
        )
    else:
        parts.append(
            f"- *The machine, in this run.* It was busy in nearly every row (machine {machine} of "
            f"200%), and other work took {others} of it, so each process got about a fair share of the "
            f"two cores: the gateway {gateway} of a core. A process that gets a fraction of a core "
            "falls behind sooner, so absolute latencies here are pessimistic and differ a lot from run "
            "to run"
            + (
                "; the old layout measured in the same run, under the same kind of load, is the fair "
                "comparison."
                if old
                else "."
            )
        )

    moved, whole = _mean_size(main, "track_moved"), _mean_size(main, "track")
    alert = _alert_bytes(loaded)
    track = _track_bytes(loaded)
    if moved == moved:
        need = {n: n * (TRACKS_PER_S * track + 10 * alert) / 1e6 for n in (1000, 5000)}
        per_message = _range([r.bytes_per_message for r in loaded])
        old_per_message = _range([r.bytes_per_message for r in old if r.tracks_per_s > 0])
        versus = f" against {old_per_message} B in the old layout" if old else ""
        parts.append(
            f"- *Bytes, still.* Compact tracks make a track update {moved:,.0f} B on the wire instead "
            f"of {whole:,.0f} B ({moved / whole:.0%}); with the whole track every 60 s per track, a "
            f"track message is {track:,.0f} B on average (`track_moved` is a positional array of "
            "numbers; the rest is the whole tracks every 60 s). Per "
            f"message the rows with tracks carry {per_message} B"
            f"{versus}. With {TRACKS_PER_S:g} track updates/s and 10 alerts/s, 1,000 clients still "
            f"need ~{need[1000]:,.0f} MB/s and 5,000 clients ~{need[5000]:,.0f} MB/s."
        )
    kept = [r for r in loaded if r.messages_per_s >= 0.95 * r.offered_per_s]
    behind = [r for r in loaded if r not in kept]
    parts.append(
        f"- *Keeping up.* With tracks flowing, the gateway delivered at least 95% of the offered "
        f"messages at {_where(kept)}; it fell behind at {_where(behind)}. A client that falls "
        "behind gets ever larger frames and ever older messages, and alerts wait behind the tracks "
        "in the same frames: under overload the fan-out share of an alert is about the track "
        "latency beside it."
    )
    if old:
        before = [r.alert_p50_ms - r.state_p50_ms for r in main]
        before_old = [r.alert_p50_ms - r.state_p50_ms for r in old]
        lifecycle = [r.cpu.get("lifecycle", float("nan")) for r in main]
        parts.append(
            "- *The lifecycle is off the fan-out's path.* The time before the lifecycle's decision "
            f"(alert p50 − fan-out share p50) was {_range(before)} ms with the lifecycle in its own "
            f"process (which used {_range(lifecycle, True)} of a core), against {_range(before_old)} "
            "ms in the old layout in this same run, where the lifecycle waited for a loop busy with "
            "websockets. What is left of the alert latency is the gateway's."
        )
    quiet = _find(main, 100, 20, False) or _find(main, 100, 20, True)
    quiet_text = (
        f" In this run, {quiet.clients:,} clients at {quiet.target_alerts_per_s:g} alerts/s"
        f"{' with tracks' if quiet.tracks_per_s else ', alerts only'}: p50 {_ms(quiet.alert_p50_ms)} / "
        f"p99 {_ms(quiet.alert_p99_ms)} ms."
        if quiet
        else ""
    )
    parts.append(
        "- *A floor under the latency goals.* Even with few clients and no tracks, an alert crosses "
        "Kafka twice (`alerts` → lifecycle, `alert.state` → gateway, read committed), goes through "
        "a lifecycle transaction (nobody can read the state before it commits; at most one per "
        "partition every `LINDERO_ALERTS_COMMIT_INTERVAL_S` = 0.05 s, so an alert waits up to that "
        "long behind its partition's previous one) and waits for the client's next frame (a gap of "
        f"clients ÷ `LINDERO_ALERTS_FRAME_BUDGET_PER_S`, between 20 and 200 ms: {_gap_ms(1000):.0f} ms "
        f"at 1,000 clients, {_gap_ms(5000):.0f} ms at 5,000).{quiet_text} {PREVIOUS_FLOOR} These two "
        f"waits alone add up to {50 + _gap_ms(1000):.0f} ms at 1,000 clients and "
        f"{50 + _gap_ms(5000):.0f} ms at 5,000 at worst, before the Kafka round trips and the "
        "transaction commit, and before any process waits for a core on this shared 2-core machine."
    )
    bare_us = min(
        (b.cpu["server"] / b.frames_per_s * 1e6 for b in bares.values() if b.frames_per_s), default=0
    )
    busiest = max(main, key=lambda r: r.frames_per_s, default=None)
    alerts_us = busiest.cpu["server"] / busiest.frames_per_s * 1e6 if busiest and busiest.frames_per_s else 0
    parts.append(
        f"- *Per frame* the bare broadcast spent {bare_us:.0f} µs of CPU, the gateway {alerts_us:.0f} µs "
        "at its highest frame rate (larger frames; one flusher writes them straight to the "
        "sockets through the `lindero.frames` extension of services/alerts/wsprotocol.py). Before "
        "that (f9dd200: a relay task and an awaited ASGI send per client per frame), py-spy of the "
        "gateway at 5,000 clients with tracks found 35% of its time in the socket write (the "
        "kernel's loopback TCP work for both ends) and about half in the relay tasks and the "
        "Starlette/uvicorn/websockets send path: 84 µs a frame then, against 37 µs after the change "
        "in the same (busy) conditions."
    )
    parts.append(
        f"- *The clients* used {_range([r.cpu['clients'] for r in main], True)} of a core, about as "
        "much as the gateway: on this machine the client side is part of the ceiling (the bare "
        "broadcast is bounded by what the clients take, too)."
    )
    return "\n".join(_wrap(part) for part in parts)


def _gap_ms(clients: int) -> float:
    """The hub's gap between two frames to one client at ``clients`` clients, default settings."""
    settings = AlertsSettings.model_fields
    low, high = settings["flush_interval_s"].default, settings["max_flush_interval_s"].default
    return 1000 * min(high, max(low, clients / settings["frame_budget_per_s"].default))


QUIET_OTHERS = 0.2
"""Other work below this share of a core in every row: the run had the machine to itself."""
PREVIOUS_FLOOR = "At revision f9dd200 (another run, others' CPU 95%): p50 73 / p99 243 ms."


if __name__ == "__main__":
    raise SystemExit(main())
