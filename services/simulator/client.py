"""Post a simulation to ingest the way real sensor gateways do.

Per gateway and stream (a *lane*), messages are batched (up to ``batch_size`` events, or
whatever has waited ``max_delay_s``) and posted to ``/v1/events/batch`` or
``/v1/status/batch`` with the gateway's API key (``Authorization: Bearer ...``); each lane
has one request in flight at a time, so a lane's events reach ingest in time order.

Pacing: event ``i`` is handed to its lane ``time_s / speed`` seconds after the start
(``speed`` 0: as fast as possible). Sensor times are re-stamped so that ingest's time window
takes them: at ``speed`` <= 1 the scenario starts now; faster, it is shifted back by
``last_time_s * (1 - 1/speed)`` so that no event is ever in the future when it is posted
(the last one is stamped "now" when it goes out). The re-stamped payload is built once, so a
retry resends exactly the same bytes.

Promises (``promise``): every gateway of the scenario also says how far it has posted,
``Lindero-Complete-Through`` on each events batch: the oldest sensor time it still holds or will
hand over later (the pacer's next event, never ahead of the pacer's clock), minus 1 ms. A gateway
with nothing to post repeats its promise every ``heartbeat_s`` in an empty batch, so the correlator
can release a region as soon as every gateway has promised past a detection (DESIGN.md, Correlator).

Delivery: connection errors, timeouts, 429 and 5xx answers are retried with exponential
backoff and jitter (``Retry-After`` is honoured), forever, until the caller stops the
poster; ingest answers "duplicate" for what it had already written, so nothing is written
twice. Other 4xx answers are final: their events are counted as rejected and logged with the
reason. Nothing is dropped silently: at the end
``sent == accepted + duplicates + rejected + unconfirmed`` and ``total == sent + unsent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import logging
import math
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import yaml

from schemas.events import COMPLETE_THROUGH_HEADER
from services.simulator.domain import SimEvent
from services.simulator.domain.clock import rfc3339, to_ms

log = logging.getLogger(__name__)

PATHS = {"events": "/v1/events/batch", "status": "/v1/status/batch"}
RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_PACE_SLACK_S = 0.01
"""Events due within this many seconds are handed over at once rather than slept for."""


class PosterError(Exception):
    """Base of the poster's errors."""


class MissingKeyError(PosterError):
    """A gateway of the scenario has no API key in the keys file."""


def load_keys(path: Path) -> dict[str, str]:
    """Gateway id -> API key, from a YAML mapping (e.g. ``config/demo-keys.yaml``)."""
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PosterError(f"cannot read the keys file {path}: {exc}") from exc
    if not isinstance(document, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in document.items()
    ):
        raise PosterError(f"{path}: expected a mapping of gateway id to API key")
    return dict(document)


@dataclass(frozen=True)
class PosterSettings:
    """How to post. Times in seconds."""

    base_url: str = "http://127.0.0.1:8081"
    batch_size: int = 50
    """Events per request, at most."""
    max_delay_s: float = 0.5
    """A partial batch goes out once its oldest event has waited this long, in scenario seconds
    (at ``speed`` 10 that is 0.05 s of wall time): a real gateway's batching delay, so that
    accelerated runs arrive exactly as out of order as live ones would."""
    speed: float = 1.0
    """Simulation seconds per wall-clock second; 0 posts as fast as possible."""
    restamp: bool = True
    """Re-stamp sensor times relative to now (see the module docstring); else post as they are."""
    timeout_s: float = 30.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    retry_after_max_s: float = 60.0
    keep_ids: bool = False
    """Remember which event ids were accepted, duplicates or rejected (tests, audits)."""
    promise: bool = False
    """Each gateway promises how far it has posted (see the module docstring)."""
    heartbeat_s: float = 0.5
    """With ``promise``: how often a gateway with nothing to post repeats its promise, in scenario
    seconds like ``max_delay_s``."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.speed < 0 or self.max_delay_s < 0:
            raise ValueError("speed and max_delay_s must not be negative")
        if self.promise and not (self.restamp and self.speed > 0):
            raise ValueError("promises need paced (speed > 0), re-stamped events")
        if self.heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive")


@dataclass
class PostStats:
    """What happened to the events handed to the poster."""

    total: int = 0
    sent: int = 0
    """Events posted at least once."""
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unconfirmed: int = 0
    """Posted, but stopped before any final answer (they may or may not be in Kafka)."""
    unsent: int = 0
    """Never posted (stopped before their time came)."""
    requests: int = 0
    heartbeats: int = 0
    """Requests that carried only a promise (no events)."""
    retries: int = 0
    elapsed_s: float = 0.0
    responses: Counter[str] = field(default_factory=Counter)
    """Answers by HTTP status, or by error name when there was no answer."""
    rejected_reasons: Counter[str] = field(default_factory=Counter)
    accepted_ids: set[str] = field(default_factory=set)
    duplicate_ids: set[str] = field(default_factory=set)
    rejected_ids: set[str] = field(default_factory=set)

    @property
    def rate_per_s(self) -> float:
        """Events sent per wall-clock second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def balanced(self) -> bool:
        """Every event is accounted for."""
        answered = self.accepted + self.duplicates + self.rejected + self.unconfirmed
        return self.sent == answered and self.total == self.sent + self.unsent

    def summary(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "sent": self.sent,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "unconfirmed": self.unconfirmed,
            "unsent": self.unsent,
            "requests": self.requests,
            "heartbeats": self.heartbeats,
            "retries": self.retries,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate_per_s, 1),
            "responses": dict(sorted(self.responses.items())),
            "rejected_reasons": dict(sorted(self.rejected_reasons.items())),
        }


def restamp_base(events: Sequence[SimEvent], speed: float, now: dt.datetime) -> dt.datetime:
    """The datetime that simulation time 0 maps to, so no event is posted ahead of its time."""
    last_s = max((event.time_s for event in events), default=0.0)
    if speed <= 0:
        lag_s = last_s
    elif speed > 1:
        lag_s = last_s * (1.0 - 1.0 / speed)
    else:
        lag_s = 0.0
    return now - dt.timedelta(seconds=lag_s)


def _retry_after_s(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or HTTP-date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class _Lane:
    """The queue of one gateway's messages of one stream, and its sender."""

    def __init__(self, gateway_id: str, stream: str, key: str) -> None:
        self.gateway_id = gateway_id
        self.stream = stream
        self.path = PATHS[stream]
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.queue: deque[tuple[float, float, dict[str, Any]]] = deque()
        """(hand-off time on the loop's clock, sensor time in epoch seconds, payload)"""
        self.wake = asyncio.Event()
        self.closed = False


class GatewayPoster:
    """Posts simulated messages to ingest like the gateways that own the sensors would."""

    def __init__(
        self,
        settings: PosterSettings,
        keys: Mapping[str, str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        jitter: np.random.Generator | None = None,
    ) -> None:
        self.settings = settings
        self.keys = dict(keys)
        self.transport = transport
        self.jitter = jitter if jitter is not None else np.random.default_rng()
        self.stats = PostStats()
        self.stop = asyncio.Event()
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._next_s = math.inf
        """Sensor time (epoch s) of the next event the pacer hands over (inf: none is left)."""
        self._clock: tuple[float, float] | None = None
        """(loop time of the start, sensor time it maps to): the pacer's clock in sensor time."""

    def request_stop(self) -> None:
        """Stop soon: nothing new is posted; retries end; what is left is counted, not lost."""
        self.stop.set()
        for lane in self._lanes.values():
            lane.wake.set()

    async def post(self, events: Sequence[SimEvent]) -> PostStats:
        """Post ``events`` (sorted by time) paced by ``speed``; returns when all are answered."""
        missing = sorted({e.gateway_id for e in events} - set(self.keys))
        if missing:
            raise MissingKeyError(f"no API key for gateway(s) {', '.join(missing)}")
        settings = self.settings
        stats = self.stats
        stats.total += len(events)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The pacer hands an event over up to _PACE_SLACK_S before its time: stamp that much
        # earlier, so no event is ever stamped ahead of the moment it leaves (CI once saw 2 ms).
        now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=_PACE_SLACK_S)
        base = restamp_base(events, settings.speed, now) if settings.restamp else None
        base_s = base.timestamp() if base is not None else 0.0
        self._clock = (started, base_s)
        limits = httpx.Limits(max_connections=max(10, 2 * len({e.gateway_id for e in events})))
        async with httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.timeout_s, transport=self.transport, limits=limits
        ) as client:
            senders: list[asyncio.Task[None]] = []

            def lane_of(gateway_id: str, stream: str) -> _Lane:
                lane = self._lanes.get((gateway_id, stream))
                if lane is None:
                    lane = self._lanes[gateway_id, stream] = _Lane(gateway_id, stream, self.keys[gateway_id])
                    senders.append(asyncio.create_task(self._send(client, lane)))
                return lane

            try:
                if settings.promise:  # every gateway promises from the start, even before its first event
                    for gateway_id in sorted({e.gateway_id for e in events}):
                        lane_of(gateway_id, "events")
                for event in events:
                    self._next_s = base_s + to_ms(event.time_s) / 1000.0
                    if settings.speed > 0:
                        delay = started + event.time_s / settings.speed - loop.time()
                        if delay > _PACE_SLACK_S and not await self._pause(delay):
                            break
                    if self.stop.is_set():
                        break
                    lane = lane_of(event.gateway_id, event.stream)
                    payload = event.payload
                    if base is not None:
                        payload = {**payload, "time": rfc3339(base, to_ms(event.time_s))}
                    lane.queue.append((loop.time(), self._next_s, payload))
                    # The first event starts the lane's batching clock; a full batch goes at once.
                    if len(lane.queue) == 1 or len(lane.queue) >= settings.batch_size:
                        lane.wake.set()
                self._next_s = math.inf
                for lane in self._lanes.values():
                    lane.closed = True
                    lane.wake.set()
                await asyncio.gather(*senders)
            finally:
                for task in senders:
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*senders, return_exceptions=True)
        stats.unsent = stats.total - stats.sent
        stats.elapsed_s = loop.time() - started
        if not stats.balanced:
            log.error("the poster lost count of events", extra=stats.summary())
        return stats

    async def _pause(self, delay_s: float) -> bool:
        """Sleep ``delay_s`` unless stopped first; False when stopped."""
        if delay_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay_s)
        return not self.stop.is_set()

    async def _send(self, client: httpx.AsyncClient, lane: _Lane) -> None:
        """The lane's sender: full batches at once, partial ones after ``max_delay_s`` (scaled by speed)."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        scale = settings.speed if settings.speed > 1 else 1.0
        wait_s = settings.max_delay_s / scale
        while True:
            lane.wake.clear()
            if self.stop.is_set():
                return
            if not lane.queue:
                if lane.closed:
                    return
                if not (settings.promise and lane.stream == "events"):
                    await lane.wake.wait()
                    continue
                try:
                    await asyncio.wait_for(lane.wake.wait(), settings.heartbeat_s / scale)
                except TimeoutError:
                    self.stats.heartbeats += 1
                    await self._deliver(client, lane, [])
                continue
            if len(lane.queue) < settings.batch_size and not lane.closed:
                remaining_s = lane.queue[0][0] + wait_s - loop.time()
                if remaining_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.wake.wait(), remaining_s)
                    continue
            count = min(settings.batch_size, len(lane.queue))
            batch = [lane.queue.popleft()[2] for _ in range(count)]
            await self._deliver(client, lane, batch)

    def _promise(self, lane: _Lane) -> str:
        """How far ``lane``'s gateway has posted: everything it holds or will be handed is newer."""
        if self._clock is None:
            raise RuntimeError("a promise is made while posting")
        started, base_s = self._clock
        pacer_s = base_s + (asyncio.get_running_loop().time() - started) * self.settings.speed
        oldest = lane.queue[0][1] if lane.queue else math.inf
        through_s = min(oldest, self._next_s, pacer_s) - 0.001
        return rfc3339(dt.datetime.fromtimestamp(0, dt.UTC), math.floor(through_s * 1000.0))

    def _backoff_s(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        settings = self.settings
        ceiling = min(settings.backoff_max_s, settings.backoff_initial_s * 2.0**attempt)
        return ceiling / 2.0 + float(self.jitter.uniform(0.0, ceiling / 2.0))

    async def _deliver(self, client: httpx.AsyncClient, lane: _Lane, batch: list[dict[str, Any]]) -> None:
        """Post one batch until ingest gives a final answer (or the poster is stopped)."""
        stats = self.stats
        body = orjson.dumps(batch)
        stats.sent += len(batch)
        headers = lane.headers
        if self.settings.promise and lane.stream == "events":
            headers = {**headers, COMPLETE_THROUGH_HEADER: self._promise(lane)}
        attempt = 0
        while True:
            stats.requests += 1
            try:
                response = await client.post(lane.path, content=body, headers=headers)
            except httpx.TransportError as exc:
                stats.responses[type(exc).__name__] += 1
                wait_s = self._backoff_s(attempt)
                why = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                stats.responses[str(status)] += 1
                if status not in RETRIABLE_STATUS:
                    self._settle(lane, batch, response)
                    return
                hinted = _retry_after_s(response)
                if hinted is None:
                    wait_s = self._backoff_s(attempt)
                else:
                    hinted = min(hinted, self.settings.retry_after_max_s)
                    wait_s = hinted + float(self.jitter.uniform(0.0, 0.1 * hinted + 0.05))
                why = f"HTTP {status}"
            attempt += 1
            stats.retries += 1
            level = logging.INFO if attempt < 5 else logging.WARNING
            log.log(
                level,
                "batch of %s not taken (%s); retry %s in %.2f s",
                len(batch),
                why,
                attempt,
                wait_s,
                extra={"gateway_id": lane.gateway_id, "stream": lane.stream},
            )
            if not await self._pause(wait_s):
                stats.unconfirmed += len(batch)
                return

    def _settle(self, lane: _Lane, batch: list[dict[str, Any]], response: httpx.Response) -> None:
        """Count a final answer: a batch answer event by event, or a refusal of the whole request."""
        stats = self.stats
        try:
            answer = response.json()
        except ValueError:
            answer = None
        ids = [str(payload.get("event_id")) for payload in batch]
        if isinstance(answer, dict) and "rejected_events" in answer and "duplicate_events" in answer:
            refused = {int(r["index"]): r for r in answer["rejected_events"]}
            repeated = {int(d["index"]) for d in answer["duplicate_events"]}
        else:
            reason = answer.get("reason") if isinstance(answer, dict) else None
            detail = answer.get("detail") if isinstance(answer, dict) else response.text[:200]
            whole = {"reason": reason or f"http_{response.status_code}", "errors": [{"message": detail}]}
            refused = dict.fromkeys(range(len(batch)), whole)
            repeated = set()
        for index, event_id in enumerate(ids):
            if index in refused:
                stats.rejected += 1
                stats.rejected_reasons[str(refused[index].get("reason"))] += 1
                if self.settings.keep_ids:
                    stats.rejected_ids.add(event_id)
            elif index in repeated:
                stats.duplicates += 1
                if self.settings.keep_ids:
                    stats.duplicate_ids.add(event_id)
            else:
                stats.accepted += 1
                if self.settings.keep_ids:
                    stats.accepted_ids.add(event_id)
        if refused:
            first = refused[min(refused)]
            log.warning(
                "ingest refused %s of %s events (HTTP %s): %s %s",
                len(refused),
                len(batch),
                response.status_code,
                first.get("reason"),
                first.get("errors"),
                extra={"gateway_id": lane.gateway_id, "stream": lane.stream},
            )
