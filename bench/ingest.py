"""Ingest throughput and latency against a real Kafka broker (acks=all, idempotent producer).

    .venv/bin/python bench/ingest.py [--duration 15] [--connections 64]

Starts the broker (or uses LINDERO_KAFKA_BOOTSTRAP) and one ingest process, then drives it with
`wrk` (a C load generator, so that the client is not the bottleneck) in three scenarios: single
posts, batches of 100 and batches of 1,000 events. Every request carries fresh event ids, so
nothing is a duplicate. Prints events/s, request latency percentiles, the CPU each process used,
and checks that Kafka's end offsets grew by exactly the number of events accepted. The results
replace the "ingest" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, ROOT, broker, cpu_seconds, git_revision, write_section
from schemas.topics import SENSOR_EVENTS
from services.core.kafka import KafkaSettings, topic_partitions
from services.core.localkafka import free_port

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local counter = 0
local prefix = nil
local batch = {batch}
local template = '{{"event_id":"%s-%04x-4000-8000-%012x","sensor_id":"co-cuc-rdr-1","sensor_type":"radar",'
  .. '"time":"%s","range_m":2140.5,"bearing_deg":118.2,"range_sigma_m":15.0,"bearing_sigma_deg":0.6,'
  .. '"radial_velocity_mps":-1.4,"class":"person","confidence":0.7}}'
setup = function(thread)
  thread:set("tid", tostring(math.random(0, 0xffff)))
end
init = function(args)
  math.randomseed(os.time() + tonumber(tid or "0"))
  prefix = string.format("%08x", math.random(0, 0x7fffffff))
end
request = function()
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local parts = {{}}
  for i = 1, batch do
    counter = counter + 1
    parts[i] = string.format(template, prefix, tonumber(tid or "0"), counter, now)
  end
  local body = parts[1]
  if batch > 1 then body = "[" .. table.concat(parts, ",") .. "]" end
  return wrk.format(nil, nil, nil, body)
end
"""


@dataclass
class Result:
    name: str
    batch: int
    connections: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    events_written: int
    seconds: float
    ingest_cpu: float
    broker_cpu: float

    @property
    def events_per_s(self) -> float:
        return self.events_written / self.seconds


def _millis(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(urls: list[str], script: Path, connections: int, seconds: float) -> dict[str, float]:
    """One wrk per URL, in parallel (connections split between them); rates summed, latencies worst."""
    share = max(1, connections // len(urls))
    procs = [
        subprocess.Popen(
            [
                "wrk",
                f"-t{1 if len(urls) > 1 else 2}",
                f"-c{share}",
                f"-d{seconds:.0f}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    outs = [proc.communicate()[0] for proc in procs]
    found = {"rps": 0.0, "non2xx": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}
    for out in outs:
        found["rps"] += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
            found["non2xx"] += float(m.group(1))
        for percentile in ("50", "90", "99"):
            value = _millis(re.search(rf"\s{percentile}%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
            found[f"p{percentile}"] = max(found[f"p{percentile}"], value)
    return found


async def kafka_count(kafka: KafkaSettings) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = kafka.topics(SENSOR_EVENTS)
    partitions = [TopicPartition(topic, p) for p in (await topic_partitions(kafka, [topic])).get(topic, [])]
    consumer = AIOKafkaConsumer(**kafka.client_options())
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends.values())


def broker_pid(cluster: object) -> int | None:
    nodes = getattr(cluster, "nodes", None)
    return nodes[0].pid() if nodes else None


def start_servers(
    kafka: KafkaSettings, bootstrap: str, count: int
) -> list[tuple[subprocess.Popen[bytes], str]]:
    """``count`` independent ingest processes (as behind a load balancer), each on its own port."""
    servers = []
    for i in range(count):
        port = free_port()
        env = {
            **os.environ,
            "LINDERO_KAFKA_BOOTSTRAP": bootstrap,
            "LINDERO_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "LINDERO_CONFIG": str(ROOT / "config" / "demo.yaml"),
            "LINDERO_INGEST_PORT": str(port),
            "LINDERO_INGEST_LOG_LEVEL": "WARNING",
            "LINDERO_INGEST_RATE_EVENTS_PER_S": "10000000",
            "LINDERO_INGEST_RATE_BURST": "100000000",
        }
        log = (OUT / f"ingest-server-{i}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.ingest"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        servers.append((proc, f"http://127.0.0.1:{port}"))
    deadline = time.monotonic() + 120
    for proc, url in servers:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("ingest did not become ready; see bench/out/ingest-server-*.log")
            time.sleep(0.3)
    return servers


def run_suite(
    kafka: KafkaSettings, bootstrap: str, cluster: object, instances: int, args: argparse.Namespace
) -> list[Result]:
    key = yaml.safe_load((ROOT / "config" / "demo-keys.yaml").read_text())["gw-co-ejercito-cuc"]
    scenarios = [
        ("single posts", 1, args.connections, "/v1/events"),
        ("batches of 100", 100, 8, "/v1/events/batch"),
        ("batches of 1,000", 1000, 4, "/v1/events/batch"),
    ]
    servers = start_servers(kafka, bootstrap, instances)
    results = []
    try:
        for name, batch, connections, path in scenarios:
            script = OUT / f"ingest-{batch}.lua"
            script.write_text(LUA.format(key=key, batch=batch), "utf-8")
            urls = [url + path for _, url in servers]
            print(f"-- {instances} instance(s), {name}: {connections} connections, {args.duration:.0f} s")
            run_wrk(urls, script, connections, args.warmup)
            before = asyncio.run(kafka_count(kafka))
            pids = [proc.pid for proc, _ in servers]
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            bpid = broker_pid(cluster)
            broker_before = cpu_seconds(bpid) if bpid else 0.0
            started = time.monotonic()
            found = run_wrk(urls, script, connections, args.duration)
            elapsed = time.monotonic() - started
            ingest_cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) / elapsed
            broker_cpu = ((cpu_seconds(bpid) - broker_before) / elapsed) if bpid else float("nan")
            time.sleep(1.0)
            written = asyncio.run(kafka_count(kafka)) - before
            result = Result(
                name=name,
                batch=batch,
                connections=connections,
                requests_per_s=found["rps"],
                p50_ms=found["p50"],
                p90_ms=found["p90"],
                p99_ms=found["p99"],
                non_2xx=int(found["non2xx"]),
                events_written=written,
                seconds=elapsed,
                ingest_cpu=ingest_cpu,
                broker_cpu=broker_cpu,
            )
            results.append(result)
            print(
                f"   {result.events_per_s:,.0f} events/s ({result.requests_per_s:,.0f} requests/s), "
                f"p50 {result.p50_ms:.1f} ms, p90 {result.p90_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                f"non-2xx {result.non_2xx}, Kafka +{written:,} records, "
                f"CPU ingest {result.ingest_cpu:.0%} broker {result.broker_cpu:.0%}"
            )
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            proc.wait(30)
    return results


def table(results: list[Result]) -> str:
    head = (
        "| scenario | connections | events/s | requests/s | p50 ms | p90 ms | p99 ms | non-2xx "
        "| ingest CPU | broker CPU |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    return head + "\n".join(
        f"| {r.name} | {r.connections} | {r.events_per_s:,.0f} | {r.requests_per_s:,.0f} | {r.p50_ms:.1f} | "
        f"{r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.non_2xx} | {r.ingest_cpu:.0%} | {r.broker_cpu:.0%} |"
        for r in results
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per scenario")
    parser.add_argument("--connections", type=int, default=64, help="connections for single posts")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2], help="ingest processes to try")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is required (Debian: apt-get install wrk; `make bench` installs it)\n")
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    bootstrap, cluster = broker()
    suites = {}
    try:
        for instances in args.instances:
            kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
            suites[instances] = run_suite(kafka, bootstrap, cluster, instances, args)
    finally:
        if cluster is not None:
            cluster.stop()

    sections = "\n\n".join(
        f"**{n} ingest process{'es' if n > 1 else ''}**\n\n{table(results)}" for n, results in suites.items()
    )
    markdown = f"""## Ingest (`bench/ingest.py`)

Ingest processes (uvicorn + uvloop + httptools) in front of one local Kafka broker, `acks=all`
with the idempotent producer; load from `wrk` on the same 2-core machine, so load generator,
broker and ingest share two cores. Every event is a fresh radar detection (~330 bytes of JSON)
and a 202 is sent only after Kafka acknowledged it. "events/s" counts records that really
reached Kafka (topic end offsets before and after each run); latency is per HTTP request (for
several processes, the worst process's percentile). Several processes are independent
instances, as behind a load balancer. Revision {git_revision()}, {args.duration:.0f} s per
scenario after {args.warmup:.0f} s of warm-up.

{sections}
"""
    if not args.no_write:
        write_section("ingest", markdown)
        print("updated docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
