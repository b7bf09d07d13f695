"""The UI in a real browser (Debian's chromium via Playwright) against a live ``xp serve``.

The journey of a team: sign in; a viewer reads reports and is refused every
change; an editor creates an experiment through the form (two variants, a
ratio primary, a guardrail), starts it; traffic arrives through the SDK; the
report shows the verdict and the charts; stop, restart, ramp, conclude; promote
needs an admin and a confirmation; the audit log lists each step with its user.

Every page visited is checked for labels on each form control and for inline
scripts or event handlers (there must be none). Screenshots are kept under
``test-artifacts/screenshots/`` with stable names, one per page or safeguard
(see ``SCREENSHOTS``).

One server serves the module (booting gunicorn costs seconds on a loaded
machine); it runs on SQLite, or on PostgreSQL under ``TEST_DATABASE_URL``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from experiments.sdk import Client
from tests.conftest import ROOT, DatabaseFactory, LiveServer, make_live_server
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
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "a long test password"
USERS = {"viewer": "vera@example.com", "editor": "eddie@example.com", "admin": "ada@example.com"}

# Every input, select and textarea has a label (its <label for>, a wrapping label,
# aria-label or aria-labelledby); none of the page's scripts is inline; no element
# carries an inline event handler.
PAGE_CHECK = """() => {
  const unlabelled = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    const byFor = el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]');
    const named = (el.getAttribute('aria-label') || '').trim() ||
                  (el.getAttribute('aria-labelledby') || '').trim();
    if (!byFor && !el.closest('label') && !named) unlabelled.push(el.name || el.id || el.outerHTML);
  }
  const inline = [...document.querySelectorAll('script:not([src])')]
      .filter(s => s.type !== 'application/json').length;
  const handlers = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith('on')) handlers.push(el.tagName + ' ' + attr.name);
    }
  }
  return {unlabelled, inline, handlers};
}"""


@pytest.fixture(scope="module")
def server(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    live = make_live_server(database_factory, tmp_path_factory.mktemp("live-ui"))
    for role, email in USERS.items():
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "experiments.cli",
                "users",
                "create",
                email,
                "--role",
                role,
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
            env=live.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0, made.stderr
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser(browser_executable: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


class Person:
    """One browser context (its own cookies) signed in as one user; checks every page."""

    def __init__(self, browser: Any, server: LiveServer, role: str) -> None:
        self.server = server
        self.role = role
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.outside: list[str] = []
        self.problems: list[str] = []
        self.checked: set[str] = set()
        self.page.route("**/*", self._guard)
        self.page.on("load", lambda _: self._check_loaded())

    def _guard(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "file://", "data:", "blob:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def _check_loaded(self) -> None:
        from playwright.sync_api import Error

        url = self.page.url
        try:
            found = self.page.evaluate(PAGE_CHECK)
        except Error:
            return  # the page moved on (a redirect): the next load is checked
        self.checked.add(url.split("?")[0])
        if found["unlabelled"]:
            self.problems.append(f"{url}: controls without a label: {found['unlabelled']}")
        if found["inline"]:
            self.problems.append(f"{url}: {found['inline']} inline script(s)")
        if found["handlers"]:
            self.problems.append(f"{url}: inline event handlers {found['handlers']}")

    def go(self, path: str) -> Any:
        response = self.page.goto(self.server.url + path)
        return response

    def sign_in(self) -> None:
        """With the keyboard only: the email field has focus, Tab to the password, Enter."""
        self.go("/login")
        email = USERS[self.role]
        assert self.page.evaluate("document.activeElement.id") == "email"
        self.page.keyboard.type(email)
        self.page.keyboard.press("Tab")
        assert self.page.evaluate("document.activeElement.id") == "password"
        self.page.keyboard.type(PASSWORD)
        self.page.keyboard.press("Enter")
        self.page.wait_for_url(re.compile(r".*/experiments$"))
        assert email in self.page.locator("#who").inner_text()

    def shot(self, name: str, locator: str | None = None) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if locator:
            self.page.locator(locator).screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=True)

    def csrf(self) -> str:
        return str(self.page.locator("input[name=csrf_token]").first.get_attribute("value"))

    def close(self) -> None:
        self.context.close()
        assert self.outside == [], f"the pages tried to reach the network: {self.outside}"
        assert self.problems == []


@pytest.fixture(scope="module")
def people(browser: Any, server: LiveServer) -> Iterator[dict[str, Person]]:
    everyone = {role: Person(browser, server, role) for role in USERS}
    yield everyone
    for person in everyone.values():
        person.close()


def _cli(server: LiveServer, *args: str) -> str:
    result = server.run_cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _status(server: LiveServer, admin_key: str, key: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/api/v1/experiments/{key}",
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    assert response.status_code == 200
    return dict(response.json())


def _send_traffic(server: LiveServer, key: str, units: int) -> None:
    """Units arrive through the SDK: assigned locally, exposures and events in batches."""
    client = Client(base_url=server.url, api_key=server.create_key("ingest"))
    try:
        assert client.refresh()
        for i in range(units):
            unit = f"journey-{i}"
            assignment = client.assign(key, unit_id=unit)
            if not assignment.in_experiment:
                continue
            shown = 4 + i % 3
            rate = 0.45 if assignment.variant == "treatment" else 0.25
            plays = sum(1 for j in range(shown) if (i * 7 + j * 13) % 100 < rate * 100)
            for _ in range(shown):
                client.track("impression", unit_id=unit)
            for _ in range(plays):
                client.track("play", unit_id=unit)
            if i % 4 == 0:
                client.track("purchase", unit_id=unit, value=20.0 + i % 7)
        assert client.flush(timeout=60)
        stats = client.stats()
        assert stats.dropped == 0
        assert stats.rejected == 0
    finally:
        client.close()


def test_a_team_runs_an_experiment_in_the_browser(
    server: LiveServer, people: dict[str, Person], tmp_path: Path
) -> None:
    viewer, editor, admin = people["viewer"], people["editor"], people["admin"]
    admin_key = server.create_key("admin")

    # Recent traffic for the plan preview: another experiment and its users.
    warmup = tmp_path / "warmup.json"
    warmup.write_text(json.dumps(spec_document(key="warmup", layer="home-feed", traffic=0.3)))
    _cli(server, "experiments", "apply", str(warmup))
    _cli(server, "experiments", "start", "warmup")
    _cli(server, "simulate", "warmup", "--users", "1500", "--days", "3")

    # Signing in: anonymous visitors go to the login page, and back where they asked.
    viewer.go("/layers")
    assert "/login?next=/layers" in viewer.page.url
    viewer.shot("01-login")
    viewer.go("/login")
    viewer.sign_in()
    editor.sign_in()
    admin.sign_in()

    # An editor creates an experiment through the form and previews its sample size.
    page = editor.page
    editor.go("/experiments/new")
    page.fill("#key", "journey")
    page.fill("#name", "Journey: new ranker")
    page.fill("#hypothesis", "The new ranker raises take rate without hurting revenue")
    page.fill("#layer", "home-feed")
    page.fill("#traffic", "50")
    page.fill("#metrics-0-name", "take_rate")
    page.select_option("#metrics-0-kind", "ratio")
    page.fill("#metrics-0-numerator", "play")
    page.fill("#metrics-0-denominator", "impression")
    page.fill("#metrics-1-name", "revenue")
    page.select_option("#metrics-1-kind", "mean")
    page.fill("#metrics-1-event", "purchase")
    page.fill("#metrics-1-margin", "0.05")
    page.fill("#variants-1-params", '{"model": "ranker_b"}')
    page.fill("#variants-0-weight", "50")
    assert "Total 100%: fine." in page.locator("#weight-total").inner_text()
    page.click("#preview-button")
    page.wait_for_selector("#preview")
    assert re.search(r"needs [\d,]+ units", page.locator("#preview").inner_text())
    editor.shot("02-create-form-preview")
    page.click("#create")
    page.wait_for_url(f"{server.url}/experiments/journey")
    assert "created as a draft" in page.locator(".flash").inner_text()

    # Starting asks first, and says what will happen.
    page.click("#start")
    confirm = page.locator("#confirm").inner_text()
    assert "From now on 50% of layer home-feed's buckets enter the experiment" in confirm
    editor.shot("03-confirm-start")
    page.click("#confirm-button")
    page.wait_for_selector("#stop")
    assert page.locator(".eyebrow .status").inner_text() == "running"

    # Traffic through the SDK against the live server; the editor recomputes the report.
    _send_traffic(server, "journey", 1200)
    editor.go("/experiments/journey/report")
    page.click("#refresh")
    page.wait_for_selector("#chart-metric-take_rate svg.main-svg")
    page.wait_for_selector("#chart-lift-over-time svg.main-svg")
    assert "Decision:" in page.locator("#decision").inner_text()
    assert "No data has arrived since" in page.locator("#freshness").inner_text()
    assert page.locator("#chart-traffic svg.main-svg").count() >= 1
    # Readable from day one: day ticks, never milliseconds.
    ticks = page.locator("#chart-lift-over-time .xtick text").evaluate_all(
        "texts => texts.map(t => t.textContent)"
    )
    assert ticks
    assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", t) for t in ticks), ticks
    editor.shot("05-report-verdict-charts")
    editor.shot("06-report-over-time", "#over-time")
    editor.go("/experiments/journey")
    assert "take_rate" in page.locator("#verdict").inner_text()
    assert "total" in page.locator("#units").inner_text()
    editor.shot("04-experiment-units-verdict")

    # A viewer reads everything and is refused every change, which leaves it as it was.
    viewer.go("/experiments/journey/report")
    assert "Decision:" in viewer.page.locator("#decision").inner_text()
    assert viewer.page.locator("#refresh").count() == 0
    viewer.go("/experiments/journey")
    assert viewer.page.locator("#stop").count() == 0
    token = viewer.csrf()
    before = _status(server, admin_key, "journey")
    changes = [
        "/experiments/new",
        "/experiments/journey/edit",
        "/experiments/journey/start",
        "/experiments/journey/stop",
        "/experiments/journey/ramp",
        "/experiments/journey/archive",
        "/experiments/journey/conclude",
        "/experiments/journey/promote",
        "/experiments/journey/unpromote",
        "/experiments/journey/report/refresh",
        "/keys",
        "/users",
        "/users/disable",
    ]
    for path in changes:
        response = viewer.context.request.post(
            server.url + path,
            form={
                "csrf_token": token,
                "confirm": "yes",
                "traffic_percent": "90",
                "decision": "ship",
                "rationale": "x",
                "email": USERS["admin"],
            },
            max_redirects=0,
        )
        assert response.status == 403, (path, response.status)
    assert _status(server, admin_key, "journey") == before
    viewer.go("/experiments/journey/stop")
    assert "This needs the editor role" in viewer.page.locator("main").inner_text()
    viewer.shot("07-viewer-forbidden")

    # What a running experiment may change, and what it may not.
    editor.go("/experiments/journey/edit")
    assert page.locator("#alpha").is_disabled()
    assert not page.locator("#name").is_disabled()
    editor.shot("08-edit-running")
    page.fill("#name", "Journey: new ranker (v2 weights)")
    page.click("#create")
    page.wait_for_url(f"{server.url}/experiments/journey")

    # Stop, restart, ramp: each with what it does.
    page.click("#stop")
    assert (
        "Every unit gets the control (control) from now on" in page.locator("#confirm").inner_text()
    )
    editor.shot("09-confirm-stop")
    page.click("#confirm-button")
    page.wait_for_selector("#restart")
    page.click("#restart")
    assert "same variant as before" in page.locator("#confirm").inner_text()
    editor.shot("10-confirm-restart")
    page.click("#confirm-button")
    page.wait_for_selector("#ramp")
    page.fill("#traffic_percent", "60")
    page.click("#ramp-button")
    page.wait_for_selector(".flash")
    assert "Traffic of journey is now 60%" in page.locator(".flash").inner_text()

    # Conclude: the form starts at the engine's verdict; ship the treatment.
    suggested = page.locator("#decision").input_value()
    page.select_option("#decision", "ship")
    page.select_option("#variant", "treatment")
    page.fill("#rationale", "Take rate up, revenue within its margin")
    if suggested != "ship":
        page.fill("#override_reason", "The product team accepts the early read")
    editor.shot("11-conclude-form", "#conclude")
    page.click("#conclude-button")
    assert "Conclude journey: ship treatment?" in page.locator("#confirm").inner_text()
    editor.shot("12-confirm-conclude")
    page.click("#confirm-button")
    page.wait_for_selector("#conclusion")
    # Promoting needs an admin: no button for the editor, 403 at the URL.
    assert page.locator("#promote").count() == 0
    assert editor.go("/experiments/journey/promote").status == 403

    admin.go("/experiments/journey")
    admin.page.click("#promote")
    text = admin.page.locator("#confirm").inner_text()
    assert "Every unit, not only the experiment's 60%, gets variant treatment" in text
    admin.shot("13-confirm-promote")
    admin.page.click("#confirm-button")
    admin.page.wait_for_selector("#unpromote")
    assert _status(server, admin_key, "journey")["promoted_at"] is not None

    # The report now opens with the human decision.
    viewer.go("/experiments/journey/report")
    recorded = viewer.page.locator("#recorded-decision").inner_text()
    assert "Decided: ship treatment" in recorded
    assert "promoted: every unit gets it" in recorded
    assert USERS["editor"] in recorded
    viewer.shot("14-report-recorded-decision")

    # The audit log lists each step with its user.
    viewer.go("/experiments/journey")
    rows = viewer.page.locator("#audit-log tbody tr").all_inner_texts()
    steps = [(r.split("\t")[2].strip(), r.split("\t")[1].strip()) for r in rows]
    assert steps == [
        ("create", USERS["editor"]),
        ("start", USERS["editor"]),
        ("edit", USERS["editor"]),
        ("stop", USERS["editor"]),
        ("restart", USERS["editor"]),
        ("ramp", USERS["editor"]),
        ("conclude", USERS["editor"]),
        ("promote", USERS["admin"]),
    ]
    viewer.shot("15-audit-log", "#audit")

    # Un-promote and archive, each confirmed; archived experiments leave the list.
    admin.page.click("#unpromote")
    assert "Every unit stops getting treatment" in admin.page.locator("#confirm").inner_text()
    admin.shot("16-confirm-unpromote")
    admin.page.click("#confirm-button")
    admin.page.wait_for_selector("#archive")
    admin.page.click("#archive")
    assert "nothing is deleted" in admin.page.locator("#confirm").inner_text()
    admin.shot("17-confirm-archive")
    admin.page.click("#confirm-button")
    admin.page.wait_for_selector(".flash")
    admin.go("/experiments")
    assert admin.page.locator("#row-journey").count() == 0
    admin.page.check("#archived")
    admin.page.click("#apply-filters")
    admin.page.wait_for_selector("#row-journey")
    admin.shot("19-list-archived")
    for person in people.values():
        assert person.problems == [], person.problems
    assert len(editor.checked) >= 8


def test_pages_a_team_expects(
    server: LiveServer, people: dict[str, Person], tmp_path: Path
) -> None:
    editor, admin = people["editor"], people["admin"]
    for person in (editor, admin):
        if "/login" in person.page.url or not person.page.url.startswith(server.url):
            person.sign_in()
    specs = [
        spec_document(key="checkout-v3", name="Checkout v3", layer="checkout", traffic=0.4),
        spec_document(key="search-boost", name="Search boost", layer="search", traffic=0.25),
        spec_document(key="quiet", name="Quiet experiment", layer="checkout", traffic=0.2),
        spec_document(key="early", name="Early read", planned_n=1_000_000),
        spec_document(key="draft-idea", name="A draft idea", layer="checkout", traffic=0.3),
    ]
    path = tmp_path / "specs.json"
    path.write_text(json.dumps(specs))
    _cli(server, "experiments", "apply", str(path))
    for key in ("checkout-v3", "search-boost", "quiet", "early"):
        _cli(server, "experiments", "start", key)
    _cli(server, "simulate", "checkout-v3", "--users", "1500", "--days", "3", "--lift", "0.1")
    _cli(server, "simulate", "early", "--users", "600", "--days", "2")
    for key in ("checkout-v3", "quiet", "early"):
        _cli(server, "report", key, "--refresh", "--format", "json")

    # The list: search, sort, filters, a verdict column.
    page = editor.page
    editor.go("/experiments?sort=name")
    assert page.locator("#row-checkout-v3 .verdict").inner_text().strip() != ""
    editor.shot("18-experiment-list")
    page.select_option("#layer-filter", "checkout")
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r".*layer=checkout.*"))
    rows = page.locator("#experiments tbody tr").evaluate_all("rows => rows.map(r => r.id)")
    assert rows == ["row-draft-idea", "row-checkout-v3", "row-quiet"]  # by name
    page.fill("#q", "CHECKOUT")
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r".*q=CHECKOUT.*"))
    assert page.locator("#experiments tbody tr").count() == 1

    # Layers: occupancy and free share.
    editor.go("/layers")
    checkout = page.locator("#layer-checkout").inner_text()
    assert "60.0% occupied" in checkout
    assert "40.0% free" in checkout
    editor.shot("20-layers")

    # Editing a draft reaches every spec field.
    editor.go("/experiments/draft-idea/edit")
    for field in (
        "targeting",
        "forced",
        "metrics-0-cuped",
        "metrics-0-window_days",
        "metrics-0-direction",
        "metrics-1-cap",
        "metrics-1-margin_type",
        "correction",
    ):
        assert not page.locator(f"#{field}").is_disabled(), field
    page.fill("#targeting", '{"country": {"in": ["US", "CA"]}}')
    page.fill("#metrics-1-cap", "p99")
    page.fill("#metrics-0-cuped", "14")
    editor.shot("23-edit-draft")
    page.click("#spec-link")
    page.wait_for_url(f"{server.url}/docs/spec")
    assert "window_days" in page.locator("#doc").inner_text()
    editor.shot("27-spec-reference")
    editor.go("/experiments/draft-idea/edit")
    page.fill("#targeting", '{"country": {"in": ["US", "CA"]}}')
    page.fill("#metrics-1-cap", "p99")
    page.fill("#metrics-0-cuped", "14")
    page.click("#create")
    page.wait_for_url(f"{server.url}/experiments/draft-idea")
    assert "country" in page.locator("#targeting").inner_text()

    # A stale report says so; waiting for data; a provisional fixed-horizon verdict.
    _cli(server, "simulate", "checkout-v3", "--users", "200", "--days", "1", "--seed", "9")
    editor.go("/experiments/checkout-v3/report")
    assert "New data since" in page.locator("#freshness").inner_text()
    editor.shot("24-report-stale")
    editor.go("/experiments/quiet/report")
    assert "Waiting for data" in page.locator("#waiting").inner_text()
    editor.shot("25-report-waiting")
    editor.go("/experiments/early/report")
    assert "Provisional" in page.locator("#provisional").inner_text()
    editor.shot("26-report-provisional")

    # API keys: created and shown once, listed with prefix, scope, created, last used.
    admin.go("/keys")
    admin.page.fill("#key-name", "checkout service")
    admin.page.select_option("#key-scope", "ingest")
    admin.page.click("#create-key-button")
    token = admin.page.locator("#new-key").input_value()
    assert token.startswith("xp_")
    assert admin.page.evaluate("document.activeElement.id") == "new-key"  # ready to copy
    admin.shot("21-api-key-created")
    httpx.get(f"{server.url}/api/v1/config", headers={"Authorization": f"Bearer {token}"})
    admin.go("/keys")
    row = admin.page.locator(f"#key-{token[:10]}").inner_text()
    assert "checkout service" in row
    assert "never" not in row  # last used just now
    assert token not in admin.page.content()

    # Users (admin).
    admin.go("/users")
    admin.page.fill("#user-email", "newcomer@example.com")
    admin.page.select_option("#user-role", "viewer")
    admin.page.fill("#user-password", "newcomer password")
    admin.page.click("#create-user-button")
    admin.page.wait_for_selector(".flash")
    assert "newcomer@example.com" in admin.page.locator("#users").inner_text()
    admin.shot("22-users")
    for person in people.values():
        assert person.problems == [], person.problems


def test_keyboard_skip_link_and_sign_out(server: LiveServer, browser: Any) -> None:
    person = Person(browser, server, "viewer")
    try:
        person.sign_in()
        page = person.page
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        page.click("#logout")
        page.wait_for_url(re.compile(r".*/login$"))
        person.go("/experiments")
        assert "/login?next=/experiments" in page.url
    finally:
        person.close()
