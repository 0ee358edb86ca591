"""The whole Lindero stack on one machine: ingest, correlator and alerts as child processes.

Used by ``lindero up`` / ``lindero down`` (detached, process ids kept in ``.cache/stack``),
``lindero demo`` (in the foreground, stopped by Ctrl-C) and the end-to-end and browser tests
(a fresh topic prefix per test session). Each service runs as ``python -m services.<name>`` with
its settings in environment variables, logs to ``<logs>/<name>.log`` and is ready when its
``/readyz`` answers 200. Stopping sends SIGTERM (graceful: in-flight requests finish, Kafka
transactions commit, websockets close with 1001), then SIGKILL after ``grace_s``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.core.localkafka import project_root

SERVICES = ("ingest", "correlator", "alerts")
DEFAULT_PORTS = {"ingest": 8081, "correlator": 8082, "alerts": 8083}


class StackError(RuntimeError):
    """A service did not start (the message names it and quotes its log)."""


def auth_secret(path: Path) -> str:
    """The token signing secret kept at ``path`` (created, private, on first use)."""
    if path.is_file():
        return path.read_text("utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return secret


@dataclass
class Stack:
    """Ingest, correlator and alerts for one configuration and one Kafka."""

    config: Path
    bootstrap: str
    secret: str
    logs: Path
    topic_prefix: str = ""
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for every service (e.g. ``LINDERO_KAFKA_PARTITIONS``)."""
    grace_s: float = 20.0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def environment(self, service: str) -> dict[str, str]:
        upper = service.upper()
        return {
            **os.environ,
            "LINDERO_CONFIG": str(self.config),
            "LINDERO_KAFKA_BOOTSTRAP": self.bootstrap,
            "LINDERO_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "LINDERO_AUTH_SECRET": self.secret,
            f"LINDERO_{upper}_PORT": str(self.ports[service]),
            f"LINDERO_{upper}_HOST": "127.0.0.1",
            **self.env,
        }

    def start(self, progress: Callable[[str], None] = lambda _: None, timeout_s: float = 120.0) -> None:
        """Start every service and wait until each is ready; on failure stop them all."""
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            for service in SERVICES:
                log = (self.logs / f"{service}.log").open("ab")
                with log:
                    self.processes[service] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                        [sys.executable, "-m", f"services.{service}"],
                        env=self.environment(service),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                        cwd=project_root(),
                    )
                progress(f"{service} starting on {self.url(service)} (log: {self.logs / f'{service}.log'})")
            deadline = time.monotonic() + timeout_s
            for service in SERVICES:
                self._wait_ready(service, deadline)
                progress(f"{service} ready")
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, service: str, deadline: float) -> None:
        process = self.processes[service]
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise StackError(f"{service} exited with {process.returncode}:\n{self.tail(service)}")
                try:
                    if client.get(f"{self.url(service)}/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        raise StackError(f"{service} was not ready in time:\n{self.tail(service)}")

    def tail(self, service: str, lines: int = 30) -> str:
        path = self.logs / f"{service}.log"
        if not path.is_file():
            return "(no log)"
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])

    def alive(self) -> dict[str, bool]:
        return {name: process.poll() is None for name, process in self.processes.items()}

    def stop(self) -> None:
        """SIGTERM every service (alerts first, ingest last); SIGKILL what still runs after the grace."""
        for service in reversed(SERVICES):
            process = self.processes.get(service)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()

    # -- detached (lindero up / down) --------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Remember the running processes so that ``lindero down`` can stop them."""
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "pids": {name: process.pid for name, process in self.processes.items()},
            "ports": dict(self.ports),
            "logs": str(self.logs),
        }
        path.write_text(json.dumps(state, indent=2), "utf-8")


def stop_saved(path: Path, grace_s: float = 20.0, progress: Callable[[str], None] = lambda _: None) -> int:
    """Stop the services ``lindero up`` started (only processes that still run our modules); the
    simulator (saved as ``simulate``) first, then alerts, correlator, ingest."""
    if not path.is_file():
        return 0
    state = json.loads(path.read_text("utf-8"))
    stopped = 0
    pids = {name: int(pid) for name, pid in state.get("pids", {}).items() if _is_ours(int(pid), name)}
    for name in sorted(pids, key=lambda n: SERVICES.index(n) if n in SERVICES else -1):
        os.kill(pids[name], signal.SIGINT if name not in SERVICES else signal.SIGTERM)
        progress(f"stopping {name} (pid {pids[name]})")
    deadline = time.monotonic() + grace_s
    for name, pid in pids.items():
        while _is_ours(pid, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_ours(pid, name):
            os.kill(pid, signal.SIGKILL)
        stopped += 1
    path.unlink()
    return stopped


def _is_ours(pid: int, service: str) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    status = Path(f"/proc/{pid}/stat")
    try:
        if status.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        return False
    marker = f"services.{service}" if service in SERVICES else service
    return marker.encode() in command
