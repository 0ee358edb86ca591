"""Websocket fan-out: how many frames and messages one alerts process delivers, and how late.

    .venv/bin/python bench/fanout.py [--quick] [--clients 100 1000 5000] [--rates 10 20 100]
        [--tracks-per-s 300] [--seconds 20] [--warmup 6] [--client-processes 2] [--no-write]

For each number of clients (all operators of centre cc-cucuta, region co-ve-cucuta):

1. **Bare ceiling.** A minimal Python ``websockets`` server (``python bench/fanout.py
   bare-server``) broadcasts ~300-byte text frames with ``websockets.broadcast()`` to the same
   clients as fast as they take them (it waits while a socket has more than 64 KiB queued, so
   that what is counted was delivered, not buffered). Frames/s are counted by the clients.
2. **Alerts service.** A fresh ``python -m services.alerts`` (fresh topic prefix, config
   ``config/demo.yaml``); the clients connect and say hello with a token, then this process
   feeds load the way production does: ``Alert`` records on ``alerts`` (key = alert id, a
   third new alerts, two thirds revisions of recent ones, ``updated_at`` = now) at 10, 20 and
   100 alerts/s, and ``Track`` records on ``tracks`` (300 tracks, each updated about once a
   second) at the same time. The lifecycle in the alerts process turns each alert into an
   ``alert.state`` record in a Kafka transaction; the gateway part reads it back and fans it
   out. Each rate runs ``--warmup`` seconds, then is measured for ``--seconds``.

The clients are Node.js processes (``bench/node/clients.mjs``, the ``ws`` package, installed by
``npm ci``): every client counts frames, bytes and messages (from the frames' ``seq``); about
40 of them (spread over the processes) parse every frame and record, per message, the latency
= receive wall time - the alert revision's ``updated_at`` (alerts: the end-to-end path through
Kafka and the lifecycle) or - the track's ``time`` (tracks). For alerts, the latency from the
lifecycle's decision (the state's ``updated_at``) is reported too: the fan-out's own share.

Everything runs on this machine: broker, alerts process, load generator (this process) and the
clients share its cores, so the CPU columns say who used what. The results replace the
"fanout" section of docs/benchmarks.md.
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
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr

from bench._common import OUT, ROOT, broker, cpu_seconds, git_revision, write_section
from schemas.topics import ALERTS, TRACKS
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


# -- load -----------------------------------------------------------------------------------------


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat()


class Feed:
    """Writes alerts and tracks to Kafka at given rates, as the correlator would."""

    def __init__(self, kafka: KafkaSettings, seed: int = 7) -> None:
        from aiokafka import AIOKafkaProducer

        self.kafka = kafka
        self.rng = random.Random(seed)
        self.producer = AIOKafkaProducer(acks="all", linger_ms=2, **kafka.client_options())
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
        """Send at the given rates for ``seconds`` (records are spread evenly over time)."""
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


# -- clients --------------------------------------------------------------------------------------


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
        self, url: str, count: int, tokens: list[str], processes: int, *, deflate: bool = False
    ) -> None:
        self.url = url
        self.count = count
        self.tokens = tokens
        self.processes = max(1, min(processes, count))
        self.deflate = deflate
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
        for key in ("closed", "types"):
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


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (to count the broker's CPU), if it can be found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine so far."""
    with Path("/proc/stat").open() as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Window:
    """CPU (as a fraction of one core) and wall time of a measurement window: the server, the
    client processes, this process (the load generator), the broker, and everything else."""

    def __init__(self, server: int, clients: Sequence[int], broker: int | None) -> None:
        self.pids = [server, *clients] + ([broker] if broker else [])
        self.started = time.monotonic()
        self.cpu = [cpu_seconds(pid) for pid in self.pids]
        self.own = own_cpu_seconds()
        self.machine = machine_busy()
        self.clients = len(clients)

    def close(self) -> dict[str, float]:
        seconds = time.monotonic() - self.started
        used = [
            (cpu_seconds(pid) - before) / seconds for pid, before in zip(self.pids, self.cpu, strict=True)
        ]
        busy, total = machine_busy()
        machine = (busy - self.machine[0]) / max(1, total - self.machine[1]) * (os.cpu_count() or 1)
        found = {
            "seconds": seconds,
            "server": used[0],
            "clients": sum(used[1 : 1 + self.clients]),
            "feed": (own_cpu_seconds() - self.own) / seconds,
            "broker": sum(used[1 + self.clients :]),
            "machine": machine,
        }
        mine = found["server"] + found["clients"] + found["feed"] + found["broker"]
        found["others"] = max(0.0, machine - mine)
        return found


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
    bootstrap: str, prefix: str, extra_env: dict[str, str], root: Path = ROOT
) -> tuple[subprocess.Popen[bytes], int]:
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
    log = (OUT / "fanout-alerts.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.alerts"], env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT
    )
    wait_ready(proc, f"http://127.0.0.1:{port}/readyz", "the alerts service")
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
    ceiling: float = float("nan")

    @property
    def ratio(self) -> float:
        return self.messages_per_s / self.ceiling if self.ceiling else float("nan")

    @property
    def offered_per_s(self) -> float:
        return self.clients * (self.alerts_per_s + self.tracks_per_s)


def _cpu(cpu: dict[str, float]) -> str:
    return (
        f"CPU server {cpu['server']:.0%} clients {cpu['clients']:.0%} load generator {cpu['feed']:.0%} "
        f"broker {cpu['broker']:.0%} others {cpu['others']:.0%} (machine {cpu['machine']:.0%})"
    )


async def measure_bare(clients: int, bootstrap: str, args: argparse.Namespace) -> Bare:
    proc, port = start_bare(clients)
    fleet = Fleet(f"ws://127.0.0.1:{port}/", clients, [], args.client_processes)
    try:
        connected = await fleet.start()
        await asyncio.sleep(3.0)
        await fleet.mark()
        window = Window(proc.pid, [p.pid for p in fleet.procs], listening_pid(_port(bootstrap)))
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


async def measure_alerts(clients: int, bootstrap: str, args: argparse.Namespace) -> list[Row]:
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    auth = TokenSettings(secret=SecretStr(SECRET))
    tokens = [
        issue(auth, subject=f"op-bench-{i}", role="operator", centre=CENTRE, country="CO")
        for i in range(min(clients, 200))
    ]
    extra = dict(item.split("=", 1) for item in args.server_env)
    proc, port = start_alerts(bootstrap, kafka.topic_prefix, extra, args.server_root)
    rows = []
    broker_pid = listening_pid(_port(bootstrap))
    try:
        fleet = Fleet(f"ws://127.0.0.1:{port}/v1/stream", clients, tokens, args.client_processes)
        try:
            connected = await fleet.start()
            print(f"   {connected['open']:,} clients connected ({connected['failed']} failed)")
            async with Feed(kafka) as feed:
                for rate, tracks in plan(clients, args):
                    feeding = asyncio.create_task(feed.run(rate, tracks, args.warmup + args.seconds))
                    await asyncio.sleep(args.warmup)
                    await fleet.mark()
                    window = Window(proc.pid, [p.pid for p in fleet.procs], broker_pid)
                    sent = (feed.alerts_sent, feed.tracks_sent)
                    await asyncio.sleep(args.seconds)
                    report = await fleet.report()
                    cpu = window.close()
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
                    )
                    rows.append(row)
                    print(
                        f"   {rate:g} alerts/s, {tracks:g} tracks/s: {row.frames_per_s:,.0f} frames/s, "
                        f"{row.messages_per_s:,.0f} messages/s ({row.mb_per_s:,.1f} MB/s); alert p50 "
                        f"{row.alert_p50_ms:.0f} / p99 {row.alert_p99_ms:.0f} ms (fan-out share p50 "
                        f"{row.state_p50_ms:.0f} / p99 {row.state_p99_ms:.0f}), track p50 "
                        f"{row.track_p50_ms:.0f} / p99 {row.track_p99_ms:.0f} ms; {_cpu(cpu)}; "
                        f"dropped {row.dropped}, {row.open} open, {row.alert_samples} alert samples, "
                        f"{row.seq_gaps} seq gaps, sent {row.alerts_per_s:.1f} alerts/s "
                        f"{row.tracks_per_s:.0f} tracks/s"
                    )
        finally:
            await fleet.close()
    finally:
        stop(proc)
    return rows


# -- report ---------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "–" if value != value else f"{value:,.0f}"


def _pct(value: float) -> str:
    return f"{value:.0%}"


def table(rows: list[Row], bares: dict[int, Bare]) -> str:
    bare_head = (
        "| clients | frames/s | MB/s | p50 / p99 ms | server CPU | clients CPU | others' CPU |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    bare_lines = [
        f"| {b.clients:,} | {b.frames_per_s:,.0f} | {b.mb_per_s:,.1f} | {_ms(b.p50_ms)} / {_ms(b.p99_ms)} "
        f"| {_pct(b.cpu['server'])} | {_pct(b.cpu['clients'])} | {_pct(b.cpu['others'])} |"
        for b in bares.values()
    ]
    head = (
        "| clients | alerts/s | tracks/s | frames/s | messages/s | MB/s | alert p50 / p99 ms "
        "| fan-out share p50 / p99 ms | track p50 / p99 ms | server CPU | clients CPU | broker CPU "
        "| others' CPU | dropped | messages/s ÷ bare frames/s |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r.clients:,} | {r.alerts_per_s:.0f} | {r.tracks_per_s:.0f} | {r.frames_per_s:,.0f} "
        f"| {r.messages_per_s:,.0f} | {r.mb_per_s:,.1f} | {_ms(r.alert_p50_ms)} / {_ms(r.alert_p99_ms)} "
        f"| {_ms(r.state_p50_ms)} / {_ms(r.state_p99_ms)} | {_ms(r.track_p50_ms)} / {_ms(r.track_p99_ms)} "
        f"| {_pct(r.cpu['server'])} | {_pct(r.cpu['clients'])} | {_pct(r.cpu['broker'])} "
        f"| {_pct(r.cpu['others'])} | {r.dropped} | {r.ratio:.2f} |"
        for r in rows
    ]
    parts = []
    if bares:
        parts.append(
            "**Bare ceiling**: `websockets.broadcast()` of 300-byte frames from one Python process\n\n"
            + bare_head
            + "\n".join(bare_lines)
        )
    parts.append("**Alerts service**: one `python -m services.alerts` process\n\n" + head + "\n".join(lines))
    return "\n\n".join(parts)


def goals(rows: list[Row]) -> list[str]:
    found = []
    loaded = [r for r in rows if r.tracks_per_s > 0 and r.ratio == r.ratio]
    if loaded:
        best = max(loaded, key=lambda r: r.ratio)
        verdict = "Met" if best.ratio >= GOAL_RATIO else "Not met"
        found.append(
            f"- {verdict}: one alerts process delivers at least {GOAL_RATIO:.0%} of the bare-broadcast "
            f"ceiling (messages/s delivered ÷ frames/s of the bare broadcast to as many clients, same "
            f"run): best {best.ratio:.0%} ({best.clients:,} clients, {best.target_alerts_per_s:g} alerts/s "
            f"with tracks). In frames/s (each alerts frame carries many messages) the best is "
            f"{max(r.frames_per_s / r.ceiling for r in loaded):.0%}."
        )
    for (clients, rate), limit in GOAL_P99_MS.items():
        for with_tracks in (True, False):
            row = next(
                (
                    r
                    for r in rows
                    if r.clients == clients
                    and r.target_alerts_per_s == rate
                    and (r.tracks_per_s > 0) == with_tracks
                ),
                None,
            )
            what = "with tracks flowing" if with_tracks else "alerts only (no tracks), for comparison"
            if row is None:
                if with_tracks:
                    found.append(f"- Not measured: {clients:,} clients at {rate} alerts/s.")
                continue
            met = row.alert_p99_ms < limit and row.dropped == 0
            found.append(
                f"- {'Met' if met else 'Not met'}: {clients:,} clients at {rate} alerts/s, {what}: alert p99 "
                f"{_ms(row.alert_p99_ms)} ms end to end against a goal of {limit:.0f} ms (the fan-out's "
                f"share, from the lifecycle's decision: p99 {_ms(row.state_p99_ms)} ms); "
                f"{row.dropped} clients dropped."
            )
    return found


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
    for clients in args.clients:
        bare = None
        if not args.skip_bare:
            print(f"-- {clients:,} clients: bare websockets.broadcast() ceiling")
            bare = bares[clients] = await measure_bare(clients, bootstrap, args)
        print(f"-- {clients:,} clients: alerts service")
        for row in await measure_alerts(clients, bootstrap, args):
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
        "--bare-seconds", type=float, default=10.0, help="measured seconds of the bare ceiling"
    )
    parser.add_argument("--client-processes", type=int, default=2, help="Node.js client processes")
    parser.add_argument("--no-alerts-only", action="store_true", help="skip the alerts-only (no tracks) run")
    parser.add_argument(
        "--server-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="extra settings for the alerts process",
    )
    parser.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="run the alerts service from this checkout (e.g. a git worktree of an older revision)",
    )
    parser.add_argument("--skip-bare", action="store_true", help="do not measure the bare ceiling")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    raise_file_limit()
    if args.command == "bare-server":
        import uvloop

        uvloop.run(bare_server(args.port, args.expect, args.frame_bytes))
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
    try:
        rows, bares = asyncio.run(run(args, bootstrap))
    finally:
        if cluster is not None:
            cluster.stop()
    print(table(rows, bares))
    found = goals(rows)
    print("\n".join(found))
    print(f"({time.monotonic() - started:.0f} s)")
    if not args.no_write:
        write_section("fanout", markdown(rows, bares, found, args))
        print("updated docs/benchmarks.md")
    return 0


def markdown(rows: list[Row], bares: dict[int, Bare], found: list[str], args: argparse.Namespace) -> str:
    command = "python bench/fanout.py" + (" --quick" if args.quick else "")
    return f"""## Websocket fan-out (`bench/fanout.py`)

`{command}`, revision {git_revision()}. Websocket clients (Node.js, the `ws` package, in
{args.client_processes} processes) are all operators of centre {CENTRE} and see everything of region
{REGION}. This process feeds Kafka the way the correlator does: `Alert` records on `alerts`
(a third new alerts, the rest revisions of recent ones, `updated_at` = the time of sending) and
`Track` records on `tracks` (300 tracks, {args.tracks_per_s:g} updates/s in all); the alerts
service's lifecycle turns each alert into an `alert.state` record in a Kafka transaction and its
gateway fans that out. Each rate is measured for {args.seconds:g} s after {args.warmup:g} s of
load, one after the other on the same connections; for each number of clients the first row is the
goal's alert rate alone (no tracks), for comparison.

- **frames/s, messages/s, MB/s**: what all clients together received (messages counted from the
  frames' `seq`). A client would get all of them: offered load = clients × (alerts/s + tracks/s).
- **alert p50 / p99**: per alert message, client receive time − the revision's `updated_at`, so
  it includes Kafka, the lifecycle's transaction (committed every 0.1 s) and the fan-out;
  **fan-out share**: receive time − the state's `updated_at` (the lifecycle's decision), i.e.
  transaction commit, the gateway's read and the fan-out. **track**: receive time − track time.
  Latencies come from ~{SAMPLED_CLIENTS} clients spread over the processes that parse every frame.
- **CPU** in cores (100% = one core): the alerts process, the client processes, the broker;
  **others' CPU** is the rest of the machine apart from this load generator: whatever else ran
  on it meanwhile (the machine is shared; a high value means the row's numbers are pessimistic).
- **messages/s ÷ bare frames/s**: messages delivered against the frames per second the bare
  broadcast delivered to as many clients in the same run (one message per bare frame).

{table(rows, bares)}

**Goals**

{chr(10).join(found)}

{analysis(rows, bares)}
"""


def analysis(rows: list[Row], bares: dict[int, Bare]) -> str:
    """The explanation below the tables, with this run's cost per frame filled in."""
    bare_us = min(
        (b.cpu["server"] / b.frames_per_s * 1e6 for b in bares.values() if b.frames_per_s), default=0
    )
    busiest = max(rows, key=lambda r: r.frames_per_s, default=None)
    alerts_us = busiest.cpu["server"] / busiest.frames_per_s * 1e6 if busiest and busiest.frames_per_s else 0
    return ANALYSIS.replace("{bare_us}", f"{bare_us:.0f}").replace("{alerts_us}", f"{alerts_us:.0f}")


ANALYSIS = """**What limits it** (profiles with py-spy of the alerts process at 1,000 clients)

- *Bytes, not frames.* Coalescing works: a client gets one frame per gap (20 ms to 200 ms as
  clients grow) whatever the message rate. But every track update goes to every client: with a
  few hundred track updates per second, 1,000 clients need ~150 MB/s of JSON (a track message
  is ~750 bytes, an alert ~1.5 kB), and 5,000 clients ~800 MB/s. On two cores shared by the
  broker, the clients and the server, the alerts process cannot move that through Python,
  uvicorn and loopback TCP, so it falls behind; a client that falls behind gets ever larger frames
  (hundreds of kB, then MB) and ever older messages; one 20,000 messages behind would be dropped.
- *Per frame*, about 40% of the alerts process's time is the socket write itself
  (`transport.write`, i.e. the kernel's loopback TCP work for both ends), about a quarter the
  ASGI/uvicorn/websockets send path and the rest the hub (frame assembly, timers, metrics).
  In this run the bare broadcast spent {bare_us} µs of CPU a frame, the alerts process {alerts_us} µs
  (at its highest frame rate; its frames are larger and each goes through ASGI). Rewriting the hub
  (frames shared by the clients at one position, one timer per frame, batched counters, slots
  per phase, gaps stretched under overload) did not change the cost per frame measurably on
  this shared machine, so it was not kept.
- *The lifecycle shares the event loop.* Alert latency end to end is mostly the lifecycle:
  it commits one Kafka transaction per partition, one after the other, each waiting for several
  broker round trips, and when the loop is busy with fan-out each of those waits for the loop.
  At high fan-out load alerts arrive seconds late while tracks (which skip the lifecycle) are
  far fresher; when the loop is saturated long enough the lifecycle's consumer-group heartbeat
  can expire and alerts stop until it rejoins. Running the lifecycle in its own process
  (`LINDERO_ALERTS_RUN_LIFECYCLE=false` on gateway instances, one lifecycle instance) or
  committing the partitions' transactions concurrently would take it off the fan-out's path.
- *The clients* use about as much CPU as the server: on this machine the client side is part
  of the ceiling (the bare broadcast is bounded by what the clients take, too)."""


if __name__ == "__main__":
    raise SystemExit(main())
