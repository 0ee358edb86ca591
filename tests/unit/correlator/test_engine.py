"""The region engine in event time: reorder window, late and repeated events, publishing, snapshots."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
import pytest

from schemas.alerts import AlertKind
from schemas.tracks import Track, TrackStatus
from services.core.config import LinderoConfig
from services.correlator.domain.classification import CLASSES
from services.correlator.domain.detections import Detection
from services.correlator.domain.engine import DEDUP_WINDOW_S, Output, RegionEngine
from services.correlator.domain.region import RegionContext
from services.correlator.domain.reorder import BUCKET_S, FLOOR_S, HEADROOM, HISTORY_S, MARGIN_S
from services.correlator.domain.rules import TrackView
from tests.unit.correlator.worlds import (
    CUCUTA,
    T0,
    Walker,
    beside,
    context_of,
    radar_scans,
    trip,
    walk_towards,
    with_rules,
    with_tracking,
)

Engines = Callable[..., RegionEngine]
FIXED = {"reorder_adaptive": False}
"""Tracking settings of a fixed reorder window (reorder_window_s, 2 s)."""
FAR_UGS = "co-cuc-ugs-01"
"""A ground sensor 10 km from the scenarios' tracks: its trips stay unexplained."""


@pytest.fixture
def make_context(demo_config: LinderoConfig) -> Callable[..., RegionContext]:
    """The Cúcuta context, optionally with changed tracking parameters or rules."""

    def make(tracking: dict[str, Any] | None = None, **rules: Any) -> RegionContext:
        config = demo_config
        if tracking:
            config = with_tracking(config, **tracking)
        if rules:
            config = with_rules(config, **rules)
        return context_of(config, CUCUTA)

    return make


@pytest.fixture
def make_engine(make_context: Callable[..., RegionContext]) -> Engines:
    """A fresh engine of the Cúcuta region (same options as ``make_context``)."""

    def make(tracking: dict[str, Any] | None = None, **rules: Any) -> RegionEngine:
        return RegionEngine(make_context(tracking, **rules))

    return make


def crossing(
    context: RegionContext, period_s: float = 2.0, speed_mps: float = 2.0
) -> tuple[Walker, list[Detection]]:
    """A person walking from 120 m inside Colombia to 120 m inside Venezuela, seen by the CO radar."""
    walker = walk_towards(beside(context, "CO", 120), beside(context, "VE", 120), speed_mps, T0)
    return walker, radar_scans(context, [walker], T0, walker.end_s, period_s=period_s)


def feed(engine: RegionEngine, detections: Sequence[Detection], first_offset: int = 0) -> list[Output]:
    """Add each detection (its offset: its position in the input) and step after each, as the runner does."""
    outputs = []
    for offset, detection in enumerate(detections, start=first_offset):
        engine.add(detection, offset)
        outputs.append(engine.step())
    return outputs


def parsed(message: bytes | None) -> Track | None:
    """A published track message, validated against the wire schema (None: a tombstone)."""
    return None if message is None else Track.model_validate_json(message, strict=True)


def tracks_of(outputs: Sequence[Output]) -> list[tuple[str, Any]]:
    return [(track_id, parsed(message)) for out in outputs for track_id, message in out.tracks]


def alerts_of(outputs: Sequence[Output]) -> list[Any]:
    return [alert for out in outputs for alert in out.alerts]


def wire(outputs: Sequence[Output]) -> list[Any]:
    """Everything a step hands to the Kafka loop, as plain data."""
    return [
        (
            out.tracks,
            [a.model_dump() for a in out.alerts],
            out.processed,
            out.rule_errors,
        )
        for out in outputs
    ]


# -- reorder window, late and repeated events --------------------------------------------------------


def test_events_out_of_order_within_the_window_give_the_same_tracks(make_engine: Engines) -> None:
    """Arrivals shuffled by up to 1.5 s (a fixed window of 2 s) are tracked exactly as in time order."""
    engine = make_engine(FIXED)
    context = engine.context
    a = walk_towards(beside(context, "CO", 60), beside(context, "VE", 60), 2.0, T0)
    b = walk_towards(
        beside(context, "CO", 400, along=0.44), beside(context, "CO", 600, along=0.445), 1.5, T0 + 7
    )
    detections = radar_scans(context, [a, b], T0, a.end_s, period_s=1.0)
    rng = random.Random(3)
    shuffled = sorted(detections, key=lambda d: d.time_s + rng.uniform(0.0, 1.5))
    inversions = sum(1 for x, y in itertools.pairwise(shuffled) if y.time_s < x.time_s)
    assert inversions >= 5
    in_order = make_engine(FIXED)
    out_in_order = feed(in_order, detections)
    out_shuffled = feed(engine, shuffled)
    assert engine.late_total == in_order.late_total == 0
    assert sum(o.processed for o in out_shuffled) == sum(o.processed for o in out_in_order)
    got, expected = engine.tracker.estimates(), in_order.tracker.estimates()
    assert [(t.track_id, t.status, t.update_count, t.evidence) for t in got] == [
        (t.track_id, t.status, t.update_count, t.evidence) for t in expected
    ]
    assert len(got) == 2
    for mine, theirs in zip(got, expected, strict=True):
        assert (mine.east_m, mine.north_m, mine.velocity_east_mps) == pytest.approx(
            (theirs.east_m, theirs.north_m, theirs.velocity_east_mps), abs=1e-6
        )
    crossed = [(a.alert_id, a.kind, a.revision) for a in alerts_of(out_shuffled)]
    assert crossed == [(a.alert_id, a.kind, a.revision) for a in alerts_of(out_in_order)]
    assert [kind for _, kind, _ in crossed] == [AlertKind.BORDER_CROSSING]


def test_detections_wait_for_the_reorder_window(make_engine: Engines) -> None:
    """Nothing is processed until event time is 2 s past it (a fixed window); then it is, once."""
    engine = make_engine(FIXED)
    _, detections = crossing(engine.context, period_s=1.0)
    engine.add(detections[0])
    assert engine.step().processed == 0
    engine.add(detections[1])
    assert engine.step().processed == 0
    engine.add(detections[2])
    assert engine.step().processed == 1
    assert engine.step().processed == 0
    assert engine.step(now_s=detections[2].time_s + 2.0).processed == 2


def test_an_event_older_than_the_release_cursor_is_late_and_dropped(make_engine: Engines) -> None:
    """At or before the release cursor: refused and counted; just after it: still taken in order."""
    engine = make_engine(FIXED)
    _, detections = crossing(engine.context)
    feed(engine, detections[:20])
    release = engine.release_s
    assert release == detections[19].time_s - 2.0
    before = [(t.track_id, t.update_count) for t in engine.tracker.estimates()]
    stale = [d for d in detections[:20] if d.time_s <= release][-1]
    late = dataclasses.replace(stale, event_id="late-1")
    at_cursor = dataclasses.replace(stale, event_id="late-2", time_s=release)
    assert engine.add(late) is False
    assert engine.add(at_cursor) is False
    assert engine.late_total == 2
    assert engine.step(now_s=release + 2.0 + 1e-3).processed == 0
    assert [(t.track_id, t.update_count) for t in engine.tracker.estimates()] == before
    fresh = dataclasses.replace(detections[19], event_id="in-window", time_s=release + 0.5)
    assert engine.add(fresh) is True
    assert engine.late_total == 2


def test_the_adaptive_window_waits_only_as_long_as_detections_needed(make_engine: Engines) -> None:
    """In-order radar scans: the window shrinks from 2 s to its floor; a detection 1 s late is
    dropped once, widens the window, and the next one as late is taken."""
    engine = make_engine()
    _, detections = crossing(engine.context, period_s=1.0)
    engine.add(detections[0])
    assert engine.window.seconds == 2.0  # nothing learnt yet: the configured maximum
    feed(engine, detections[1:20], first_offset=1)
    assert engine.window.seconds == pytest.approx(FLOOR_S)
    assert engine.release_s == pytest.approx(detections[19].time_s - FLOOR_S)
    newest = detections[19].time_s
    late = dataclasses.replace(detections[18], event_id="late-1", time_s=newest - 1.0)
    assert engine.add(late) is False
    assert engine.late_total == 1
    assert engine.window.seconds == pytest.approx(1.0 * HEADROOM + MARGIN_S)
    engine.add(dataclasses.replace(detections[20], time_s=newest + 1.0))
    engine.step()
    as_late = dataclasses.replace(detections[19], event_id="late-2", time_s=newest + 0.05)
    assert engine.add(as_late) is True
    assert engine.late_total == 1


def test_the_adaptive_window_forgets_a_delay_after_five_minutes(make_engine: Engines) -> None:
    """A delay keeps the window wide for ``HISTORY_S`` of event time, then it shrinks again."""
    engine = make_engine()
    _, detections = crossing(engine.context, period_s=1.0)
    feed(engine, detections[:5])
    engine.add(dataclasses.replace(detections[5], event_id="slow", time_s=detections[4].time_s - 1.5))
    wide = 1.5 * HEADROOM + MARGIN_S
    assert engine.window.seconds == pytest.approx(wide)
    start = detections[4].time_s
    engine.step(now_s=start + HISTORY_S - BUCKET_S)
    engine.add(dataclasses.replace(detections[6], event_id="on-time", time_s=start + HISTORY_S - BUCKET_S))
    assert engine.window.seconds == pytest.approx(wide)
    engine.step(now_s=start + HISTORY_S + 2 * BUCKET_S)
    engine.add(dataclasses.replace(detections[7], event_id="later", time_s=start + HISTORY_S + 2 * BUCKET_S))
    assert engine.window.seconds == pytest.approx(FLOOR_S)


def test_the_adaptive_window_never_exceeds_the_configured_one(make_engine: Engines) -> None:
    engine = make_engine({"reorder_window_s": 0.8})
    _, detections = crossing(engine.context, period_s=1.0)
    feed(engine, detections[:5])
    engine.add(dataclasses.replace(detections[5], event_id="very-late", time_s=detections[4].time_s - 30))
    assert engine.window.seconds == 0.8


def test_the_adaptive_window_survives_a_restore(make_engine: Engines) -> None:
    """The learnt window and the front are in the state (snapshot and changelog header): a
    restored engine releases exactly as the one it replaces."""
    engine = make_engine()
    _, detections = crossing(engine.context, period_s=1.0)
    feed(engine, detections[:10])
    engine.add(dataclasses.replace(detections[10], event_id="slow", time_s=detections[9].time_s - 0.7))
    engine.step(now_s=detections[9].time_s + 0.3)
    restored = RegionEngine.restore(engine.context, orjson.loads(orjson.dumps(engine.export_state())))
    header = engine.changes().header
    from_log = RegionEngine.from_changelog(engine.context, orjson.loads(orjson.dumps(header)), None, [])
    for other in (restored, from_log):
        assert other.window.seconds == engine.window.seconds == pytest.approx(0.7 * HEADROOM + MARGIN_S)
        assert (other.front_s, other.release_s) == (engine.front_s, engine.release_s)


def promise_all(engine: RegionEngine, through_s: float, *, but: str | None = None) -> None:
    """Every gateway of the region (except ``but``) promises to have posted up to ``through_s``."""
    for gateway in sorted(engine.context.gateways - {but}):
        assert engine.promise(gateway, through_s)


def test_the_region_knows_its_gateways_from_the_configuration(make_engine: Engines) -> None:
    engine = make_engine()
    assert engine.context.gateways == {
        "gw-co-ejercito-cuc",
        "gw-co-policia-cuc",
        "gw-ve-fanb-tac",
        "gw-ve-gnb-tac",
    }
    assert engine.promise("gw-mx-sedena-tap", T0) is False  # another region's gateway: ignored
    assert engine.promises == {}


def test_when_every_gateway_promised_past_a_detection_it_is_released_at_once(make_engine: Engines) -> None:
    """A fixed 2 s window holds the detections; the gateways' promises release each one as soon
    as the last of them has promised past it, and not before."""
    engine = make_engine(FIXED)
    _, detections = crossing(engine.context, period_s=1.0)
    first, second = detections[0], detections[1]
    engine.add(first)
    engine.add(second)
    promise_all(engine, second.time_s, but="gw-ve-gnb-tac")
    assert engine.step().processed == 0  # one gateway has not promised: the window decides
    assert engine.promise("gw-ve-gnb-tac", first.time_s)
    out = engine.step()
    assert out.processed == 1  # released up to the oldest promise: the first detection only
    assert engine.release_s == first.time_s
    assert engine.promise("gw-ve-gnb-tac", second.time_s + 0.5)
    assert engine.step().processed == 1
    assert engine.release_s == second.time_s  # the oldest promise now
    late = dataclasses.replace(second, event_id="behind-a-promise", time_s=second.time_s - 0.1)
    assert engine.add(late) is False  # a gateway broke its promise: late, as behind the window
    assert engine.late_total == 1


def test_a_promise_never_holds_back_what_the_window_releases(make_engine: Engines) -> None:
    """Promises only bring the release forward: old promises leave the window in charge."""
    engine = make_engine(FIXED)
    _, detections = crossing(engine.context, period_s=1.0)
    promise_all(engine, detections[0].time_s - 1.5)
    feed(engine, detections[:6])
    assert engine.release_s == detections[5].time_s - 2.0


def test_fresh_promises_hold_back_a_shorter_adaptive_window(make_engine: Engines) -> None:
    """The adaptive window learnt 0.2 s; every gateway promised, one of them only 1 s behind the
    front: the region waits for it (nothing is released past its promise), so its slow detection
    is taken rather than dropped as late; once it promises on, everything is released."""
    engine = make_engine({"reorder_window_s": 2.0, "reorder_adaptive": True})
    _, detections = crossing(engine.context, period_s=0.5)
    feed(engine, detections[:20])
    assert engine.window.seconds < 0.5
    slow, front = detections[22], detections[24]
    late = engine.late_total
    feed(engine, detections[20:22], first_offset=20)
    promise_all(engine, front.time_s, but="gw-co-ejercito-cuc")
    assert engine.promise("gw-co-ejercito-cuc", slow.time_s - 0.01)
    feed(engine, detections[23:25], first_offset=23)
    assert engine.release_s == slow.time_s - 0.01  # not front - 0.2 s: the promise holds it
    assert engine.add(slow, 22) is True  # arrives last, still in time
    assert engine.late_total == late
    assert engine.promise("gw-co-ejercito-cuc", front.time_s)
    out = engine.step()
    assert out.processed == 3
    assert engine.release_s == front.time_s


def test_a_gateway_that_stops_promising_hands_the_region_back_to_the_window(make_engine: Engines) -> None:
    """A promise more than reorder_window_s behind event time's front no longer counts, so one
    silent gateway cannot stall the region, nor let it run ahead of the others."""
    engine = make_engine({"reorder_window_s": 2.0})
    _, detections = crossing(engine.context, period_s=1.0)
    promise_all(engine, detections[0].time_s)
    engine.add(detections[0])
    assert engine.promised_s(detections[0].time_s) == detections[0].time_s
    assert engine.promised_s(detections[0].time_s + 2.5) is None
    for gateway in sorted(engine.context.gateways - {"gw-co-policia-cuc"}):
        engine.promise(gateway, detections[5].time_s)
    assert engine.promised_s(detections[5].time_s) is None  # policia's promise is 5 s old


def test_promises_survive_a_restore(make_engine: Engines) -> None:
    engine = make_engine(FIXED)
    _, detections = crossing(engine.context, period_s=1.0)
    promise_all(engine, detections[3].time_s)
    feed(engine, detections[:5])
    restored = RegionEngine.restore(engine.context, orjson.loads(orjson.dumps(engine.export_state())))
    header = orjson.loads(orjson.dumps(engine.changes().header))
    from_log = RegionEngine.from_changelog(engine.context, header, None, [])
    for other in (restored, from_log):
        assert other.promises == engine.promises
        assert other.promised_s(detections[4].time_s) == detections[3].time_s


def test_promised_and_windowed_releases_track_alike(make_engine: Engines) -> None:
    """Released by promises as each scan is posted, the tracks come out the same as through the
    2 s window, only sooner."""
    windowed, promised = make_engine(FIXED), make_engine(FIXED)
    _, detections = crossing(windowed.context, period_s=1.0)
    windowed_out = feed(windowed, detections)
    windowed_out.append(windowed.step(now_s=detections[-1].time_s + 2.0))
    promised_out = []
    for offset, detection in enumerate(detections):
        promised.add(detection, offset)
        promise_all(promised, detection.time_s)
        promised_out.append(promised.step())
        assert promised_out[-1].processed == 1  # each detection as soon as it is promised
    got, expected = promised.tracker.estimates(), windowed.tracker.estimates()
    assert [(t.track_id, t.update_count, t.evidence) for t in got] == [
        (t.track_id, t.update_count, t.evidence) for t in expected
    ]
    crossings = [(a.kind, a.track_ids) for a in alerts_of(promised_out)]
    assert crossings == [(a.kind, a.track_ids) for a in alerts_of(windowed_out)]
    assert [kind for kind, _ in crossings] == [AlertKind.BORDER_CROSSING]


def test_a_repeated_event_id_is_dropped_and_not_counted_late(make_engine: Engines) -> None:
    """A retry written twice is processed once, whether it comes back before or after release."""
    engine = make_engine()
    _, detections = crossing(engine.context)
    assert engine.add(detections[0]) is True
    assert engine.add(detections[0]) is False
    feed(engine, detections[1:10], first_offset=1)
    engine.step(now_s=detections[9].time_s + 2.0)
    [track] = engine.tracker.estimates()
    assert track.update_count == 10
    released = detections[3]
    assert released.time_s <= engine.release_s
    assert released.time_s > engine.release_s - DEDUP_WINDOW_S
    assert engine.add(released) is False
    assert engine.late_total == 0


def test_repeated_ids_are_forgotten_once_far_behind_the_release_cursor(make_engine: Engines) -> None:
    """Ids are kept for 30 s of event time behind the cursor, then dropped (memory stays bounded)."""
    engine = make_engine()
    _, detections = crossing(engine.context)
    feed(engine, detections)
    horizon = engine.release_s - DEDUP_WINDOW_S
    assert engine.recent
    assert all(time_s > horizon for time_s in engine.recent.values())
    assert len(engine.recent) <= DEDUP_WINDOW_S / 2.0 + 3


# -- publishing ------------------------------------------------------------------------------------


def test_tentative_tracks_are_never_published(make_engine: Engines) -> None:
    """Two detections make a tentative track nobody sees; the third confirms and publishes it."""
    engine = make_engine()
    _, detections = crossing(engine.context)
    feed(engine, detections[:2])
    out = engine.step(now_s=detections[1].time_s + 2.0)
    assert engine.tracker.counts()["tentative"] == 1
    assert out.tracks == []
    engine.add(detections[2])
    out = engine.step(now_s=detections[2].time_s + 2.0)
    [(track_id, message)] = tracks_of([out])
    assert message is not None
    assert message.status is TrackStatus.CONFIRMED
    assert message.track_id == track_id


def test_a_tentative_track_that_dies_leaves_no_trace(make_engine: Engines) -> None:
    """Seen twice, then never again: no update, no lost message, no tombstone."""
    engine = make_engine()
    _, detections = crossing(engine.context)
    outputs = feed(engine, detections[:2])
    outputs.append(engine.step(now_s=detections[1].time_s + 60.0))
    assert tracks_of(outputs) == []
    assert len(engine.tracker) == 0


@pytest.mark.parametrize(("interval_s", "period_s"), [(1.0, 0.5), (5.0, 1.0)])
def test_a_confirmed_track_is_published_at_most_once_per_interval(
    make_engine: Engines, interval_s: float, period_s: float
) -> None:
    """Updates every ``period_s``; publications no closer than ``publish_interval_s`` (one scan of slack)."""
    engine = make_engine(tracking={"publish_interval_s": interval_s})
    walker = walk_towards(
        beside(engine.context, "CO", 300), beside(engine.context, "CO", 300, along=0.44), 1.5, T0
    )
    detections = radar_scans(engine.context, [walker], T0, T0 + 60, period_s=period_s)
    messages = [m for _, m in tracks_of(feed(engine, detections)) if m is not None]
    times = [m.time.timestamp() for m in messages]
    assert all(m.status is TrackStatus.CONFIRMED for m in messages)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval_s - period_s
    assert 60 / interval_s - 3 <= len(messages) <= 60 / interval_s + 1


def test_status_changes_are_published_at_once(make_engine: Engines) -> None:
    """With a 30 s interval: confirmed, coasting and confirmed-again each go out when they happen."""
    engine = make_engine(tracking={"publish_interval_s": 30.0})
    context = engine.context
    walker = walk_towards(beside(context, "CO", 300), beside(context, "CO", 300, along=0.44), 1.5, T0)
    detections = [d for d in radar_scans(context, [walker], T0, T0 + 60) if not T0 + 20 < d.time_s < T0 + 30]
    published = [
        (d.time_s - T0, m.status)
        for d, out in zip(detections, feed(engine, detections), strict=True)
        for _, m in tracks_of([out])
        if m is not None
    ]
    statuses = [status for _, status in published]
    assert statuses[:3] == [TrackStatus.CONFIRMED, TrackStatus.COASTING, TrackStatus.CONFIRMED]
    coasting_at = published[1][0]
    back_at = published[2][0]
    assert coasting_at == pytest.approx(30.0)  # the first input after the gap moves event time on
    assert back_at <= 34.0, "the re-acquired track must not wait for the publish interval"


def test_track_messages_are_what_the_schema_writes(make_engine: Engines) -> None:
    """Every published message is, byte for byte, pydantic's JSON of the Track it parses to."""
    engine = make_engine()
    walker, detections = crossing(engine.context)
    outputs = feed(engine, detections) + [engine.step(now_s=walker.end_s + k) for k in range(5, 90, 5)]
    messages = [message for out in outputs for _, message in out.tracks if message is not None]
    assert len(messages) > 10
    statuses = set()
    for message in messages:
        track = Track.model_validate_json(message, strict=True)
        statuses.add(track.status)
        assert track.model_dump_json().encode() == message
    assert statuses == {TrackStatus.CONFIRMED, TrackStatus.COASTING, TrackStatus.LOST}


def test_a_track_state_the_schema_refuses_is_not_published(make_engine: Engines) -> None:
    """A non-finite estimate fails loudly instead of going out as an invalid message."""
    engine = make_engine()
    _, detections = crossing(engine.context)
    feed(engine, detections[:4])
    [estimate] = engine.tracker.estimates()
    assert len(engine.to_messages([estimate])) == 1
    for change in ({"velocity_north_mps": math.nan}, {"alt_m": 25_000.0}):
        with pytest.raises(ValueError, match="not a valid wire state"):
            engine.to_messages([_changed(estimate, **change)])


def test_a_track_message_carries_the_lists_of_its_own_estimate(make_engine: Engines) -> None:
    """Class probabilities, sensor ids and owners are encoded once and reused: a message still
    carries its own estimate's, byte for byte what pydantic writes, as they change and change back."""
    engine = make_engine()
    _, detections = crossing(engine.context)
    feed(engine, detections[:4])
    [estimate] = engine.tracker.estimates()
    belief = np.roll(estimate.class_probabilities, 1)
    variants = [
        estimate,
        _changed(estimate, class_probabilities=belief),
        _changed(estimate, sensor_ids=estimate.sensor_ids | {"ve-tac-rdr-1", "co-cuc-ugs-1"}),
        _changed(estimate, owners=estimate.owners | {("VE", "fanb")}),
        estimate,
    ]
    messages = engine.to_messages(variants) + engine.to_messages(variants[::-1])
    for variant, message in zip(variants + variants[::-1], messages, strict=True):
        track = Track.model_validate_json(message, strict=True)
        assert track.model_dump_json().encode() == message
        assert track.sensor_ids == sorted(variant.sensor_ids)
        assert [(o.country, o.agency) for o in track.owners] == sorted(variant.owners)
        probabilities = {p.target_class.value: p.probability for p in track.class_probabilities}
        assert probabilities == {
            name: round(float(p), 4) for name, p in zip(CLASSES, variant.class_probabilities, strict=True)
        }


def _changed(estimate: Any, **fields: Any) -> Any:
    """A copy of a track estimate with some fields changed (a dataclass or a named tuple)."""
    if dataclasses.is_dataclass(estimate):
        return dataclasses.replace(estimate, **fields)
    return estimate._replace(**fields)


def test_a_track_that_ends_is_published_lost_then_deleted(make_engine: Engines) -> None:
    """After the last detection: coasting, then ``lost`` and a tombstone, then nothing more."""
    engine = make_engine()
    walker, detections = crossing(engine.context)
    outputs = feed(engine, detections)
    outputs += [engine.step(now_s=walker.end_s + k) for k in range(5, 90, 5)]
    messages = tracks_of(outputs)
    track_ids = {track_id for track_id, _ in messages}
    assert len(track_ids) == 1
    statuses = [m.status if m else None for _, m in messages]
    assert statuses[-3:] == [TrackStatus.COASTING, TrackStatus.LOST, None]
    assert TrackStatus.LOST not in statuses[:-2]
    assert len(engine.tracker) == 0
    assert engine.published == {}


def test_an_ended_track_leaves_the_rules_and_the_alert_book(make_engine: Engines) -> None:
    """Once lost, a crossing track's rule state and open alert are forgotten: snapshots do not grow."""
    engine = make_engine()
    walker, detections = crossing(engine.context)
    outputs = feed(engine, detections)
    [alert] = alerts_of(outputs)
    [track_id] = alert.track_ids
    assert f"border_crossing|{track_id}" in engine.book.open
    for k in range(5, 90, 5):
        engine.step(now_s=walker.end_s + k)
    assert len(engine.tracker) == 0
    state = orjson.dumps(engine.export_state()).decode()
    assert track_id not in state


# -- snapshots -------------------------------------------------------------------------------------


def busy_scenario(context: RegionContext) -> list[Detection]:
    """A crossing; a ghost seen twice whose tentative track dies; a walker in Venezuela; a walker
    appearing later (reusing the ghost's slot in the tracker); two unexplained ground-sensor trips."""
    crosser = walk_towards(beside(context, "CO", 120), beside(context, "VE", 120), 2.0, T0)
    ghost = Walker(beside(context, "CO", 900, along=0.47), (0.0, 1.0), T0 + 10, T0 + 12)
    resident = walk_towards(
        beside(context, "VE", 600, along=0.46), beside(context, "VE", 800, along=0.465), 1.5, T0 + 16
    )
    later = walk_towards(
        beside(context, "CO", 500, along=0.44), beside(context, "CO", 700, along=0.445), 1.5, T0 + 50
    )
    detections = radar_scans(context, [crosser, ghost, resident, later], T0, crosser.end_s)
    detections += [trip(context, FAR_UGS, T0 + 11.5), trip(context, FAR_UGS, T0 + 41.5)]
    return sorted(detections, key=lambda d: d.time_s)


def test_a_snapshot_mid_stream_continues_exactly_as_an_uninterrupted_run(make_engine: Engines) -> None:
    """Export (orjson), restore, re-read from the oldest buffered offset: outputs as if never cut."""
    # Cuts: before any track, after the ghost's track died, during the crossing, near the end.
    slow = {"publish_interval_s": 5.0}  # longer than the scan period: what was published matters
    straight = make_engine(tracking=slow)
    detections = busy_scenario(straight.context)
    ending = [detections[-1].time_s + 10 * k for k in range(1, 10)]
    whole = feed(straight, detections) + [straight.step(now_s=t) for t in ending]
    alerts = alerts_of(whole)
    assert {a.kind for a in alerts} == {AlertKind.BORDER_CROSSING, AlertKind.UNCORROBORATED_TRIP}
    assert max(a.revision for a in alerts) >= 2
    assert len({m.track_id for _, m in tracks_of(whole) if m is not None}) == 3
    for cut_s in (5.0, 35.0, 70.0, 100.0):
        cut = next(i for i, d in enumerate(detections) if d.time_s >= T0 + cut_s)
        first = make_engine(tracking=slow)
        feed(first, detections[:cut])
        snapshot = orjson.loads(orjson.dumps(first.export_state()))
        replay_from = first.min_buffered_offset()
        assert replay_from is not None
        resumed = RegionEngine.restore(first.context, snapshot)
        replayed = feed(resumed, detections[replay_from:cut], first_offset=replay_from)
        assert all(out.tracks == [] and out.alerts == [] for out in replayed)
        after = feed(resumed, detections[cut:], first_offset=cut) + [resumed.step(now_s=t) for t in ending]
        assert wire(after) == wire(whole[cut:]), f"cut at {cut_s} s"


class Changelog:
    """A compacted changelog of one engine, kept in a dict as the broker keeps the latest value per key."""

    def __init__(self) -> None:
        self.header: dict[str, Any] | None = None
        self.rules: dict[str, Any] | None = None
        self.tracks: dict[str, dict[str, Any]] = {}
        self.written: list[int] = []
        """Track records written per commit."""

    def commit(self, engine: RegionEngine, committed: bool = True) -> None:
        """Take the engine's changes through JSON, as the runner writes them (``committed``
        False: the transaction failed, nothing is kept and the engine is not told)."""
        changes = engine.changes()
        if not committed:
            return
        self.header = orjson.loads(orjson.dumps(changes.header))
        if changes.rules is not None:
            self.rules = orjson.loads(orjson.dumps(changes.rules))
        for track_id, record in changes.tracks:
            self.tracks[track_id] = orjson.loads(orjson.dumps(record))
        for track_id in changes.removed:
            del self.tracks[track_id]
        self.written.append(len(changes.tracks))
        engine.committed(changes)

    def restore(self, context: RegionContext) -> RegionEngine:
        assert self.header is not None
        return RegionEngine.from_changelog(context, self.header, self.rules, list(self.tracks.values()))


@pytest.mark.parametrize("every", [1, 7])
def test_a_changelog_mid_stream_continues_exactly_as_an_uninterrupted_run(
    make_engine: Engines, every: int
) -> None:
    """Changes committed every ``every`` detections (some commits failing), restored from the
    changelog's latest records: outputs as if never cut, and only changed tracks written."""
    slow = {"publish_interval_s": 5.0}
    straight = make_engine(tracking=slow)
    detections = busy_scenario(straight.context)
    ending = [detections[-1].time_s + 10 * k for k in range(1, 10)]
    whole = feed(straight, detections) + [straight.step(now_s=t) for t in ending]
    for cut_s in (5.0, 35.0, 70.0, 100.0):
        cut = next(i for i, d in enumerate(detections) if d.time_s >= T0 + cut_s)
        first = make_engine(tracking=slow)
        log = Changelog()
        for offset, detection in enumerate(detections[:cut]):
            first.add(detection, offset)
            first.step()
            if offset % every == 0 or offset == cut - 1:
                log.commit(first, committed=offset % 5 != 3)
        log.commit(first)
        replay_from = first.min_buffered_offset()
        assert replay_from is not None
        resumed = log.restore(first.context)
        assert len(resumed.tracker) == len(first.tracker)
        replayed = feed(resumed, detections[replay_from:cut], first_offset=replay_from)
        assert all(out.tracks == [] and out.alerts == [] for out in replayed)
        after = feed(resumed, detections[cut:], first_offset=cut) + [resumed.step(now_s=t) for t in ending]
        assert wire(after) == wire(whole[cut:]), f"cut at {cut_s} s"
        assert log.written[-1] == 0  # nothing changed since the commit before: nothing rewritten
        assert max(log.written) <= len(first.tracker) + 2


def test_a_changelog_deletes_ended_tracks_and_writes_only_what_changed(make_engine: Engines) -> None:
    """A lost track's record goes; a commit without input writes no track; restored state matches."""
    engine = make_engine()
    walker, detections = crossing(engine.context)
    log = Changelog()
    feed(engine, detections[: len(detections) // 2])
    log.commit(engine)
    assert len(log.tracks) == len(engine.tracker) >= 1
    log.commit(engine)
    assert log.written[-1] == 0
    assert log.rules is not None
    restored = log.restore(engine.context)
    assert orjson.dumps(restored.export_state()) == orjson.dumps(engine.export_state())
    feed(engine, detections[len(detections) // 2 :], first_offset=len(detections) // 2)
    for k in range(5, 90, 5):
        engine.step(now_s=walker.end_s + k)
    log.commit(engine)
    assert len(engine.tracker) == 0
    assert log.tracks == {}


# -- rule failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["border_crossing", "loitering"])
def test_a_failing_rule_is_reported_and_the_others_still_run(
    make_engine: Engines, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    """One rule raising on every look: its error in ``rule_errors``, every other rule's alerts still out."""
    engine = make_engine()

    def boom(tracks: Sequence[TrackView], now_s: float) -> list[Any]:
        raise RuntimeError(f"{broken} is broken")

    monkeypatch.setattr(engine.rules[broken], "observe", boom)
    outputs = feed(engine, busy_scenario(engine.context))
    errors = [error for out in outputs for error in out.rule_errors]
    assert errors
    assert set(errors) == {(broken, f"RuntimeError: {broken} is broken")}
    kinds = {a.kind for a in alerts_of(outputs)}
    assert AlertKind.UNCORROBORATED_TRIP in kinds
    assert (AlertKind.BORDER_CROSSING in kinds) == (broken != "border_crossing")
    assert tracks_of(outputs)


def test_rules_only_see_confirmed_and_coasting_tracks(
    make_engine: Engines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tentative track is invisible to the rules; once confirmed the rules see it."""
    engine = make_engine()
    seen: list[set[TrackStatus]] = []
    original = engine.rules["loitering"].observe

    def spy(tracks: Sequence[TrackView], now_s: float) -> list[Any]:
        seen.append({v.track.status for v in tracks})
        return original(tracks, now_s)

    monkeypatch.setattr(engine.rules["loitering"], "observe", spy)
    _, detections = crossing(engine.context)
    feed(engine, detections[:2])
    engine.step(now_s=detections[1].time_s + 2.0)
    assert seen
    assert all(statuses == set() for statuses in seen)
    feed(engine, detections[2:6], first_offset=2)
    assert seen[-1] == {TrackStatus.CONFIRMED}


def test_a_crossing_is_alerted_when_its_detection_is_released(make_engine: Engines) -> None:
    """Scans every 0.3 s: the crossing comes out at the first step whose release passes the
    detection that showed it, between two runs of every rule (the per-track rules looked)."""
    engine = make_engine(FIXED)
    _, detections = crossing(engine.context, period_s=0.3)
    released_before = -math.inf
    for detection in detections:
        engine.add(detection)
        out = engine.step()
        if out.alerts:
            break
        released_before = engine.release_s
    else:
        raise AssertionError("no crossing alerted")
    [alert] = out.alerts
    assert alert.kind == AlertKind.BORDER_CROSSING
    shown_s = alert.updated_at.timestamp()
    assert released_before < shown_s <= engine.release_s
    assert engine.last_rules_s < shown_s, "every rule ran: this did not test the per-track look"


def test_an_unexplained_trip_is_alerted_when_its_wait_is_over(make_engine: Engines) -> None:
    """Steps every 0.125 s, every rule run at .5 past each second: the trip (wait 20 s) comes out
    at the first step whose release reaches trip + 20 s, not at the next run of every rule 0.5 s
    later; a track near the sensor by then still explains it."""
    for explained in (False, True):
        engine = make_engine(FIXED)
        engine.add(trip(engine.context, FAR_UGS, T0 + 1.0, event_id="trip-1"), 0)
        if explained:
            site = engine.context.sensors[FAR_UGS]
            assert site.east_m is not None
            assert site.north_m is not None
            near = Walker((site.east_m + 60.0, site.north_m), (0.0, 1.0), T0 + 4.0, T0 + 40.0)
            for offset, detection in enumerate(radar_scans(engine.context, [near], T0 + 4.0, T0 + 40.0), 1):
                engine.add(detection, offset)
        window = engine.window.seconds
        alerted = []
        for tick in range(240):
            out = engine.step(now_s=T0 + 0.5 + window + 0.125 * tick)
            alerted += [(engine.release_s, engine.last_rules_s, a) for a in out.alerts]
        trips = [found for found in alerted if found[2].kind == AlertKind.UNCORROBORATED_TRIP]
        if explained:
            assert trips == []
            continue
        [(released_s, full_run_s, alert)] = trips
        assert released_s == T0 + 21.0
        assert full_run_s == T0 + 20.5, "every rule ran: this did not test the look at due trips"
        assert alert.updated_at.timestamp() == T0 + 1.0
        assert alert.evidence == ["trip-1"]


def test_between_full_runs_only_the_per_track_rules_look_at_changed_tracks(
    make_engine: Engines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendezvous (pairs of tracks) waits for the full run; loitering looks at each changed track."""
    engine = make_engine(FIXED)
    looks: dict[str, list[float]] = {"rendezvous": [], "loitering": []}
    for name, times in looks.items():
        original = engine.rules[name].observe

        def spy(
            tracks: Sequence[TrackView], now_s: float, original: Any = original, times: Any = times
        ) -> Any:
            times.append(now_s)
            return original(tracks, now_s)

        monkeypatch.setattr(engine.rules[name], "observe", spy)
    _, detections = crossing(engine.context, period_s=0.3)
    feed(engine, detections)
    rendezvous, loitering = np.array(looks["rendezvous"]), np.array(looks["loitering"])
    assert len(rendezvous) >= 5
    assert np.all(np.diff(rendezvous) >= 1.0)
    assert len(loitering) > 2 * len(rendezvous)


def test_a_per_track_look_writes_the_rules_only_when_their_state_moved(make_engine: Engines) -> None:
    """Between full runs the rules record goes to the changelog only when a per-track rule's state
    or the alert book changed (a first side of the border, the crossing), not after every look."""
    engine = make_engine(FIXED)
    _, detections = crossing(engine.context, period_s=0.3)
    looks = written = 0
    for detection in detections:
        engine.add(detection)
        full_run = engine.last_rules_s
        engine.step()
        changes = engine.changes()
        if engine.last_rules_s == full_run and changes.tracks:
            looks += 1
            written += changes.rules is not None
        engine.committed(changes)
    assert looks > 50
    assert 0 < written < looks / 10, (written, looks)


def test_the_per_track_rules_never_look_at_a_track_that_only_turned_coasting(
    make_engine: Engines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A track turning coasting carries its estimate from its last detection, seconds before: the
    per-track looks leave it to the full runs (which did see it), so no alert goes out that old."""
    engine = make_engine(FIXED)
    per_track: list[set[TrackStatus]] = []
    full: list[set[TrackStatus]] = []
    rule = engine.rules["border_crossing"]
    observe = rule.observe

    def spy(tracks: Sequence[TrackView], now_s: float) -> list[Any]:
        (full if engine.last_rules_s == now_s else per_track).append({v.track.status for v in tracks})
        return observe(tracks, now_s)

    monkeypatch.setattr(rule, "observe", spy)
    _, detections = crossing(engine.context, period_s=0.3)
    half = detections[: len(detections) // 2]
    feed(engine, half)
    for tick in range(1, 400):  # no more detections: the track coasts, then ends
        engine.step(now_s=half[-1].time_s + 0.1 * tick)
    assert any(TrackStatus.COASTING in statuses for statuses in full)
    assert per_track
    assert all(statuses == {TrackStatus.CONFIRMED} for statuses in per_track)
