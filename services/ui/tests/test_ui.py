from collections.abc import AsyncIterator

import httpx
import pytest

from conftest import ui_client
from lightning_api.app import create_app as create_api
from lightning_core.service import ServiceContext
from lightning_ui.api_client import ApiClient


@pytest.fixture
async def ui(ui_api: ApiClient) -> AsyncIterator[httpx.AsyncClient]:
    async with ui_client(ui_api) as http:
        yield http


async def test_page_lists_events_with_their_state(
    ui: httpx.AsyncClient, context: ServiceContext
) -> None:
    transport = httpx.ASGITransport(app=create_api(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        created = await client.post(
            "/api/events", json={"type": "door.opened", "subject": "<b>x</b>"}
        )
    event_id = created.json()["event"]["id"]
    page = await ui.get("/")
    assert page.status_code == 200
    assert f'data-event-id="{event_id}"' in page.text
    assert "door.opened" in page.text
    assert "status-received" in page.text
    assert "&lt;b&gt;x&lt;/b&gt;" in page.text  # escaped, never injected
    assert '<script src="/static/live.js"' in page.text
    assert 'data-stream="/stream"' in page.text
    partial = await ui.get("/partials/events")
    assert event_id in partial.text
    assert "<html" not in partial.text


async def test_static_script_is_served_from_the_package(ui: httpx.AsyncClient) -> None:
    script = await ui.get("/static/live.js")
    assert script.status_code == 200
    assert "data-live" in script.text
    assert "new EventSource(" in script.text


async def test_unreachable_api_is_shown_not_raised() -> None:
    api = ApiClient("http://127.0.0.1:9")  # discard port: nothing listens
    async with ui_client(api) as http:
        page = await http.get("/")
    await api.aclose()
    assert page.status_code == 503
    assert "API at http://127.0.0.1:9 failed" in page.text


async def test_healthz_answers_without_the_api(ui: httpx.AsyncClient) -> None:
    assert (await ui.get("/healthz")).json() == {"status": "ok"}
