"""The hub's flusher: pacing, coalescing, a full or closed connection, heartbeats (no Kafka, no server)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from starlette.websockets import WebSocketState
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from services.alerts.domain.sharing import SharingPolicy
from services.alerts.hub import Client, Hub, Subscription
from services.alerts.lifecycle import TeamBoard
from services.alerts.metrics import AlertsMetrics
from services.alerts.store import Change, Kind, Store
from services.alerts.wsprotocol import frame_header
from services.core.kafka import KafkaSettings
from tests.integration.conftest import wait_until
from tests.unit.alerts.builders import DEMO, centre_viewer, live_track, make_alert, make_state

GAP_S = 0.2


class FakeWriter:
    """A connection that records the frames written to it; it can be full or closed."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.written_s: list[float] = []
        self.full = False
        self.closed = False

    def writable(self) -> bool:
        if self.closed:
            raise ConnectionError("closed")
        return not self.full

    def write(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))
        self.written_s.append(asyncio.get_running_loop().time())

    def messages(self) -> list[dict[str, Any]]:
        return [m for f in self.frames for m in f["messages"]]

    def track_ids(self) -> list[str]:
        return [m["data"]["track_id"] for m in self.messages() if m["type"] == "track"]


class GoneSocket:
    """The websocket a client was accepted on, already closed (the hub closes nothing here)."""

    application_state = WebSocketState.DISCONNECTED


class Bench:
    """A hub on a store that is never started: changes are handed to it directly."""

    def __init__(self, **hub_options: Any) -> None:
        self.store = Store(KafkaSettings(), TeamBoard())
        self.store.cursor["tracks/0"] = 0
        self.metrics = AlertsMetrics(CollectorRegistry())
        options = {"min_flush_s": GAP_S, "max_flush_s": GAP_S, "heartbeat_s": 30.0, **hub_options}
        self.hub = Hub(self.store, SharingPolicy(DEMO), self.metrics, **options)
        self.offset = 0

    def join(self, writer: FakeWriter | None = None) -> tuple[Client, FakeWriter]:
        writer = writer if writer is not None else FakeWriter()
        client = Client(
            GoneSocket(),
            centre_viewer(DEMO, "cc-cucuta"),
            Subscription(),
            f"c{len(self.hub.clients)}",
            writer,
        )  # type: ignore[arg-type]
        self.hub.join(client, None)
        return client, writer

    def track(self, number: int) -> None:
        track = live_track(number)
        self.store.tracks[track.track_id] = track
        self.store.cursor["tracks/0"] = self.offset + 1
        self.hub.on_change(Change(Kind.TRACK, track.track_id, track, "tracks/0", self.offset))
        self.offset += 1

    def alert(self) -> str:
        state = make_state(DEMO, make_alert(DEMO, "CO", "co-ve-cucuta"))
        alert_id = state.alert.alert_id
        self.store.alerts[alert_id] = state
        self.store.cursor["alert.state/0"] = self.offset + 1
        self.hub.on_change(Change(Kind.ALERT, alert_id, state, "alert.state/0", self.offset))
        self.offset += 1
        return alert_id

    async def close(self) -> None:
        await self.hub.close_all()


def _contiguous(writer: FakeWriter) -> None:
    seq = 0
    for frame in writer.frames:
        assert frame["seq"] == seq
        seq += len(frame["messages"])


async def test_quiet_clients_get_a_change_at_once_and_busy_ones_a_frame_per_gap() -> None:
    """The first change goes out at once; under a burst, frames to a client are a gap apart and
    carry everything new since the last one, in order, with contiguous sequence numbers."""
    bench = Bench()
    clients = [bench.join() for _ in range(3)]
    await wait_until(lambda: asyncio.sleep(0, all(w.frames for _, w in clients)), 5, "the snapshots")
    await asyncio.sleep(GAP_S)
    started = asyncio.get_running_loop().time()
    bench.track(0)
    await wait_until(
        lambda: asyncio.sleep(0, all(len(w.frames) == 2 for _, w in clients)), 5, "the first change"
    )
    for _, writer in clients:
        assert writer.written_s[1] - started < GAP_S / 2, "a quiet client waits for nothing"
    for number in range(1, 40):
        bench.track(number)
        await asyncio.sleep(0.01)
    expected = [f"co-ve-cucuta.T{n:06d}" for n in range(40)]
    await wait_until(
        lambda: asyncio.sleep(0, all(w.track_ids() == expected for _, w in clients)), 5, "every track"
    )
    for _, writer in clients:
        _contiguous(writer)
        gaps = [b - a for a, b in zip(writer.written_s[1:], writer.written_s[2:], strict=False)]
        assert gaps
        assert min(gaps) >= GAP_S * 0.9, gaps
        assert len(writer.frames) <= 2 + 0.4 / GAP_S + 2, "coalesced: about one frame per gap"
        assert writer.frames[-1]["cursor"] == {"tracks/0": 40}
    await bench.close()


async def test_moving_tracks_wait_for_the_track_gap_and_an_alert_does_not() -> None:
    """While tracks stream, a client's frames holding only track updates are track_flush_s apart;
    an alert goes out at the shortest gap, with the tracks queued before it, and the track
    updates after it wait a whole track gap again."""
    gap_s, track_gap_s = 0.05, 0.4
    bench = Bench(min_flush_s=gap_s, max_flush_s=1.0, track_frame_budget_per_s=1 / track_gap_s)
    _, writer = bench.join()
    await wait_until(lambda: asyncio.sleep(0, bool(writer.frames)), 5, "the snapshot")
    loop = asyncio.get_running_loop()
    raised_s = 0.0
    for number in range(120):
        bench.track(number)
        if number == 70:
            bench.alert()
            raised_s = loop.time()
        await asyncio.sleep(0.01)
    await wait_until(lambda: asyncio.sleep(0, len(writer.track_ids()) == 120), 5, "every track")
    _contiguous(writer)
    frames = list(zip(writer.written_s[1:], writer.frames[1:], strict=True))
    alerted = [(t, f) for t, f in frames if any(m["type"] == "alert" for m in f["messages"])]
    (alert_s, alert_frame), *_ = alerted
    assert alert_s - raised_s < track_gap_s / 2, "the alert waits for the short gap, not the track gap"
    carried = [m["data"]["track_id"] if m["type"] == "track" else m["type"] for m in alert_frame["messages"]]
    assert carried.index("co-ve-cucuta.T000070") < carried.index("alert"), "the waiting tracks ride along"
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(frames) if b[1] is not alert_frame]
    assert gaps
    assert min(gaps) >= track_gap_s * 0.9, gaps
    assert len(frames) <= 1.3 / track_gap_s + 3, "about one track frame per track gap"
    await bench.close()


def test_frames_of_track_updates_only_are_spaced_more_with_many_clients() -> None:
    hub = Bench(min_flush_s=0.02, max_flush_s=0.2, frame_budget_per_s=50_000).hub
    gaps = {}
    for clients in (1, 200, 1_000, 5_000, 50_000):
        hub.clients = {object() for _ in range(clients)}  # type: ignore[misc]
        gaps[clients] = (round(hub.flush_gap_s(), 3), round(hub.track_gap_s(), 3))
    assert gaps == {
        1: (0.02, 0.02),
        200: (0.02, 0.02),
        1_000: (0.02, 0.1),
        5_000: (0.1, 0.2),
        50_000: (0.2, 0.2),
    }


async def test_a_full_connection_is_skipped_then_catches_up_in_one_frame() -> None:
    """A client whose connection takes nothing delays nobody; once it drains it gets all it
    missed, in one frame, with no gap in its sequence."""
    bench = Bench()
    (_, slow), (_, fast) = bench.join(), bench.join()
    await wait_until(lambda: asyncio.sleep(0, bool(slow.frames and fast.frames)), 5, "the snapshots")
    slow.full = True
    for number in range(10):
        bench.track(number)
        await asyncio.sleep(0.02)
    await wait_until(lambda: asyncio.sleep(0, len(fast.track_ids()) == 10), 5, "the fast client's tracks")
    assert slow.track_ids() == []
    frames_before = len(slow.frames)
    slow.full = False
    await wait_until(lambda: asyncio.sleep(0, len(slow.track_ids()) == 10), 5, "the slow client's tracks")
    assert len(slow.frames) == frames_before + 1
    assert slow.track_ids() == fast.track_ids()
    _contiguous(slow)
    await bench.close()


async def test_a_closed_connection_leaves_and_a_stuck_one_is_dropped() -> None:
    """A connection that fails to write leaves the hub; one that stays full past max_backlog
    messages is dropped as slow and counted."""
    bench = Bench(max_backlog=100)
    (closing, closing_writer), (stuck, stuck_writer), (_, fine) = bench.join(), bench.join(), bench.join()
    await wait_until(
        lambda: asyncio.sleep(0, all(w.frames for w in (closing_writer, stuck_writer, fine))), 5, "snapshots"
    )
    closing_writer.closed = True
    stuck_writer.full = True
    bench.track(0)
    await wait_until(
        lambda: asyncio.sleep(0, closing not in bench.hub.clients), 5, "the closed client to leave"
    )
    assert closing.closed == "send failed: ConnectionError"
    for number in range(1, 150):
        bench.track(number)
        if number % 10 == 0:
            await asyncio.sleep(0.02)
    bench.hub._trimmed_s = 0.0  # police the backlogs at the next change
    bench.track(150)
    assert stuck not in bench.hub.clients
    assert bench.metrics.drops.labels("slow")._value.get() == 1
    await wait_until(lambda: asyncio.sleep(0, len(fine.track_ids()) == 151), 5, "the fine client's tracks")
    await bench.close()


async def test_an_idle_stream_gets_heartbeats() -> None:
    """With nothing to say, a stream still gets an empty frame every heartbeat_s."""
    bench = Bench(heartbeat_s=0.3)
    _, writer = bench.join()
    await asyncio.sleep(1.3)
    empty = [f for f in writer.frames if not f["messages"]]
    assert 2 <= len(empty) <= 5, writer.frames
    await bench.close()


class CostlyWriter(FakeWriter):
    """A connection whose every write costs ``cost_s`` of the event loop's time."""

    def __init__(self, cost_s: float) -> None:
        super().__init__()
        self.cost_s = cost_s

    def write(self, frame: bytes) -> None:
        _busy(self.cost_s)
        super().write(frame)


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_a_slice_of_the_flusher_holds_enough_frames() -> None:
    """Frames that cost more than the 2 ms slice (clients that fell behind get big ones) still go
    out FRAMES_PER_SLICE at a time between two turns of other work: a change reaches 60 clients
    whose writes cost 0.5 ms each while other work takes 10 ms per turn, within a few of its
    turns (with 2 ms slices alone: a turn per three or four clients, ~20 in all)."""
    bench = Bench()
    writers = [bench.join(CostlyWriter(0.0005))[1] for _ in range(60)]
    await wait_until(lambda: asyncio.sleep(0, all(w.frames for w in writers)), 5, "the snapshots")
    await asyncio.sleep(GAP_S * 1.5)
    loop = asyncio.get_running_loop()
    turns: list[float] = []
    stop = False

    async def other_work() -> None:
        while not stop:
            _busy(0.01)
            turns.append(loop.time())
            await asyncio.sleep(0)

    hog = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    turns.clear()
    bench.track(0)
    await wait_until(lambda: asyncio.sleep(0, all(w.track_ids() for w in writers)), 5, "the change")
    stop = True
    await hog
    last_write_s = max(w.written_s[-1] for w in writers)
    before = [t for t in turns if t < last_write_s]
    assert len(before) <= 10, f"the other work had {len(before)} turns of 10 ms while the frames went out"
    await bench.close()


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65_535, 65_536, 100_000])
@pytest.mark.parametrize("binary", [False, True])
def test_frame_header_parses_as_one_final_unmasked_frame(length: int, binary: bool) -> None:
    """The direct writer's frame header is what RFC 6455 says, as the websockets library reads it."""
    data = (b"x" * length) if not binary else bytes(range(256)) * (length // 256) + bytes(length % 256)
    reader = StreamReader()
    reader.feed_data(frame_header(len(data), binary) + data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None, extensions=None)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame = done.value.value
    assert frame.opcode is (Opcode.BINARY if binary else Opcode.TEXT)
    assert frame.fin
    assert frame.data == data
