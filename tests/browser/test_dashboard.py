"""The dashboard and the team view in a real browser: a border crossing posted to ingest travels
the whole pipeline to the map and the queue, is acknowledged and dispatched, reaches the team's
phone, is accepted there, and the acceptance shows back on the dashboard; a partner's centre sees
only what its agreement shares."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import expect

from services.alerts.domain.lifecycle import distance_m
from services.core.config import LinderoConfig
from services.stack import Stack
from tests.browser.conftest import STACK_START_S, Browsers, operator_token, rest, team_token, token
from tests.browser.scenario import Walker
from tests.integration.conftest import wait_until

ADMIN = token(subject="browser-admin", role="admin")
SELECTION_DRAWN = """() => {
  const row = document.querySelector('.alert-row[aria-selected="true"]');
  return row !== null && row.dataset.alertId === window.lindero.queue.selected;
}"""


@dataclass
class Crossing:
    walker: Walker
    alert_id: str
    track_id: str
    view: dict[str, Any]


@pytest.fixture(scope="module")
async def crossing(
    stack: Stack, demo_config: LinderoConfig, gateway_keys: dict[str, str]
) -> AsyncIterator[Crossing]:
    """A person walking VE→CO past Colombia's radar until the module ends; its crossing alert."""
    walker = Walker(stack.url("ingest"), demo_config, gateway_keys)
    await walker.start_walking()
    found: dict[str, Any] = {}

    async def raised() -> bool:
        answer = await rest(stack, "/v1/alerts?kind=border_crossing", ADMIN)
        found.update({view["alert"]["alert_id"]: view for view in answer["alerts"]})
        return bool(found)

    try:
        await wait_until(raised, 60, "the border-crossing alert from the posted radar plots")
        view = next(iter(found.values()))
        assert view["alert"]["jurisdiction"] == "CO"
        assert view["alert"]["details"]["direction"] == "VE->CO"
        yield Crossing(walker, view["alert"]["alert_id"], view["alert"]["track_ids"][0], view)
    finally:
        await walker.stop()


@pytest.mark.timeout(240 + STACK_START_S)
async def test_a_crossing_goes_from_radar_to_map_queue_team_and_back(
    stack: Stack, browsers: Browsers, crossing: Crossing, demo_config: LinderoConfig
) -> None:
    """Radar plots posted to ingest become an alert on the map and in the queue; the operator
    acknowledges and dispatches it with the keyboard; the team's phone is notified and accepts;
    the dashboard shows it accepted, then on scene; resolving completes the team's dispatch."""
    dash = await browsers.open("/", "dashboard", operator_token("cc-cucuta", "CO"))
    page = dash.page
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert "token=" not in page.url, "the token must leave the address bar"

    row = page.locator(f'.alert-row[data-alert-id="{crossing.alert_id}"]')
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("crossed VE→CO")
    await expect(row).to_have_attribute("data-severity", "high")
    await expect(page.locator(f'.alert-marker[data-alert-id="{crossing.alert_id}"]')).to_be_attached()
    track = page.locator(f'.track-symbol [data-track-id="{crossing.track_id}"]')
    await expect(track).to_be_attached()
    await expect(page.locator(".track-symbol.suspect")).to_have_count(1)
    # The stream is compact: the walker's track moves on by track_moved messages (an array of numbers).
    await page.wait_for_function(
        """id => {
          const entry = window.lindero.state.tracks.get(id);
          return window.lindero.state.compact > 0 && entry !== undefined && entry.trail.length >= 3;
        }""",
        arg=crossing.track_id,
        timeout=30_000,
    )

    # The keyboard: j walks down the queue (other tests may have left alerts in it), a acknowledges.
    await page.locator("#queue-list").focus()
    for _ in range(await page.locator(".alert-row").count()):
        await page.keyboard.press("j")
        await page.wait_for_function(SELECTION_DRAWN)
        chosen = await page.locator('.alert-row[aria-selected="true"]').get_attribute("data-alert-id")
        if chosen == crossing.alert_id:
            break
    await expect(row).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#detail")).to_have_attribute("data-alert-id", crossing.alert_id)
    await expect(page.locator("#detail-summary")).to_contain_text("crossed VE→CO")
    await expect(page.locator("#detail-facts")).to_contain_text(crossing.track_id)
    await expect(page.locator("#detail-facts")).to_contain_text("co-cuc-rdr-1")
    await page.keyboard.press("a")
    await expect(page.locator("#detail-status")).to_have_text("acknowledged")
    await expect(page.locator('#detail-history li[data-action="acknowledge"]')).to_have_count(1)

    suggested = page.locator("#detail-suggested")
    await expect(suggested).to_be_visible()
    team_id = await suggested.get_attribute("data-team-id")
    assert team_id in demo_config.teams_by_id, team_id
    team = demo_config.teams_by_id[team_id]
    assert team.country == "CO"
    team_row = page.locator(f'.team-row[data-team-id="{team_id}"]')

    # The team's phone, sharing its location 600 m north of its base.
    here = {"latitude": team.base.lat + 600 / 111_320, "longitude": team.base.lon}
    phone = await browsers.open(
        "/team", "team", team_token(team_id, team.country), phone=True, geolocation=here
    )
    await expect(phone.page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(phone.page.locator("#current")).to_have_attribute("data-state", "none")
    assert phone.page.url.endswith("/team/"), phone.page.url

    # d opens the dispatch dialog: the suggested team first and chosen, the alternatives below.
    await page.keyboard.press("d")
    dialog = page.locator("#dispatch-dialog")
    await expect(dialog).to_be_visible()
    options = dialog.locator(".team-option")
    assert await options.count() == 3, "Cúcuta's centre may send any of Colombia's three teams there"
    await expect(options.first).to_have_attribute("data-team-id", team_id)
    await expect(options.first.locator("input")).to_be_checked()
    await expect(options.first).to_contain_text("suggested")
    await dash.shot("dispatch-dialog")
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#detail-dispatch-status")).to_have_text("offered")
    await expect(team_row).to_have_attribute("data-status", "offered")

    # The phone: notified, the target with distance and bearing from where the team is.
    await expect(phone.page.locator("#new-dispatch")).to_be_visible()
    await expect(phone.page.locator("#new-dispatch")).to_contain_text("border crossing")
    await expect(phone.page.locator("#current")).to_have_attribute("data-state", "offered")
    assert int(await phone.page.evaluate("document.documentElement.dataset.cues || '0'")) >= 1
    await expect(phone.page.locator("#range-from")).to_have_attribute("data-source", "device")
    alert = crossing.view["alert"]
    metres = distance_m(here["latitude"], here["longitude"], alert["lat"], alert["lon"])
    shown = await phone.page.locator("#distance").inner_text()
    value, unit = re.fullmatch(r"([\d.]+) (m|km)", shown).groups()  # type: ignore[union-attr]
    assert abs(float(value) * (1000 if unit == "km" else 1) - metres) < 25, (shown, metres)
    await expect(phone.page.locator("#bearing")).to_have_text(re.compile(r"^\d{3}° [NESW]{1,3}$"))
    await phone.shot("team", readme=True)
    await phone.page.locator("#answer-accept").tap()
    await expect(phone.page.locator("#current")).to_have_attribute("data-state", "accepted")

    # The acceptance, live on the dashboard.
    await expect(team_row).to_have_attribute("data-status", "accepted")
    await expect(page.locator("#detail-dispatch-status")).to_have_text("accepted")
    await expect(page.locator('#detail-history li[data-action="team_accept"]')).to_have_count(1)
    await page.keyboard.press("c")  # the selected alert in the middle of the map, one step closer
    await page.locator(".leaflet-control-zoom-in").click()
    await page.wait_for_timeout(600)
    await page.mouse.move(0, 0)
    await page.locator("#queue-list").blur()
    await dash.shot("dashboard", readme=True)
    await page.locator("#queue-list").focus()

    await phone.page.locator("#answer-on_scene").tap()
    await expect(team_row).to_have_attribute("data-status", "on_scene")
    await page.locator("#queue-list").focus()
    await page.keyboard.press("r")
    await expect(page.locator("#detail-status")).to_have_text("resolved")
    await expect(row).to_have_count(0)  # the queue shows open alerts
    await expect(phone.page.locator("#current")).to_have_attribute("data-state", "none")
    await expect(phone.page.locator("#past")).to_contain_text("completed")
    await expect(team_row).to_have_attribute("data-status", "available")

    # Every revision after the first came as alert_changed (the changed fields only): what the
    # dashboard rebuilt is what the server holds.
    operator = operator_token("cc-cucuta", "CO")

    async def rebuilt() -> bool:
        server = await rest(stack, f"/v1/alerts/{crossing.alert_id}", operator)
        held = await page.evaluate("id => window.lindero.state.alerts.get(id) ?? null", crossing.alert_id)
        return held is not None and all(
            held[k] == server[k] for k in ("version", "alert", "status", "history")
        )

    await wait_until(rebuilt, 20, "the dashboard's alert to equal the server's")
    assert await page.evaluate("window.lindero.state.compact") > 0


@pytest.mark.timeout(120 + STACK_START_S)
async def test_a_partner_centre_sees_what_the_agreement_shares_and_nothing_more(
    stack: Stack, browsers: Browsers, crossing: Crossing, demo_config: LinderoConfig
) -> None:
    """Táchira's centre (VE) sees the crossing in Colombia as the CO–VE agreement shares it: no
    sensor identities, no evidence, no agencies, no Colombian team, no action, no Colombian
    sensor site on its map; none of it even reaches the browser."""
    full = await rest(stack, f"/v1/alerts/{crossing.alert_id}", ADMIN)
    alert = full["alert"]
    assert alert["sensor_ids"]
    assert alert["evidence"]
    secrets = {
        *alert["sensor_ids"],
        *alert["evidence"],
        alert["owner"]["agency"],
        *(s.id for s in demo_config.sensors if s.owner.country == "CO"),
        *(t.id for t in demo_config.teams if t.country == "CO"),
        *(t.name for t in demo_config.teams if t.country == "CO"),
        "browser-operator-cc-cucuta",
    }

    partner = await browsers.open("/", "partner", operator_token("cc-tachira", "VE"))
    page = partner.page
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    row = page.locator(f'.alert-row[data-alert-id="{crossing.alert_id}"]')
    await page.locator("#filter-status").select_option("all")
    await expect(row).to_be_visible()
    await expect(row.locator(".badge.shared")).to_be_visible()
    await row.click()
    access = page.locator("#detail-access")
    await expect(access).to_contain_text("Shared under agreement co-ve-frontera")
    await expect(page.locator("#detail-redacted")).to_contain_text("sensor identities")
    await expect(page.locator("#detail-redacted")).to_contain_text("evidence")
    await expect(page.locator("#detail-redacted")).to_contain_text("agencies")
    await expect(page.locator("#detail-no-actions")).to_contain_text("for information only")
    await expect(page.locator("#detail-actions")).to_have_count(0)
    await expect(page.locator("#detail-facts")).to_contain_text("withheld")
    await expect(page.locator(f'.track-symbol [data-track-id="{crossing.track_id}"]')).to_be_attached()
    await expect(page.locator('[data-sensor-id^="ve-"]').first).to_be_attached()
    assert await page.locator('[data-sensor-id^="co-"]').count() == 0
    await page.locator("#queue-list").focus()
    await page.keyboard.press("d")  # refused on the page too: nothing to dispatch
    await expect(page.locator("#dispatch-dialog")).to_be_hidden()
    await asyncio.sleep(1.0)  # let the last frames land
    await page.mouse.move(0, 0)
    await partner.shot("partner")

    text = await page.locator("body").inner_text()
    everything = "\n".join([text, await page.content(), *partner.received])
    leaked = sorted(secret for secret in secrets if secret and secret in everything)
    assert not leaked, f"the partner's browser received {leaked}"
