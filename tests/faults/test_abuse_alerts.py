"""Abuse of the alerts service against a real broker: a property-based fuzzer (schemathesis) over its
OpenAPI document, forged, swapped, tampered, expired and replayed tokens over REST and websockets,
malformed, huge and flooding websocket clients: each gets a clear 4xx or close code, never a 500,
and the other clients of the same server notice nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.core.tokens import MAX_TOKEN_CHARS, TokenSettings, issue
from tests.integration.alerts_fixtures import AUTH, AlertsFactory, RunningAlerts, StreamClient, start_alerts
from tests.integration.conftest import KafkaFactory

__all__ = ["start_alerts"]

pytestmark = pytest.mark.kafka
SCHEMATHESIS_USES_RANDOM = pytest.mark.filterwarnings(
    # schemathesis 4.32 draws from the `random` module inside its strategies (Hypothesis seeds it, so
    # runs stay reproducible); Hypothesis deprecates that. Nothing of ours does it.
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
log = logging.getLogger(__name__)

FUZZ_EXAMPLES = 25
"""Examples per operation and generation mode (positive, negative): about 400 requests in all."""
AUTH_HEADERS = frozenset({"authorization"})
OTHER_SECRET = "an-entirely-different-secret-Zr8Lq2Wn5Xc1Vb7Mk3Jh9Gf4"


@pytest.fixture
async def alerts(start_alerts: AlertsFactory, make_kafka: KafkaFactory) -> RunningAlerts:
    """One ready alerts service on fresh topics."""
    return await start_alerts(make_kafka(), auth_timeout_s=2.0)


# -- the fuzzer ---------------------------------------------------------------------------------


@dataclass
class Ledger:
    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    examples: int = 0


def fuzz(schema: Any, base_url: str, credentials: Callable[[int], dict[str, str]], ledger: Ledger) -> None:
    """Every operation of ``schema``, positive and negative examples, derandomised, no shrinking;
    ``credentials(draw)`` gives the headers of a case (empty: keep what the generator made)."""
    session = requests.Session()
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.label)
    for operation in operations:
        has_input = any(
            len(part)
            for part in (operation.body, operation.query, operation.headers, operation.path_parameters)
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[: 2 if has_input else 1]:
            _fuzz_one(operation, mode, session, base_url, credentials, ledger)
    session.close()


def _fuzz_one(
    operation: Any,
    mode: GenerationMode,
    session: requests.Session,
    base_url: str,
    credentials: Callable[[int], dict[str, str]],
    ledger: Ledger,
) -> None:
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    if mode is GenerationMode.POSITIVE:
        checks.append(response_schema_conformance)
    elif operation.body:
        # Only for bodies: a query parameter "mutated" to a number ("?region=57") is still a valid
        # string on the wire, and "?since=-5095" a valid (Unix) time for pydantic; not worth a 422.
        checks.append(negative_data_rejection)

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=operation.as_strategy(generation_mode=mode), draw=st.integers(0, 4))
    def example(case: Any, draw: int) -> None:
        ledger.examples += 1
        extra = credentials(draw)
        if extra:
            for name in [h for h in (case.headers or {}) if h.lower() in AUTH_HEADERS]:
                del case.headers[name]
        response = case.call(base_url=base_url, session=session, headers=extra, timeout=30)
        ledger.statuses[(operation.label, mode.value, response.status_code)] += 1
        try:
            case.validate_response(response, checks=checks, headers=extra)
        except BaseException as exc:  # noqa: BLE001 - collected, reported by the test
            ledger.failures.append(
                f"{operation.label} [{mode.value}] -> {response.status_code}: {exc}\n{case.as_curl_command()}"
            )

    example()


@pytest.mark.timeout(240)
@SCHEMATHESIS_USES_RANDOM
async def test_fuzzed_requests_get_no_server_error_and_only_documented_answers(alerts: RunningAlerts) -> None:
    """Schemathesis over the alerts OpenAPI document as an admin, an operator and nobody: no 500,
    every status and content type documented, invalid parameters and bodies refused with a 4xx."""
    schema = schemathesis.openapi.from_dict(copy.deepcopy(alerts.app.openapi()))
    admin = alerts.auth("admin")
    operator = alerts.auth("operator", "cc-cucuta")

    def credentials(draw: int) -> dict[str, str]:
        return admin if draw < 2 else operator if draw < 4 else {}

    started = time.monotonic()
    ledger = Ledger()
    await asyncio.to_thread(fuzz, schema, alerts.ws_url.replace("ws:", "http:"), credentials, ledger)
    elapsed = time.monotonic() - started
    assert not ledger.failures, "\n\n".join(ledger.failures[:10])
    codes = Counter(status for (_, _, status) in ledger.statuses.elements())
    log.warning(
        "alerts fuzz: %s requests in %.1f s; statuses %s", ledger.examples, elapsed, sorted(codes.items())
    )
    assert {200, 401, 404, 422} <= set(codes), codes
    assert (await alerts.client.get("/readyz")).status_code == 200


# -- tokens -------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], secret: str, digest: Any = hashlib.sha256) -> str:
    """A JWT with any header, MAC'ed with ``secret`` (empty: no signature)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if not secret:
        return signing_input + "."
    mac = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(mac)}"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return loaded


def bad_tokens(alerts: RunningAlerts) -> dict[str, tuple[str, int, str]]:
    """Refused tokens: ``name: (token, REST status, reason fragment)``."""
    secret = AUTH.secret.get_secret_value()
    good = alerts.token("operator", "cc-cucuta")
    header, payload, signature = good.split(".")
    claims = claims_of(good)
    promoted = b64(json.dumps({**claims, "role": "admin"}).encode())
    moved = b64(json.dumps({**claims, "centre": "cc-tachira", "country": "VE"}).encode())
    longer = {**claims, "exp": claims["exp"] + 7 * 86_400}
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    return {
        "another secret": (
            issue(TokenSettings(secret=SecretStr(OTHER_SECRET)), subject="boss", role="admin"),
            401,
            "bad signature",
        ),
        "alg none": (forge({"alg": "none", "typ": "JWT"}, {**claims, "role": "admin"}, ""), 401, "algorithm"),
        "HS512 with our secret": (
            forge({"alg": "HS512", "typ": "JWT"}, claims, secret, hashlib.sha512),
            401,
            "algorithm",
        ),
        "RS256 header, HMAC by our secret": (
            forge({"alg": "RS256", "typ": "JWT"}, claims, secret),
            401,
            "algorithm",
        ),
        "kid header": (forge({"alg": "HS256", "kid": "../../dev/null"}, claims, secret), 401, "header"),
        "role promoted in the payload": (f"{header}.{promoted}.{signature}", 401, "bad signature"),
        "centre moved in the payload": (f"{header}.{moved}.{signature}", 401, "bad signature"),
        "lifetime stretched, re-signed elsewhere": (
            forge({"alg": "HS256"}, longer, OTHER_SECRET),
            401,
            "signature",
        ),
        "signature stripped": (f"{header}.{payload}.", 401, "invalid token"),
        "signature of another token": (
            f"{header}.{payload}.{alerts.token('admin').split('.')[2]}",
            401,
            "bad signature",
        ),
        "expired": (alerts.token("operator", "cc-cucuta", now=past, ttl_s=3_600), 401, "expired"),
        "wrong audience": (
            issue(
                TokenSettings(secret=AUTH.secret, audience="another-system"),
                subject="op",
                role="operator",
                centre="cc-cucuta",
                country="CO",
            ),
            401,
            "audience",
        ),
        "wrong issuer": (
            issue(TokenSettings(secret=AUTH.secret, issuer="evil"), subject="op", role="admin"),
            401,
            "issuer",
        ),
        "truncated": (good[:-5], 401, "invalid token"),
        "10 kB": (good + "A" * 10_000, 401, "malformed"),
        "unknown centre, properly signed": (
            issue(AUTH, subject="op", role="operator", centre="cc-atlantis", country="CO"),
            403,
            "token not accepted",
        ),
        "centre of another country, properly signed": (
            issue(AUTH, subject="op", role="operator", centre="cc-cucuta", country="VE"),
            403,
            "token not accepted",
        ),
    }


async def test_forged_tampered_and_misaddressed_tokens_are_refused_over_rest_and_websocket(
    alerts: RunningAlerts,
) -> None:
    """Every bad token: 401 (with a challenge) or 403 on REST, close 4401 or 4403 on the stream (4400
    for a hello too long to be one), with the reason, never the token; a good token still works."""
    url = f"{alerts.ws_url}/v1/stream"
    for name, (bad, status, reason) in bad_tokens(alerts).items():
        response = await alerts.client.get("/v1/alerts", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == status, (name, response.text)
        assert reason in response.json()["detail"], (name, response.text)
        assert bad not in response.text, name
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer"), name
        stream = await StreamClient.open(url, bad)
        code, close_reason = await stream.wait_closed()
        if len(bad) > MAX_TOKEN_CHARS:  # refused as a malformed hello before any token check
            assert code == 4400, (name, code)
        else:
            assert code == (4401 if status == 401 else 4403), (name, code)
            assert reason in close_reason, (name, close_reason)
        assert not stream.messages, name
    me = await alerts.client.get("/v1/me", headers=alerts.auth("operator", "cc-cucuta"))
    assert (me.status_code, me.json()["centre"]) == (200, "cc-cucuta")


async def test_tokens_used_on_the_wrong_stream_or_route_are_refused(alerts: RunningAlerts) -> None:
    """A team token on the centres' stream or another team's stream: 4403; an operator on a team
    stream: 4403; a team or an operator reading the audit log: 403."""
    team = alerts.token("team", "co-rrt-alfa")
    operator = alerts.token("operator", "cc-cucuta")
    cases = [
        (f"{alerts.ws_url}/v1/stream", team),
        (f"{alerts.ws_url}/v1/teams/ve-rrt-1/stream", team),
        (f"{alerts.ws_url}/v1/teams/co-rrt-alfa/stream", operator),
        (f"{alerts.ws_url}/v1/teams/no-such-team/stream", alerts.token("admin")),
    ]
    for url, token in cases:
        stream = await StreamClient.open(url, token)
        assert (await stream.wait_closed())[0] == 4403, url
    for token in (team, operator):
        audit = await alerts.client.get("/v1/audit", headers={"Authorization": f"Bearer {token}"})
        assert audit.status_code == 403
    own = await StreamClient.open(f"{alerts.ws_url}/v1/teams/co-rrt-alfa/stream", team)
    await own.wait_for(lambda: bool(own.of_type("welcome")), 10, "the team's welcome")
    await own.close()


async def test_a_token_replayed_after_its_expiry_is_refused(alerts: RunningAlerts) -> None:
    """A token that works now (inside the 30 s clock-skew leeway after its exp) is refused once the
    leeway has passed, on REST and on a new stream; a stream it opened is closed with 4401."""
    remaining_s = 3.0
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60 + 30 - remaining_s)
    token = alerts.token("operator", "cc-cucuta", now=issued, ttl_s=60)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await alerts.client.get("/v1/me", headers=headers)).status_code == 200
    opened = await StreamClient.open(f"{alerts.ws_url}/v1/stream", token)
    code, reason = await opened.wait_closed(timeout_s=10)
    assert (code, "expired" in reason) == (4401, True)
    await asyncio.sleep(remaining_s + 0.5)
    replayed = await alerts.client.get("/v1/me", headers=headers)
    assert replayed.status_code == 401
    assert "expired" in replayed.json()["detail"]
    again = await StreamClient.open(f"{alerts.ws_url}/v1/stream", token)
    code, reason = await again.wait_closed()
    assert (code, "expired" in reason) == (4401, True)


# -- websocket abuse ----------------------------------------------------------------------------


async def raw_close(url: str, first: str | bytes) -> int | None:
    """Send ``first`` as the opening message and return the close code the server chose."""
    async with connect(url, max_size=None, open_timeout=20) as connection:
        await connection.send(first)
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await asyncio.wait_for(connection.recv(), 20)
                assert "welcome" not in str(message)
        return connection.close_code


async def test_malformed_and_huge_hellos_are_closed_with_a_precise_code(alerts: RunningAlerts) -> None:
    """Not JSON, not UTF-8, NaN, deeply nested or oversized first messages: 4400 (bad request) or 1009
    (too big), never 1011 (server error) and never a welcome."""
    url = f"{alerts.ws_url}/v1/stream"
    limit = alerts.settings.max_message_bytes
    token = alerts.token("operator", "cc-cucuta")
    cases: dict[str, tuple[str | bytes, int]] = {
        "not JSON": ("hello, server", 4400),
        "truncated hello": (orjson.dumps({"type": "hello", "token": token}).decode()[:40], 4400),
        "not UTF-8": (b"\xff\xfe{\x00\x80", 4400),
        "NaN token": ('{"type": "hello", "token": NaN}', 4400),
        "Infinity in subscribe": (
            json.dumps({"type": "hello", "token": token, "subscribe": {"min_severity": "x"}}).replace(
                '"x"', "Infinity"
            ),
            4400,
        ),
        "deeply nested": ('{"type": "hello", "token": ' + "[" * 20_000 + "]" * 20_000 + "}", 4400),
        "a JSON array": ("[1, 2, 3]", 4400),
        "huge text frame": ('{"type": "hello", "token": "' + "A" * (4 * limit) + '"}', 1009),
        "huge binary frame": (b"\x00" * (4 * limit), 1009),
    }
    for name, (first, expected) in cases.items():
        assert await raw_close(url, first) == expected, name


async def test_a_command_flood_closes_that_client_with_4429_and_no_one_else_notices(
    alerts: RunningAlerts,
) -> None:
    """A client sending ten times the allowed commands a second is answered 429, then closed with
    4429; one sending as fast as it can is closed with 4429; a neighbour on the same server keeps its
    stream and gets its pongs, and REST keeps answering."""
    url = f"{alerts.ws_url}/v1/stream"
    neighbour = await StreamClient.open(url, alerts.token("operator", "cc-tachira"))
    flooder = await StreamClient.open(url, alerts.token("operator", "cc-cucuta"))
    for client in (neighbour, flooder):
        await client.wait_for(lambda c=client: bool(c.of_type("welcome")), 10, "welcome")
    started = time.monotonic()
    with contextlib.suppress(ConnectionClosed):
        for n in range(2_000):  # about 200 a second, ten times the allowed rate
            await flooder.connection.send(orjson.dumps({"type": "ping", "id": f"f{n}"}).decode())
            await asyncio.sleep(0.005)
    code, reason = await flooder.wait_closed()
    assert code == 4429, reason
    refusals = [m for m in flooder.of_type("error") if m["status"] == 429]
    assert refusals, "the flood was answered 429 before the close"
    rate = alerts.settings.commands_per_s
    assert len(flooder.of_type("pong")) <= 2 * rate + rate * (time.monotonic() - started) + 1
    blasted = await StreamClient.open(url, alerts.token("operator", "cc-cucuta"))
    await blasted.wait_for(lambda: bool(blasted.of_type("welcome")), 10, "welcome")
    with contextlib.suppress(ConnectionClosed):
        for n in range(5_000):  # as fast as the socket takes them
            await blasted.connection.send(orjson.dumps({"type": "ping", "id": f"b{n}"}).decode())
    assert (await blasted.wait_closed())[0] == 4429
    await neighbour.send({"type": "ping", "id": "still-here"})
    await neighbour.wait_for(lambda: bool(neighbour.of_type("pong")), 10, "the neighbour's pong")
    assert neighbour.closed is None
    assert (await alerts.client.get("/v1/me", headers=alerts.auth("admin"))).status_code == 200
    metrics = (await alerts.client.get("/metrics")).text
    dropped = [line for line in metrics.splitlines() if "too_many_commands" in line]
    assert 'lindero_alerts_dropped_clients_total{reason="too_many_commands"} 2.0' in dropped, dropped
    await neighbour.close()


async def test_bad_commands_on_an_open_stream_get_errors_not_a_crash(alerts: RunningAlerts) -> None:
    """After a good hello: non-JSON, non-UTF-8, NaN, nested or unknown commands each get a 422 error
    reply and the stream stays open; a command over the size limit closes it with 1009."""
    client = await StreamClient.open(f"{alerts.ws_url}/v1/stream", alerts.token("operator", "cc-cucuta"))
    await client.wait_for(lambda: bool(client.of_type("welcome")), 10, "welcome")
    bad: list[str | bytes] = [
        "not json",
        b"\xc3\x28\xff",
        '{"type": "ping", "id": NaN}',
        '{"type": "subscribe", "subscribe": ' + "[" * 5_000 + "]" * 5_000 + "}",
        '{"type": "self_destruct"}',
        '{"type": "action", "alert_id": "x", "action": "acknowledge", "expected_version": 1e400}',
    ]
    for message in bad:
        await client.connection.send(message)
    await client.wait_for(lambda: len(client.of_type("error")) == len(bad), 10, "an error per command")
    assert {m["status"] for m in client.of_type("error")} == {422}
    await client.send({"type": "ping", "id": "alive"})
    await client.wait_for(lambda: bool(client.of_type("pong")), 10, "pong")
    assert client.closed is None
    await client.connection.send("A" * (2 * alerts.settings.max_message_bytes))
    assert (await client.wait_closed())[0] == 1009
