"""Compact tracks: the ``track_moved`` encoding of the hub (schemas.api.TRACK_MOVED_FIELDS)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from schemas.api import TRACK_MOVED_FIELDS
from schemas.tracks import ClassProbability, Track, TrackStatus
from services.alerts.hub import (
    Entry,
    Subscription,
    ViewClass,
    _compact_track,
    _latest_movements,
    _movement_only,
)
from tests.unit.alerts.builders import DEMO, T0, centre_viewer, make_track


def _send(view_class: ViewClass, track: Track) -> dict[str, Any]:
    view = track.model_dump(mode="json", by_alias=True)
    message: dict[str, Any] = orjson.loads(_compact_track(view_class, track, view))
    return message


def _classes() -> ViewClass:
    return ViewClass(centre_viewer(DEMO, "cc-cucuta"), Subscription(compact_tracks=True))


def test_first_update_is_whole_then_movement_is_an_array() -> None:
    """A track's first message is whole; a move is a positional array of numbers."""
    view_class = _classes()
    first = make_track(DEMO, "CO", "co-ve-cucuta")
    assert _send(view_class, first)["type"] == "track"
    later = T0 + dt.timedelta(seconds=1.5)
    moved = first.model_copy(update={"lat": first.lat + 0.00012345678, "time": later, "last_update": later})
    message = _send(view_class, moved)
    assert message["type"] == "track_moved"
    assert message["track_id"] == first.track_id
    fields = dict(zip(TRACK_MOVED_FIELDS, message["m"], strict=True))
    assert fields["time"] == later.timestamp()
    assert fields["lat"] == round(moved.lat, 7)
    assert fields["covariance_en_m2"] == [144.0, 0.0, 144.0]
    assert fields["last_update"] is None, "equal to time"
    assert fields["class_probabilities"] is None, "unchanged since the whole track"
    assert len(orjson.dumps(message)) < 200


def test_changed_class_probabilities_and_older_last_update_are_sent() -> None:
    """Class probabilities go out when they change; a last_update older than time goes out."""
    view_class = _classes()
    first = make_track(DEMO, "CO", "co-ve-cucuta")
    _send(view_class, first)
    probabilities = [{"class": "person", "probability": 0.61234}, {"class": "animal", "probability": 0.001}]
    later = T0 + dt.timedelta(seconds=2)
    changed = first.model_copy(
        update={
            "time": later,
            "class_probabilities": [ClassProbability.model_validate(p) for p in probabilities],
        }
    )
    fields = dict(zip(TRACK_MOVED_FIELDS, _send(view_class, changed)["m"], strict=True))
    assert fields["class_probabilities"] == {"person": 0.612}
    assert fields["last_update"] == T0.timestamp()
    again = dict(zip(TRACK_MOVED_FIELDS, _send(view_class, changed)["m"], strict=True))
    assert again["class_probabilities"] is None


def test_a_static_change_sends_the_whole_track() -> None:
    """Anything besides the movement changing sends the whole track again."""
    view_class = _classes()
    first = make_track(DEMO, "CO", "co-ve-cucuta")
    _send(view_class, first)
    assert _send(view_class, first.model_copy(update={"status": TrackStatus.COASTING}))["type"] == "track"


def test_a_lagging_client_gets_each_tracks_latest_movement_only() -> None:
    """A frame leaves out pure movements a later message about the same track supersedes."""
    view_class = _classes()
    first = make_track(DEMO, "CO", "co-ve-cucuta")
    other = make_track(DEMO, "CO", "co-ve-cucuta", track_id="co-ve-cucuta.T000043")
    _send(view_class, first)
    _send(view_class, other)
    for step in range(1, 4):
        for track in (first, other):
            moved = track.model_copy(update={"time": T0 + dt.timedelta(seconds=step)})
            message = orjson.dumps(_send(view_class, moved))
            view_class.append(Entry(message, None, track.track_id, _movement_only(message)))
    alert = Entry(b'{"type":"alert"}')
    view_class.append(alert)
    body, count, _ = view_class.body(0)
    messages = orjson.loads(b"[" + body + b"]")
    assert count == len(messages) == 3
    assert [m.get("track_id") for m in messages] == [first.track_id, other.track_id, None]
    assert [m["m"][0] for m in messages[:2]] == [(T0 + dt.timedelta(seconds=3)).timestamp()] * 2


def test_movements_with_class_probabilities_and_whole_tracks_stay() -> None:
    """Only pure movements are left out: a class change or a whole track is kept."""
    whole = Entry(b'{"type":"track"}', None, "t1")
    with_classes = Entry(b'{"type":"track_moved","track_id":"t1","m":[1,{"person":0.5}]}', None, "t1")
    pure = b'{"type":"track_moved","track_id":"t1","m":[2,null]}'
    latest = Entry(pure, None, "t1", _movement_only(pure))
    assert _movement_only(pure)
    assert not _movement_only(with_classes.message)
    assert _latest_movements([whole, with_classes, latest, latest]) == [whole, with_classes, latest]
