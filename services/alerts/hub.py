"""Websocket fan-out: every change reaches every client allowed to see it, and no client waits for another.

Clients that see exactly the same thing (same sharing view, same subscription) form a *view
class*. A change is turned into a message once per class (the sharing policy and the
subscription filter run once, the JSON is encoded once) and appended to the class's log. Each
client has its own relay task and a pointer into its class's log. A client that has been quiet
gets a change at once; under load its frames are spaced by :meth:`Hub.flush_gap_s` (from
``min_flush_s`` up to ``max_flush_s`` as the number of clients grows against
``frame_budget_per_s``) and each frame carries everything new since the last one (coalescing: at
100 alerts/s a client gets one frame per gap, not a hundred). Clients of one class at the same
position share one joined frame body. So the cost of a change does not grow with the number of
clients, and a client whose pointer falls more than ``max_backlog`` messages behind (slow, or
not reading at all) is dropped with close code 4008, counted, and never delays anyone else.
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
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from schemas.alerts import AlertStatus, Severity
from schemas.api import TRACK_MOVED_FIELDS, StreamSubscription
from schemas.lifecycle import AlertState, Dispatch, Role
from schemas.tracks import Track
from services.alerts.domain.sharing import SharingPolicy, Viewer
from services.alerts.metrics import AlertsMetrics
from services.alerts.store import Change, Cursor, Kind, Store

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008
CLOSE_UNAUTHORISED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
CURSOR_ONLY_EVERY_S = 5.0
"""Changes a client cannot see still move its cursor; such frames go out at most this often."""
RECENTLY_CLOSED_S = 3600.0
"""Closed alerts stay in a fresh snapshot for this long."""


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
    sleepers: set[Client] = field(default_factory=set)
    """Clients waiting for the next message (woken by :meth:`append`)."""
    cached: tuple[int, int, bytes, float | None, int] | None = None
    """The last frame body built: (start, end, joined messages, oldest source time, count)."""

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def append(self, entry: Entry) -> None:
        self.log.append(entry)
        if self.sleepers:
            sleepers, self.sleepers = self.sleepers, set()
            for client in sleepers:
                client.kick()

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


@dataclass(eq=False)
class Client:
    """One websocket connection."""

    websocket: WebSocket
    viewer: Viewer
    subscription: Subscription
    connection_id: str
    view_class: ViewClass | None = None
    pointer: int = 0
    """Index of the next class-log message to send."""
    private: list[bytes] = field(default_factory=list)
    """Messages for this client only (its snapshot, its command results), sent first."""
    signal: asyncio.Future[None] | None = None
    seq: int = 0
    sent_cursor: dict[str, int] = field(default_factory=dict)
    binary: bool = False
    """Send frames as binary websocket messages (UTF-8 JSON) instead of text."""
    task: asyncio.Task[None] | None = None
    closed: str | None = None
    last_sent_s: float = 0.0
    """Monotonic time of the last frame."""

    def kick(self) -> None:
        """Wake the relay if it is waiting for something to send."""
        signal = self.signal
        if signal is not None and not signal.done():
            signal.set_result(None)


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
        frame_budget_per_s: float = 25_000,
        max_backlog: int = 20_000,
        heartbeat_s: float = 15.0,
    ) -> None:
        self.store = store
        self.policy = policy
        self.metrics = metrics
        self.min_flush_s = min_flush_s
        self.max_flush_s = max(min_flush_s, max_flush_s)
        self.frame_budget_per_s = frame_budget_per_s
        self.max_backlog = max_backlog
        self.heartbeat_s = heartbeat_s
        self._trimmed_s = 0.0
        self.classes: dict[Hashable, ViewClass] = {}
        self.clients: set[Client] = set()
        store.listeners.append(self.on_change)

    def flush_gap_s(self) -> float:
        """The shortest gap between two frames to one client now: more clients, longer gaps."""
        return min(self.max_flush_s, max(self.min_flush_s, len(self.clients) / self.frame_budget_per_s))

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
        client.task = asyncio.create_task(self._relay(client), name=f"relay-{client.connection_id}")
        self.metrics.clients.labels(client.viewer.role.value).inc()

    def leave(self, client: Client, reason: str) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        client.closed = client.closed or reason
        view_class = client.view_class
        if view_class is not None:
            view_class.clients.discard(client)
            view_class.sleepers.discard(client)
            if not view_class.clients:
                self.classes = {k: v for k, v in self.classes.items() if v is not view_class}
        if client.task is not None and client.task is not asyncio.current_task():
            client.task.cancel()
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
            if message is not None and change.kind is Kind.TRACK:
                view_class.append(Entry(message, source, change.key, _movement_only(message)))
            elif message is not None:
                view_class.append(Entry(message, source))
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
        client.kick()

    def move(self, client: Client, subscription: Subscription) -> None:
        """Change a client's subscription: it gets a fresh snapshot, then the new class's messages."""
        if client not in self.clients:
            return
        old = client.view_class
        if old is not None:
            old.clients.discard(client)
            old.sleepers.discard(client)
            if not old.clients:
                self.classes = {k: v for k, v in self.classes.items() if v is not old}
        client.subscription = subscription
        view_class = self._class_of(client.viewer, subscription)
        if not view_class.cursor:
            view_class.cursor = dict(self.store.cursor)
        client.private.append(self._snapshot(view_class, resync=False))
        client.view_class = view_class
        client.pointer = view_class.end
        view_class.clients.add(client)
        client.kick()

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

    async def _relay(self, client: Client) -> None:
        """Send this client's frames: promptly when it has been quiet, at most one per
        :meth:`flush_gap_s` under load (coalescing), a heartbeat when nothing happens."""
        websocket = client.websocket
        loop = asyncio.get_running_loop()
        try:
            while True:
                view_class = client.view_class
                if view_class is None:
                    return
                if not client.private and client.pointer >= view_class.end:
                    signal = client.signal = loop.create_future()
                    view_class.sleepers.add(client)
                    idle_s = loop.time() - client.last_sent_s
                    timer = loop.call_later(
                        max(0.05, min(CURSOR_ONLY_EVERY_S, self.heartbeat_s - idle_s)), client.kick
                    )
                    try:
                        await signal
                    finally:
                        timer.cancel()
                        client.signal = None
                delay = client.last_sent_s + self.flush_gap_s() - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                frame, count, oldest = self._frame(client, client.view_class or view_class, loop.time())
                if frame is None:
                    continue
                await websocket.send_bytes(frame) if client.binary else await websocket.send_text(
                    frame.decode()
                )
                client.last_sent_s = loop.time()
                self.metrics.frames.inc()
                if count:
                    self.metrics.messages.inc(count)
                if oldest is not None:
                    self.metrics.latency.observe(max(0.0, time.time() - oldest))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self.leave(client, f"send failed: {type(exc).__name__}")

    def _frame(
        self, client: Client, view_class: ViewClass, now_s: float
    ) -> tuple[bytes | None, int, float | None]:
        """The client's next frame (None: nothing worth sending), its message count and the
        oldest source time in it."""
        start = max(client.pointer, view_class.base)
        body, shared, oldest = view_class.body(start) if start < view_class.end else (b"", 0, None)
        client.pointer = view_class.end
        private = client.private
        client.private = []
        cursor = {p: o for p, o in view_class.cursor.items() if client.sent_cursor.get(p) != o}
        count = len(private) + shared
        if not count:
            idle_s = now_s - client.last_sent_s
            if idle_s < self.heartbeat_s and (not cursor or idle_s < CURSOR_ONLY_EVERY_S):
                return None, 0, None
        client.sent_cursor.update(cursor)
        head = orjson.dumps({"type": "batch", "seq": client.seq, "time": time.time(), "cursor": cursor})
        client.seq += count
        parts = [*private, body] if shared else private
        return head[:-1] + b',"messages":[' + b",".join(parts) + b"]}", count, oldest

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every connection (shutdown)."""
        clients = list(self.clients)
        for client in clients:
            self.leave(client, "shutdown")
        await asyncio.gather(*(_close(c.websocket, code, reason) for c in clients))


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
