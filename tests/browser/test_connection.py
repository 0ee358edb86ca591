"""Signing in, and the live connection: always visible, and a dashboard whose server restarts
reconnects and resumes from its cursor without losing or repeating an alert."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from playwright.async_api import expect

from services.core.localkafka import project_root
from services.stack import Stack
from tests.browser.conftest import STACK_START_S, Browsers, operator_token, rest, team_token
from tests.browser.scenario import report_status
from tests.integration.conftest import wait_until

BROWSER_NETWORK_ERRORS = [
    # What Chromium itself logs while the test keeps the server down; the page logs nothing.
    re.compile(r"WebSocket connection to 'ws://127\.0\.0\.1:\d+/v1/stream' failed"),
    re.compile(r"Failed to load resource: net::ERR_CONNECTION_REFUSED"),
]


@pytest.mark.timeout(120 + STACK_START_S)
async def test_sign_in_by_link_by_form_and_the_wrong_page(stack: Stack, browsers: Browsers) -> None:
    """Without a token the form asks for one and explains a refusal; a link's token is taken from
    the fragment and leaves the address bar; /team and /team/ both serve the team view; a team's
    token on the dashboard is sent to the team view; signing out forgets the token."""
    form = await browsers.open("/", "sign-in")
    form.tolerated.append(re.compile(r"status of 401"))  # the refused token below, as Chromium reports it
    page = form.page
    await expect(page.locator("#login-form")).to_be_visible()
    await page.locator("#login-token").fill("not-a-token")
    await page.locator("#login-submit").click()
    await expect(page.locator("#login-error")).to_contain_text("refused this token")
    await page.locator("#login-token").fill(operator_token("cc-cucuta", "CO"))
    await page.locator("#login-submit").click()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(page.locator("#who")).to_contain_text("Centro de mando Cúcuta")
    await page.reload()  # the token stays for this tab
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await page.locator("#sign-out").click()
    await expect(page.locator("#login-form")).to_be_visible()

    link = await browsers.open("/", "link", operator_token("cc-cucuta", "CO"))
    await expect(link.page.locator("#connection")).to_have_attribute("data-state", "live")
    assert link.page.url == stack.url("alerts") + "/", link.page.url

    for path in ("/team", "/team/"):
        team = await browsers.open(path, f"team{path.replace('/', '-')}", team_token("co-rrt-alfa", "CO"))
        await expect(team.page.locator("#team-name")).to_have_text("Pelotón Alfa (a pie)")
        await expect(team.page.locator("#connection")).to_have_attribute("data-state", "live")
        assert team.page.url == stack.url("alerts") + "/team/", team.page.url

    wrong = await browsers.open("/", "wrong-page", team_token("co-rrt-alfa", "CO"))
    await expect(wrong.page.locator("#login-error")).to_contain_text("open the team view at /team/")


def _stop(stack: Stack, service: str) -> None:
    process = stack.processes[service]
    process.send_signal(signal.SIGTERM)
    process.wait(30)


def _spawn(stack: Stack, service: str) -> None:
    with (stack.logs / f"{service}.log").open("ab") as log:
        stack.processes[service] = subprocess.Popen(  # the same command Stack.start runs
            [sys.executable, "-m", f"services.{service}"],
            env=stack.environment(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=project_root(),
        )


async def _start(stack: Stack, service: str) -> None:
    await asyncio.to_thread(_spawn, stack, service)

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{stack.url(service)}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(ready, 60, f"{service} to be ready again")


@pytest.mark.timeout(180 + STACK_START_S)
async def test_a_restarted_server_loses_and_repeats_nothing(
    stack: Stack, browsers: Browsers, gateway_keys: dict[str, str]
) -> None:
    """With a low-battery alert on screen, the alerts service stops; meanwhile a ground sensor is
    tampered with (a critical alert); the dashboard shows it is reconnecting, then resumes from
    its cursor: the critical alert appears once, with the banner and the sound; the battery alert
    is still there, once; nothing is repeated, and the queue is exactly what the server holds."""
    operator = operator_token("cc-cucuta", "CO")
    police = gateway_keys["gw-co-policia-cuc"]
    dash = await browsers.open("/", "reconnect", operator)
    page = dash.page
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await page.locator("#filter-status").select_option("all")
    await report_status(stack.url("ingest"), police, "co-cuc-ugs-06", battery_pct=12.0, tamper=False)
    battery = page.locator('.alert-row[data-severity="low"]', has_text="Battery of co-cuc-ugs-06")
    await expect(battery).to_have_count(1)
    before = await page.evaluate("window.lindero.stream.stats.connects")
    dash.tolerated.extend(BROWSER_NETWORK_ERRORS)

    stopped = time.monotonic()
    await asyncio.to_thread(_stop, stack, "alerts")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    await expect(page.locator("#connection")).to_contain_text("Reconnecting")
    await dash.shot("reconnecting")
    await report_status(stack.url("ingest"), police, "co-cuc-ugs-05", battery_pct=64.0, tamper=True)
    await asyncio.sleep(3.0)  # the correlator raises it while no alerts service is there to serve it
    await _start(stack, "alerts")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)
    outage_s = time.monotonic() - stopped

    critical = page.locator('.alert-row[data-severity="critical"]')
    await expect(critical).to_have_count(1)
    await expect(battery).to_have_count(1)
    await expect(critical).to_contain_text("sensor tamper")
    await expect(page.locator("#critical-banner")).to_be_visible()
    await expect(page.locator("#critical-banner")).to_contain_text("CRITICAL")
    cues = int(await page.evaluate("document.documentElement.dataset.cues || '0'"))
    assert cues >= 1, "a critical alert sounds"
    stats = await page.evaluate("window.lindero.stream.stats")
    assert stats["connects"] > before
    assert stats["resumes"] >= 1, stats
    assert stats["resyncs"] == 0, stats
    assert stats["gaps"] == 0, stats
    assert await page.evaluate("window.lindero.state.repeats") == 0, "a resumed stream repeats nothing"

    shown = await page.locator(".alert-row").evaluate_all("rows => rows.map(r => r.dataset.alertId)")
    assert len(shown) == len(set(shown)), f"an alert shows twice: {shown}"
    served = await rest(stack, "/v1/alerts?limit=1000", operator)
    assert set(shown) == {view["alert"]["alert_id"] for view in served["alerts"]}
    await page.mouse.move(0, 0)
    await dash.shot("reconnected")
    assert outage_s < 90

    # The banner selects the alert; acknowledging it (Lindero had dispatched it itself) silences it.
    critical_id = await critical.get_attribute("data-alert-id")
    await page.locator("#critical-banner").click()
    await expect(page.locator("#detail")).to_have_attribute("data-alert-id", critical_id or "?")
    await page.locator("#queue-list").focus()
    await page.keyboard.press("a")
    await expect(page.locator("#critical-banner")).to_be_hidden()
    await expect(page.locator('#detail-history li[data-action="comment"]')).to_contain_text("acknowledged")
