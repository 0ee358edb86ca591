"""The browser layer: the built dashboard and team view in Debian's Chromium (headless, driven by
Playwright, never a downloaded browser) against the real stack (ingest, correlator, alerts as
processes) on the session's Kafka.

Every page opened through :class:`Browsers` is watched: a console error or an uncaught exception
fails the test, and so does any request that leaves 127.0.0.1 (every asset is local). Screenshots
go to ``artifacts/browser/``; with ``LINDERO_UPDATE_SCREENSHOTS=1`` the README's pictures in
``docs/images/`` are refreshed too.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright
from pydantic import SecretStr

from services.core.localkafka import free_port
from services.core.tokens import TokenSettings, issue
from services.stack import Stack
from tests.conftest import DEMO_CONFIG, DEMO_KEYS, ROOT

SECRET = "browser-tests-only-0123456789-abcdefghijklmnopqrs"
CHROMIUM = Path(os.environ.get("LINDERO_CHROMIUM", "/usr/bin/chromium"))
DIST = ROOT / "web" / "dist"
ARTIFACTS = ROOT / "artifacts" / "browser"
README_IMAGES = ROOT / "docs" / "images"
DESKTOP = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
STACK_START_S = 240
"""How long the session's stack may take to start: the first browser test's time limit includes it
(three processes, each reading its topics, on a loaded 2-core machine)."""


def token(**claims: Any) -> str:
    return issue(TokenSettings(secret=SecretStr(SECRET)), ttl_s=3_600, **claims)


def operator_token(centre: str, country: str) -> str:
    return token(subject=f"browser-operator-{centre}", role="operator", centre=centre, country=country)


def team_token(team: str, country: str) -> str:
    return token(subject=team, role="team", team=team, country=country)


@pytest.fixture(scope="session")
def built_dashboard() -> Path:
    """The built front end (``make web``); this layer tests what the alerts service serves."""
    if not (DIST / "index.html").is_file() or not (DIST / "team" / "index.html").is_file():
        pytest.fail(f"{DIST} is missing: build the dashboard first (make web)")
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (make test does)")
    return DIST


@pytest.fixture(scope="session")
def gateway_keys() -> dict[str, str]:
    return {str(k): str(v) for k, v in yaml.safe_load(DEMO_KEYS.read_text("utf-8")).items()}


@pytest.fixture(scope="session")
def stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, built_dashboard: Path
) -> Iterator[Stack]:
    """Ingest, correlator and alerts (serving web/dist) as real processes on a fresh topic prefix."""
    running = Stack(
        config=DEMO_CONFIG,
        bootstrap=kafka_bootstrap,
        secret=SECRET,
        logs=tmp_path_factory.mktemp("browser-stack-logs"),
        topic_prefix=f"web{uuid.uuid4().hex[:8]}.",
        ports={"ingest": free_port(), "correlator": free_port(), "alerts": free_port()},
        env={"LINDERO_KAFKA_PARTITIONS": "3", "LINDERO_ALERTS_STATIC_DIR": str(built_dashboard)},
    )
    running.start(timeout_s=STACK_START_S - 20)
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Watched:
    """A page and everything it did that a test may hold against it."""

    name: str
    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    """Every websocket frame and /v1 response body the page received (for the sharing checks)."""
    tolerated: list[re.Pattern[str]] = field(default_factory=list)
    """Console errors a test provokes on purpose (e.g. the browser's own report of a refused
    connection while the test has stopped the server)."""

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests if urllib.parse.urlsplit(url).hostname not in {"127.0.0.1"}]

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.tolerated)]

    async def shot(self, name: str, readme: bool = False) -> Path:
        """Save a screenshot as a test artefact (and, when asked, for the README)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path))
        if readme and os.environ.get("LINDERO_UPDATE_SCREENSHOTS") == "1":
            README_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, README_IMAGES / f"{name}.png")
        return path


class Browsers:
    """Opens watched pages, each in its own browser context (its own sessionStorage)."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.opened: list[Watched] = []

    async def open(
        self,
        path: str,
        name: str,
        token: str | None = None,
        *,
        phone: bool = False,
        geolocation: dict[str, float] | None = None,
    ) -> Watched:
        options: dict[str, Any] = {"viewport": PHONE if phone else DESKTOP, "locale": "en-GB"}
        if phone:
            options.update(is_mobile=True, has_touch=True, device_scale_factor=2)
        if geolocation is not None:
            options.update(geolocation=geolocation, permissions=["geolocation"])
        context = await self.browser.new_context(**options)
        context.set_default_timeout(20_000)
        page = await context.new_page()
        watched = Watched(name, page, context)

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watched.errors.append(f"console: {message.text} ({message.location.get('url', '')})")

        page.on("console", console)
        page.on("pageerror", lambda error: watched.errors.append(f"page error: {error}"))
        page.on("request", lambda request: watched.requests.append(request.url))

        async def keep_body(response: Any) -> None:
            if "/v1/" in response.url:
                try:
                    watched.received.append(await response.text())
                except Exception:  # noqa: BLE001 - a body gone with its page is not a finding
                    return

        page.on("response", lambda response: asyncio.ensure_future(keep_body(response)))
        page.on(
            "websocket",
            lambda ws: ws.on(
                "framereceived",
                lambda payload: watched.received.append(
                    payload if isinstance(payload, str) else bytes(payload).decode("utf-8", "replace")
                ),
            ),
        )
        self.opened.append(watched)
        url = self.base_url + path + (f"#token={token}" if token else "")
        await page.goto(url)
        return watched

    def problems(self) -> list[str]:
        out = []
        for watched in self.opened:
            out += [f"{watched.name}: {error}" for error in watched.unexpected_errors()]
            out += [f"{watched.name}: request left the machine: {url}" for url in watched.foreign_requests()]
        return out

    async def close(self) -> None:
        for watched in self.opened:
            await watched.context.close()
        self.opened.clear()


@pytest.fixture(scope="session")
async def chromium(built_dashboard: Path) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (Playwright drives it; it never downloads a browser)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def browsers(chromium: Browser, stack: Stack) -> AsyncIterator[Browsers]:
    """Pages for one test; at the end, no console error and no request off this machine."""
    opened = Browsers(chromium, stack.url("alerts"))
    try:
        yield opened
        problems = opened.problems()
        assert not problems, "\n".join(problems)
    finally:
        await opened.close()


async def rest(stack: Stack, path: str, bearer: str) -> Any:
    """GET from the alerts service's REST API."""
    async with httpx.AsyncClient(base_url=stack.url("alerts"), timeout=10) as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {bearer}"})
        response.raise_for_status()
        return response.json()
