"""The UI in a real headless Chromium: a new event turns `processed` without a reload."""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from conftest import ARTIFACTS, RunningSystem, require

# Debian's chromium here; CI runners point this at the Chrome they ship.
CHROMIUM = Path(os.environ.get("LIGHTNING_TEST_CHROMIUM", "/usr/bin/chromium"))
# Flags that keep Chromium quiet on a closed network (see ENVIRONMENT.md).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    require(
        CHROMIUM.exists(),
        f"a Chromium at {CHROMIUM}",
        "apt-get install -y chromium, or set LIGHTNING_TEST_CHROMIUM to a Chrome binary",
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


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
