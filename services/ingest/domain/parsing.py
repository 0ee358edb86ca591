"""Turn request bodies into validated events, keeping a precise error for every bad one.

Bodies are one JSON object (single endpoints), a JSON array or NDJSON (batch endpoints). Each
item is first re-encoded canonically (compact, keys sorted; a repeated key keeps its last
value) and it is *those bytes* that are validated, strictly (no type coercion, unknown fields
refused) against ``schemas``, and later written to Kafka. So what was checked is exactly what
is stored, and the same event always has the same bytes (the duplicate digest relies on it).

A body that is not JSON at all is a :class:`BodyError` (HTTP 400); an item that is JSON but not
a valid event becomes a :class:`Parsed` carrying its :class:`FieldError` list (HTTP 422).
Batches are validated in one call when they are clean (the common case) and item by item only
to tell good from bad when they are not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import SensorType

T = TypeVar("T")

_TAGS = frozenset(t.value for t in SensorType)
_INPUT_SHOWN = 80
_CANONICAL = orjson.OPT_SORT_KEYS


class BodyError(Exception):
    """The body as a whole cannot be read as the expected JSON (HTTP 400 unless ``status`` says)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field: its dotted path inside the event ("" for the whole event)."""

    path: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class Parsed(NamedTuple, Generic[T]):
    """One item of a body: its position, and either the model with its canonical bytes or errors."""

    position: int
    """Index of the item in its body (0 for a single event)."""
    model: T | None
    canonical: bytes = b""
    errors: tuple[FieldError, ...] = ()
    event_id: str | None = None
    """For invalid items, when an event_id could be read, so that errors name the event."""


def _path(loc: Sequence[int | str], tagged: bool) -> str:
    parts = list(loc)
    if tagged and parts and parts[0] in _TAGS:
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_invalid":
        return "sensor_type must be one of 'radar', 'drone', 'ground'"
    if kind == "union_tag_not_found":
        return "sensor_type is required"
    if kind == "model_type":
        return "each event must be a JSON object"
    message = str(error["msg"])
    if kind != "missing" and "input" in error and not isinstance(error["input"], dict | list):
        shown = repr(error["input"])
        if len(shown) <= _INPUT_SHOWN:
            message += f" (got {shown})"
    return message


def _field_error(error: Any, loc: Sequence[int | str], tagged: bool) -> FieldError:
    if error["type"] in {"union_tag_not_found", "union_tag_invalid"}:
        return FieldError("sensor_type", _message(error))
    return FieldError(_path(loc, tagged), _message(error))


def field_errors(exc: ValidationError, tagged: bool) -> tuple[FieldError, ...]:
    """The validation errors of one item as (path, message) pairs, union tags removed."""
    errors = exc.errors(include_url=False, include_context=False)
    return tuple(_field_error(error, error["loc"], tagged) for error in errors)


def _event_id_of(item: Any) -> str | None:
    if isinstance(item, dict):
        event_id = item.get("event_id")
        if isinstance(event_id, str) and len(event_id) <= 64:
            return event_id
    return None


def _check_count(count: int, max_events: int) -> None:
    if count == 0:
        raise BodyError("the batch holds no events", status=422)
    if count > max_events:
        raise BodyError(f"the batch holds {count} events; at most {max_events} are allowed", 413)


def _loads(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"{what} is not valid JSON: {exc}") from exc


class EventParser(Generic[T]):
    """Strict parsing of one kind of event (``SensorEvent`` or ``SensorStatus``)."""

    def __init__(self, model: Any, tagged: bool) -> None:
        self._one: TypeAdapter[T] = TypeAdapter(model)
        self._many: TypeAdapter[list[T]] = TypeAdapter(list[model])
        self._tagged = tagged

    def single(self, body: bytes) -> Parsed[T]:
        """The body of a single-event endpoint: exactly one JSON object."""
        if not body.strip():
            raise BodyError("the body is empty; send one JSON object")
        item = _loads(body, "the body")
        if not isinstance(item, dict):
            raise BodyError("the body must be one JSON object (an event)", status=422)
        canonical = orjson.dumps(item, option=_CANONICAL)
        try:
            model = self._one.validate_json(canonical, strict=True, extra="forbid")
        except ValidationError as exc:
            return Parsed(0, None, b"", field_errors(exc, self._tagged), _event_id_of(item))
        return Parsed(0, model, canonical)

    def array(self, body: bytes, max_events: int) -> list[Parsed[T]]:
        """A JSON array of events."""
        items = _loads(body, "the body")
        if not isinstance(items, list):
            raise BodyError("a batch must be a JSON array of events (or NDJSON)", status=422)
        _check_count(len(items), max_events)
        return self._validate(list(enumerate(items)), [])

    def ndjson(self, body: bytes, max_events: int) -> list[Parsed[T]]:
        """Newline-delimited JSON: one event per line; blank lines are ignored."""
        lines = [line for line in body.split(b"\n") if line.strip()]
        _check_count(len(lines), max_events)
        items: list[tuple[int, Any]] = []
        broken: list[Parsed[T]] = []
        for index, line in enumerate(lines):
            try:
                items.append((index, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                broken.append(Parsed(index, None, b"", (FieldError("", f"line is not valid JSON: {exc}"),)))
        return self._validate(items, broken)

    def _validate(self, items: list[tuple[int, Any]], out: list[Parsed[T]]) -> list[Parsed[T]]:
        objects = [(index, item) for index, item in items if isinstance(item, dict)]
        for index, item in items:
            if not isinstance(item, dict):
                out.append(Parsed(index, None, b"", (FieldError("", "each event must be a JSON object"),)))
        canonical = [orjson.dumps(item, option=_CANONICAL) for _, item in objects]
        try:
            models = self._many.validate_json(b"[" + b",".join(canonical) + b"]", strict=True, extra="forbid")
        except ValidationError as exc:
            return self._separate(objects, canonical, exc, out)
        out.extend(
            Parsed(index, model, raw)
            for (index, _), model, raw in zip(objects, models, canonical, strict=True)
        )
        out.sort(key=lambda parsed: parsed.position)
        return out

    def _separate(
        self,
        objects: list[tuple[int, Any]],
        canonical: list[bytes],
        exc: ValidationError,
        out: list[Parsed[T]],
    ) -> list[Parsed[T]]:
        """Some items are invalid: report those, validate the rest again without them."""
        bad: dict[int, list[FieldError]] = defaultdict(list)
        for error in exc.errors(include_url=False, include_context=False):
            position, *loc = error["loc"]
            bad[int(position)].append(_field_error(error, loc, self._tagged))
        good = [i for i in range(len(objects)) if i not in bad]
        for position, errors in bad.items():
            index, item = objects[position]
            out.append(Parsed(index, None, b"", tuple(errors), _event_id_of(item)))
        if good:
            models = self._many.validate_json(
                b"[" + b",".join(canonical[i] for i in good) + b"]", strict=True, extra="forbid"
            )
            out.extend(
                Parsed(objects[i][0], model, canonical[i]) for i, model in zip(good, models, strict=True)
            )
        out.sort(key=lambda parsed: parsed.position)
        return out
