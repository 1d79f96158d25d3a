"""The UI's /stream relays the API's event stream as rendered rows, over real HTTP (httpx's
ASGI transport buffers whole responses, so endless streams need real servers)."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from lightning_api.app import create_app as create_api
from lightning_core.asgi import ASGIApp
from lightning_core.events import CloudEvent
from lightning_core.http import serve_asgi
from lightning_core.records import mark_processed
from lightning_core.service import ServiceContext
from lightning_core.testing.machine import free_port
from lightning_ui import sse
from lightning_ui.api_client import ApiClient, ApiUnavailable
from lightning_ui.app import create_app


async def started(app: ASGIApp, stop: asyncio.Event) -> tuple[str, asyncio.Task[None]]:
    port = free_port()
    task = asyncio.create_task(serve_asgi(app, "127.0.0.1", port, stop))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.get(f"{url}/healthz")
                return url, task
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on {url}")


async def blocks(response: httpx.Response) -> AsyncIterator[str]:
    """The raw SSE messages, blank-line separated, as the browser would split them (at CR
    and LF only: httpx's `aiter_lines` also splits at U+2028 and the like)."""
    lines: list[str] = []
    async for line in sse.lines(response.aiter_text()):
        if line:
            lines.append(line)
        elif lines:
            yield "\n".join(lines)
            lines = []


async def next_block(stream: AsyncIterator[str]) -> str:
    async with asyncio.timeout(5):
        async for block in stream:
            if not block.startswith((":", "retry:")):
                return block
    raise AssertionError("the stream ended")


async def test_stream_relays_changes_as_rendered_rows(context: ServiceContext) -> None:
    api_stop, ui_stop = asyncio.Event(), asyncio.Event()
    api_url, api_task = await started(create_api(context, stop=api_stop), api_stop)
    api = ApiClient(api_url)
    ui_url, ui_task = await started(create_app(api, stop=ui_stop), ui_stop)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{ui_url}/stream") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = blocks(response)
        assert await next_block(stream) == "event: ready\ndata: {}"

        posted = await client.post(
            f"{api_url}/api/events", json={"type": "door.opened", "subject": "<b>x</b>"}
        )
        event = CloudEvent.model_validate(posted.json()["event"])
        received = await next_block(stream)
        assert received.startswith("event: row\ndata: ")
        assert f'data-event-id="{event.id}"' in received
        assert "status-received" in received
        assert "&lt;b&gt;x&lt;/b&gt;" in received  # escaped, never injected

        await mark_processed(context.storage, event)
        assert "status-processed" in await next_block(stream)

        ui_stop.set()  # the UI stops while the API still streams to it
        async with asyncio.timeout(5):
            assert [block async for block in stream if not block.startswith(":")] == []
    await asyncio.wait_for(ui_task, 5)
    api_stop.set()
    await asyncio.wait_for(api_task, 5)
    await api.aclose()


async def test_unicode_line_separators_in_an_event_pass_through_the_relay_unharmed(
    context: ServiceContext,
) -> None:
    odd = "a\u2028b\u2029c\u0085d\x1ce\x0bf"  # line ends to str.splitlines, not to SSE
    api_stop, ui_stop = asyncio.Event(), asyncio.Event()
    api_url, api_task = await started(create_api(context, stop=api_stop), api_stop)
    api = ApiClient(api_url)
    ui_url, ui_task = await started(create_app(api, stop=ui_stop), ui_stop)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{ui_url}/stream") as response,
    ):
        stream = blocks(response)
        assert await next_block(stream) == "event: ready\ndata: {}"
        posted = await client.post(
            f"{api_url}/api/events",
            json={"type": "door.opened", "subject": odd, "data": {"note": odd, odd: "x"}},
        )
        event = CloudEvent.model_validate(posted.json()["event"])
        received = await next_block(stream)
        assert received.startswith("event: row\ndata: ")
        assert f"<td>{odd}</td>" in received  # within one data line, as it was sent
        await mark_processed(context.storage, event)
        assert "status-processed" in await next_block(stream)  # the stream goes on
    ui_stop.set()
    await asyncio.wait_for(ui_task, 5)
    api_stop.set()
    await asyncio.wait_for(api_task, 5)
    await api.aclose()


async def test_stream_says_when_the_api_is_unreachable() -> None:
    api = ApiClient("http://127.0.0.1:9")  # discard port: nothing listens
    stop = asyncio.Event()
    ui_url, ui_task = await started(create_app(api, stop=stop), stop)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{ui_url}/stream")  # ends by itself
    assert response.status_code == 200  # an EventSource retries only after a 200
    assert response.text.startswith("retry: 1000\n\n")
    assert "event: unavailable\ndata: API stream at http://127.0.0.1:9 failed" in response.text
    stop.set()
    await asyncio.wait_for(ui_task, 5)
    await api.aclose()


async def test_a_message_the_ui_does_not_know_is_skipped_and_an_unreadable_record_said() -> None:
    def stream(_request: httpx.Request) -> httpx.Response:
        body = (
            "event: ready\ndata: {}\n\n"
            'event: archived\ndata: {"a status": "this UI does not know"}\n\n'
            "event: received\ndata: {not a record\n\n"
        )
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    api = ApiClient("http://api", transport=httpx.MockTransport(stream))
    changes = api.changes()
    assert [(await anext(changes)).kind for _ in range(2)] == ["ready", "heartbeat"]
    with pytest.raises(ApiUnavailable, match=r"sent an unreadable 'received' record: Invalid JSON"):
        await anext(changes)
    await api.aclose()
