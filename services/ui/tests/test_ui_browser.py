"""The UI in a real headless Chromium: a new event turns `processed` without a reload."""

import httpx
from playwright.sync_api import Browser, expect

from conftest import ARTIFACTS, RunningSystem


def test_new_event_shows_processed_within_a_second_without_reload(
    browser: Browser, embedded_system: RunningSystem
) -> None:
    page = browser.new_page()
    page.goto(embedded_system.ui_url)
    expect(page.get_by_text("No events yet")).to_be_visible()
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    response = httpx.post(
        f"{embedded_system.api_url}/api/events", json={"type": "door.opened", "subject": "front"}
    )
    event_id = response.json()["event"]["id"]
    status = page.locator(f'tr[data-event-id="{event_id}"] .status')
    expect(status).to_have_text("processed", timeout=1_000)  # counted from the POST's answer
    assert page.evaluate("window.loadedOnce") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "ui-events.png", full_page=True)
