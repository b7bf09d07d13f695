"""The UI in a real browser (Debian's chromium via Playwright) against `xp serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import spec_document

pytestmark = [pytest.mark.browser, pytest.mark.server]

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path("/tmp/xp-report.png")


@pytest.fixture(scope="module")
def browser(browser_executable: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page that may only talk to loopback: any other request fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    outside: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "file://", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", guard)
    yield page
    context.close()
    assert outside == [], f"the page tried to reach the network: {outside}"


def test_create_with_a_wrong_weight_then_fix_it(live_server: Any, page: Any) -> None:
    page.goto(f"{live_server.url}/experiments/new")
    page.fill("#key", "checkout-v2")
    page.fill("#name", "Checkout v2")
    page.fill("#variants-1-weight", "-0.5")
    page.fill("#metrics-0-name", "converted")
    page.fill("#metrics-0-event", "purchase")
    page.fill("#metrics-1-name", "revenue")
    page.fill("#metrics-1-event", "purchase")
    page.fill("#metrics-1-margin", "0.02")
    page.click("#create")

    error = page.locator("#variants-1-weight-error")
    assert error.inner_text() == "must be > 0.0"
    # Beside its field: in the same cell, just under the input.
    field_box = page.locator("#variants-1-weight").bounding_box()
    error_box = error.bounding_box()
    assert abs(error_box["x"] - field_box["x"]) < 40
    assert 0 <= error_box["y"] - (field_box["y"] + field_box["height"]) < 40
    assert page.locator("#key").input_value() == "checkout-v2"

    page.fill("#variants-1-weight", "0.5")
    page.click("#create")
    page.wait_for_url(f"{live_server.url}/experiments/checkout-v2")
    assert page.locator("h1").inner_text() == "Checkout v2"
    assert "created as a draft" in page.locator(".flash").inner_text()
    page.click("#start")
    page.wait_for_selector("#report-link")
    assert page.locator(".eyebrow .status").inner_text() == "running"


def test_report_page_draws_its_charts(live_server: Any, page: Any, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_document()))
    for args in (
        ("experiments", "apply", str(spec)),
        ("experiments", "start", "ranker-v2"),
        ("simulate", "ranker-v2", "--users", "2000", "--days", "3", "--lift", "0.1"),
    ):
        result = live_server.run_cli(*args)
        assert result.returncode == 0, result.stderr

    page.goto(f"{live_server.url}/experiments/ranker-v2/report")
    page.wait_for_selector("#chart-metric-take_rate svg.main-svg")
    charts = page.locator(".xp-chart")
    # Four metrics (three business, one ML) and two over-time charts.
    assert charts.count() == 6
    assert page.locator("#chart-lift-over-time svg.main-svg").count() >= 1
    assert page.locator("#chart-traffic svg.main-svg").count() >= 1
    for index in range(charts.count()):
        assert charts.nth(index).locator("svg.main-svg").count() >= 1
    # One marker per treatment row in the forest plot.
    assert page.locator("#chart-metric-take_rate .scatterlayer .point").count() == 1
    assert "Decision:" in page.locator("#decision").inner_text()
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # The downloaded export draws the same charts from a file, with no server.
    with page.expect_download() as download:
        page.click("#download")
    exported = tmp_path / "report.html"
    download.value.save_as(exported)
    page.goto(exported.as_uri())
    page.wait_for_selector("#chart-metric-take_rate svg.main-svg")
    assert page.locator(".xp-chart svg.main-svg").count() >= 4
