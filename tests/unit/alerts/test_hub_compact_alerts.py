"""Compact alerts: ``alert_changed`` messages of the hub and schemas.api.apply_alert_changes;
the dashboard's decoding of compact messages stays in step with schemas.api."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas.api import TRACK_MOVED_FIELDS, apply_alert_changes
from services.alerts.domain.sharing import SharingPolicy
from services.alerts.hub import Subscription, ViewClass, _alert_changes, _compact_alert
from tests.unit.alerts.builders import DEMO, T0, centre_viewer, fresh_crossing, make_state

POLICY = SharingPolicy(DEMO)
VIEWER = centre_viewer(DEMO, "cc-cucuta")


def _view_class() -> ViewClass:
    return ViewClass(VIEWER, Subscription(compact_alerts=True))


def _send(view_class: ViewClass, view: dict[str, Any], first: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(_compact_alert(view_class, view["alert"]["alert_id"], view, first))
    return message


def test_a_revision_sends_only_what_changed_and_rebuilds_the_whole_view() -> None:
    """The first message is the whole alert; a revision carries the changed fields only, and
    applying them to the first view gives exactly the revised view."""
    alert = fresh_crossing()
    state = make_state(DEMO, alert)
    first = POLICY.alert(VIEWER, state)
    assert first is not None
    view_class = _view_class()
    whole = _send(view_class, first, first=True)
    assert whole == {"type": "alert", "data": first}

    later = T0 + dt.timedelta(seconds=4)
    revised_alert = alert.model_copy(
        update={"revision": alert.revision + 1, "updated_at": later, "summary": "crossed again, 40 m further"}
    )
    revised = POLICY.alert(VIEWER, state.model_copy(update={"alert": revised_alert, "version": 4}))
    assert revised is not None
    message = _send(view_class, revised)
    assert message["type"] == "alert_changed"
    assert message["alert_id"] == alert.alert_id
    assert message["version"] == 4
    assert set(message["set"]) == {"alert", "version"}
    assert set(message["set"]["alert"]) == {"revision", "updated_at", "summary"}
    assert apply_alert_changes(first, message["set"]) == revised
    assert len(orjson.dumps(message)) * 4 < len(orjson.dumps(whole))


def test_a_removed_field_sends_the_whole_alert_again() -> None:
    """A change the merge cannot express (a field went away) goes out as a whole alert_update."""
    view_class = _view_class()
    base = {"alert": {"alert_id": "A1", "summary": "x", "note": "y"}, "version": 1, "notice": "z"}
    _send(view_class, base, first=True)
    without_note = {"alert": {"alert_id": "A1", "summary": "x"}, "version": 2, "notice": "z"}
    assert _send(view_class, without_note) == {"type": "alert_update", "data": without_note}
    without_notice = {"alert": {"alert_id": "A1", "summary": "x"}, "version": 3}
    assert _send(view_class, without_notice)["type"] == "alert_update"
    assert _send(view_class, {**without_notice, "version": 4})["set"] == {"version": 4}


def test_a_client_without_the_base_gets_the_whole_alert() -> None:
    """An alert the class has sent before but holds no base for (e.g. a resume) goes out whole."""
    view_class = _view_class()
    view = {"alert": {"alert_id": "A1", "summary": "x"}, "version": 2}
    assert _send(view_class, view)["type"] == "alert_update"
    assert _send(view_class, {**view, "version": 3})["type"] == "alert_changed"


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3), st.lists(st.integers(0, 3), max_size=3)
)
_inner = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _leaf, max_size=4)
_views = st.dictionaries(
    st.sampled_from(["alert", "status", "version", "dispatch", "notice"]),
    st.one_of(_leaf, _inner),
    max_size=5,
)


@given(_views, _views)
def test_changes_applied_to_the_base_give_the_new_view(base: dict[str, Any], view: dict[str, Any]) -> None:
    """For any two views (objects two levels deep): either the changes rebuild the new view from
    the base exactly, or a field was removed and the change is declared inexpressible."""
    changes = _alert_changes(base, view)
    removed = bool(base.keys() - view.keys()) or any(
        isinstance(view.get(k), dict) and isinstance(v, dict) and bool(v.keys() - view[k].keys())
        for k, v in base.items()
    )
    if changes is None:
        assert removed
    else:
        assert not removed
        assert apply_alert_changes(base, changes) == view
        assert all(k not in base or base[k] != v for k, v in changes.items()), "only what changed"


def test_the_dashboard_decodes_the_same_track_moved_fields() -> None:
    """web/src/lib/compact.ts lists track_moved's positions exactly as schemas.api does."""
    source = (Path(__file__).resolve().parents[3] / "web" / "src" / "lib" / "compact.ts").read_text("utf-8")
    listed = re.search(r"TRACK_MOVED_FIELDS = \[(.*?)\] as const", source, re.S)
    assert listed is not None
    assert tuple(re.findall(r'"(\w+)"', listed.group(1))) == TRACK_MOVED_FIELDS
