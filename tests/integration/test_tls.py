"""Optional TLS: the services serve HTTPS (and WSS) with a given certificate; half a setting is refused."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from websockets.asyncio.client import connect

from services.core.localkafka import free_port
from services.core.tokens import TokenSettings, issue
from tests.conftest import DEMO_CONFIG, ROOT

SECRET = "tls-tests-only-0123456789-abcdefghijklmnopqrstuvwx"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def serve(service: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    upper = service.upper()
    with log.open("ab") as output:
        return _start(service, env, port, upper, output), port


def _start(service: str, env: dict[str, str], port: int, upper: str, output: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        env={
            **os.environ,
            "LINDERO_CONFIG": str(DEMO_CONFIG),
            "LINDERO_AUTH_SECRET": SECRET,
            f"LINDERO_{upper}_PORT": str(port),
            **env,
        },
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def wait_https(port: int, cert: Path, process: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 60
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=2) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                return client.get(f"https://127.0.0.1:{port}/healthz")
            except httpx.TransportError:
                time.sleep(0.2)
    raise AssertionError("the service never answered over HTTPS")


@pytest.mark.parametrize("service", ["ingest", "correlator", "alerts"])
def test_each_service_serves_https_with_the_configured_certificate(
    service: str, certificate: tuple[Path, Path], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """/healthz answers over HTTPS with the certificate; plain HTTP on the same port does not work."""
    cert, key = certificate
    upper = service.upper()
    process, port = serve(
        service,
        {
            f"LINDERO_{upper}_TLS_CERTFILE": str(cert),
            f"LINDERO_{upper}_TLS_KEYFILE": str(key),
            "LINDERO_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "LINDERO_KAFKA_TOPIC_PREFIX": f"tls{free_port()}.",
        },
        tmp_path / "service.log",
    )
    try:
        assert wait_https(port, cert, process, tmp_path / "service.log").json() == {"status": "ok"}
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).raise_for_status()
    finally:
        process.terminate()
        process.wait(30)


async def test_websockets_work_over_tls(
    certificate: tuple[Path, Path], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A dashboard connects with wss:// and authenticates as usual."""
    cert, key = certificate
    process, port = serve(
        "alerts",
        {
            "LINDERO_ALERTS_TLS_CERTFILE": str(cert),
            "LINDERO_ALERTS_TLS_KEYFILE": str(key),
            "LINDERO_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "LINDERO_KAFKA_TOPIC_PREFIX": f"tls{free_port()}.",
        },
        tmp_path / "alerts.log",
    )
    try:
        wait_https(port, cert, process, tmp_path / "alerts.log")
        token = issue(TokenSettings(secret=SecretStr(SECRET)), subject="tls-admin", role="admin")
        context = ssl.create_default_context(cafile=str(cert))
        async with connect(f"wss://127.0.0.1:{port}/v1/stream", ssl=context, open_timeout=30) as socket:
            await socket.send(orjson.dumps({"type": "hello", "token": token}).decode())
            frame = orjson.loads(await socket.recv())
        assert frame["type"] == "batch"
        assert frame["messages"][0]["type"] == "welcome"
    finally:
        process.terminate()
        process.wait(30)


def test_half_a_tls_setting_is_refused_at_start(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    """A certificate without its key stops the service at start-up with a clear message."""
    cert, _ = certificate
    log = tmp_path / "ingest.log"
    process, _ = serve("ingest", {"LINDERO_INGEST_TLS_CERTFILE": str(cert)}, log)
    assert process.wait(60) == 2
    assert "tls_certfile and tls_keyfile go together" in log.read_text()
