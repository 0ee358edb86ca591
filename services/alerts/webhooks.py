"""Dispatch notifications POSTed to a rapid response team's webhook, signed with HMAC-SHA256.

One notification is one :class:`~schemas.lifecycle.Dispatch` as JSON (``model_dump_json()``)::

    POST <team.webhook.url>
    Content-Type: application/json
    X-Lindero-Timestamp: 1767182400                 unix seconds, fresh on every attempt
    X-Lindero-Delivery: 6c1f...-...                 one UUID per notification, the same on every retry
    X-Lindero-Signature: sha256=<hex>               HMAC-SHA256(secret, f"{timestamp}.{body}")

A receiver checks it with :func:`verify_signature` (constant-time, refuses timestamps more than
five minutes off) and de-duplicates on ``X-Lindero-Delivery``: the id is derived from the
dispatch's id, status, escalation and update time, so a notification re-sent after a restart
carries the same id.

Delivery (:class:`WebhookSender`) retries connection errors, timeouts, 5xx, 408 and 429 with
exponential backoff and jitter (0.5 s, ×2, at most 30 s between attempts, 6 attempts by default),
never sooner than a ``Retry-After`` asks; other 4xx and 3xx (redirects are not followed) are final.
The signing secret is read, at each delivery, from the environment variable that
``team.webhook.secret_env`` names; it never appears in a log line or a result, and neither do the
body nor the webhook's path (URLs often embed credentials: only the host is logged).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

import httpx

from schemas.lifecycle import Dispatch
from services.core.config import Team
from services.core.tokens import secret_problem

log = logging.getLogger(__name__)

TIMESTAMP_HEADER: Final = "X-Lindero-Timestamp"
DELIVERY_HEADER: Final = "X-Lindero-Delivery"
SIGNATURE_HEADER: Final = "X-Lindero-Signature"
SIGNATURE_PREFIX: Final = "sha256="
DEFAULT_TOLERANCE_S: Final = 300.0
"""How far a receiver lets a timestamp stray from its clock, seconds."""

_DELIVERY_NAMESPACE = uuid.UUID("6f0b8d8e-2c49-5a57-9a43-4b1e8f3c2d10")
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")
_RETRIABLE_STATUS = frozenset({408, 429})


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _bytes(body: str | bytes) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``f"{timestamp}.{body}"``."""
    message = str(timestamp).encode("ascii") + b"." + _bytes(body)
    return SIGNATURE_PREFIX + hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: int | str,
    body: str | bytes,
    signature: str,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when ``signature`` is ours over ``timestamp`` and ``body`` and the timestamp is fresh.

    ``now`` is the receiver's clock (unix seconds); a timestamp more than ``tolerance_s`` before
    or after it is refused, which bounds replays to that window (de-duplicate on the delivery id
    within it). The comparison is constant-time. Never raises on malformed input.
    """
    if not secret or isinstance(timestamp, bool):
        return False
    stamp = str(timestamp)
    if not _TIMESTAMP_RE.match(stamp) or abs(now - int(stamp)) > tolerance_s:
        return False
    try:
        presented = signature.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        return False
    return hmac.compare_digest(sign(secret, stamp, body).encode("ascii"), presented)


def delivery_id(dispatch: Dispatch) -> uuid.UUID:
    """The notification's id: the same for the same dispatch step, whoever sends it and when."""
    step = "|".join(
        (
            dispatch.dispatch_id,
            dispatch.team_id,
            dispatch.status.value,
            str(dispatch.escalation),
            dispatch.updated_at.isoformat(),
        )
    )
    return uuid.uuid5(_DELIVERY_NAMESPACE, step)


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), ``None`` if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try again. Attempt ``n`` failed: wait ``min(max_delay_s, base_delay_s * factor**(n-1))``,
    jittered uniformly into its upper half, and at least what ``Retry-After`` asks."""

    max_attempts: int = 6
    base_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 30.0
    max_retry_after_s: float = 60.0
    """A receiver asking to wait longer than this (seconds) is given up on rather than obeyed late."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.factor < 1 or self.max_retry_after_s < 0:
            raise ValueError("delays must be non-negative and factor at least 1")

    def backoff_s(self, failed_attempt: int, rng: random.Random) -> float:
        """The jittered wait after attempt ``failed_attempt`` (1-based), seconds."""
        ceiling = min(self.max_delay_s, self.base_delay_s * self.factor ** (failed_attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How a notification went: ``status`` is the last HTTP status (``None``: no answer)."""

    delivered: bool
    attempts: int
    status: int | None
    error: str | None
    delivery_id: uuid.UUID | None = field(default=None, compare=False)

    @property
    def summary(self) -> str:
        """``"3 attempts, HTTP 200"``: starts with the attempt count, as lifecycle notes expect."""
        outcome = self.error if self.error is not None else f"HTTP {self.status}"
        return f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}, {outcome}"


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int | None
    error: str | None
    retriable: bool
    retry_after: str | None = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebhookSender:
    """Delivers dispatch notifications; one instance (one HTTP connection pool) per service.

    Use ``async with WebhookSender() as sender`` or call :meth:`aclose`. A ``client`` passed in
    (e.g. one configured for an egress proxy) is used as is and not closed here. Plain ``http``
    is allowed only to loopback hosts unless ``allow_http`` is set: a dispatch says where a team
    is sent, and the signature protects its integrity, not its confidentiality.
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        timeout_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
        allow_http: bool = False,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False
        )
        self._environ = environ if environ is not None else os.environ
        self._allow_http = allow_http
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.SystemRandom()

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (only if this sender created it)."""
        if self._own_client:
            await self._client.aclose()

    def _secret(self, name: str) -> tuple[str | None, str | None]:
        """``(secret, None)`` or ``(None, why not)``; the reason names the variable, never its value."""
        secret = self._environ.get(name)
        if not secret:
            return None, f"webhook secret missing: environment variable {name} is not set"
        problem = secret_problem(secret)
        if problem is not None:
            return None, f"webhook secret in {name} {problem}"
        return secret, None

    async def deliver(
        self, team: Team, dispatch: Dispatch, *, delivery: uuid.UUID | None = None
    ) -> DeliveryResult:
        """POST ``dispatch`` to ``team``'s webhook, retrying as the policy says; never raises
        for delivery problems (missing webhook or secret, refused URL, network, HTTP errors)."""
        ident = delivery or delivery_id(dispatch)
        extra: dict[str, object] = {
            "dispatch_id": dispatch.dispatch_id,
            "team_id": team.id,
            "delivery_id": str(ident),
        }
        if team.webhook is None:
            return self._give_up(
                DeliveryResult(False, 0, None, f"team {team.id} has no webhook", ident), extra
            )
        url = httpx.URL(team.webhook.url)
        extra["webhook_host"] = url.host
        if url.scheme == "http" and not self._allow_http and not _is_loopback(url.host):
            error = "plain http to a non-loopback host is refused (use https)"
            return self._give_up(DeliveryResult(False, 0, None, error, ident), extra)
        secret, problem = self._secret(team.webhook.secret_env)
        if secret is None:
            return self._give_up(DeliveryResult(False, 0, None, problem, ident), extra)

        body = dispatch.model_dump_json().encode("utf-8")
        outcome = _Outcome(None, "not attempted", retriable=False)
        attempt = 0
        for attempt in range(1, self.policy.max_attempts + 1):
            timestamp = str(int(self._clock()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "lindero-webhooks/1",
                TIMESTAMP_HEADER: timestamp,
                DELIVERY_HEADER: str(ident),
                SIGNATURE_HEADER: sign(secret, timestamp, body),
            }
            outcome = await self._attempt(url, body, headers)
            if outcome.error is None:
                log.info(
                    "webhook delivered to team %s after %s attempt(s)",
                    team.id,
                    attempt,
                    extra={**extra, "attempt": attempt, "status": outcome.status},
                )
                return DeliveryResult(True, attempt, outcome.status, None, ident)
            if not outcome.retriable or attempt == self.policy.max_attempts:
                break
            delay = self.policy.backoff_s(attempt, self._rng)
            asked = retry_after_s(outcome.retry_after, self._clock())
            if asked is not None:
                if asked > self.policy.max_retry_after_s:
                    outcome = _Outcome(
                        outcome.status,
                        f"{outcome.error}; the receiver asked to retry after {asked:.0f} s, more than "
                        f"the {self.policy.max_retry_after_s:.0f} s allowed",
                        retriable=False,
                    )
                    break
                delay = max(delay, asked)
            log.warning(
                "webhook attempt %s for team %s failed (%s); retrying in %.2f s",
                attempt,
                team.id,
                outcome.error,
                delay,
                extra={**extra, "attempt": attempt, "status": outcome.status, "delay_s": round(delay, 3)},
            )
            await self._sleep(delay)
        result = DeliveryResult(False, attempt, outcome.status, outcome.error, ident)
        return self._give_up(result, extra)

    def _give_up(self, result: DeliveryResult, extra: Mapping[str, object]) -> DeliveryResult:
        log.error(
            "webhook delivery failed after %s attempt(s): %s",
            result.attempts,
            result.error,
            extra={**extra, "attempts": result.attempts, "status": result.status},
        )
        return result

    async def _attempt(self, url: httpx.URL, body: bytes, headers: Mapping[str, str]) -> _Outcome:
        """One POST; the response body is never read (a receiver cannot make us buffer it)."""
        request = self._client.build_request("POST", url, content=body, headers=headers)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            return _Outcome(None, "timeout", retriable=True)
        except httpx.UnsupportedProtocol:
            return _Outcome(None, "unsupported URL scheme", retriable=False)
        except httpx.TransportError as exc:
            # the exception's text may hold the URL, which may hold a credential: name the kind only
            return _Outcome(None, f"connection error ({type(exc).__name__})", retriable=True)
        try:
            status = response.status_code
            if 200 <= status < 300:
                return _Outcome(status, None, retriable=False)
            if 300 <= status < 400:
                return _Outcome(status, f"HTTP {status} (redirects are not followed)", retriable=False)
            retriable = status >= 500 or status in _RETRIABLE_STATUS
            return _Outcome(status, f"HTTP {status}", retriable, response.headers.get("Retry-After"))
        finally:
            await response.aclose()
