"""The event endpoints, as plain ASGI: the hot path of ingest.

``POST /v1/events``, ``/v1/events/batch``, ``/v1/status`` and ``/v1/status/batch`` are served
here without a web framework in between, because at thousands of requests per second the
framework's per-request work costs more than everything else together (see
docs/benchmarks.md). The rest of the service (health, metrics, documentation) is FastAPI.
The OpenAPI document describes these endpoints too (:mod:`services.ingest.openapi`).

Answers: 202 accepted (written to Kafka, acknowledged by all in-sync replicas), 200 duplicate,
207 a batch with some events refused, 400 malformed body, 401 no or bad API key, 403 a sensor
the gateway may not post for, 409 an event_id reused for a different event, 413 too large,
415 wrong content type, 422 invalid event, 429 rate limited, 503 Kafka unavailable. Errors are
``application/problem+json`` and name the field path and, in a batch, the index of each event.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from schemas.events import COMPLETE_THROUGH_HEADER
from services.ingest.domain.admission import Reason
from services.ingest.domain.parsing import BodyError, Parsed
from services.ingest.service import IngestCore, Outcome, Stream

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
PROBLEM = b"application/problem+json"
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
_PROMISE = "Lindero-Complete-Through"
_PROMISE_KEY = COMPLETE_THROUGH_HEADER.encode()
_NOTHING = (b"", b"[]")
"""Bodies of a promise without events (after stripping whitespace)."""


class Refusal(Exception):
    """Ends a request early with a problem answer."""

    def __init__(
        self, status: int, reason: Reason | str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = str(reason)
        self.detail = detail
        self.headers = headers or []


def problem(status: int, reason: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem document; ``reason`` is also given as a plain member for machines."""
    return {
        "type": f"urn:lindero:problem:{reason}",
        "title": reason.replace("_", " "),
        "status": status,
        "reason": reason,
        "detail": detail,
        **extra,
    }


async def respond(
    send: Send,
    status: int,
    body: dict[str, Any],
    content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _token(headers: dict[bytes, bytes]) -> str | None:
    api_key = headers.get(b"x-api-key")
    if api_key:
        return api_key.decode("latin-1").strip()
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes before or after gzip."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise Refusal(400, Reason.MALFORMED, "Content-Length is not a number") from exc
        if size > limit:
            raise Refusal(413, Reason.TOO_LARGE, f"the body is {size} bytes; at most {limit} are allowed")
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, Reason.MALFORMED, "the client went away before the body ended")
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise Refusal(413, Reason.TOO_LARGE, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
    if encoding in {"", "identity"}:
        return body
    if encoding != "gzip":
        raise Refusal(
            415,
            Reason.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Encoding {encoding!r} is not supported (use gzip or none)",
        )
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Refusal(400, Reason.MALFORMED, f"the gzip body is corrupt: {exc}") from exc
    if len(inflated) > limit or decompressor.unconsumed_tail:
        raise Refusal(413, Reason.TOO_LARGE, f"the body inflates beyond {limit} bytes")
    return inflated


def _media_type(headers: dict[bytes, bytes]) -> str:
    return headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()


class EventsEndpoint:
    """One event endpoint (single or batch) for one stream (events or status)."""

    def __init__(self, core: IngestCore, stream: Stream, batch: bool) -> None:
        self.core = core
        self.stream = stream
        self.batch = batch
        self.name = f"/v1/{stream.name}" + ("/batch" if batch else "")
        settings = core.settings
        self.limit = settings.max_batch_bytes if batch else settings.max_event_bytes
        self._request_seconds = core.metrics.request_seconds.labels(self.name)
        self._codes: dict[int, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            status = await self._handle(scope, receive, send)
        except Refusal as refusal:
            status = refusal.status
            if status >= 500:
                log.warning("%s answered %s: %s", self.name, status, refusal.detail)
            else:
                self.core.metrics.rejected.labels(refusal.reason).inc()
            await respond(
                send, status, problem(status, refusal.reason, refusal.detail), PROBLEM, refusal.headers
            )
        except Exception:
            log.exception("unexpected failure in %s", self.name)
            status = 500
            await respond(
                send, 500, problem(500, "internal", "unexpected server error; it was logged"), PROBLEM
            )
        counter = self._codes.get(status)
        if counter is None:
            counter = self._codes[status] = self.core.metrics.requests.labels(self.name, str(status))
        counter.inc()
        self._request_seconds.observe(time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> int:
        if scope["method"] != "POST":
            raise Refusal(405, "method_not_allowed", f"{self.name} takes POST", [(b"allow", b"POST")])
        headers = dict(scope["headers"])
        gateway = self.core.authenticate(_token(headers))
        if gateway is None:
            raise Refusal(
                401,
                Reason.UNAUTHENTICATED,
                "a valid gateway API key is required (Authorization: Bearer <key> or X-API-Key)",
                [(b"www-authenticate", b'Bearer realm="lindero-ingest"')],
            )
        media_type = _media_type(headers)
        ndjson = media_type in NDJSON_TYPES
        if media_type != "application/json" and not (self.batch and ndjson):
            accepted = "application/json" + (", application/x-ndjson" if self.batch else "")
            raise Refusal(
                415,
                Reason.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be {accepted}, not {media_type or 'missing'!r}",
            )
        through = self._complete_through(headers)
        body = await read_body(receive, headers, self.limit)
        parser = self.stream.parser
        items: list[Parsed[Any]] = []  # with a promise and no body: a heartbeat
        try:
            if through is not None and body.strip() in _NOTHING:
                pass
            elif not self.batch:
                items = [parser.single(body)]
            elif ndjson:
                items = parser.ndjson(body, self.core.settings.max_batch_events)
            else:
                items = parser.array(body, self.core.settings.max_batch_events)
        except BodyError as exc:
            reason = Reason.TOO_LARGE if exc.status == 413 else Reason.MALFORMED
            raise Refusal(exc.status, reason, exc.message) from exc
        if self.batch:
            self.core.metrics.batch_events.observe(len(items))
        wait_s = self.core.throttle(gateway, len(items) or 1)  # a heartbeat costs one event's worth
        if wait_s > 0:
            if math.isinf(wait_s):
                detail = f"{len(items)} events exceed this gateway's burst limit; send smaller batches"
                raise Refusal(429, Reason.RATE_LIMITED, detail, [(b"retry-after", b"60")])
            raise Refusal(
                429,
                Reason.RATE_LIMITED,
                f"rate limit of gateway {gateway.gateway_id!r} reached; retry in {wait_s:.1f} s",
                [(b"retry-after", str(max(1, math.ceil(wait_s))).encode())],
            )
        outcome = await self.core.accept(self.stream, gateway, items, through)
        if outcome.unavailable is not None:
            raise Refusal(
                503,
                "kafka_unavailable",
                f"{outcome.unavailable}; nothing acknowledged was lost: retry the same events "
                f"({len(outcome.accepted)} of them were written and will come back as duplicates)",
                self._retry_after(),
            )
        if outcome.promise_failure is not None:
            raise Refusal(
                503,
                "kafka_unavailable",
                f"the {_PROMISE} promise was not written ({outcome.promise_failure}); retry the "
                f"request ({len(outcome.accepted)} of its events were written and will come back "
                "as duplicates)",
                self._retry_after(),
            )
        if self.batch:
            return await self._batch_answer(send, outcome, through is not None)
        return await self._single_answer(send, outcome)

    def _complete_through(self, headers: dict[bytes, bytes]) -> dt.datetime | None:
        """The gateway's promise from the ``Lindero-Complete-Through`` header (events batches
        only), or None; refuses a malformed one (400) or one too far ahead (422)."""
        raw = headers.get(_PROMISE_KEY)
        if raw is None:
            return None
        if not (self.batch and self.stream.name == "events"):
            raise Refusal(400, Reason.MALFORMED, f"{_PROMISE} is only taken by /v1/events/batch")
        text = raw.decode("latin-1").strip()
        try:
            parsed = dt.datetime.fromisoformat(text)
            through = parsed.astimezone(dt.UTC) if parsed.utcoffset() is not None else None
        except (ValueError, OverflowError):
            through = None
        if through is None:
            raise Refusal(
                400,
                Reason.MALFORMED,
                f"{_PROMISE} must be an RFC 3339 time with a zone "
                f"(e.g. 2026-11-22T10:00:00.250Z), not {text[:64]!r}",
            )
        refused = self.core.check_promise(through)
        if refused is not None:
            reason, detail = refused
            raise Refusal(422, reason, f"{_PROMISE}: {detail}")
        return through

    def _retry_after(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.core.settings.retry_after_s).encode())]

    async def _single_answer(self, send: Send, outcome: Outcome) -> int:
        if outcome.accepted:
            _, event_id, delivery, _ = outcome.accepted[0]
            body = {
                "status": "accepted",
                "event_id": event_id,
                "partition": delivery.partition,
                "offset": delivery.offset,
            }
            await respond(send, 202, body)
            return 202
        if outcome.duplicates:
            await respond(send, 200, {"status": "duplicate", "event_id": outcome.duplicates[0][1]})
            return 200
        rejection = outcome.rejected[0]
        detail = "; ".join(f"{e.path or 'event'}: {e.message}" for e in rejection.errors)
        body = problem(
            rejection.status,
            rejection.reason.value,
            detail,
            event_id=rejection.event_id,
            errors=[e.as_json() for e in rejection.errors],
        )
        await respond(send, rejection.status, body, PROBLEM)
        return rejection.status

    async def _batch_answer(self, send: Send, outcome: Outcome, promised: bool = False) -> int:
        accepted, duplicates, rejected = len(outcome.accepted), len(outcome.duplicates), len(outcome.rejected)
        if not rejected:
            status = 202 if accepted or (promised and not duplicates) else 200
        elif accepted or duplicates:
            status = 207
        else:
            codes = {r.status for r in outcome.rejected}
            status = codes.pop() if len(codes) == 1 else 422
        body = {
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": rejected,
            "rejected_events": [r.as_json() for r in sorted(outcome.rejected, key=lambda r: r.position)],
            "duplicate_events": [{"index": i, "event_id": e} for i, e, _ in sorted(outcome.duplicates)],
        }
        if promised:
            body["promise_written"] = True
        await respond(send, status, body)
        return status
