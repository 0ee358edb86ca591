"""Helpers shared by the benchmark scripts: a broker, a results section in docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
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
    """LINDERO_KAFKA_BOOTSTRAP, or the project's local single-node broker (started if needed)."""
    external = os.environ.get("LINDERO_KAFKA_BOOTSTRAP")
    if external:
        return external, None
    cluster = localkafka.LocalCluster(name="bench", ports=[localkafka.DEFAULT_PORT + 100])
    return cluster.start(progress=print), cluster


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
