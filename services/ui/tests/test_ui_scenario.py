"""The whole story in a real headless Chromium, never reloading a page: create an
instruction in the UI (after one refused submit whose error shows next to its field),
POST a matching event to the API, and watch the task succeed and the notification arrive.
Screenshots of every page go to test-artifacts/."""

import time

import httpx
from playwright.sync_api import Browser, Page, expect

from conftest import ARTIFACTS, RunningSystem

TITLE = "Front door opened"


def opened(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url)
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    return page


def still_loaded_once(page: Page) -> bool:
    return page.evaluate("window.loadedOnce") is True


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"ui-{name}.png", full_page=True)


def test_instruction_to_task_to_notification_without_reload(
    browser: Browser, embedded_system: RunningSystem
) -> None:
    ui = embedded_system.ui_url
    editor = opened(browser, f"{ui}/instructions")
    expect(editor.get_by_text("No instructions yet")).to_be_visible()
    editor.get_by_label("Name").fill("Door alert")
    editor.get_by_label("Event type pattern").fill("door opened!")  # a space: refused
    editor.get_by_label("Action").select_option("request_task")
    editor.get_by_label("Task kind").select_option("notify")
    editor.get_by_label("Task params").fill(f"title={TITLE}\nbody=Someone came in")
    editor.get_by_role("button", name="Create instruction").click()

    error = editor.locator('[data-error-for="event_type"]')
    expect(error).to_contain_text("String should match pattern")
    expect(editor.locator('input[name="event_type"]')).to_have_attribute("aria-invalid", "")
    expect(editor.locator('[data-error-for="name"]')).to_be_empty()
    screenshot(editor, "instructions-invalid")

    editor.get_by_label("Event type pattern").fill("door.opened")
    editor.get_by_role("button", name="Create instruction").click()
    expect(editor.locator("#instructions tbody tr")).to_have_count(1)
    expect(editor.locator("#instructions")).to_contain_text("Door alert")
    expect(error).to_be_empty()
    expect(editor.get_by_text("Created.")).to_be_visible()
    screenshot(editor, "instructions")

    dashboard = opened(browser, ui)
    tasks = opened(browser, f"{ui}/tasks")
    notifications = opened(browser, f"{ui}/notifications")
    expect(tasks.get_by_text("No tasks yet")).to_be_visible()
    expect(notifications.get_by_text("No notifications.")).to_be_visible()

    posted = httpx.post(
        f"{embedded_system.api_url}/api/events",
        json={"type": "door.opened", "subject": "front", "data": {"door": "front"}},
    )
    assert posted.status_code == 202
    started = time.monotonic()
    status = tasks.locator("[data-task-id] .status")
    expect(status).to_have_text("succeeded", timeout=10_000)
    task_seconds = time.monotonic() - started
    expect(tasks.locator("[data-task-id]")).to_contain_text(f"title={TITLE}")
    expect(notifications.locator(".notifications .title")).to_have_text(TITLE, timeout=10_000)
    notification_seconds = time.monotonic() - started
    print(f"task succeeded after {task_seconds:.2f}s, notification {notification_seconds:.2f}s")
    expect(dashboard.locator('[data-count="tasks-succeeded"]')).to_have_text("1")
    expect(dashboard.locator('[data-count="unread"]')).to_have_text("1")
    expect(dashboard.locator("#events .status-processed").first).to_be_visible()

    notifications.get_by_role("button", name="Mark read").click()
    expect(notifications.locator(".notifications li.read")).to_have_count(1)
    expect(dashboard.locator('[data-count="unread"]')).to_have_text("0")

    dead_letters = opened(browser, f"{ui}/dead-letters")
    expect(dead_letters.get_by_text("No dead letters")).to_be_visible()
    for name, page in [
        ("dashboard", dashboard),
        ("tasks", tasks),
        ("notifications", notifications),
        ("dead-letters", dead_letters),
    ]:
        screenshot(page, name)
    for page in (editor, dashboard, tasks, notifications):
        assert still_loaded_once(page)
