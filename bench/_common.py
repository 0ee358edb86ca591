"""Helpers shared by the benchmark scripts: a broker, a results section in docs/benchmarks.md, the
machine's description, and CPU accounting of processes and of the whole machine."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import resource
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.core import localkafka

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "bench" / "out"


def machine() -> str:
    """One line describing where the numbers were measured."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), Python {python}, Kafka {localkafka.KAFKA_VERSION}"


def broker() -> tuple[str, localkafka.LocalCluster | None]:
    """LINDERO_KAFKA_BOOTSTRAP, or the benchmarks' own single-node broker (port 9292; started if
    needed, from empty storage: see :func:`fresh_cluster`)."""
    external = os.environ.get("LINDERO_KAFKA_BOOTSTRAP")
    if external:
        return external, None
    cluster = fresh_cluster("bench", localkafka.DEFAULT_PORT + 100)
    return cluster.start(progress=print), cluster


def fresh_cluster(name: str, port: int) -> localkafka.LocalCluster:
    """A benchmark's own local cluster; when it is not running, its storage is deleted first.

    Every run writes to topics of its own, and a stopped benchmark never deleted them: the fan-out
    and ingest broker had 1,580 partitions of earlier runs, started in 10.8 s instead of 5.0 and
    used 6.7% of a core idle instead of 3.9% (30 s each).
    """
    cluster = localkafka.LocalCluster(name=name, ports=[port])
    if not any(node.pid() is not None for node in cluster.nodes):
        cluster.purge()
    return cluster


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    header = "# Benchmarks\n\nNumbers measured on this project's machine; each script rewrites its section.\n"
    text = RESULTS.read_text("utf-8") if RESULTS.exists() else header
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{begin}\n{markdown.rstrip()}\n\n_Measured {stamp} on {machine()}._\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text, "utf-8")


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
    """CPU (as a fraction of one core) and wall time of a measurement window, per group of
    processes (e.g. the gateway, the lifecycle process, the clients, the broker), for this
    process (the load generator, ``feed``) and for everything else on the machine (``others``)."""

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self.started = time.monotonic()
        self.cpu = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        self.own = own_cpu_seconds()
        self.machine = machine_busy()

    def close(self) -> dict[str, float]:
        seconds = time.monotonic() - self.started
        found = {
            name: sum(cpu_seconds(pid) - self.cpu[pid] for pid in pids) / seconds
            for name, pids in self.groups.items()
        }
        found["feed"] = (own_cpu_seconds() - self.own) / seconds
        busy, total = machine_busy()
        machine = (busy - self.machine[0]) / max(1, total - self.machine[1]) * (os.cpu_count() or 1)
        found["others"] = max(0.0, machine - sum(found.values()))
        found["machine"] = machine
        found["seconds"] = seconds
        return found


def uncommitted(paths: Sequence[str] = ("services", "schemas", "config")) -> list[str]:
    """Files under ``paths`` that differ from the revision (the code a run measured is not only HEAD's)."""
    try:
        found = subprocess.run(
            ["git", "status", "--short", "--", *paths], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ["unknown"]
    return [line[3:] for line in found.splitlines() if line.strip()]
