"""The whole story in a real headless Chromium, never reloading a page: create an
instruction in the UI (after one refused submit whose error shows next to its field),
POST a matching event to the API, and watch the task succeed and the notification arrive.

It runs against one runtime process hosting API, processor and UI on every stack (the
`stack` fixture): embedded as `invoke dev` runs it, and local with PostgreSQL + Redis
and with PostgreSQL + RabbitMQ. Screenshots of every page go to test-artifacts/
(`ui-<page>.png` for embedded, `ui-<stack>-<page>.png` for the others)."""

import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from lightning_core.testing.runtime import start_runtime
from lightning_core.testing.stacks import Stack

TITLE = "Front door opened"


def opened(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url)
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    return page


def still_loaded_once(page: Page) -> bool:
    return page.evaluate("window.loadedOnce") is True


def screenshot(page: Page, artifacts: Path, stack: Stack, name: str) -> None:
    prefix = "ui" if stack.name == "embedded" else f"ui-{stack.name}"
    page.screenshot(path=artifacts / f"{prefix}-{name}.png", full_page=True)


def test_instruction_to_task_to_notification_without_reload(
    stack: Stack, browser: Browser, tmp_path: Path, artifacts: Path
) -> None:
    # `stack` first: it sets up (and cleans up) with asyncio.run, which cannot run while
    # Playwright's sync API has its event loop going.
    with start_runtime(stack.env, tmp_path, services="api,event-processor,ui") as system:
        story(browser, system.ui_url, system.api_url, stack, artifacts)


def story(browser: Browser, ui: str, api: str, stack: Stack, artifacts: Path) -> None:
    editor = opened(browser, f"{ui}/instructions")
    expect(editor.get_by_text("No instructions yet")).to_be_visible()
    editor.get_by_label("Name").fill("Door alert")
    editor.get_by_label("Event type pattern").fill("door opened!")  # a space: refused
    editor.get_by_label("Action").select_option("request_task")
    editor.get_by_label("Task kind").select_option("notify")
    editor.get_by_label("Task params").fill(f"title={TITLE}\nbody=Someone came in")
    editor.get_by_role("button", name="Create instruction").click()

    error = editor.locator('[data-error-for="event_type"]')
    expect(error).to_contain_text("use letters, digits and . _ : / -")
    expect(editor.locator('input[name="event_type"]')).to_have_attribute("aria-invalid", "")
    expect(editor.locator('[data-error-for="name"]')).to_be_empty()
    screenshot(editor, artifacts, stack, "instructions-invalid")

    editor.get_by_label("Event type pattern").fill("door.opened")
    editor.get_by_role("button", name="Create instruction").click()
    expect(editor.locator("#instructions tbody tr")).to_have_count(1)
    expect(editor.locator("#instructions")).to_contain_text("Door alert")
    expect(error).to_be_empty()
    expect(editor.get_by_text("Created.")).to_be_visible()
    screenshot(editor, artifacts, stack, "instructions")

    dashboard = opened(browser, ui)
    tasks = opened(browser, f"{ui}/tasks")
    notifications = opened(browser, f"{ui}/notifications")
    expect(tasks.get_by_text("No tasks yet")).to_be_visible()
    expect(notifications.get_by_text("No notifications.")).to_be_visible()

    posted = httpx.post(
        f"{api}/api/events",
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
    print(
        f"{stack.name}: task succeeded after {task_seconds:.2f}s,"
        f" notification {notification_seconds:.2f}s"
    )
    expect(dashboard.locator('[data-count="tasks-succeeded"]')).to_have_text("1")
    expect(dashboard.locator('[data-count="unread"]')).to_have_text("1")
    expect(dashboard.locator('[data-service="event-processor"]')).to_contain_text("1 running")
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
        screenshot(page, artifacts, stack, name)
    for page in (editor, dashboard, tasks, notifications):
        assert still_loaded_once(page)
