"""Export the wire contract as JSON Schema files (checked in under ``schemas/json/``).

``python -m schemas.export`` (or ``lindero schemas export``) rewrites them; ``--check``
exits non-zero and names the stale files instead, which is what the test suite runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.alerts import Alert
from schemas.api import ActionRequest, StreamCommand, StreamHello, TeamAnswer
from schemas.events import (
    GatewayProgressRecord,
    SensorEvent,
    SensorEventRecord,
    SensorStatus,
    SensorStatusRecord,
)
from schemas.lifecycle import AlertAction, AlertState, AuditRecord, Dispatch
from schemas.topics import REGISTRY
from schemas.tracks import Track

JSON_DIR = Path(__file__).with_name("json")

_DOCUMENTS: dict[str, Any] = {
    "SensorEvent": SensorEvent,
    "SensorStatus": SensorStatus,
    "SensorEventRecord": SensorEventRecord,
    "SensorStatusRecord": SensorStatusRecord,
    "GatewayProgressRecord": GatewayProgressRecord,
    "Track": Track,
    "Alert": Alert,
    "AlertAction": AlertAction,
    "AlertState": AlertState,
    "Dispatch": Dispatch,
    "AuditRecord": AuditRecord,
    "ActionRequest": ActionRequest,
    "TeamAnswer": TeamAnswer,
    "StreamHello": StreamHello,
    "StreamCommand": StreamCommand,
}
_INBOUND = frozenset({"SensorEvent", "SensorStatus"})
"""Documents gateways post: ingest refuses unknown fields there, so the schema says so too
(the client documents of :mod:`schemas.api` forbid extra fields in the models themselves)."""


def close_objects(node: Any) -> None:
    """Set ``additionalProperties: false`` on every object schema below ``node``."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            close_objects(value)
    elif isinstance(node, list):
        for value in node:
            close_objects(value)


def _render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """Every exported file name with its exact text."""
    out: dict[str, str] = {}
    for name, model in _DOCUMENTS.items():
        schema = TypeAdapter(model).json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://lindero.invalid/schemas/{name}.schema.json"
        schema.setdefault("title", name)
        if name in _INBOUND:
            close_objects(schema)
        out[f"{name}.schema.json"] = _render(schema)
    topics = [
        {
            "name": topic.name,
            "model": topic.model.__name__ if topic.model else None,
            "key": topic.key,
            "cleanup": topic.cleanup,
            "retention_ms": topic.retention_ms,
            "doc": topic.doc,
        }
        for topic in REGISTRY
    ]
    out["topics.json"] = _render({"topics": topics})
    return out


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Names of files that are missing, different or no longer exported."""
    wanted = documents()
    problems = [
        name
        for name, text in wanted.items()
        if not (directory / name).is_file() or (directory / name).read_text("utf-8") != text
    ]
    if directory.is_dir():
        problems += [p.name for p in directory.glob("*.json") if p.name not in wanted]
    return sorted(problems)


def write(directory: Path = JSON_DIR) -> list[str]:
    """Rewrite the exported files; returns the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = documents()
    for old in directory.glob("*.json"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        (directory / name).write_text(text, "utf-8")
    return sorted(wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.add_argument("--dir", type=Path, default=JSON_DIR)
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.dir)
        for name in problems:
            sys.stderr.write(f"stale: {args.dir / name} (run: lindero schemas export)\n")
        return 1 if problems else 0
    for name in write(args.dir):
        sys.stdout.write(f"wrote {args.dir / name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
