"""OpenAPI description of the plain-ASGI event endpoints, merged into FastAPI's document.

The request schemas come from ``schemas`` (the same models ingest validates with), so the
document cannot drift from the code; the examples come from :mod:`schemas.examples`.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import TypeAdapter

from schemas import examples
from schemas.events import SensorEvent, SensorStatus
from schemas.export import close_objects

_REF = "#/components/schemas/{model}"

_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string", "example": "urn:lindero:problem:invalid"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "reason": {"type": "string", "description": "machine-readable reason, as in `type`"},
        "detail": {"type": "string"},
        "event_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
    },
    "required": ["type", "title", "status", "reason", "detail"],
}
_FIELD_ERROR = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "dotted path of the field; empty for the event"},
        "message": {"type": "string"},
    },
    "required": ["path", "message"],
}
_REJECTED = {
    "type": "object",
    "properties": {
        "index": {"type": "integer", "description": "position in the batch (0-based)"},
        "event_id": {"type": ["string", "null"]},
        "status": {"type": "integer", "description": "the HTTP status this event alone would get"},
        "reason": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
    },
    "required": ["index", "status", "reason", "errors"],
}
_BATCH_RESULT = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer", "description": "written to Kafka by this request"},
        "duplicates": {"type": "integer", "description": "already written earlier (retries)"},
        "rejected": {"type": "integer"},
        "rejected_events": {"type": "array", "items": {"$ref": "#/components/schemas/RejectedEvent"}},
        "duplicate_events": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "event_id": {"type": "string"}},
            },
        },
    },
    "required": ["accepted", "duplicates", "rejected", "rejected_events", "duplicate_events"],
}
_ACCEPTED = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["accepted", "duplicate"]},
        "event_id": {"type": "string", "format": "uuid"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
    },
    "required": ["status", "event_id"],
}


def _problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
        }
    return response


def _batch_refused(description: str) -> dict[str, Any]:
    """Every event of a batch refused: the batch result (by index), or a problem when the body as a
    whole is refused (e.g. an empty array)."""
    response = _problem(description)
    response["content"]["application/json"] = {"schema": {"$ref": "#/components/schemas/BatchResult"}}
    return response


def _common_errors(single: bool) -> dict[str, Any]:
    errors = {
        "400": _problem("The body is not JSON (or not NDJSON)"),
        "401": _problem("No API key, or not a valid one"),
        "413": _problem("The body (or the batch's event count) is over the limit"),
        "415": _problem("Wrong Content-Type or Content-Encoding"),
        "422": _problem(
            "Invalid event(s): each error names the field path" + ("" if single else " and the event's index")
        ),
        "429": _problem("The gateway's rate limit is reached", retry_after=True),
        "503": _problem(
            "Kafka is unavailable or did not acknowledge in time; retry the same events",
            retry_after=True,
        ),
    }
    if single:
        errors["403"] = _problem("The gateway may not post for this sensor")
        errors["409"] = _problem("The event_id was already used for a different event")
    return errors


def _operation(
    summary: str, description: str, body: dict[str, Any], responses: dict[str, Any], tag: str
) -> dict[str, Any]:
    return {
        "post": {
            "tags": [tag],
            "summary": summary,
            "description": description,
            "security": [{"ApiKey": []}, {"Bearer": []}],
            "requestBody": {"required": True, "content": body},
            "responses": responses,
        }
    }


def _with_promise(operation: dict[str, Any]) -> dict[str, Any]:
    """The batch endpoint's optional ``Lindero-Complete-Through`` header (schemas/events.py)."""
    post = operation["post"]
    post["parameters"] = [
        {
            "name": "Lindero-Complete-Through",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "format": "date-time"},
            "example": "2026-11-22T10:00:00.250Z",
            "description": (
                "A promise: every event this gateway posts from now on (and every one not yet "
                "acknowledged to it) is newer than this time. Send it only if the gateway posts "
                "in time order, with one request in flight. Once the request's events are in "
                "Kafka, ingest writes it to `sensor.events` for each region of the gateway's "
                "sensors; a region whose gateways all keep promising is tracked as soon as they "
                "have all promised past a detection, instead of after the reorder window. "
                "With an empty body (`[]`) it is a heartbeat (202). 400 when it is not an "
                "RFC 3339 time with a zone, 422 (`too_new`, `too_old`) when it lies outside "
                "the window an event's time may be in, 503 when it could not be written. A "
                "heartbeat counts as one event for the gateway's rate limit."
            ),
        }
    ]
    return operation


def _schemas() -> dict[str, Any]:
    components: dict[str, Any] = {}
    adapters: tuple[tuple[str, TypeAdapter[Any]], ...] = (
        ("SensorEvent", TypeAdapter(SensorEvent)),
        ("SensorStatus", TypeAdapter(SensorStatus)),
    )
    for name, adapter in adapters:
        schema = adapter.json_schema(ref_template=_REF)
        components.update(schema.pop("$defs", {}))
        components[name] = schema
    close_objects(components)
    components.update(
        Problem=_PROBLEM,
        FieldError=_FIELD_ERROR,
        RejectedEvent=_REJECTED,
        BatchResult=_BATCH_RESULT,
        Accepted=_ACCEPTED,
    )
    return components


def paths() -> dict[str, Any]:
    """Path items of the four event endpoints."""
    event_examples = {name: {"value": value} for name, value in examples.SENSOR_EVENTS.items()}
    single_ok = {
        "202": {
            "description": "Written to Kafka and acknowledged by every in-sync replica",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        },
        "200": {
            "description": "A duplicate: this event_id was written before (a retry); not written again",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        },
    }
    batch_ok = {
        "202": {
            "description": "Every event written (or a duplicate of one written before)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}},
        },
        "200": {
            "description": "Every event was a duplicate",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}},
        },
        "207": {
            "description": "Some events refused, the others written: see rejected_events (by index)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}},
        },
        "403": _batch_refused("Every event names a sensor the gateway may not post for"),
        "409": _batch_refused("Every event reuses an event_id for a different event"),
    }
    batch_errors = {
        **_common_errors(single=False),
        "422": _batch_refused(
            "Every event refused, for different reasons or as invalid (each listed by index), or no "
            "event at all"
        ),
    }
    batch_note = (
        "A JSON array, or NDJSON (one event per line). Every event is judged on its own: good "
        "ones are written, bad ones are listed by index in `rejected_events` (207). Retrying the "
        "whole batch is always safe: events already written come back as duplicates."
    )
    batch_events_example = {"value": [examples.RADAR_POLAR, examples.DRONE, examples.GROUND]}
    return {
        "/v1/events": _operation(
            "Post one sensor event",
            "One radar, drone or ground-sensor event (`sensor_type` selects the body). 202 only "
            "after Kafka acknowledged it; repeating an `event_id` is safe (200 duplicate).",
            {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/SensorEvent"},
                    "examples": event_examples,
                }
            },
            {**single_ok, **_common_errors(single=True)},
            "events",
        ),
        "/v1/events/batch": _with_promise(
            _operation(
                "Post many sensor events",
                batch_note,
                {
                    "application/json": {
                        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/SensorEvent"}},
                        "examples": {"mixed": batch_events_example},
                    },
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
                {**batch_ok, **batch_errors},
                "events",
            )
        ),
        "/v1/status": _operation(
            "Post one sensor status report (heartbeat, battery, tamper, self-test)",
            "Written to `sensor.status`, keyed by sensor id.",
            {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/SensorStatus"},
                    "examples": {"heartbeat": {"value": examples.STATUS}},
                }
            },
            {**single_ok, **_common_errors(single=True)},
            "status",
        ),
        "/v1/status/batch": _operation(
            "Post many sensor status reports",
            batch_note,
            {
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/SensorStatus"}}
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
            {**batch_ok, **batch_errors},
            "status",
        ),
    }


def extend(document: dict[str, Any]) -> dict[str, Any]:
    """Add the event endpoints, their schemas and the API-key security schemes to ``document``."""
    out = copy.deepcopy(document)
    # A copy: whoever changes the document (a fuzzer does) must not change the shared examples.
    out.setdefault("paths", {}).update(copy.deepcopy(paths()))
    components = out.setdefault("components", {})
    components.setdefault("schemas", {}).update(_schemas())
    components.setdefault("securitySchemes", {}).update(
        {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer", "description": "the gateway API key"},
        }
    )
    return out
