"""Signed dispatch webhooks: the signature, the retry policy, and delivery to a real local receiver."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import json
import logging
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from schemas.common import Position
from schemas.lifecycle import Dispatch, DispatchStatus
from services.alerts import webhooks
from services.alerts.webhooks import DeliveryResult, RetryPolicy, WebhookSender
from services.core.config import Team, Webhook

SECRET = "wh-7Qm2Zp9Lx4Rt8Vn1Kb6Jc3Hd0Fs5Ga-Ye_Uw2Io"
SECRET_ENV = "LINDERO_TEST_WEBHOOK_SECRET"
ENVIRON = {SECRET_ENV: SECRET}
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
FAST = RetryPolicy(max_attempts=6, base_delay_s=0.001, max_delay_s=0.01)


def make_dispatch(**changes: Any) -> Dispatch:
    """A dispatch offered to co-rrt-alfa."""
    values: dict[str, Any] = {
        "dispatch_id": "d-42",
        "alert_id": "a-7",
        "team_id": "co-rrt-alfa",
        "status": DispatchStatus.OFFERED,
        "lat": 7.91,
        "lon": -72.48,
        "region": "co-ve-cucuta",
        "kind": "border_crossing",
        "severity": "critical",
        "summary": "2 persons crossing westwards",
        "distance_m": 1200.0,
        "offered_at": T0,
        "accept_by": T0 + dt.timedelta(minutes=2),
        "updated_at": T0,
    }
    values.update(changes)
    return Dispatch(**values)


def make_team(url: str, secret_env: str = SECRET_ENV) -> Team:
    """Team Alfa with its webhook at ``url``."""
    return Team(
        id="co-rrt-alfa",
        name="Pelotón Alfa",
        country="CO",
        agency="ejercito",
        region="co-ve-cucuta",
        base=Position(lat=7.92046, lon=-72.49596),
        capabilities=["foot"],
        webhook=Webhook(url=url, secret_env=secret_env),
    )


@dataclass
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float


@dataclass
class Receiver:
    """A webhook receiver on a real port: answers from ``script`` (then 200), records every request."""

    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        verified = webhooks.verify_signature(
            SECRET,
            request.headers.get(webhooks.TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(webhooks.SIGNATURE_HEADER, ""),
            now=time.time(),
        )
        self.requests.append(Received(dict(request.headers), body, verified, time.monotonic()))
        if not verified:
            return Response("bad signature", status_code=401)
        status, headers, delay_s = self.script.pop(0) if self.script else (200, {}, 0.0)
        if delay_s:
            await asyncio.sleep(delay_s)
        return Response(status_code=status, headers=headers)


ReceiverFactory = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def start_receiver() -> AsyncIterator[ReceiverFactory]:
    """Start webhook receivers on free loopback ports (stopped after the test)."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(*script: tuple[int, dict[str, str], float]) -> Receiver:
        receiver = Receiver(script=list(script))
        app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", ws="none", log_config=None, access_log=False
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the receiver did not start within 10 s")
        port = server.servers[0].sockets[0].getsockname()[1]
        receiver.url = f"http://127.0.0.1:{port}/hook"
        return receiver

    yield start
    for server, task in running:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the signature ------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """The signature is the documented HMAC, so receivers in any language can check it."""
    import hashlib
    import hmac

    body = b'{"dispatch_id":"d-1"}'
    expected = hmac.new(SECRET.encode(), b"1767182400." + body, hashlib.sha256).hexdigest()
    assert webhooks.sign(SECRET, 1767182400, body) == f"sha256={expected}"
    assert webhooks.verify_signature(SECRET, "1767182400", body, f"sha256={expected}", now=1767182400.0)


def test_signature_refuses_any_change() -> None:
    """Another body, timestamp, secret or a mangled header value does not verify."""
    now = 1_767_182_400
    body = make_dispatch().model_dump_json()
    good = webhooks.sign(SECRET, now, body)
    assert webhooks.verify_signature(SECRET, now, body, good, now=now)
    assert not webhooks.verify_signature(SECRET, now, body.replace("critical", "low"), good, now=now)
    assert not webhooks.verify_signature(SECRET, now + 1, body, good, now=now)
    assert not webhooks.verify_signature(SECRET + "x", now, body, good, now=now)
    for mangled in ("", good.upper(), good[7:], good + "00", "sha256=é", "sha1=" + good[7:]):
        assert not webhooks.verify_signature(SECRET, now, body, mangled, now=now)
    for stamp in ("", "-5", "1e9", " 1767182400", "abc"):
        assert not webhooks.verify_signature(SECRET, stamp, body, good, now=now)
    assert not webhooks.verify_signature("", now, body, webhooks.sign("", now, body), now=now)


@pytest.mark.parametrize(
    ("skew_s", "fresh"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)]
)
def test_stale_or_future_timestamps_are_refused(skew_s: int, fresh: bool) -> None:
    """A correctly signed notification more than 300 s old (or ahead) is refused by verify_signature."""
    stamp = 1_767_182_400
    body = b"{}"
    signature = webhooks.sign(SECRET, stamp, body)
    assert webhooks.verify_signature(SECRET, stamp, body, signature, now=stamp + skew_s) is fresh
    assert webhooks.verify_signature(SECRET, stamp, body, signature, now=stamp + 3600, tolerance_s=3600)


# -- the retry policy ---------------------------------------------------------------------------


def test_backoff_doubles_from_half_a_second_with_jitter_and_a_30_s_cap() -> None:
    """Waits lie in the upper half of 0.5, 1, 2, 4... s and never exceed 30 s."""
    policy = RetryPolicy()
    rng = random.Random(7)
    for failed in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (failed - 1))
        for _ in range(50):
            assert ceiling / 2 <= policy.backoff_s(failed, rng) <= ceiling
    assert policy.max_attempts == 6


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After as delta-seconds or as an HTTP date becomes seconds to wait; junk is ignored."""
    now = T0.timestamp()
    assert webhooks.retry_after_s("7", now) == 7.0
    later = email.utils.format_datetime(T0 + dt.timedelta(seconds=12), usegmt=True)
    assert webhooks.retry_after_s(later, now) == pytest.approx(12.0)
    past = email.utils.format_datetime(T0 - dt.timedelta(seconds=12), usegmt=True)
    assert webhooks.retry_after_s(past, now) == 0.0
    assert webhooks.retry_after_s("soon", now) is None
    assert webhooks.retry_after_s(None, now) is None


def test_delivery_id_is_stable_per_notification() -> None:
    """The same dispatch step always gets the same id; the next step gets another."""
    offered = make_dispatch()
    assert webhooks.delivery_id(offered) == webhooks.delivery_id(make_dispatch())
    accepted = make_dispatch(status=DispatchStatus.ACCEPTED, updated_at=T0 + dt.timedelta(seconds=30))
    assert webhooks.delivery_id(accepted) != webhooks.delivery_id(offered)


# -- delivery to a real receiver ----------------------------------------------------------------


async def test_delivery_is_signed_and_verified_by_the_receiver(start_receiver: ReceiverFactory) -> None:
    """The receiver gets the Dispatch JSON with the documented headers, and the signature checks out."""
    receiver = await start_receiver()
    dispatch = make_dispatch()
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url), dispatch)
    assert result == DeliveryResult(delivered=True, attempts=1, status=200, error=None)
    [seen] = receiver.requests
    assert seen.verified
    assert seen.body == dispatch.model_dump_json().encode()
    assert Dispatch.model_validate(json.loads(seen.body)) == dispatch
    assert seen.headers["content-type"] == "application/json"
    assert (
        uuid.UUID(seen.headers["x-lindero-delivery"]) == result.delivery_id == webhooks.delivery_id(dispatch)
    )
    assert abs(int(seen.headers["x-lindero-timestamp"]) - time.time()) < 5
    assert seen.headers["x-lindero-signature"].startswith("sha256=")


async def test_receiver_rejects_tampered_bodies(start_receiver: ReceiverFactory) -> None:
    """Replaying the signed headers with a changed body (or a re-signature by another key) gets 401."""
    receiver = await start_receiver()
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        assert (await sender.deliver(make_team(receiver.url), make_dispatch())).delivered
    signed = receiver.requests[0]
    headers = {k: v for k, v in signed.headers.items() if k.startswith("x-lindero-")}
    tampered = signed.body.replace(b'"lat":7.91', b'"lat":7.99')
    assert tampered != signed.body
    forged = {
        **headers,
        "x-lindero-signature": webhooks.sign("another-secret" * 3, headers["x-lindero-timestamp"], tampered),
    }
    async with httpx.AsyncClient() as client:
        assert (await client.post(receiver.url, content=tampered, headers=headers)).status_code == 401
        assert (await client.post(receiver.url, content=tampered, headers=forged)).status_code == 401
        assert (await client.post(receiver.url, content=signed.body, headers=headers)).status_code == 200
    assert [r.verified for r in receiver.requests] == [True, False, False, True]


async def test_two_500s_then_200_is_delivered_in_three_attempts_with_one_delivery_id(
    start_receiver: ReceiverFactory,
) -> None:
    """Server errors are retried; every attempt carries the same X-Lindero-Delivery and a valid signature."""
    receiver = await start_receiver((500, {}, 0.0), (500, {}, 0.0), (200, {}, 0.0))
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url), make_dispatch())
    assert (result.delivered, result.attempts, result.status, result.error) == (True, 3, 200, None)
    assert result.summary == "3 attempts, HTTP 200"
    assert len(receiver.requests) == 3
    assert all(r.verified for r in receiver.requests)
    assert len({r.headers["x-lindero-delivery"] for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1


async def test_429_retry_after_is_honoured(start_receiver: ReceiverFactory) -> None:
    """After 429 with Retry-After: 1 the next attempt comes no sooner than a second later."""
    receiver = await start_receiver((429, {"Retry-After": "1"}, 0.0))
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url), make_dispatch())
    assert (result.delivered, result.attempts) == (True, 2)
    first, second = receiver.requests
    assert second.at - first.at >= 0.95


async def test_retry_after_beyond_the_limit_gives_up_without_waiting(start_receiver: ReceiverFactory) -> None:
    """A receiver asking for an hour's pause is not obeyed late: the delivery fails now, saying why."""
    receiver = await start_receiver((503, {"Retry-After": "3600"}, 0.0))
    started = time.monotonic()
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url), make_dispatch())
    assert time.monotonic() - started < 5
    assert (result.delivered, result.attempts, result.status) == (False, 1, 503)
    assert result.error is not None
    assert "retry after 3600 s" in result.error


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 302])
async def test_client_errors_and_redirects_are_final(start_receiver: ReceiverFactory, status: int) -> None:
    """4xx other than 408/429 (and 3xx) fail at once, without a retry."""
    receiver = await start_receiver((status, {"Location": "http://127.0.0.1:1/"}, 0.0))
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url), make_dispatch())
    assert (result.delivered, result.attempts, result.status) == (False, 1, status)
    assert result.error is not None
    assert result.error.startswith(f"HTTP {status}")
    assert len(receiver.requests) == 1


async def test_408_is_retried(start_receiver: ReceiverFactory) -> None:
    """408 Request Timeout counts as transient."""
    receiver = await start_receiver((408, {}, 0.0))
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url), make_dispatch())
    assert (result.delivered, result.attempts) == (True, 2)


async def test_a_slow_receiver_times_out_and_is_retried(start_receiver: ReceiverFactory) -> None:
    """An attempt that exceeds the timeout is abandoned and tried again."""
    receiver = await start_receiver((200, {}, 1.0))
    async with WebhookSender(environ=ENVIRON, policy=FAST, timeout_s=0.2) as sender:
        result = await sender.deliver(make_team(receiver.url), make_dispatch())
    assert (result.delivered, result.attempts, result.status) == (True, 2, 200)


async def test_unreachable_url_fails_after_max_attempts() -> None:
    """Connection refused is retried up to max_attempts, then reported as failed with no status."""
    url = f"http://127.0.0.1:{closed_port()}/hook"
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    policy = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01)
    async with WebhookSender(environ=ENVIRON, policy=policy, sleep=record) as sender:
        result = await sender.deliver(make_team(url), make_dispatch())
    assert (result.delivered, result.attempts, result.status) == (False, 4, None)
    assert result.error == "connection error (ConnectError)"
    assert len(slept) == 3


@pytest.mark.parametrize("environ", [{}, {SECRET_ENV: ""}])
async def test_missing_secret_fails_cleanly_without_sending(
    start_receiver: ReceiverFactory, environ: dict[str, str]
) -> None:
    """No secret in the named variable: a failed result naming the variable, no exception, no request."""
    receiver = await start_receiver()
    async with WebhookSender(environ=environ, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url), make_dispatch())
    assert (result.delivered, result.attempts, result.status) == (False, 0, None)
    assert result.error == f"webhook secret missing: environment variable {SECRET_ENV} is not set"
    assert receiver.requests == []


async def test_secret_is_read_from_the_process_environment(
    start_receiver: ReceiverFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the variable named by secret_env is looked up in os.environ at delivery time."""
    receiver = await start_receiver()
    monkeypatch.delenv(SECRET_ENV, raising=False)
    async with WebhookSender(policy=FAST) as sender:
        assert not (await sender.deliver(make_team(receiver.url), make_dispatch())).delivered
        monkeypatch.setenv(SECRET_ENV, SECRET)
        assert (await sender.deliver(make_team(receiver.url), make_dispatch())).delivered


async def test_weak_secret_is_refused(start_receiver: ReceiverFactory) -> None:
    """A placeholder or short secret is not used to sign: the delivery fails and says so."""
    receiver = await start_receiver()
    async with WebhookSender(environ={SECRET_ENV: "change-me"}, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url), make_dispatch())
    assert not result.delivered
    assert result.error == f"webhook secret in {SECRET_ENV} is a placeholder, not a secret"
    assert receiver.requests == []


async def test_plain_http_is_only_for_loopback() -> None:
    """http:// to another host is refused before any connection unless allow_http is set."""
    team = make_team("http://team-receiver.invalid/hook")
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        result = await sender.deliver(team, make_dispatch())
    assert (result.delivered, result.attempts) == (False, 0)
    assert result.error is not None
    assert "https" in result.error
    policy = RetryPolicy(max_attempts=1)
    async with WebhookSender(environ=ENVIRON, policy=policy, allow_http=True, timeout_s=2) as sender:
        result = await sender.deliver(team, make_dispatch())
    assert (result.delivered, result.attempts) == (False, 1)


async def test_team_without_webhook_is_a_failed_result() -> None:
    """Delivering to a team with no webhook returns a failure instead of raising."""
    team = make_team("https://example.org/hook").model_copy(update={"webhook": None})
    async with WebhookSender(environ=ENVIRON) as sender:
        result = await sender.deliver(team, make_dispatch())
    assert (result.delivered, result.attempts, result.error) == (False, 0, "team co-rrt-alfa has no webhook")


async def test_logs_carry_ids_but_never_the_secret_or_the_path(
    start_receiver: ReceiverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Log records name the dispatch, team and host; the secret, signature, body and URL path stay out."""
    caplog.set_level(logging.DEBUG)
    receiver = await start_receiver((500, {}, 0.0))
    async with WebhookSender(environ=ENVIRON, policy=FAST) as sender:
        result = await sender.deliver(make_team(receiver.url + "?token=s3cr3t-in-url"), make_dispatch())
    assert result.delivered
    signature = receiver.requests[0].headers["x-lindero-signature"]
    ours = [r for r in caplog.records if r.name == webhooks.__name__]
    assert {r.levelname for r in ours} == {"WARNING", "INFO"}
    for record in ours:
        text = f"{record.getMessage()} {vars(record)}"
        for hidden in (SECRET, signature, "s3cr3t-in-url", "2 persons crossing"):
            assert hidden not in text
        assert record.dispatch_id == "d-42"  # type: ignore[attr-defined]
        assert record.team_id == "co-rrt-alfa"  # type: ignore[attr-defined]
        assert record.webhook_host == "127.0.0.1"  # type: ignore[attr-defined]
    assert SECRET not in repr(result)


def test_policy_refuses_nonsense() -> None:
    """Zero attempts or a shrinking factor are configuration errors."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="factor"):
        RetryPolicy(factor=0.5)
