"""GET /stream: the API's event stream for the dashboard, relayed as Server-Sent Events
carrying rendered table rows that `static/live.js` puts in place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import StreamingResponse

from lightning_ui import sse
from lightning_ui.api_client import ApiClient, ApiUnavailable
from lightning_ui.auth import caller_of
from lightning_ui.pages import templates

RECONNECT_MS = 1000  # how soon the browser reconnects after the stream ends
T = TypeVar("T")


async def stream(request: Request) -> StreamingResponse:
    """Rows as the API reports changes; `ready` when a fresh rendering is due. Always 200
    once signed in: an EventSource gives up for good on an error status, not on an end."""
    caller = await caller_of(request)
    stop: asyncio.Event = request.app.state.stop
    return StreamingResponse(
        _rows(caller.api, stop),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _rows(api: ApiClient, stop: asyncio.Event) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    row = templates.get_template("_event_row.html")
    try:
        async for change in until(stop, api.changes()):
            if change.record is not None:
                yield sse.message("row", row.render(record=change.record))
            elif change.kind == "ready":
                yield sse.message("ready", "{}")
            else:
                yield ": ping\n\n"
    except ApiUnavailable as problem:
        yield sse.message("unavailable", str(problem))


async def until(stop: asyncio.Event, items: AsyncGenerator[T]) -> AsyncIterator[T]:
    """`items` until they end or `stop` is set, then close them (uvicorn waits for open
    responses before it exits)."""
    stopping = asyncio.ensure_future(stop.wait())
    step: asyncio.Future[T] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(items))
            await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                return
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        stopping.cancel()
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait({step})  # the generator must be idle before it is closed
        await items.aclose()
