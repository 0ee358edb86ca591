"""Running alerts services, tokens, websocket clients and producers for the alerts integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from schemas.topics import ALERTS, TRACKS, Topic
from services.alerts.__main__ import websocket_options
from services.alerts.app import create_app
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.core.config import LinderoConfig, load_config
from services.core.kafka import KafkaSettings
from services.core.tokens import TokenSettings, issue
from tests.conftest import DEMO_CONFIG
from tests.integration.conftest import KafkaFactory, wait_until

AUTH = TokenSettings(secret=SecretStr("integration-tests-only-0123456789-abcdefghijklmnop"))


def token(
    config: LinderoConfig, role: str, *, home: str | None = None, subject: str | None = None, **claims: Any
) -> str:
    """A token for an operator or supervisor of centre ``home``, a member of team ``home``, or an admin."""
    if role in {"operator", "supervisor"}:
        assert home is not None
        centre = config.centres_by_id[home]
        return issue(
            AUTH,
            subject=subject or f"{role}-{home}",
            role=role,
            centre=home,
            country=centre.country,
            **claims,
        )
    if role == "team":
        assert home is not None
        team = config.teams_by_id[home]
        return issue(AUTH, subject=subject or home, role=role, team=home, country=team.country, **claims)
    return issue(AUTH, subject=subject or "admin-1", role=role, **claims)


@dataclass
class RunningAlerts:
    """An alerts service on a real port, with an HTTP client."""

    app: Any
    server: uvicorn.Server
    task: asyncio.Task[None]
    client: httpx.AsyncClient
    settings: AlertsSettings
    config: LinderoConfig
    port: int

    @property
    def service(self) -> AlertsService:
        service: AlertsService = self.app.state.service
        return service

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def token(self, role: str, home: str | None = None, **claims: Any) -> str:
        return token(self.config, role, home=home, **claims)

    def auth(self, role: str, home: str | None = None, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, home, **claims)}"}

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 40)
        await self.client.aclose()


AlertsFactory = Callable[..., Awaitable[RunningAlerts]]


@pytest.fixture
async def start_alerts(make_kafka: KafkaFactory) -> AsyncIterator[AlertsFactory]:
    """Start alerts services on free ports (stopped after the test)."""
    running: list[RunningAlerts] = []

    async def start(  # ws: another uvicorn websocket implementation than the service's
        kafka: KafkaSettings | None = None,
        config: LinderoConfig | None = None,
        ready: bool = True,
        ws: Any = None,
        **changes: Any,
    ) -> RunningAlerts:
        settings = AlertsSettings(
            kafka=kafka or make_kafka(), port=0, config=DEMO_CONFIG, auth=AUTH, log_json=False, **changes
        )
        loaded = config or load_config(settings.config)
        app = create_app(settings, loaded, CollectorRegistry())
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                lifespan="on",
                log_config=None,
                access_log=False,
                **{**websocket_options(settings), **({"ws": ws} if ws is not None else {})},
            )
        )
        task = asyncio.create_task(server.serve())
        await wait_until(lambda: asyncio.sleep(0, server.started), 20, "the server to listen")
        port = server.servers[0].sockets[0].getsockname()[1]
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        instance = RunningAlerts(app, server, task, client, settings, loaded, port)
        running.append(instance)
        if ready:

            async def is_ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await wait_until(is_ready, 60, "the alerts service to be ready")
        return instance

    yield start
    for instance in running:
        await instance.stop()


class Producer:
    """Writes records the way the correlator would (JSON, keyed), for the alerts service to read."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **kafka.client_options())

    async def __aenter__(self) -> Producer:
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def send(self, topic: Topic, key: str, value: BaseModel | None) -> None:
        payload = None if value is None else orjson.dumps(value.model_dump(mode="json", by_alias=True))
        await self.producer.send_and_wait(self.kafka.topics(topic), payload, key=key.encode())

    async def alerts(self, alerts: Iterable[Any]) -> None:
        for alert in alerts:
            await self.send(ALERTS, alert.alert_id, alert)

    async def tracks(self, tracks: Iterable[Any]) -> None:
        futures = [
            await self.producer.send(
                self.kafka.topics(TRACKS),
                orjson.dumps(track.model_dump(mode="json", by_alias=True)),
                key=track.track_id.encode(),
            )
            for track in tracks
        ]
        await asyncio.gather(*futures)


@dataclass
class StreamClient:
    """A websocket client that keeps every frame, checks sequence numbers and merges the cursor."""

    connection: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    cursor: dict[str, int] = field(default_factory=dict)
    raw: list[str] = field(default_factory=list)
    next_seq: int = 0
    closed: tuple[int, str] | None = None
    task: asyncio.Task[None] | None = None
    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None,
        *,
        subscribe: dict[str, Any] | None = None,
        resume: dict[str, int] | None = None,
        hello: dict[str, Any] | None = None,
    ) -> StreamClient:
        connection = await connect(url, max_size=64 * 1024 * 1024, open_timeout=20)
        message: dict[str, Any] = hello if hello is not None else {"type": "hello", "token": token}
        if subscribe is not None:
            message["subscribe"] = subscribe
        if resume is not None:
            message["resume"] = resume
        await connection.send(orjson.dumps(message).decode())
        client = cls(connection)
        client.task = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        try:
            async for data in self.connection:
                text = data if isinstance(data, str) else data.decode()
                self.raw.append(text)
                frame = orjson.loads(text)
                self.frames.append(frame)
                if frame.get("type") != "batch":
                    continue
                assert frame["seq"] == self.next_seq, (
                    f"sequence gap: expected {self.next_seq}, got {frame['seq']}"
                )
                self.next_seq += len(frame["messages"])
                self.cursor.update(frame["cursor"])
                now = time.time()
                for message in frame["messages"]:
                    self.messages.append(message)
                    self.arrivals.append((now, message))
        except ConnectionClosed:
            pass
        finally:
            if self.connection.close_code is not None:
                self.closed = (self.connection.close_code, self.connection.close_reason or "")

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") in types]

    async def wait_for(
        self, check: Callable[[], bool], timeout_s: float = 20.0, what: str = "a message"
    ) -> None:
        async def done() -> bool:
            return check()

        await wait_until(done, timeout_s, what)

    async def wait_closed(self, timeout_s: float = 20.0) -> tuple[int, str]:
        if self.task is not None:
            await asyncio.wait_for(asyncio.shield(self.task), timeout_s)
        assert self.closed is not None
        return self.closed

    async def close(self) -> None:
        await self.connection.close()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self.task, 10)

    def cut(self) -> None:
        """Drop the TCP connection without a closing handshake (like a network failure)."""
        self.connection.transport.abort()
