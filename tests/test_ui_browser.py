"""The UI in a real headless Chromium: a new event turns `processed` without a reload,
and every page works under the UI's Content-Security-Policy."""

from pathlib import Path

import httpx
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from lightning_core.testing.runtime import RunningSystem


def csp_violations(page: Page) -> list[str]:
    """The page's console messages about its Content-Security-Policy, as they come."""
    refused: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", keep)
    return refused


def test_new_event_shows_processed_within_a_second_without_reload(
    browser: Browser, embedded_system: RunningSystem, tmp_path: Path, artifacts: Path
) -> None:
    page = browser.new_page()
    refused = csp_violations(page)
    answer = page.goto(embedded_system.ui_url)
    assert answer is not None
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    expect(page.get_by_text("No events yet")).to_be_visible()
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    response = httpx.post(
        f"{embedded_system.api_url}/api/events", json={"type": "door.opened", "subject": "front"}
    )
    event_id = response.json()["event"]["id"]
    status = page.locator(f'tr[data-event-id="{event_id}"] .status')
    expect(status).to_have_text("processed", timeout=1_000)  # counted from the POST's answer
    assert page.evaluate("window.loadedOnce") is True
    page.screenshot(path=artifacts / "ui-events.png", full_page=True)
    assert refused == []
    log = (tmp_path / "runtime.log").read_text()  # the UI called the API dozens of times
    assert "HTTP Request:" not in log  # httpx's line per call stays out of the terminal


def test_unknown_addresses_get_a_page_in_the_uis_style_and_there_is_a_favicon(
    browser: Browser, embedded_system: RunningSystem
) -> None:
    page = browser.new_page()
    refused = csp_violations(page)
    answer = page.goto(f"{embedded_system.ui_url}/no/such/page")
    assert answer is not None
    assert answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("link", name="Dashboard", exact=True)).to_be_visible()
    header = page.locator("header")
    expect(header).to_have_css("background-color", "rgb(29, 35, 42)")  # styled
    answer = page.goto(f"{embedded_system.ui_url}/tasks/t-1/cancel")  # takes only POST
    assert answer is not None
    assert answer.status == 405
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    icon = page.request.get(f"{embedded_system.ui_url}/favicon.ico")
    assert (icon.status, icon.headers["content-type"]) == (200, "image/svg+xml")
    assert refused == []


def test_an_instruction_is_edited_in_place_and_a_stale_edit_is_refused(
    browser: Browser, embedded_system: RunningSystem, artifacts: Path
) -> None:
    api = httpx.Client(base_url=embedded_system.api_url)
    spec = {
        "name": "Door alert",
        "event_type": "door.opened",
        "action": {"kind": "notify", "title": "Door opened"},
    }
    instruction_id = api.post("/api/instructions", json=spec).json()["id"]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    refused = csp_violations(page)
    page.goto(f"{embedded_system.ui_url}/instructions")
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    row = page.locator(f'tr[data-instruction-id="{instruction_id}"]')

    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit “Door alert”")).to_be_visible()
    expect(page.get_by_label("Action")).to_have_value("notify")
    expect(page.get_by_label("Title")).to_have_value("Door opened")
    page.get_by_label("Name").fill("Front door alert")
    page.get_by_label("Data filter").fill("door=front")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(row).to_contain_text("Front door alert")
    expect(row).to_contain_text("door=front")
    expect(page.get_by_role("heading", name="New instruction")).to_be_visible()

    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("Name")).to_have_value("Front door alert")
    current = api.get(f"/api/instructions/{instruction_id}")
    changed = {**spec, "name": "Changed by a script"}
    replaced = api.put(
        f"/api/instructions/{instruction_id}",
        json=changed,
        headers={"If-Match": current.headers["ETag"]},
    )
    assert replaced.status_code == 200
    page.get_by_label("Name").fill("My late edit")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator('[data-error-for="form"]')).to_contain_text("changed elsewhere")
    page.screenshot(path=artifacts / "ui-instructions-stale-edit.png", full_page=True)
    assert api.get(f"/api/instructions/{instruction_id}").json()["name"] == "Changed by a script"
    expect(row).to_contain_text("Changed by a script")  # the list shows what is stored
    page.get_by_role("button", name="Cancel editing").click()
    expect(page.get_by_role("heading", name="New instruction")).to_be_visible()
    assert page.evaluate("window.loadedOnce") is True
    assert refused == []
    api.close()
