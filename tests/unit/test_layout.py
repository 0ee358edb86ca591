"""House rules that code review would otherwise have to catch (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from schemas.topics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_FILES = sorted((ROOT / "services").glob("*/domain/**/*.py"))
ALLOWED_ROOTS = {
    "__future__", "abc", "base64", "bisect", "collections", "dataclasses", "datetime", "enum", "functools",
    "hashlib", "heapq", "itertools", "math", "operator", "re", "statistics", "typing", "uuid",
    "numpy", "scipy", "shapely", "pyproj", "pydantic", "orjson", "schemas",
}  # fmt: skip
ALLOWED_SERVICES = (
    "services.core.config",
    "services.core.geo",
    "services.core.geography",
    "services.core.ruleconfig",
)
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_there_is_domain_code_to_check() -> None:
    """The rule below really looks at files."""
    assert len(DOMAIN_FILES) >= 4


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_code_does_no_io_and_reads_no_clock(path: Path) -> None:
    """Domain modules import no Kafka, HTTP, sockets or asyncio, and never read the clock."""
    tree = ast.parse(path.read_text("utf-8"))
    for name in _imports(tree):
        if name.startswith("services."):
            assert name.startswith(ALLOWED_SERVICES) or ".domain" in name, f"{path}: imports {name}"
        else:
            assert name.split(".")[0] in ALLOWED_ROOTS, f"{path}: imports {name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_CALLS, f"{path}:{node.lineno}: reads the clock"


KAFKA_CALLS = frozenset(
    {"send", "send_and_wait", "send_batch", "subscribe", "TopicPartition", "AIOKafkaConsumer", "topics"}
)


def test_topic_names_are_spelled_only_in_the_registry() -> None:
    """No module outside schemas/topics.py spells a topic name: no dotted topic name anywhere, and no
    plain word that is a topic name (``alerts``, ``tracks``...) handed to a Kafka call.

    Plain words are also REST collections, tags and CLI commands, so only their use in a Kafka
    call (``send``, ``subscribe``, ``TopicPartition``, ``AIOKafkaConsumer``, ``settings.topics``)
    counts.
    """
    names = {topic.name for topic in REGISTRY}
    dotted = {name for name in names if "." in name}
    offenders = []
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "schemas").rglob("*.py")]:
        if path.name == "topics.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and node.value in dotted:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called in KAFKA_CALLS:
                    for arg in [*node.args, *(k.value for k in node.keywords)]:
                        if isinstance(arg, ast.Constant) and arg.value in names:
                            offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
