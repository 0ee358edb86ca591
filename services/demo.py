"""``lindero demo``, ``lindero up`` and ``lindero down``: the whole stack on this machine.

``lindero demo`` (what ``make demo`` runs) starts the local Kafka (or uses
``LINDERO_KAFKA_BOOTSTRAP``), ingest, the correlator and the alerts service, prints the dashboard
address with ready-made tokens, then plays the simulator's scenario for every demo region in
real time (``--speed`` to accelerate) and prints each alert as the correlator raises it. Ctrl-C
stops the simulator, the services and the broker, and leaves no process behind.

``lindero up`` does the same in the background (add ``--simulate`` for the scenario) and returns;
``lindero down`` stops what ``up`` started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from schemas.topics import ALERTS
from services.core import localkafka
from services.core.config import LinderoConfig, load_config
from services.core.kafka import KafkaSettings, delete_prefixed_topics
from services.core.tokens import TokenSettings, issue
from services.stack import DEFAULT_PORTS, Stack, auth_secret, stop_saved

STATE = localkafka.project_root() / ".cache" / "stack"
LOGS = localkafka.project_root() / ".cache" / "demo"
TOKEN_TTL_S = 12 * 3_600
DEMO_PREFIX = "demo."
"""``lindero demo`` starts from a clean slate in topics of its own (``lindero up`` keeps its data)."""


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _kafka(progress: bool = True) -> tuple[str, localkafka.LocalCluster | None]:
    bootstrap = os.environ.get("LINDERO_KAFKA_BOOTSTRAP")
    if bootstrap:
        _say(f"using Kafka at {bootstrap} (LINDERO_KAFKA_BOOTSTRAP)")
        return bootstrap, None
    cluster = localkafka.LocalCluster(name="local", ports=[localkafka.DEFAULT_PORT])
    return cluster.start(progress=_say if progress else lambda _: None), cluster


def demo_tokens(config: LinderoConfig, secret: str) -> dict[str, str]:
    """A token per kind of demo user: operators of the first centres, a supervisor, a team, an admin."""
    settings = TokenSettings(secret=SecretStr(secret))
    tokens: dict[str, str] = {}
    for centre in config.centres[:2]:
        tokens[f"operator {centre.id} ({centre.country})"] = issue(
            settings,
            subject=f"demo-operator-{centre.id}",
            role="operator",
            centre=centre.id,
            country=centre.country,
            ttl_s=TOKEN_TTL_S,
        )
    if config.centres:
        centre = config.centres[0]
        tokens[f"supervisor {centre.id}"] = issue(
            settings,
            subject=f"demo-supervisor-{centre.id}",
            role="supervisor",
            centre=centre.id,
            country=centre.country,
            ttl_s=TOKEN_TTL_S,
        )
    if config.teams:
        team = config.teams[0]
        tokens[f"team {team.id}"] = issue(
            settings, subject=team.id, role="team", team=team.id, country=team.country, ttl_s=TOKEN_TTL_S
        )
    tokens["admin"] = issue(settings, subject="demo-admin", role="admin", ttl_s=TOKEN_TTL_S)
    return tokens


def _print_access(stack: Stack, config: LinderoConfig) -> None:
    tokens = demo_tokens(config, stack.secret)
    base = stack.url("alerts")
    _say("")
    _say(f"  dashboard   {base}/")
    _say(f"  team view   {base}/team/")
    _say(f"  ingest API  {stack.url('ingest')}/docs")
    _say("  open a link below (the token travels in the # fragment, never to a server log):")
    for who, token in tokens.items():
        page = "team/" if who.startswith("team") else ""
        _say(f"    {who:<32} {base}/{page}#token={token}")
    _say("")


def simulate_arguments(
    config: Path, ingest_url: str, keys: Path, speed: float, seed: int, duration_s: int
) -> list[str]:
    """``lindero simulate``'s arguments for the demo: every region, paced; when paced, the gateways
    promise how far they have posted, so the correlator releases each second as soon as every
    gateway has passed it instead of waiting out its reorder window."""
    arguments = [
        "simulate",
        "--config",
        str(config),
        "--all-regions",
        "--seed",
        str(seed),
        "--duration",
        str(duration_s),
        "--speed",
        f"{speed:g}",
        "--ingest",
        ingest_url,
        "--keys",
        str(keys),
    ]
    return [*arguments, "--promise"] if speed > 0 else arguments


def _simulator(stack: Stack, keys: Path, speed: float, seed: int, duration_s: int) -> subprocess.Popen[bytes]:
    log = (stack.logs / "simulator.log").open("ab")
    arguments = simulate_arguments(stack.config, stack.url("ingest"), keys, speed, seed, duration_s)
    with log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "services.cli", *arguments],
            env=stack.environment("ingest"),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


async def _show_alerts(kafka: KafkaSettings, stop: asyncio.Event) -> None:
    """Print every alert the correlator raises (first revision) until ``stop``."""
    consumer = AIOKafkaConsumer(
        kafka.topics(ALERTS),
        auto_offset_reset="latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **kafka.client_options(),
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    alert = orjson.loads(record.value)
                    if alert.get("revision") == 1:
                        _say(
                            f"  alert  {alert['severity']:<8} {alert['kind']:<20} {alert['region']:<16} "
                            f"{alert['summary'][:90]}"
                        )
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()


def ports_from(base_port: int) -> dict[str, int]:
    """Ingest on ``base_port``, the correlator on the next, alerts on the one after."""
    return {"ingest": base_port, "correlator": base_port + 1, "alerts": base_port + 2}


def run(
    config: Path,
    keys: Path,
    speed: float = 1.0,
    seed: int = 7,
    duration_s: int = 3_600,
    base_port: int = 8081,
) -> int:
    """The foreground demo; returns the exit code."""
    world = load_config(config)
    started = time.monotonic()
    bootstrap, cluster = _kafka()
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=DEMO_PREFIX)
    stack = Stack(
        config=config.resolve(),
        bootstrap=bootstrap,
        secret=auth_secret(LOGS / "auth-secret"),
        logs=LOGS,
        topic_prefix=DEMO_PREFIX,
        ports=ports_from(base_port),
    )
    simulator: subprocess.Popen[bytes] | None = None
    code = 0
    try:
        deleted = asyncio.run(delete_prefixed_topics(kafka))
        if deleted:
            _say(f"cleared the previous demo's {len(deleted)} topics ({DEMO_PREFIX}*)")
        stack.start(progress=_say)
        _say(f"stack ready in {time.monotonic() - started:.0f} s")
        _print_access(stack, world)
        simulator = _simulator(stack, keys, speed, seed, duration_s)
        _say(
            f"simulating every demo region at {speed:g}x (log: {LOGS / 'simulator.log'}); "
            "alerts appear below and on the dashboard. Ctrl-C stops everything."
        )
        stop = asyncio.Event()

        async def watch() -> None:
            shower = asyncio.create_task(_show_alerts(kafka, stop))
            try:
                while all(stack.alive().values()):  # noqa: ASYNC110 - polling child processes
                    await asyncio.sleep(1.0)
                dead = [name for name, alive in stack.alive().items() if not alive]
                _say(f"{', '.join(dead)} stopped unexpectedly:\n{stack.tail(dead[0])}")
                raise SystemExit(1)
            finally:
                stop.set()
                await shower

        asyncio.run(watch())
    except KeyboardInterrupt:
        _say("\nstopping")
    except SystemExit as exc:
        code = int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 - report any start-up failure plainly, then clean up
        _say(f"demo failed: {exc}")
        code = 1
    finally:
        if simulator is not None and simulator.poll() is None:
            simulator.send_signal(signal.SIGINT)
            try:
                simulator.wait(10)
            except subprocess.TimeoutExpired:
                simulator.kill()
        stack.stop()
        if cluster is not None:
            cluster.stop(progress=_say)
        _say("stopped; no process left behind")
    return code


def up(config: Path, keys: Path, simulate: bool, speed: float, base_port: int = 8081) -> int:
    """Start Kafka and the services in the background (``lindero up``)."""
    state = STATE / "stack.json"
    if state.is_file():
        _say(f"a stack is already up (see {state}); run `lindero down` first")
        return 1
    world = load_config(config)
    bootstrap, _ = _kafka()
    stack = Stack(
        config=config.resolve(),
        bootstrap=bootstrap,
        secret=auth_secret(LOGS / "auth-secret"),
        logs=LOGS,
        ports=ports_from(base_port),
    )
    stack.start(progress=_say)
    if simulate:
        simulator = _simulator(stack, keys, speed, 7, 86_400)
        stack.processes["simulate"] = simulator
    stack.save(state)
    _print_access(stack, world)
    _say("`lindero down` stops it all")
    return 0


def down() -> int:
    """Stop what ``lindero up`` started, and the local broker."""
    stopped = stop_saved(STATE / "stack.json", progress=_say)
    if os.environ.get("LINDERO_KAFKA_BOOTSTRAP") is None:
        cluster = localkafka.LocalCluster(name="local", ports=[localkafka.DEFAULT_PORT])
        cluster.stop(progress=_say)
    _say(f"stopped {stopped} service process(es)")
    return 0


__all__ = ["DEFAULT_PORTS", "down", "ports_from", "run", "up"]
