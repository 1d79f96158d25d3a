"""Server-rendered pages: the recent events and their processing state, updated live.

The page is rendered whole once; `/stream` then relays the API's event stream to the
browser as Server-Sent Events carrying rendered table rows, so the browser needs no
templates of its own and `static/live.js` only puts rows in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TypeVar

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lightning_ui.api_client import ApiClient, ApiUnavailable

STATIC = Path(__file__).parent / "static"
RECONNECT_MS = 1000  # how soon the browser reconnects after the stream ends
_templates = Environment(
    loader=PackageLoader("lightning_ui", "templates"), autoescape=select_autoescape()
)
T = TypeVar("T")


def sse(event: str, data: str) -> str:
    """One Server-Sent Events message; each line of `data` gets its own `data:` field."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


async def until(stop: asyncio.Event, items: AsyncGenerator[T]) -> AsyncIterator[T]:
    """`items` until they end or `stop` is set, then close them.

    uvicorn waits for open responses before it exits, and a relay is usually waiting
    on the API, so it has to give up on the API the moment the service stops.
    """
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


def create_app(api: ApiClient, *, stop: asyncio.Event | None = None) -> Starlette:
    """The UI over an API client; `stop` (the runtime's) ends the open `/stream`s."""
    stopped = stop or asyncio.Event()

    async def render(template: str) -> HTMLResponse:
        try:
            events, error = await api.recent_events(), None
        except ApiUnavailable as problem:
            events, error = [], str(problem)
        html = _templates.get_template(template).render(events=events, error=error)
        return HTMLResponse(html, status_code=503 if error else 200)

    async def index(_request: Request) -> HTMLResponse:
        return await render("index.html")

    async def events_partial(_request: Request) -> HTMLResponse:
        return await render("_events.html")

    async def relay() -> AsyncIterator[str]:
        yield f"retry: {RECONNECT_MS}\n\n"
        row = _templates.get_template("_event_row.html")
        try:
            async for change in until(stopped, api.changes()):
                if change.record is not None:
                    yield sse("row", row.render(record=change.record))
                elif change.kind == "ready":
                    yield sse("ready", "{}")
                else:
                    yield ": ping\n\n"
        except ApiUnavailable as problem:
            yield sse("unavailable", str(problem))

    async def stream(_request: Request) -> StreamingResponse:
        """Rows as the API reports changes; `ready` when a fresh rendering is due.

        Always 200: an EventSource gives up for good on an error status, while a stream
        that ends (the API went away) is retried after RECONNECT_MS.
        """
        return StreamingResponse(
            relay(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/partials/events", events_partial),
            Route("/stream", stream),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
