"""Websocket fan-out: every change reaches every client allowed to see it, and no client waits for another.

Clients that see exactly the same thing (same sharing view, same subscription) form a *view
class*. A change is turned into a message once per class (the sharing policy and the
subscription filter run once, the JSON is encoded once) and appended to the class's log. Each
client has a pointer into its class's log. One flusher task sends every client's frames: a client
that has been quiet gets a change at once; under load its frames are spaced by
:meth:`Hub.flush_gap_s` (from ``min_flush_s`` up to ``max_flush_s`` as the number of clients grows
against ``frame_budget_per_s``) and each frame carries everything new since the last one
(coalescing: at 100 alerts/s a client gets one frame per gap, not a hundred). Moving tracks are
not urgent: a frame that would hold only track updates waits :meth:`Hub.track_gap_s` (the number
of clients against the smaller ``track_frame_budget_per_s``: 20 ms up to 200 clients, 100 ms at
1,000), while an alert, a dispatch or a command result goes at the gap and takes the waiting
tracks along (bench/fanout.py, 1,000 clients at 20 alerts/s and 200 tracks/s: a third fewer
frames, and alerts no longer wait behind passes of track frames). Clients of one class at the same
position share one joined frame body. So the cost of a change does not grow with the number of
clients.

Frames are written without awaiting (:class:`FrameWriter`; through the ``lindero.frames``
extension of :mod:`services.alerts.wsprotocol` when the server offers it, else one ASGI send in
flight per client). A client whose connection cannot take more (its socket buffer is full: slow,
or not reading at all) is skipped and keeps its pointer; once it falls more than ``max_backlog``
messages behind it is dropped with close code 4008, counted, and it never delays anyone else.
(The websockets library's recipe is a queue and a relay task per client; at 1,000–5,000 clients
the task switches and the awaited ASGI sends per frame cost more than the frames' bytes.)
An idle stream still gets a frame every ``heartbeat_s`` (browsers cannot see protocol pings).

Frame::

    {"type": "batch", "seq": <seq of the first message>, "time": <server time>,
     "cursor": {"alert.state/3": 1204, ...}, "messages": [...]}

``seq`` counts messages per connection (message *i* of the frame has ``seq + i``). ``cursor``
gives, for each input partition that moved, the next offset: a client that reconnects, to any
instance, with the cursor it has merged so far receives everything it missed and nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from schemas.alerts import AlertStatus, Severity
from schemas.api import TRACK_MOVED_FIELDS, StreamSubscription
from schemas.lifecycle import AlertState, Dispatch, Role
from schemas.tracks import Track
from services.alerts.domain.sharing import SharingPolicy, Viewer
from services.alerts.metrics import AlertsMetrics
from services.alerts.store import Change, Cursor, Kind, Store
from services.alerts.wsprotocol import FRAMES_EXTENSION

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008
CLOSE_UNAUTHORISED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
CURSOR_ONLY_EVERY_S = 5.0
"""Changes a client cannot see still move its cursor; such frames go out at most this often."""
RECENTLY_CLOSED_S = 3600.0
"""Closed alerts stay in a fresh snapshot for this long."""
SWEEP_EVERY_S = 1.0
"""How often the flusher looks for streams owed a heartbeat or a cursor-only frame."""
FLUSH_SLICE_S = 0.002
"""The flusher lets the event loop run other work (Kafka, commands) after writing frames for this
long. A change reaches the hub through several steps of the event loop (the Kafka response, the
consumer's fetcher, the store's loop), and each waits for the end of a slice: with slices of 256
frames (5-10 ms at 1,000 clients) a chain of four such steps took 57 ms (p50) during a fan-out to
1,000 clients whose writes cost 20 us each, with 2 ms slices 17 ms. The price, when the gateway is
busy: fewer, fuller frames (bench/fanout.py, 5,000 clients with tracks: 10-18% fewer frames/s for
the same messages/s, and a lower alert p50)."""
FRAMES_PER_SLICE = 64
"""A slice also holds at least this many frames. When clients fall behind their frames grow, and
2 ms held only a few of them: at 5,000 clients, 90 alerts/s with tracks, 2 ms slices alone sent
397-1,440 frames/s (two alternated runs each of two A/Bs), slices of 256 frames 2,029-2,219, and
2 ms with this floor 2,504-3,992."""


@dataclass(frozen=True)
class Subscription:
    """What a client asked to see (within what it may see)."""

    regions: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    min_severity: int = 0
    tracks: bool = True
    compact_tracks: bool = False
    compact_alerts: bool = False

    @classmethod
    def of(cls, request: StreamSubscription | None) -> Subscription:
        if request is None:
            return cls()
        return cls(
            regions=frozenset(request.regions) if request.regions else None,
            kinds=frozenset(kind.value for kind in request.kinds) if request.kinds else None,
            min_severity=request.min_severity.rank,
            tracks=request.tracks,
            compact_tracks=request.compact_tracks,
            compact_alerts=request.compact_alerts,
        )

    def alert(self, state: AlertState) -> bool:
        alert = state.alert
        return (
            (self.regions is None or alert.region in self.regions)
            and (self.kinds is None or alert.kind.value in self.kinds)
            and Severity(alert.severity).rank >= self.min_severity
        )

    def track(self, track: Track) -> bool:
        return self.tracks and (self.regions is None or track.region in self.regions)


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of a class's log."""

    message: bytes
    source_time: float | None = None
    """When the change happened (for the latency metric)."""
    track_id: str | None = None
    """The track the message is about, if any."""
    movement_only: bool = False
    """A ``track_moved`` carrying nothing a later message about the track does not repeat (no
    class probabilities): it may be left out of a frame that has a later message about the track."""


def _latest_movements(entries: list[Entry]) -> list[Entry]:
    """``entries`` without the pure movements a later entry about the same track supersedes."""
    later: set[str] = set()
    kept: list[Entry] = []
    for entry in reversed(entries):
        if entry.track_id is not None:
            if entry.movement_only and entry.track_id in later:
                continue
            later.add(entry.track_id)
        kept.append(entry)
    kept.reverse()
    return kept


@dataclass(eq=False)
class ViewClass:
    """Clients that see exactly the same thing, and the messages they all get."""

    viewer: Viewer
    subscription: Subscription
    clients: set[Client] = field(default_factory=set)
    alerts: set[str] = field(default_factory=set)
    tracks: set[str] = field(default_factory=set)
    log: list[Entry] = field(default_factory=list)
    """The class's messages; log[i] has index base + i."""
    base: int = 0
    cursor: dict[str, int] = field(default_factory=dict)
    """Next offset per input partition, for every change seen (visible or not)."""
    track_static: dict[str, _SentTrack] = field(default_factory=dict)
    """Compact tracks: per track, what the last whole message said besides its movement, and when."""
    alert_views: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Compact alerts: per alert, the view every client of the class holds (what ``alert_changed``
    messages are relative to)."""
    next_due_s: float = 0.0
    """While the class is pending: when its next client may get a frame (monotonic)."""
    urgent_end: int = 0
    """Index after the class's latest message that is not about a track (an alert, a dispatch):
    a client whose pointer is below it has something that goes out at the shortest gap."""
    cached: tuple[int, int, bytes, float | None, int] | None = None
    """The last frame body built: (start, end, joined messages, oldest source time, count)."""

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def append(self, entry: Entry) -> None:
        self.log.append(entry)
        if entry.track_id is None:
            self.urgent_end = self.end

    def body(self, start: int) -> tuple[bytes, int, float | None]:
        """The messages from ``start`` to the end, joined with commas (built once for every
        client at the same position), their count and the oldest source time among them.

        A track's pure movement followed by another message about the same track is left out
        (see :class:`Entry`): a client that fell behind gets each track's latest state, as a
        client resuming from its cursor does, so its frames stop growing with its lag.
        """
        end = self.end
        cached = self.cached
        if cached is not None and cached[0] == start and cached[1] == end:
            return cached[2], cached[4], cached[3]
        entries = _latest_movements(self.log[start - self.base :])
        body = b",".join(entry.message for entry in entries)
        sources = [entry.source_time for entry in entries if entry.source_time is not None]
        oldest = min(sources) if sources else None
        self.cached = (start, end, body, oldest, len(entries))
        return body, len(entries), oldest

    def trim(self) -> None:
        """Forget messages every client has sent."""
        if not self.clients:
            self.base, self.log = self.end, []
            return
        oldest = min(c.pointer for c in self.clients)
        if oldest > self.base:
            del self.log[: oldest - self.base]
            self.base = oldest


class FrameWriter(Protocol):
    """How frames reach one connection, without awaiting."""

    def writable(self) -> bool:
        """Whether the connection takes a frame now (False: its buffer is full, try later);
        raises :class:`OSError` once it is closed."""

    def write(self, frame: bytes) -> None:
        """Queue one frame (UTF-8 JSON)."""


class DirectWriter:
    """Writes through the server's ``lindero.frames`` extension (see :mod:`services.alerts.wsprotocol`)."""

    def __init__(self, extension: dict[str, Any], binary: bool) -> None:
        self.writable: Callable[[], bool] = extension["writable"]
        self._write: Callable[[bytes, bool], None] = extension["write"]
        self.binary = binary

    def write(self, frame: bytes) -> None:
        self._write(frame, self.binary)


class AsgiWriter:
    """Any other ASGI server: one send in flight; the connection is busy until it completes."""

    def __init__(self, websocket: WebSocket, binary: bool) -> None:
        self.websocket = websocket
        self.binary = binary
        self.sending: asyncio.Task[None] | None = None
        self.failed: str | None = None

    def writable(self) -> bool:
        if self.failed is not None:
            raise ConnectionError(self.failed)
        return self.sending is None or self.sending.done()

    def write(self, frame: bytes) -> None:
        self.sending = asyncio.get_running_loop().create_task(self._send(frame))

    async def _send(self, frame: bytes) -> None:
        try:
            if self.binary:
                await self.websocket.send_bytes(frame)
            else:
                await self.websocket.send_text(frame.decode())
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self.failed = f"send failed: {type(exc).__name__}"


def frame_writer(websocket: WebSocket, binary: bool) -> FrameWriter:
    """The fastest way this server offers to write frames to ``websocket``."""
    extension = websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION)
    if extension is not None:
        return DirectWriter(extension, binary)
    return AsgiWriter(websocket, binary)


@dataclass(eq=False)
class Client:
    """One websocket connection."""

    websocket: WebSocket
    viewer: Viewer
    subscription: Subscription
    connection_id: str
    writer: FrameWriter
    view_class: ViewClass | None = None
    pointer: int = 0
    """Index of the next class-log message to send."""
    private: list[bytes] = field(default_factory=list)
    """Messages for this client only (its snapshot, its command results), sent first."""
    seq: int = 0
    sent_cursor: dict[str, int] = field(default_factory=dict)
    """The cursor the client holds (shared with other clients: replaced, never changed in place)."""
    closed: str | None = None
    last_sent_s: float = 0.0
    """Monotonic time of the last frame."""


class Hub:
    """All connected clients of one alerts instance."""

    def __init__(
        self,
        store: Store,
        policy: SharingPolicy,
        metrics: AlertsMetrics,
        *,
        min_flush_s: float = 0.02,
        max_flush_s: float = 0.2,
        frame_budget_per_s: float = 50_000,
        track_frame_budget_per_s: float = 10_000,
        max_backlog: int = 20_000,
        heartbeat_s: float = 15.0,
    ) -> None:
        self.store = store
        self.policy = policy
        self.metrics = metrics
        self.min_flush_s = min_flush_s
        self.max_flush_s = max(min_flush_s, max_flush_s)
        self.frame_budget_per_s = frame_budget_per_s
        self.track_frame_budget_per_s = track_frame_budget_per_s
        self.max_backlog = max_backlog
        self.heartbeat_s = heartbeat_s
        self._trimmed_s = 0.0
        self.classes: dict[Hashable, ViewClass] = {}
        self.clients: set[Client] = set()
        self._pending: set[ViewClass] = set()
        """Classes some client of which may have something to send."""
        self._flusher: asyncio.Task[None] | None = None
        self._signal: asyncio.Future[None] | None = None
        self._marked = False
        """A class was marked since the flusher's pass began (it looks again before sleeping)."""
        store.listeners.append(self.on_change)

    def flush_gap_s(self) -> float:
        """The shortest gap between two frames to one client now: more clients, longer gaps."""
        return min(self.max_flush_s, max(self.min_flush_s, len(self.clients) / self.frame_budget_per_s))

    def track_gap_s(self) -> float:
        """The shortest gap before a frame that holds only track updates: longer than
        :meth:`flush_gap_s` once there are many clients, so that moving tracks cost fewer frames."""
        spread_s = len(self.clients) / self.track_frame_budget_per_s
        return min(self.max_flush_s, max(self.flush_gap_s(), spread_s))

    # -- membership --------------------------------------------------------------------------

    def _class_of(self, viewer: Viewer, subscription: Subscription) -> ViewClass:
        key = (self.policy.view_key(viewer), subscription)
        view_class = self.classes.get(key)
        if view_class is None:
            view_class = self.classes[key] = ViewClass(viewer, subscription)
        return view_class

    def join(self, client: Client, resume: Cursor | None) -> None:
        """Register a client and queue its opening message: a snapshot, or what it missed.

        Runs without awaiting, so no change can slip between the snapshot and live messages.
        """
        view_class = self._class_of(client.viewer, client.subscription)
        if not view_class.cursor:
            view_class.cursor = dict(self.store.cursor)
        missed = self.store.changed_since(resume) if resume is not None else None
        if missed is None:
            client.private.append(self._snapshot(view_class, resync=resume is not None))
        else:
            client.private.append(orjson.dumps({"type": "resume", "missed": len(missed)}))
            replay = ViewClass(view_class.viewer, view_class.subscription)
            replay.alerts, replay.tracks = set(view_class.alerts), set(view_class.tracks)
            for kind, key in missed:
                message = self._message_for(replay, kind, key, self._current(kind, key))
                if message is not None:
                    client.private.append(message)
            for alert_id, view in replay.alert_views.items():  # what this client now holds
                if view_class.alert_views.get(alert_id) != view:
                    view_class.alert_views.pop(alert_id, None)
        client.view_class = view_class
        client.pointer = view_class.end
        client.sent_cursor = {}
        view_class.clients.add(client)
        self.clients.add(client)
        self._mark(view_class)
        self.metrics.clients.labels(client.viewer.role.value).inc()

    def leave(self, client: Client, reason: str) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        client.closed = client.closed or reason
        view_class = client.view_class
        if view_class is not None:
            view_class.clients.discard(client)
            if not view_class.clients:
                self.classes = {k: v for k, v in self.classes.items() if v is not view_class}
                self._pending.discard(view_class)
        self.metrics.clients.labels(client.viewer.role.value).dec()

    def _current(self, kind: Kind, key: str) -> Any:
        if kind is Kind.ALERT:
            return self.store.alerts.get(key)
        if kind is Kind.TRACK:
            return self.store.tracks.get(key)
        return self.store.board.dispatches.get(key)

    # -- snapshot ----------------------------------------------------------------------------

    def _dispatched_to(self, viewer: Viewer) -> set[str] | None:
        if viewer.role is not Role.TEAM or viewer.team is None:
            return None
        return {d.alert_id for d in self.store.board.of_team(viewer.team)}

    def _snapshot(self, view_class: ViewClass, resync: bool) -> bytes:
        viewer, subscription = view_class.viewer, view_class.subscription
        now = time.time()
        dispatched_to = self._dispatched_to(viewer)
        alerts = []
        for state in self.store.alerts.values():
            closed = state.status in {AlertStatus.RESOLVED, AlertStatus.FALSE_ALARM}
            if closed and now - state.updated_at.timestamp() > RECENTLY_CLOSED_S:
                continue
            if not subscription.alert(state):
                continue
            view = self.policy.alert(viewer, state, dispatched_to)
            if view is not None:
                alerts.append(view)
                view_class.alerts.add(state.alert.alert_id)
        # A joining client holds exactly these views: a change to any other base goes out whole.
        shown = {view["alert"]["alert_id"]: view for view in alerts}
        for alert_id, base in list(view_class.alert_views.items()):
            if shown.get(alert_id) != base:
                del view_class.alert_views[alert_id]
        tracks = []
        for track in self.store.tracks.values():
            if subscription.track(track):
                view = self.policy.track(viewer, track)
                if view is not None:
                    tracks.append(view)
                    view_class.tracks.add(track.track_id)
        dispatches = [
            v
            for d in self.store.board.dispatches.values()
            if (v := self.policy.dispatch(viewer, d)) is not None
        ]
        return orjson.dumps(
            {
                "type": "snapshot",
                "resync": resync,
                "cursor": self.store.cursor,
                "alerts": alerts,
                "tracks": tracks,
                "dispatches": dispatches,
            }
        )

    # -- changes -----------------------------------------------------------------------------

    def _message_for(self, view_class: ViewClass, kind: Kind, key: str, value: Any) -> bytes | None:
        viewer, subscription = view_class.viewer, view_class.subscription
        if kind is Kind.ALERT:
            view = None
            dispatched_to = self._dispatched_to(viewer)
            if isinstance(value, AlertState) and subscription.alert(value):
                view = self.policy.alert(viewer, value, dispatched_to)
            if view is None:
                view_class.alert_views.pop(key, None)
                if key in view_class.alerts:
                    view_class.alerts.discard(key)
                    return orjson.dumps({"type": "alert_removed", "alert_id": key})
                return None
            first = key not in view_class.alerts
            view_class.alerts.add(key)
            if subscription.compact_alerts and dispatched_to is None:
                # (a team's view also depends on its dispatches, which change without the alert)
                return _compact_alert(view_class, key, view, first)
            return orjson.dumps({"type": "alert" if first else "alert_update", "data": view})
        if kind is Kind.TRACK:
            view = None
            if isinstance(value, Track) and subscription.track(value):
                view = self.policy.track(viewer, value)
            if view is None:
                if key in view_class.tracks:
                    view_class.tracks.discard(key)
                    view_class.track_static.pop(key, None)
                    return orjson.dumps({"type": "track_removed", "track_id": key})
                return None
            view_class.tracks.add(key)
            if subscription.compact_tracks and isinstance(value, Track):
                return _compact_track(view_class, value, view)
            return orjson.dumps({"type": "track", "data": view})
        if kind is Kind.DISPATCH and isinstance(value, Dispatch):
            view = self.policy.dispatch(viewer, value)
            return orjson.dumps({"type": "dispatch_update", "data": view}) if view is not None else None
        return None

    def on_change(self, change: Change) -> None:
        """A record the store applied: append its message to every class allowed to see it."""
        if change.kind is Kind.AUDIT or not self.classes:
            return
        source = _source_time(change.value)
        now = time.monotonic()
        trim = now - self._trimmed_s > 1.0
        for view_class in list(self.classes.values()):
            view_class.cursor[change.partition] = change.offset + 1
            message = self._message_for(view_class, change.kind, change.key, change.value)
            if message is not None:
                if change.kind is Kind.TRACK:
                    view_class.append(Entry(message, source, change.key, _movement_only(message)))
                    if view_class not in self._pending:
                        self._mark(view_class)
                else:  # due at the short gap, maybe before the tracks the class waits for
                    view_class.append(Entry(message, source))
                    self._mark(view_class)
            if trim:
                self._police(view_class)
        if trim:
            self._trimmed_s = now

    def _police(self, view_class: ViewClass) -> None:
        """Drop clients too far behind, then forget what every remaining client has sent."""
        for client in list(view_class.clients):
            if view_class.end - client.pointer > self.max_backlog:
                self._drop(client)
        view_class.trim()

    def reply(self, client: Client, message: dict[str, Any], *, first: bool = False) -> None:
        """A message for one client only (e.g. the result of its command)."""
        encoded = orjson.dumps(message)
        if first:
            client.private.insert(0, encoded)
        else:
            client.private.append(encoded)
        if client.view_class is not None and client in self.clients:
            self._mark(client.view_class)

    def move(self, client: Client, subscription: Subscription) -> None:
        """Change a client's subscription: it gets a fresh snapshot, then the new class's messages."""
        if client not in self.clients:
            return
        old = client.view_class
        if old is not None:
            old.clients.discard(client)
            if not old.clients:
                self.classes = {k: v for k, v in self.classes.items() if v is not old}
                self._pending.discard(old)
        client.subscription = subscription
        view_class = self._class_of(client.viewer, subscription)
        if not view_class.cursor:
            view_class.cursor = dict(self.store.cursor)
        client.private.append(self._snapshot(view_class, resync=False))
        client.view_class = view_class
        client.pointer = view_class.end
        view_class.clients.add(client)
        self._mark(view_class)

    def _drop(self, client: Client) -> None:
        self.metrics.drops.labels("slow").inc()
        backlog = client.view_class.end - client.pointer if client.view_class else 0
        log.warning(
            "dropping a slow client",
            extra={"connection": client.connection_id, "backlog": backlog, "role": client.viewer.role.value},
        )
        self.leave(client, "slow")
        asyncio.get_running_loop().create_task(
            _close(client.websocket, CLOSE_TOO_SLOW, "client too slow; reconnect")
        )

    # -- sending -----------------------------------------------------------------------------

    def _mark(self, view_class: ViewClass) -> None:
        """Some client of ``view_class`` may have something to send: have the flusher look now."""
        view_class.next_due_s = 0.0
        self._pending.add(view_class)
        self._marked = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever(), name="hub-flusher")
            self._flusher.add_done_callback(_report_failure)
        signal = self._signal
        if signal is not None and not signal.done():
            signal.set_result(None)

    async def _flush_forever(self) -> None:
        """Send frames as they fall due; every second, heartbeats and cursor-only frames."""
        loop = asyncio.get_running_loop()
        sweep_every_s = min(SWEEP_EVERY_S, self.heartbeat_s / 2)
        next_sweep_s = loop.time() + sweep_every_s
        while True:
            self._marked = False
            due_s = await self._flush_pending()
            now = loop.time()
            if now >= next_sweep_s:
                await self._sweep()
                next_sweep_s = now + sweep_every_s
            wake_s = next_sweep_s if due_s is None else min(due_s, next_sweep_s)
            if wake_s <= now or self._marked:
                await asyncio.sleep(0)
                continue
            signal = self._signal = loop.create_future()
            timer = loop.call_later(wake_s - now, _settle, signal)
            try:
                await signal
            finally:
                timer.cancel()
                self._signal = None

    async def _flush_pending(self) -> float | None:
        """Send every pending class's due frames; when the next falls due (None: nothing pending)."""
        loop = asyncio.get_running_loop()
        gap_s, track_gap_s = self.flush_gap_s(), self.track_gap_s()
        earliest: float | None = None
        for view_class in list(self._pending):
            if view_class.next_due_s <= loop.time():
                next_due_s = await self._flush_class(view_class, gap_s, track_gap_s)
                if next_due_s is None:
                    self._pending.discard(view_class)
                    continue
                view_class.next_due_s = next_due_s
            if view_class in self._pending and (earliest is None or view_class.next_due_s < earliest):
                earliest = view_class.next_due_s
        return earliest

    async def _flush_class(self, view_class: ViewClass, gap_s: float, track_gap_s: float) -> float | None:
        """Frames to the class's clients that have something new and whose gap (``track_gap_s``
        when all they have is track updates) has passed; when the next of them falls due (None:
        all are up to date)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        end = view_class.end
        batch = _Batch(view_class)
        yielded = False
        slice_end_s = now + FLUSH_SLICE_S
        slice_frames = 0
        next_due_s: float | None = None
        for client in list(view_class.clients):
            if client.view_class is not view_class or client not in self.clients:
                continue
            if client.pointer >= view_class.end and not client.private:
                continue
            urgent = client.private or client.pointer < view_class.urgent_end
            due_s = client.last_sent_s + (gap_s if urgent else track_gap_s)
            if due_s <= now and self._send(client, view_class, batch, now):
                due_s = now + gap_s
                slice_frames += 1
                if slice_frames >= FRAMES_PER_SLICE and loop.time() >= slice_end_s:
                    self._count(batch)
                    await asyncio.sleep(0)
                    yielded = True
                    now = loop.time()
                    slice_end_s = now + FLUSH_SLICE_S
                    slice_frames = 0
                    batch = _Batch(view_class)
            elif due_s <= now:  # its connection is full: try again after a gap
                due_s = now + gap_s
            next_due_s = due_s if next_due_s is None else min(next_due_s, due_s)
        self._count(batch)
        if next_due_s is None and (view_class.end != end or yielded):
            next_due_s = now  # something arrived meanwhile; look again
        return next_due_s

    async def _sweep(self) -> None:
        """A frame to each stream idle for ``heartbeat_s``, or whose cursor moved (changes it
        cannot see) and that has had no frame for ``CURSOR_ONLY_EVERY_S``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        batches: dict[ViewClass, _Batch] = {}
        for client in list(self.clients):
            view_class = client.view_class
            if view_class is None:
                continue
            idle_s = now - client.last_sent_s
            if idle_s >= self.heartbeat_s or (
                idle_s >= CURSOR_ONLY_EVERY_S and client.sent_cursor != view_class.cursor
            ):
                batch = batches.get(view_class)
                if batch is None:
                    batch = batches[view_class] = _Batch(view_class)
                self._send(client, view_class, batch, now)
        for batch in batches.values():
            self._count(batch)

    def _send(self, client: Client, view_class: ViewClass, batch: _Batch, now_s: float) -> bool:
        """Write the client's next frame if its connection takes it; False if it does not."""
        try:
            if not client.writer.writable():
                return False
            frame = self._frame(client, view_class, batch)
            client.writer.write(frame)
        except OSError as exc:
            self.leave(client, f"send failed: {type(exc).__name__}")
            return False
        client.last_sent_s = now_s
        return True

    def _frame(self, client: Client, view_class: ViewClass, batch: _Batch) -> bytes:
        """The client's next frame: its private messages, then the class's from its pointer."""
        start = max(client.pointer, view_class.base)
        body, shared, oldest = view_class.body(start) if start < view_class.end else (b"", 0, None)
        client.pointer = view_class.end
        private = client.private
        client.private = []
        cursor = batch.cursor_for(client.sent_cursor)
        client.sent_cursor = batch.cursor
        count = len(private) + shared
        head = _HEAD % (client.seq, batch.time, cursor)
        client.seq += count
        batch.frames += 1
        batch.messages += count
        if oldest is not None:
            batch.oldest[start] = oldest
        if not shared:
            return head + b",".join(private) + b"]}"
        if not private:
            return head + body + b"]}"
        return head + b",".join(private) + b"," + body + b"]}"

    def _count(self, batch: _Batch) -> None:
        if batch.frames:
            self.metrics.frames.inc(batch.frames)
            self.metrics.messages.inc(batch.messages)
            wall_s = time.time()
            for oldest in batch.oldest.values():
                self.metrics.latency.observe(max(0.0, wall_s - oldest))
            batch.frames = batch.messages = 0
            batch.oldest.clear()

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every connection (shutdown)."""
        clients = list(self.clients)
        for client in clients:
            self.leave(client, "shutdown")
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await asyncio.gather(*(_close(c.websocket, code, reason) for c in clients))


_HEAD = b'{"type":"batch","seq":%d,"time":%b,"cursor":%b,"messages":['


class _Batch:
    """What the frames written to one class in one go (no await in between) share."""

    def __init__(self, view_class: ViewClass) -> None:
        self.cursor = dict(view_class.cursor)
        """The class's cursor now: what every client written to holds afterwards."""
        self.time = orjson.dumps(time.time())
        self._deltas: dict[int, tuple[dict[str, int], bytes]] = {}
        self.frames = 0
        self.messages = 0
        self.oldest: dict[int, float] = {}
        """Per shared body (by its start), the oldest source time in it (for the latency metric)."""

    def cursor_for(self, held: dict[str, int]) -> bytes:
        """The partitions whose offsets differ from what the client holds, as JSON (computed
        once for all clients holding the same cursor object)."""
        found = self._deltas.get(id(held))
        if found is None:
            delta = orjson.dumps({p: o for p, o in self.cursor.items() if held.get(p) != o})
            found = self._deltas[id(held)] = (held, delta)
        return found[1]


def _settle(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)


def _report_failure(task: asyncio.Task[None]) -> None:
    """The flusher died of a bug: say so (the next change starts a new one)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the fan-out's flusher failed", exc_info=exc)


MOVING_FIELDS = frozenset(TRACK_MOVED_FIELDS)
"""What changes at every update of a track; everything else goes out only when it changes."""
FULL_TRACK_EVERY_S = 60.0
"""A whole ``track`` at least this often per track even when only its movement changed: a safety
net, not needed for correctness (a change to anything else sends it at once). Every 10 s was about
15% of the track messages and 40% of the track bytes at the bench's 0.7 updates/s per track."""
_DIGITS = {
    "lat": 7,
    "lon": 7,
    "alt_m": 1,
    "velocity_east_mps": 2,
    "velocity_north_mps": 2,
    "speed_mps": 2,
    "heading_deg": 1,
    "position_sigma_m": 1,
    "border_distance_m": 0,
}


@dataclass
class _SentTrack:
    """What a class's stream last said about a track besides its movement."""

    static: bytes
    whole_sent_s: float
    probabilities: dict[str, float] | None


def _compact_track(view_class: ViewClass, track: Track, view: dict[str, Any]) -> bytes:
    """A ``track_moved`` message (see :data:`schemas.api.TRACK_MOVED_FIELDS`) when nothing but
    the movement changed lately, else the whole ``track``."""
    static = orjson.dumps(
        {k: v for k, v in view.items() if k not in MOVING_FIELDS}, option=orjson.OPT_SORT_KEYS
    )
    now = time.monotonic()
    key = track.track_id
    probabilities = _probabilities(view.get("class_probabilities"))
    sent = view_class.track_static.get(key)
    if sent is None or sent.static != static or now - sent.whole_sent_s >= FULL_TRACK_EVERY_S:
        view_class.track_static[key] = _SentTrack(static, now, probabilities)
        return orjson.dumps({"type": "track", "data": view})
    moved: list[Any] = []
    for name in TRACK_MOVED_FIELDS:
        value = view.get(name)
        if value is None:
            pass
        elif name == "time":
            value = round(track.time.timestamp(), 3)
        elif name == "last_update":
            value = None if track.last_update == track.time else round(track.last_update.timestamp(), 3)
        elif name == "covariance_en_m2":
            value = [round(v, 1) for v in value]
        elif name == "class_probabilities":
            value = None if probabilities == sent.probabilities else probabilities
            sent.probabilities = probabilities
        elif (digits := _DIGITS.get(name)) is not None:
            value = round(value, digits)
        moved.append(value)
    return orjson.dumps({"type": "track_moved", "track_id": key, "m": moved})


def _compact_alert(view_class: ViewClass, key: str, view: dict[str, Any], first: bool) -> bytes:
    """An ``alert_changed`` message (see :func:`schemas.api.apply_alert_changes`) relative to the
    view the class's clients hold, or the whole alert when they hold none or a field went away."""
    base = view_class.alert_views.get(key)
    view_class.alert_views[key] = view
    changes = None if first or base is None else _alert_changes(base, view)
    if changes is None:
        return orjson.dumps({"type": "alert" if first else "alert_update", "data": view})
    return orjson.dumps(
        {"type": "alert_changed", "alert_id": key, "version": view.get("version"), "set": changes}
    )


def _alert_changes(base: dict[str, Any], view: dict[str, Any]) -> dict[str, Any] | None:
    """What turns ``base`` into ``view`` under :func:`schemas.api.apply_alert_changes`, or None when
    that cannot express it (a field was removed)."""
    if base.keys() - view.keys():
        return None
    changes: dict[str, Any] = {}
    for name, value in view.items():
        before = base.get(name, _ABSENT)
        if before == value:
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            if before.keys() - value.keys():
                return None
            changes[name] = {k: v for k, v in value.items() if before.get(k, _ABSENT) != v}
        else:
            changes[name] = value
    return changes


_ABSENT = object()


def _movement_only(message: bytes) -> bool:
    """Whether ``message`` is a ``track_moved`` without class probabilities (its last position)."""
    return message.startswith(b'{"type":"track_moved"') and message.endswith(b",null]}")


def _probabilities(value: list[dict[str, Any]] | None) -> dict[str, float] | None:
    """``[{"class": "person", "probability": 0.9123}, ...]`` as ``{"person": 0.912}``."""
    if not value:
        return None
    return {p["class"]: round(p["probability"], 3) for p in value if p["probability"] >= 0.005}


def _source_time(value: Any) -> float | None:
    if isinstance(value, AlertState):
        return value.alert.updated_at.timestamp()
    if isinstance(value, Track):
        return value.time.timestamp()
    return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect, asyncio.TimeoutError):
        await asyncio.wait_for(websocket.close(code=code, reason=reason), 2.0)
