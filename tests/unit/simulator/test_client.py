"""The gateway poster against a fake ingest: batching, pacing, re-stamping, retries, accounting."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from services.simulator.client import (
    GatewayPoster,
    MissingKeyError,
    PosterError,
    PosterSettings,
    _retry_after_s,
    load_keys,
    restamp_base,
)
from services.simulator.domain import SimEvent

KEYS = {"gw-a": "key-a", "gw-b": "key-b"}


def make_events(
    count: int, span_s: float = 10.0, gateways: tuple[str, ...] = ("gw-a", "gw-b")
) -> list[SimEvent]:
    """``count`` events spread over ``span_s`` seconds, alternating gateways and streams."""
    events = []
    for index in range(count):
        stream = "status" if index % 5 == 0 else "events"
        payload = {
            "event_id": f"00000000-0000-4000-8000-{index:012d}",
            "sensor_id": f"s-{index % 3}",
            "time": "2026-01-01T00:00:00.000Z",
        }
        events.append(SimEvent(span_s * index / count, gateways[index % len(gateways)], stream, payload))  # type: ignore[arg-type]
    return events


class FakeIngest:
    """Answers batches like ingest: new ids accepted, known ids duplicates; faults on demand.

    ``faults`` is consumed one per request: ``"503"``/``"429"`` answer without writing,
    ``"lost"`` writes and then answers 503 (the answer got lost), ``"connect"`` raises a
    connection error, ``"reject"`` refuses the first event of the batch (207), ``"403"``
    refuses the whole request.
    """

    def __init__(self, faults: list[str] | None = None, retry_after: str | None = "0") -> None:
        self.faults = list(faults or [])
        self.retry_after = retry_after
        self.written: Counter[str] = Counter()
        self.requests: list[tuple[str, str, int]] = []
        self.times: list[dt.datetime] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        batch = orjson.loads(request.content)
        self.requests.append((request.url.path, request.headers["authorization"], len(batch)))
        fault = self.faults.pop(0) if self.faults else None
        headers = {"retry-after": self.retry_after} if self.retry_after is not None else {}
        if fault == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if fault in {"503", "429"}:
            return httpx.Response(int(fault), json={"reason": "busy"}, headers=headers)
        if fault == "403":
            return httpx.Response(403, json={"reason": "forbidden", "detail": "not your sensor"})
        rejected, duplicates = [], []
        for index, event in enumerate(batch):
            self.times.append(dt.datetime.fromisoformat(event["time"]))
            if fault == "reject" and index == 0:
                rejected.append(
                    {"index": 0, "event_id": event["event_id"], "status": 422, "reason": "too_old"}
                )
            elif self.written[event["event_id"]]:
                duplicates.append({"index": index, "event_id": event["event_id"]})
            else:
                self.written[event["event_id"]] += 1
        if fault == "lost":
            return httpx.Response(503, json={"reason": "kafka_unavailable"}, headers=headers)
        answer = {
            "accepted": len(batch) - len(rejected) - len(duplicates),
            "duplicates": len(duplicates),
            "rejected": len(rejected),
            "rejected_events": rejected,
            "duplicate_events": duplicates,
        }
        return httpx.Response(207 if rejected else 202, json=answer)


def poster(fake: FakeIngest, **changes: Any) -> GatewayPoster:
    settings = PosterSettings(
        **{"speed": 0.0, "batch_size": 50, "backoff_initial_s": 0.01, "keep_ids": True, **changes}
    )
    return GatewayPoster(settings, KEYS, transport=httpx.MockTransport(fake), jitter=np.random.default_rng(1))


async def test_events_are_batched_per_gateway_and_stream_with_the_gateway_key() -> None:
    """Batches of at most 50, each to its stream's path with its gateway's key; all accepted once."""
    events = make_events(333)
    fake = FakeIngest()
    stats = await poster(fake).post(events)
    assert stats.accepted == stats.sent == stats.total == 333
    assert stats.balanced
    assert set(fake.written.values()) == {1}
    assert len(fake.written) == 333
    for path, authorization, size in fake.requests:
        assert 1 <= size <= 50
        assert path in {"/v1/events/batch", "/v1/status/batch"}
        assert authorization in {"Bearer key-a", "Bearer key-b"}
    assert stats.accepted_ids == {e.event_id for e in events}
    assert stats.requests == len(fake.requests) < 333 / 10


async def test_a_partial_batch_goes_out_after_the_max_delay() -> None:
    """Three events never fill a batch; they still leave after max_delay_s."""
    fake = FakeIngest()
    began = time.perf_counter()
    stats = await poster(fake, speed=1.0, max_delay_s=0.2).post(make_events(3, span_s=0.01))
    assert stats.accepted == 3
    assert time.perf_counter() - began < 1.0


async def test_a_quiet_lane_sends_its_next_event_after_the_max_delay_not_at_the_end() -> None:
    """A lane gone quiet posts its next event after max_delay_s, while the other lane is still busy."""
    fake = FakeIngest()
    arrivals: list[float] = []
    began = time.perf_counter()

    def recording(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer key-b":
            arrivals.append(time.perf_counter() - began)
        return fake(request)

    quiet = [
        SimEvent(
            at_s,
            "gw-b",
            "status",
            {"event_id": f"q-{at_s}", "sensor_id": "s-9", "time": "2026-01-01T00:00:00.000Z"},
        )  # type: ignore[arg-type]
        for at_s in (0.0, 1.0)
    ]
    busy = make_events(60, span_s=3.0, gateways=("gw-a",))
    settings = PosterSettings(speed=1.0, batch_size=50, max_delay_s=0.2, keep_ids=True)
    poster_ = GatewayPoster(
        settings, KEYS, transport=httpx.MockTransport(recording), jitter=np.random.default_rng(1)
    )
    stats = await poster_.post(sorted([*quiet, *busy], key=lambda e: e.time_s))
    assert stats.accepted == 62
    assert len(arrivals) == 2
    assert arrivals[1] < 2.0, f"the quiet lane's second event waited until {arrivals[1]:.2f} s (the end)"


async def test_the_batching_delay_is_in_scenario_seconds() -> None:
    """At speed 10 a partial batch waits max_delay_s / 10 of wall time."""
    fake = FakeIngest()
    arrivals: list[float] = []
    began = time.perf_counter()

    def recording(request: httpx.Request) -> httpx.Response:
        arrivals.append(time.perf_counter() - began)
        return fake(request)

    first = SimEvent(
        0.0, "gw-a", "events", {"event_id": "e-1", "sensor_id": "s-1", "time": "2026-01-01T00:00:00.000Z"}
    )  # type: ignore[arg-type]
    last = SimEvent(
        20.0, "gw-b", "events", {"event_id": "e-2", "sensor_id": "s-1", "time": "2026-01-01T00:00:20.000Z"}
    )  # type: ignore[arg-type]
    settings = PosterSettings(speed=10.0, batch_size=50, max_delay_s=2.0)
    poster_ = GatewayPoster(
        settings, KEYS, transport=httpx.MockTransport(recording), jitter=np.random.default_rng(1)
    )
    await poster_.post([first, last])
    assert arrivals[0] < 0.6, f"first batch after {arrivals[0]:.2f} s; 2 s of scenario time is 0.2 s at 10x"


async def test_pacing_follows_simulation_time_at_the_given_speed() -> None:
    """Ten simulated seconds at speed 20 take about half a second."""
    began = time.perf_counter()
    stats = await poster(FakeIngest(), speed=20.0, max_delay_s=0.05).post(make_events(40, span_s=10.0))
    took_s = time.perf_counter() - began
    assert stats.accepted == 40
    assert 0.45 <= took_s < 2.0


async def test_restamped_times_are_never_in_the_future() -> None:
    """Accelerated, the scenario is shifted back so the last event is stamped about now."""
    fake = FakeIngest()
    events = make_events(60, span_s=30.0)
    await poster(fake, speed=30.0, max_delay_s=0.05).post(events)
    now = dt.datetime.now(dt.UTC)
    assert max(fake.times) <= now
    assert now - max(fake.times) < dt.timedelta(seconds=3)
    assert max(fake.times) - min(fake.times) == dt.timedelta(seconds=events[-1].time_s)


def test_restamp_base_starts_now_in_real_time_and_ends_now_when_accelerated() -> None:
    """Speed <= 1: time 0 is now; faster: shifted back by last * (1 - 1/speed); flat out: by last."""
    now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    events = make_events(10, span_s=100.0)
    last = events[-1].time_s
    assert restamp_base(events, 1.0, now) == now
    assert restamp_base(events, 0.5, now) == now
    assert restamp_base(events, 10.0, now) == now - dt.timedelta(seconds=last * 0.9)
    assert restamp_base(events, 0.0, now) == now - dt.timedelta(seconds=last)


async def test_503_and_429_are_retried_until_taken() -> None:
    """Unavailable and rate-limited answers are retried; every event ends accepted once."""
    fake = FakeIngest(faults=["503", "429", "503", "429"])
    stats = await poster(fake).post(make_events(120))
    assert stats.retries == 4
    assert stats.accepted == 120
    assert stats.responses["503"] == 2
    assert stats.responses["429"] == 2
    assert stats.balanced


async def test_connection_errors_are_retried_with_backoff() -> None:
    """A refused connection is retried (exponential backoff), nothing lost."""
    fake = FakeIngest(faults=["connect", "connect", "connect"])
    stats = await poster(fake).post(make_events(20))
    assert stats.responses["ConnectError"] == 3
    assert stats.accepted == 20
    assert stats.retries == 3


async def test_lost_answers_come_back_as_duplicates_never_twice() -> None:
    """Written but unanswered: the resent batch is answered duplicate and written once."""
    fake = FakeIngest(faults=["lost", "lost"])
    events = make_events(80)
    stats = await poster(fake).post(events)
    assert set(fake.written.values()) == {1}
    assert len(fake.written) == 80
    assert stats.duplicates > 0
    assert stats.accepted + stats.duplicates == 80
    assert stats.accepted_ids | stats.duplicate_ids == {e.event_id for e in events}


async def test_retry_after_is_honoured() -> None:
    """A 429 with Retry-After: 1 waits about a second before the retry."""
    fake = FakeIngest(faults=["429"], retry_after="1")
    began = time.perf_counter()
    stats = await poster(fake).post(make_events(5, gateways=("gw-a",)))
    assert stats.accepted == 5
    assert time.perf_counter() - began >= 1.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After as delta-seconds or as an HTTP-date; garbage is ignored."""
    assert _retry_after_s(httpx.Response(503, headers={"retry-after": "5"})) == 5.0
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 25.0 < (_retry_after_s(httpx.Response(503, headers={"retry-after": header})) or 0) <= 30.0
    assert _retry_after_s(httpx.Response(503, headers={"retry-after": "soon"})) is None
    assert _retry_after_s(httpx.Response(503)) is None


async def test_refusals_are_counted_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    """A 207 refusal counts that event rejected; a 403 rejects the batch; both logged with reasons."""
    fake = FakeIngest(faults=["reject", "403"])
    events = make_events(100, gateways=("gw-a",))
    stats = await poster(fake).post([e for e in events if e.stream == "events"][:60])
    assert stats.rejected == 1 + 10
    assert stats.accepted == 60 - 11
    assert stats.retries == 0
    assert stats.rejected_reasons == Counter({"too_old": 1, "forbidden": 10})
    assert stats.balanced
    assert "refused" in caplog.text
    assert "forbidden" in caplog.text


async def test_stopping_while_ingest_is_down_loses_no_count() -> None:
    """Stopped mid-retry: what was posted is unconfirmed, the rest unsent; all accounted for."""
    fake = FakeIngest(faults=["503"] * 1000)
    client = poster(fake, speed=2.0, max_delay_s=0.05)
    task = asyncio.create_task(client.post(make_events(50, span_s=10.0)))
    await asyncio.sleep(0.5)
    client.request_stop()
    stats = await asyncio.wait_for(task, 5)
    assert stats.accepted == 0
    assert stats.unconfirmed == stats.sent > 0
    assert stats.unsent == 50 - stats.sent > 0
    assert stats.balanced


async def test_a_gateway_without_key_is_refused_before_posting() -> None:
    """Every gateway of the scenario needs a key; nothing is posted otherwise."""
    fake = FakeIngest()
    with pytest.raises(MissingKeyError, match="gw-c"):
        await poster(fake).post(make_events(9, gateways=("gw-a", "gw-c")))
    assert fake.requests == []


def test_keys_file_must_map_gateways_to_keys(tmp_path: Path) -> None:
    """The keys file is a YAML mapping of gateway id to key."""
    good = tmp_path / "keys.yaml"
    good.write_text("gw-a: key-a\n", "utf-8")
    assert load_keys(good) == {"gw-a": "key-a"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- gw-a\n", "utf-8")
    with pytest.raises(PosterError, match="mapping"):
        load_keys(bad)
    with pytest.raises(PosterError, match="cannot read"):
        load_keys(tmp_path / "missing.yaml")


async def test_promising_gateways_never_promise_past_an_event_they_post_later() -> None:
    """With promises, every events batch says how far its gateway has posted: each later event of
    that gateway is newer than every promise it made before, promises never go back, never run
    ahead of the clock, and a gateway with nothing to post repeats its promise in empty batches;
    status batches carry none."""
    seen: list[tuple[str, str, list[dict[str, Any]], str | None, dt.datetime]] = []
    fake = FakeIngest()

    def recording(request: httpx.Request) -> httpx.Response:
        promise = request.headers.get("lindero-complete-through")
        batch = orjson.loads(request.content)
        seen.append(
            (request.url.path, request.headers["authorization"], batch, promise, dt.datetime.now(dt.UTC))
        )
        return fake(request)

    # gw-b is quiet for the first 1.5 s: only heartbeats (and its status lane) until then.
    events = [e for e in make_events(80, span_s=2.0) if e.gateway_id == "gw-a" or e.time_s >= 1.5]
    settings = PosterSettings(
        speed=1.0, batch_size=5, max_delay_s=0.1, heartbeat_s=0.05, keep_ids=True, promise=True
    )
    poster_ = GatewayPoster(settings, KEYS, transport=httpx.MockTransport(recording))
    stats = await poster_.post(events)
    assert stats.accepted == len(events)
    assert stats.heartbeats >= 5
    for key in ("key-a", "key-b"):
        mine = [s for s in seen if s[1] == f"Bearer {key}"]
        promised = [
            (dt.datetime.fromisoformat(p), batch, at)
            for path, _, batch, p, at in mine
            if path == "/v1/events/batch"
        ]
        assert all(p is None for path, _, _, p, _ in mine if path == "/v1/status/batch")
        assert all(p is not None for path, _, _, p, _ in mine if path == "/v1/events/batch")
        assert any(not batch for _, batch, _ in promised), f"{key}: no heartbeat"
        times = [through for through, _, _ in promised]
        assert times == sorted(times)
        assert all(through <= at for through, _, at in promised)
        for k, (through, _, _) in enumerate(promised):
            # A promise is written behind its own batch: it is about the batches after it.
            later = [dt.datetime.fromisoformat(e["time"]) for _, batch, _ in promised[k + 1 :] for e in batch]
            assert all(t > through for t in later), (key, through, min(later))
    first_b = min(at for path, auth, batch, _, at in seen if auth == "Bearer key-b" and batch)
    assert any(at < first_b and not batch for _, auth, batch, _, at in seen if auth == "Bearer key-b")


def test_promises_need_paced_restamped_events() -> None:
    """A promise is about sensor times the poster controls: not flat out, not with times as given."""
    with pytest.raises(ValueError, match="promises need"):
        PosterSettings(speed=0.0, promise=True)
    with pytest.raises(ValueError, match="promises need"):
        PosterSettings(speed=1.0, restamp=False, promise=True)
