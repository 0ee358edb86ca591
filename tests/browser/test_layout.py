"""Readable at 1920×1080 and on a 390×844 phone, the map drawn from local Natural Earth data, and
the queue's filters and shortcuts."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from services.stack import Stack
from tests.browser.conftest import STACK_START_S, Browsers, operator_token, team_token

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


async def smallest_text_px(page: Page, selector: str) -> float:
    sizes: list[float] = await page.locator(selector).evaluate_all(
        "nodes => nodes.filter(n => n.offsetParent !== null && n.textContent.trim())"
        ".map(n => parseFloat(getComputedStyle(n).fontSize))"
    )
    return min(sizes) if sizes else 99.0


async def inside_viewport(page: Page, selector: str) -> bool:
    box = await page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None, selector
    assert size is not None
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"] + 0.5
        and box["y"] + box["height"] <= size["height"] + 0.5
        and box["width"] > 100
        and box["height"] > 100
    )


@pytest.mark.timeout(120 + STACK_START_S)
async def test_the_dashboard_fits_a_1920_screen_and_a_phone(stack: Stack, browsers: Browsers) -> None:
    """At 1920×1080 the queue, map, detail and teams are all on screen at once; on a phone they stack
    without sideways scrolling; no text is smaller than 11 px; the map is drawn from local outlines."""
    desk = await browsers.open("/", "desktop", operator_token("cc-cucuta", "CO"))
    page = desk.page
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    for part in (".queue", ".map-wrap", ".detail-panel", ".teams-panel"):
        assert await inside_viewport(page, part), f"{part} is not fully on a 1920×1080 screen"
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    assert await smallest_text_px(page, ".topbar *, .panel *, .map-legend *") >= 11
    await expect(page.locator(".leaflet-backdrop-pane canvas")).to_be_attached()
    await expect(page.locator(".leaflet-regions-pane path")).not_to_have_count(0)
    await expect(page.locator(".leaflet-zones-pane path.zone")).not_to_have_count(0)
    await expect(page.locator(".region-label")).to_contain_text("Cúcuta")
    await expect(page.locator('.team-row[data-team-id="co-rrt-alfa"]')).to_be_visible()
    assert any(url.endswith("/geo/countries-50m.json") for url in desk.requests)

    phone = await browsers.open("/", "desktop-on-phone", operator_token("cc-cucuta", "CO"), phone=True)
    await expect(phone.page.locator("#connection")).to_have_attribute("data-state", "live")
    assert await phone.page.evaluate(NO_SIDEWAYS_SCROLL), "the dashboard scrolls sideways on a phone"
    await expect(phone.page.locator("#map")).to_be_visible()
    await phone.page.locator(".queue").scroll_into_view_if_needed()
    await expect(phone.page.locator("#queue-list")).to_be_visible()
    await phone.shot("dashboard-phone")

    team = await browsers.open("/team/", "team-phone", team_token("co-rrt-bravo", "CO"), phone=True)
    await expect(team.page.locator("#connection")).to_have_attribute("data-state", "live")
    assert await team.page.evaluate(NO_SIDEWAYS_SCROLL), "the team view scrolls sideways on a phone"
    assert await smallest_text_px(team.page, ".topbar *, .current *, .past *") >= 12
    await expect(team.page.locator("#range-from")).to_have_count(0)
    await expect(team.page.locator("#current")).to_contain_text("No current dispatch")


@pytest.mark.timeout(120 + STACK_START_S)
async def test_queue_filters_and_shortcuts(stack: Stack, browsers: Browsers) -> None:
    """The filters narrow the queue; ? shows the shortcuts; / goes to the search; m mutes."""
    desk = await browsers.open("/", "shortcuts", operator_token("cc-cucuta", "CO"))
    page = desk.page
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await page.locator("#queue-list").focus()
    await page.keyboard.press("?")
    await expect(page.locator("#help-dialog")).to_be_visible()
    await expect(page.locator("#help-dialog")).to_contain_text("acknowledge")
    await page.keyboard.press("Escape")
    await expect(page.locator("#help-dialog")).to_be_hidden()

    await page.keyboard.press("/")
    await expect(page.locator("#filter-text")).to_be_focused()
    await page.keyboard.type("no alert says this")
    await expect(page.locator(".alert-row")).to_have_count(0)
    await expect(page.locator("#queue-list .empty")).to_be_visible()
    await page.keyboard.press("Escape")
    await page.locator("#filter-text").fill("")

    await page.locator("#filter-severity").select_option("critical")
    await expect(page.locator('.alert-row:not([data-severity="critical"])')).to_have_count(0)
    await page.locator("#filter-severity").select_option("info")
    await page.locator("#filter-region").select_option("co-ve-cucuta")
    await expect(page.locator("#queue-count")).to_contain_text("shown")

    await page.locator("#queue-list").focus()
    await expect(page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "true")
    await page.keyboard.press("m")
    await expect(page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "false")
    await page.keyboard.press("m")
    await expect(page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "true")
