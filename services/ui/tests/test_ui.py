from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from lightning_api.app import create_app as create_api
from lightning_core.service import ServiceContext
from lightning_ui.api_client import ApiClient

UiClient = Callable[[ApiClient], httpx.AsyncClient]  # the `ui_client` fixture


@pytest.fixture
async def ui(ui_api: ApiClient, ui_client: UiClient) -> AsyncIterator[httpx.AsyncClient]:
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


async def test_unreachable_api_is_shown_not_raised(ui_client: UiClient) -> None:
    api = ApiClient("http://127.0.0.1:9")  # discard port: nothing listens
    async with ui_client(api) as http:
        page = await http.get("/")
    await api.aclose()
    assert page.status_code == 503
    assert "API at http://127.0.0.1:9 failed" in page.text


SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'",
}


async def test_every_response_carries_the_security_headers(ui: httpx.AsyncClient) -> None:
    answers = [
        await ui.get(path)
        for path in ("/", "/partials/events", "/static/live.js", "/healthz", "/favicon.ico")
    ]
    answers += [
        await ui.get("/no/such/page", headers={"accept": "text/html"}),
        await ui.post("/instructions", content="x", headers={"content-type": "text/plain"}),
        await ui.post("/tasks/t-1/cancel", headers={"origin": "https://evil.example"}),
    ]
    for answer in answers:
        assert {name: answer.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


async def test_unknown_addresses_are_a_page_for_browsers_and_json_for_scripts(
    ui: httpx.AsyncClient,
) -> None:
    page = await ui.get("/no/such/page", headers={"accept": "text/html,*/*;q=0.8"})
    assert (page.status_code, page.headers["content-type"]) == (404, "text/html; charset=utf-8")
    assert "<h1>Not found</h1>" in page.text
    assert '<link rel="stylesheet" href="/static/style.css">' in page.text
    assert 'href="/instructions"' in page.text  # the navigation, as on every page
    odd = await ui.get("/<b>x</b>", headers={"accept": "text/html"})
    assert "<code>/&lt;b&gt;x&lt;/b&gt;</code>" in odd.text  # escaped, never injected
    wrong = await ui.get("/tasks/t-1/cancel", headers={"accept": "text/html"})
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert "<h1>Not allowed</h1>" in wrong.text
    script = await ui.get("/no/such/page")
    assert (script.status_code, script.json()) == (404, {"error": "not found: GET /no/such/page"})
    button = await ui.post("/stream")
    assert (button.status_code, button.json()) == (405, {"error": "not allowed: POST /stream"})
    icon = await ui.get("/favicon.ico")
    assert (icon.status_code, icon.headers["content-type"]) == (200, "image/svg+xml")
    assert icon.text.startswith("<svg ")


async def test_healthz_answers_without_the_api(ui: httpx.AsyncClient) -> None:
    assert (await ui.get("/healthz")).json() == {"status": "ok"}
