"""Abuse of the ingest API against a real broker: a property-based fuzzer (schemathesis) over the
OpenAPI document, broken bodies, NaN/Infinity, forged and near-miss keys, gateways posting for
others' sensors, retries: every request gets a clear 4xx (never a 500) and every accepted event
is in Kafka exactly once."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import hmac
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from schemas.events import RECORD_KIND_HEADER
from schemas.topics import SENSOR_EVENTS, SENSOR_STATUS
from services.core import apikeys
from services.core.config import LinderoConfig
from tests.conftest import DEMO_CONFIG, EventFactory
from tests.integration.conftest import IngestFactory, RunningIngest, read_topic, start_ingest

__all__ = ["start_ingest"]

pytestmark = pytest.mark.kafka
SCHEMATHESIS_USES_RANDOM = pytest.mark.filterwarnings(
    # schemathesis 4.32 draws from the `random` module inside its strategies (Hypothesis seeds it, so
    # runs stay reproducible); Hypothesis deprecates that. Nothing of ours does it.
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
log = logging.getLogger(__name__)

GATEWAY = "gw-co-ejercito-cuc"
FUZZ_EXAMPLES = 30
"""Examples per operation and generation mode (positive, negative): about 250 requests in all."""
AUTH_HEADERS = frozenset({"authorization", "x-api-key"})


def auth(demo_keys: dict[str, str], gateway: str = GATEWAY) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo_keys[gateway]}"}


def rfc3339_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def written_ids(ingest: RunningIngest) -> list[str]:
    """The event ids of every record in sensor.events and sensor.status, in log order."""
    kafka = ingest.settings.kafka
    records = [
        *await read_topic(kafka, kafka.topics(SENSOR_EVENTS)),
        *await read_topic(kafka, kafka.topics(SENSOR_STATUS)),
    ]
    ids = []
    for record in records:
        if any(name == RECORD_KIND_HEADER for name, _ in record.headers or ()):
            continue  # a gateway's promise (the fuzzer sends Lindero-Complete-Through too)
        value = orjson.loads(record.value)
        message = value.get("event") or value.get("status")
        ids.append(str(uuid.UUID(message["event_id"])))
    return ids


@pytest.fixture
async def ingest(start_ingest: IngestFactory) -> RunningIngest:
    """One ready ingest server on fresh topics."""
    return await start_ingest()


# -- the fuzzer ---------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the fuzzer sent and what ingest said it wrote."""

    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    accepted: int = 0
    accepted_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    examples: int = 0

    def account(self, body: Any, status: int, answer: Any) -> None:
        """Count the events a 2xx answer says were written (with their ids when the body shows them)."""
        if status not in {200, 202, 207} or not isinstance(answer, dict):
            return
        if "accepted" in answer:  # a batch
            self.accepted += int(answer["accepted"])
            skipped = {e["index"] for e in answer["rejected_events"]} | {
                e["index"] for e in answer["duplicate_events"]
            }
            if isinstance(body, list):
                self.accepted_ids += [
                    str(uuid.UUID(item["event_id"]))
                    for index, item in enumerate(body)
                    if index not in skipped
                ]
        elif answer.get("status") == "accepted":
            self.accepted += 1
            self.accepted_ids.append(str(uuid.UUID(answer["event_id"])))


def owned_sensors(config: LinderoConfig, gateway: str) -> dict[str, str]:
    """One sensor of each type the gateway may post for: ``{sensor_type: sensor_id}``."""
    allowed = set(config.gateways_by_id[gateway].sensors)
    return {s.type: s.id for s in reversed(config.sensors) if s.id in allowed}


def steer(body: Any, owned: dict[str, str]) -> Any:
    """Point a generated event (or each event of a batch) at a sensor the gateway owns, timed now, so
    that some fuzzed events get past ownership and the time window into Kafka."""
    if isinstance(body, list):
        return [steer(item, owned) for item in body]
    if isinstance(body, dict) and isinstance(body.get("sensor_id"), str):
        sensor_type = body.get("sensor_type")
        body["sensor_id"] = (
            owned.get(sensor_type, owned["ground"]) if isinstance(sensor_type, str) else (owned["ground"])
        )
        body["time"] = rfc3339_now()
    return body


def fuzz(
    schema: Any,
    base_url: str,
    headers: dict[str, str],
    ledger: Ledger,
    max_examples: int,
    tweak: Callable[[Any, int, GenerationMode], None] = lambda case, draw, mode: None,
) -> None:
    """Run every operation of ``schema`` with positive and negative examples against ``base_url``.

    ``draw`` (0-4) picks the credentials: below 4 ``headers`` (a valid credential) replace the
    generated ones, so the fuzzer reaches the handlers; 4 keeps whatever credentials the generator
    made up (none, or garbage). ``tweak`` may adjust the case before it is sent.
    Hypothesis is derandomised (the same requests on every run) and does not shrink.
    """
    session = requests.Session()
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.label)
    for operation in operations:
        has_input = any(
            len(part)
            for part in (operation.body, operation.query, operation.headers, operation.path_parameters)
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[: 2 if has_input else 1]:
            _fuzz_one(operation, mode, session, base_url, headers, ledger, max_examples, tweak)
    session.close()


def _fuzz_one(
    operation: Any,
    mode: GenerationMode,
    session: requests.Session,
    base_url: str,
    headers: dict[str, str],
    ledger: Ledger,
    max_examples: int,
    tweak: Callable[[Any, int, GenerationMode], None],
) -> None:
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    checks.append(negative_data_rejection if mode is GenerationMode.NEGATIVE else response_schema_conformance)

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=operation.as_strategy(generation_mode=mode), draw=st.integers(0, 4))
    def example(case: Any, draw: int) -> None:
        ledger.examples += 1
        extra: dict[str, str] = {}
        if draw < 4:
            for name in [h for h in (case.headers or {}) if h.lower() in AUTH_HEADERS]:
                del case.headers[name]
            extra = headers
        tweak(case, draw, mode)
        response = case.call(base_url=base_url, session=session, headers=extra, timeout=30)
        label = f"{operation.label} [{mode.value}]"
        ledger.statuses[(operation.label, mode.value, response.status_code)] += 1
        try:
            answer = response.json()
        except ValueError:
            answer = None
        ledger.account(case.body, response.status_code, answer)
        try:
            case.validate_response(response, checks=checks, headers=extra)
        except BaseException as exc:  # noqa: BLE001 - collected, reported by the test
            ledger.failures.append(f"{label} -> {response.status_code}: {exc}\n{case.as_curl_command()}")

    example()


@pytest.mark.timeout(240)
@SCHEMATHESIS_USES_RANDOM
async def test_fuzzed_requests_get_no_server_error_and_what_was_accepted_is_in_kafka_once(
    ingest: RunningIngest, demo_keys: dict[str, str], demo_config: LinderoConfig
) -> None:
    """Schemathesis over the whole OpenAPI document (valid and invalid bodies, with and without a key):
    no 500, every status and content type documented, invalid data refused, and the events the
    answers say were written are in Kafka, each exactly once."""
    schema = schemathesis.openapi.from_dict(copy.deepcopy(ingest.app.api.openapi()))
    owned = owned_sensors(demo_config, GATEWAY)
    ledger = Ledger()

    def tweak(case: Any, draw: int, mode: GenerationMode) -> None:
        if mode is GenerationMode.POSITIVE and draw < 2 and case.body is not None:
            case.body = steer(case.body, owned)

    started = time.monotonic()
    await asyncio.to_thread(fuzz, schema, ingest.url, auth(demo_keys), ledger, FUZZ_EXAMPLES, tweak)
    elapsed = time.monotonic() - started
    assert not ledger.failures, "\n\n".join(ledger.failures[:10])
    codes = Counter(status for (_, _, status) in ledger.statuses.elements())
    log.warning(
        "ingest fuzz: %s requests in %.1f s; statuses %s", ledger.examples, elapsed, sorted(codes.items())
    )
    # The fuzzer did reach the handlers, and some events got all the way into Kafka.
    assert {202, 400, 401, 403, 422} <= set(codes), codes
    assert ledger.accepted > 0
    ids = await written_ids(ingest)
    assert len(ids) == ledger.accepted, "the answers and Kafka disagree on how many events were written"
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    assert set(ledger.accepted_ids) <= set(ids)


# -- broken bodies ------------------------------------------------------------------------------


def broken_bodies(valid: bytes) -> dict[str, bytes]:
    """Bodies that are not an acceptable JSON event, each named."""
    text = valid.decode()
    bodies = {f"truncated at {n}": valid[:n] for n in (1, 17, len(valid) // 2, len(valid) - 1)}
    bodies.update(
        {
            "NaN value": text.replace('"confidence":0.6', '"confidence":NaN').encode(),
            "Infinity value": text.replace('"confidence":0.6', '"confidence":Infinity').encode(),
            "-Infinity value": text.replace('"confidence":0.6', '"confidence":-Infinity').encode(),
            "1e400 overflows to infinity": text.replace('"confidence":0.6', '"confidence":1e400').encode(),
            "huge integer": text.replace('"confidence":0.6', '"confidence":' + "9" * 5000).encode(),
            "invalid UTF-8 in a string": valid.replace(b'"pir"', b'"p\xc3\x28r"'),
            "lone surrogate escape": text.replace('"pir"', '"p\\ud800r"').encode(),
            "UTF-16": text.encode("utf-16"),
            "NUL byte between tokens": valid.replace(b",", b",\x00", 1),
            "deeply nested field": text.replace(
                '"confidence":0.6', '"confidence":' + "[" * 20_000 + "]" * 20_000
            ).encode(),
            "a JSON string, not an object": orjson.dumps(text),
            "an object of objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
            "trailing garbage": valid + b"}",
            "two documents": valid + valid,
        }
    )
    return bodies


@pytest.mark.parametrize("endpoint", ["/v1/events", "/v1/events/batch", "/v1/events/batch (ndjson)"])
async def test_broken_bodies_are_refused_with_a_4xx_and_write_nothing(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory, endpoint: str
) -> None:
    """Truncated, non-UTF-8, NaN/Infinity, overflowing, deeply nested or doubled bodies: a precise 4xx
    problem (or, in a batch, that event listed as refused), never a 500 and nothing in Kafka."""
    valid = orjson.dumps(make_event("ground", modality="pir", confidence=0.6))
    path, _, ndjson = endpoint.partition(" ")
    content_type = "application/x-ndjson" if ndjson else "application/json"
    outcomes = {}
    for name, body in broken_bodies(valid).items():
        if path.endswith("/batch") and not ndjson:
            body = b"[" + body + b"]"
        response = await ingest.client.post(
            path, content=body, headers={**auth(demo_keys), "Content-Type": content_type}
        )
        outcomes[name] = response.status_code
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        answer = response.json()
        if response.headers["content-type"] == "application/problem+json":
            assert answer["reason"] in {"malformed", "invalid", "too_large"}, (name, answer)
            assert answer["detail"], name
        else:  # a batch judged event by event: every event refused, by index
            assert answer["accepted"] == 0, (name, answer)
            assert answer["rejected"] == len(answer["rejected_events"]) >= 1, (name, answer)
    assert await written_ids(ingest) == [], outcomes


async def test_nan_and_infinity_in_a_batch_refuse_only_their_event(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """One NDJSON line with NaN, one with Infinity, one with 1e400 among good lines: those three are
    refused by index, the good ones are written once."""
    good = [make_event("radar") for _ in range(3)]
    bad = [
        orjson.dumps(make_event("radar", range_m=1.0)).replace(b'"range_m":1.0', literal)
        for literal in (b'"range_m":NaN', b'"range_m":Infinity', b'"range_m":1e400')
    ]
    lines = [orjson.dumps(good[0]), bad[0], orjson.dumps(good[1]), bad[1], bad[2], orjson.dumps(good[2])]
    response = await ingest.client.post(
        "/v1/events/batch",
        content=b"\n".join(lines),
        headers={**auth(demo_keys), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 207, response.text
    body = response.json()
    assert [e["index"] for e in body["rejected_events"]] == [1, 3, 4]
    assert {e["status"] for e in body["rejected_events"]} <= {400, 422}
    assert sorted(await written_ids(ingest)) == sorted(e["event_id"] for e in good)


# -- keys ---------------------------------------------------------------------------------------


def near_misses(key: str, other: str) -> dict[str, str | bytes]:
    """Keys that look like ``key`` but are not it."""
    prefix, key_id, secret = key.split("_", 2)
    _, other_id, other_secret = other.split("_", 2)
    flip = {"a": "b", "b": "a"}
    last = secret[-1]
    return {
        "last character changed": key[:-1] + ("A" if last != "A" else "B"),
        "first secret character changed": f"{prefix}_{key_id}_{flip.get(secret[0], 'a')}{secret[1:]}",
        "one character short": key[:-1],
        "one character long": key + "x",
        "upper-cased": key.upper(),
        "another gateway's key id with this secret": f"{prefix}_{other_id}_{secret}",
        "this key id with another gateway's secret": f"{prefix}_{key_id}_{other_secret}",
        "secret only": secret,
        "digest instead of secret": f"{prefix}_{key_id}_{apikeys.digest(secret)}",
        "non-ASCII": (key[:-1] + "é").encode("latin-1"),
        "8 KiB long": key + "A" * 8192,
    }


async def test_near_miss_forged_and_swapped_keys_are_401_and_the_real_key_still_works(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """Every near miss of a real key (one character off, another gateway's id or secret, the stored
    digest...) is 401 with a challenge, in either header, before and after the real key was used."""
    key = demo_keys[GATEWAY]
    assert (await ingest.client.get("/v1/whoami", headers=auth(demo_keys))).status_code == 200
    for name, forged in near_misses(key, demo_keys["gw-ve-fanb-tac"]).items():
        value = forged if isinstance(forged, bytes) else forged.encode()
        for header in ("authorization", "x-api-key"):
            credential = b"Bearer " + value if header == "authorization" else value
            response = await ingest.client.post(
                "/v1/events",
                json=make_event("radar"),
                headers=[(b"content-type", b"application/json"), (header.encode(), credential)],
            )
            assert response.status_code == 401, (name, header, response.status_code, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer"), name
            assert key not in response.text
    whoami = await ingest.client.get("/v1/whoami", headers=auth(demo_keys))
    assert whoami.json()["gateway_id"] == GATEWAY
    assert await written_ids(ingest) == []


def test_keys_are_stored_as_digests_and_compared_in_constant_time(
    demo_config: LinderoConfig, demo_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key's secret appears in the configuration; every check, whether the key id exists or not,
    compares two 32-byte digests with hmac.compare_digest (never ==, never an early return)."""
    text = DEMO_CONFIG.read_text("utf-8")
    for key in demo_keys.values():
        secret = key.split("_", 2)[2]
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() in text
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(apikeys.hmac, "compare_digest", counting)
    ring = apikeys.KeyRing((k.id, k.sha256, g.id) for g in demo_config.gateways for k in g.api_keys)
    key = demo_keys[GATEWAY]
    for presented, owner in (
        (key, GATEWAY),
        (key[:-1] + ("A" if key[-1] != "A" else "B"), None),
        ("lnd_no-such-key-k1_" + key.split("_", 2)[2], None),
    ):
        compared.clear()
        assert ring.principal(presented) == owner
        assert compared == [(32, 32)], presented


# -- ownership ----------------------------------------------------------------------------------


async def test_no_gateway_can_post_for_another_gateways_sensor(
    ingest: RunningIngest, demo_keys: dict[str, str], demo_config: LinderoConfig, make_event: EventFactory
) -> None:
    """Every demo gateway, posting for the next gateway's sensor (single, batch, status, with the
    other gateway's key in a second header, with stamping fields smuggled into the body): 403 or 422
    by field; only its own events are written, stamped with its own identity."""
    gateways = [g.id for g in demo_config.gateways]
    own: dict[str, str] = {}
    for index, gateway in enumerate(gateways):
        other = gateways[(index + 1) % len(gateways)]
        mine = sorted(demo_config.gateways_by_id[gateway].sensors)[0]
        theirs = sorted(demo_config.gateways_by_id[other].sensors)[0]
        theirs_type = demo_config.sensors_by_id[theirs].type
        mine_type = demo_config.sensors_by_id[mine].type
        headers = auth(demo_keys, gateway)

        single = await ingest.client.post(
            "/v1/events", json=make_event(theirs_type, sensor_id=theirs), headers=headers
        )
        assert single.status_code == 403, (gateway, single.text)
        assert single.json()["errors"][0]["path"] == "sensor_id"

        status = await ingest.client.post(
            "/v1/status", json=make_event("status", sensor_id=theirs), headers=headers
        )
        assert status.status_code == 403, (gateway, status.text)

        # X-API-Key wins over Authorization: the other gateway's bearer key lends no rights.
        both = {"X-API-Key": demo_keys[gateway], **auth(demo_keys, other)}
        swapped = await ingest.client.post(
            "/v1/events", json=make_event(theirs_type, sensor_id=theirs), headers=both
        )
        assert swapped.status_code == 403, (gateway, swapped.text)

        smuggled = await ingest.client.post(
            "/v1/events",
            json=make_event(
                mine_type, sensor_id=mine, gateway_id=other, owner={"country": "XX"}, region="elsewhere"
            ),
            headers=headers,
        )
        assert smuggled.status_code == 422, (gateway, smuggled.text)
        assert {e["path"] for e in smuggled.json()["errors"]} == {"gateway_id", "owner", "region"}

        good = make_event(mine_type, sensor_id=mine)
        batch = await ingest.client.post(
            "/v1/events/batch",
            json=[make_event(theirs_type, sensor_id=theirs), good],
            headers=headers,
        )
        assert batch.status_code == 207, (gateway, batch.text)
        assert [(e["index"], e["status"]) for e in batch.json()["rejected_events"]] == [(0, 403)]
        own[good["event_id"]] = gateway

    kafka = ingest.settings.kafka
    records = await read_topic(kafka, kafka.topics(SENSOR_EVENTS))
    stamped = {
        orjson.loads(r.value)["event"]["event_id"]: orjson.loads(r.value)["gateway_id"] for r in records
    }
    assert stamped == own
    assert await read_topic(kafka, kafka.topics(SENSOR_STATUS)) == []


# -- retries ------------------------------------------------------------------------------------


async def test_concurrent_resends_of_a_mixed_batch_write_each_good_event_exactly_once(
    ingest: RunningIngest, demo_keys: dict[str, str], make_event: EventFactory
) -> None:
    """A batch of good, invalid, foreign, conflicting and repeated events, sent five times at once and
    then its good events one by one: the answers account for every event, and Kafka holds each good
    event once: none dropped, none twice."""
    good = [make_event(("radar", "drone", "ground")[i % 3]) for i in range(30)]
    conflicting = {**good[0], "confidence": 0.01}
    bad = [
        make_event("radar", bearing_deg=720.0),
        make_event("ground", sensor_id="ve-tac-ugs-01"),
        make_event("drone", time="1999-01-01T00:00:00Z"),
        {"sensor_type": "radar"},
        conflicting,
    ]
    batch = [*good[:15], *bad, *good[15:], good[3]]
    responses = await asyncio.gather(
        *(ingest.client.post("/v1/events/batch", json=batch, headers=auth(demo_keys)) for _ in range(5))
    )
    assert all(r.status_code == 207 for r in responses), [r.text for r in responses]
    answers = [r.json() for r in responses]
    assert sum(a["accepted"] for a in answers) == len(good)
    for answer in answers:
        assert answer["rejected"] == len(bad)
        assert answer["accepted"] + answer["duplicates"] + answer["rejected"] == len(batch)
    singles = await asyncio.gather(
        *(ingest.client.post("/v1/events", json=event, headers=auth(demo_keys)) for event in good)
    )
    assert {r.status_code for r in singles} == {200}
    ids = await written_ids(ingest)
    assert sorted(ids) == sorted(e["event_id"] for e in good)
