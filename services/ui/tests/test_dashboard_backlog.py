"""The dashboard shows the processor's backlog from the API's /readyz, and says when it is
past the bound at which the API refuses new events."""

import re
from collections.abc import Callable

import httpx

from lightning_api.app import create_app as create_api
from lightning_core.bus.memory import MemoryBus
from lightning_core.service import ServiceContext
from lightning_ui.api_client import ApiClient

UiClient = Callable[[ApiClient], httpx.AsyncClient]  # the `ui_client` fixture


class BackloggedBus(MemoryBus):
    def __init__(self, depth: int) -> None:
        super().__init__()
        self.depth = depth

    async def backlog(self, _group: str) -> int | None:
        return self.depth


async def dashboard(context: ServiceContext, depth: int, ui_client: UiClient) -> str:
    settings = context.settings.model_copy(update={"max_backlog": 10})
    async with BackloggedBus(depth) as bus:
        app = create_api(ServiceContext(settings, context.storage, bus))
        api = ApiClient("http://api", transport=httpx.ASGITransport(app=app))
        async with ui_client(api) as ui:
            page = (await ui.get("/")).text
        await api.aclose()
    found = re.search(r'<li class="sub" data-check="backlog">.*?</li>', page, re.DOTALL)
    assert found is not None
    return found.group()


async def test_the_dashboard_shows_the_backlog_within_the_bound(
    context: ServiceContext, ui_client: UiClient
) -> None:
    line = await dashboard(context, 3, ui_client)
    assert 'class="dot ok"' in line
    assert "3 waiting (at most 10)" in line


async def test_the_dashboard_says_when_new_events_are_refused(
    context: ServiceContext, ui_client: UiClient
) -> None:
    line = await dashboard(context, 11, ui_client)
    assert 'class="dot bad"' in line
    assert "11 waiting, past 10: new events are refused" in line


async def test_an_api_without_a_backlog_shows_none() -> None:
    async def readyz(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"storage": "ok", "bus": "ok"})

    api = ApiClient("http://api", transport=httpx.MockTransport(readyz))
    readiness = await api.readiness()
    await api.aclose()
    assert (readiness.checks, readiness.backlog) == ({"storage": "ok", "bus": "ok"}, None)
