"""The simulator posting through a real ingest into a real Kafka: every event lands exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

import httpx
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from schemas.events import PROGRESS_KIND, RECORD_KIND_HEADER, GatewayProgressRecord, SensorEventRecord
from schemas.topics import SENSOR_EVENTS, SENSOR_STATUS
from services.core.config import LinderoConfig
from services.core.geography import Geography
from services.core.kafka import KafkaSettings
from services.simulator import cli
from services.simulator.client import GatewayPoster, PosterSettings, PostStats
from services.simulator.domain import Simulation, simulate
from tests.conftest import DEMO_CONFIG, DEMO_KEYS, KafkaFactory
from tests.integration.conftest import IngestFactory, read_topic

pytestmark = pytest.mark.kafka

REGION = "co-ve-cucuta"


@pytest.fixture(scope="module")
def geography(demo_config: LinderoConfig) -> Geography:
    """The demo geography."""
    assert demo_config.geography_path is not None
    return Geography.load(demo_config.geography_path)


def scenario(config: LinderoConfig, geography: Geography, duration_s: float, seed: int = 21) -> Simulation:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return simulate(config, geography, REGION, seed=seed, start=start, duration_s=duration_s)


async def ids_in_kafka(kafka: KafkaSettings) -> Counter[str]:
    """Event ids of every record of sensor.events and sensor.status, with their multiplicity."""
    found: Counter[str] = Counter()
    for topic, field in ((SENSOR_EVENTS, "event"), (SENSOR_STATUS, "status")):
        for record in await read_topic(kafka, kafka.topics(topic)):
            if not is_progress(record):
                found[orjson.loads(record.value)[field]["event_id"]] += 1
    return found


def is_progress(record: ConsumerRecord[bytes, bytes]) -> bool:
    """A gateway's promise (GatewayProgressRecord), not an event."""
    return (RECORD_KIND_HEADER, PROGRESS_KIND) in [(k, v) for k, v in record.headers]


def assert_exactly_once(sim: Simulation, stats: PostStats, in_kafka: Counter[str]) -> None:
    taken = stats.accepted_ids | stats.duplicate_ids
    assert stats.rejected == 0, stats.rejected_reasons
    assert stats.balanced
    assert (stats.unsent, stats.unconfirmed) == (0, 0)
    assert taken == {e.event_id for e in sim.events}
    assert set(in_kafka) == taken
    assert max(in_kafka.values()) == 1


async def test_an_accelerated_scenario_lands_in_kafka_exactly_once(
    start_ingest: IngestFactory, demo_config: LinderoConfig, demo_keys: dict[str, str], geography: Geography
) -> None:
    """Two minutes at 60x through real ingest: each accepted or duplicate id is in Kafka once."""
    ingest = await start_ingest()
    sim = scenario(demo_config, geography, 120.0)
    settings = PosterSettings(base_url=ingest.url, speed=60.0, batch_size=50, max_delay_s=0.2, keep_ids=True)
    stats = await GatewayPoster(settings, demo_keys).post(sim.events)
    assert stats.accepted == len(sim.events)
    assert 1.5 <= stats.elapsed_s < 30.0
    assert_exactly_once(sim, stats, await ids_in_kafka(ingest.settings.kafka))


async def test_promising_gateways_write_their_promises_behind_their_events(
    start_ingest: IngestFactory, demo_config: LinderoConfig, demo_keys: dict[str, str], geography: Geography
) -> None:
    """One minute at 30x with promises through real ingest: every event lands once; every gateway
    of the scenario promised (heartbeats included) into the region's partition; and in that
    partition, no event of a gateway after one of its promises is older than the promise."""
    ingest = await start_ingest()
    sim = scenario(demo_config, geography, 60.0)
    settings = PosterSettings(
        base_url=ingest.url, speed=30.0, batch_size=50, max_delay_s=0.2, keep_ids=True, promise=True
    )
    stats = await GatewayPoster(settings, demo_keys).post(sim.events)
    assert stats.heartbeats > 0
    kafka = ingest.settings.kafka
    assert_exactly_once(sim, stats, await ids_in_kafka(kafka))
    records = await read_topic(kafka, kafka.topics(SENSOR_EVENTS))
    promised: dict[str, dt.datetime] = {}
    checked = 0
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if is_progress(record):
            progress = GatewayProgressRecord.model_validate_json(record.value)
            assert progress.region == REGION
            assert progress.complete_through >= promised.get(progress.gateway_id, progress.complete_through)
            promised[progress.gateway_id] = progress.complete_through
            continue
        event = SensorEventRecord.model_validate_json(record.value)
        through = promised.get(event.gateway_id)
        if through is not None:
            assert event.event.time > through, (event.gateway_id, event.event.event_id)
            checked += 1
    assert set(promised) == {e.gateway_id for e in sim.events}
    assert checked > len(sim.events) / 2


class LossyTransport(httpx.AsyncBaseTransport):
    """The real network, except that some answers get lost after ingest wrote the batch.

    Every third request that ingest accepts comes back to the client as a 503, and every fifth
    request fails with a connection reset before reaching ingest. Real answers are counted.
    """

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests = 0
        self.real: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests % 5 == 0:
            raise httpx.ReadError("connection reset by peer", request=request)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.real[response.status_code] += 1
        if response.status_code == 202 and self.requests % 3 == 0:
            return httpx.Response(503, headers={"retry-after": "0"}, request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class BootstrapGate:
    """A loopback door to the broker's bootstrap address, shut until ``open()``.

    While shut it hangs up on every connection, so an ingest bootstrapping through it cannot
    reach Kafka and answers 503. Open, it pipes bytes to the real broker; the broker's metadata
    then sends the client straight to the broker itself.
    """

    def __init__(self, bootstrap: str) -> None:
        host, _, port = bootstrap.rpartition(":")
        self.target = (host, int(port))
        self.opened = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def open(self) -> None:
        self.opened.set()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.opened.is_set():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class GatedLossyTransport(LossyTransport):
    """A LossyTransport that opens the bootstrap gate once ingest has really answered 503."""

    def __init__(self, gate: BootstrapGate) -> None:
        super().__init__()
        self.gate = gate

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if self.real[503] > 0:
            self.gate.open()
        return response


async def test_posting_before_ingest_is_ready_and_through_lost_answers_loses_nothing(
    start_ingest: IngestFactory,
    make_kafka: KafkaFactory,
    demo_config: LinderoConfig,
    demo_keys: dict[str, str],
    geography: Geography,
) -> None:
    """Begun before ingest can reach Kafka (503s), answers lost after writes: Kafka has each id once."""
    kafka = make_kafka()
    gate = BootstrapGate(kafka.bootstrap)
    gated = kafka.model_copy(update={"bootstrap": await gate.start()})
    ingest = await start_ingest(kafka=gated, ready=False, retry_after_s=1)
    sim = scenario(demo_config, geography, 60.0)
    transport = GatedLossyTransport(gate)
    settings = PosterSettings(
        base_url=ingest.url, speed=0.0, batch_size=50, backoff_initial_s=0.05, keep_ids=True
    )
    stats = await GatewayPoster(settings, demo_keys, transport=transport).post(sim.events)
    assert transport.real[503] > 0, "ingest was ready before the first batch: no real 503 seen"
    assert stats.duplicates > 0
    assert stats.retries >= transport.real[503]
    await gate.close()
    assert_exactly_once(sim, stats, await ids_in_kafka(kafka))


async def test_a_tight_rate_limit_only_slows_the_scenario_down(
    start_ingest: IngestFactory, demo_config: LinderoConfig, demo_keys: dict[str, str], geography: Geography
) -> None:
    """Ingest answers 429 with Retry-After; the poster waits and every event still lands once."""
    # A gateway posts about 270 of these events: its second batch of 100 must wait 2 s for tokens.
    ingest = await start_ingest(rate_events_per_s=50.0, rate_burst=100)
    sim = scenario(demo_config, geography, 60.0, seed=22)
    settings = PosterSettings(base_url=ingest.url, speed=0.0, batch_size=100, keep_ids=True)
    stats = await GatewayPoster(settings, demo_keys).post(sim.events)
    assert stats.responses["429"] > 0
    assert stats.accepted == len(sim.events)
    assert_exactly_once(sim, stats, await ids_in_kafka(ingest.settings.kafka))


async def test_the_cli_posts_a_scenario_end_to_end(
    start_ingest: IngestFactory,
    demo_config: LinderoConfig,
    geography: Geography,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`lindero simulate --speed 0` posts exactly the events simulate() makes for the same inputs."""
    monkeypatch.setattr(cli.core_logging, "configure", lambda *args, **kwargs: None)
    ingest = await start_ingest()
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    argv = [
        "--config", str(DEMO_CONFIG), "--keys", str(DEMO_KEYS), "--ingest", ingest.url,
        "--seed", "5", "--duration", "30", "--speed", "0", "--start", start.isoformat(),
        "--log-level", "ERROR",
    ]  # fmt: skip
    status = await asyncio.to_thread(cli.main, argv)
    assert status == 0, capsys.readouterr()
    report = capsys.readouterr().out
    assert "rejected 0" in report
    sim = simulate(demo_config, geography, REGION, seed=5, start=start, duration_s=30)
    in_kafka = await ids_in_kafka(ingest.settings.kafka)
    assert set(in_kafka) == {e.event_id for e in sim.events}
    assert max(in_kafka.values()) == 1
