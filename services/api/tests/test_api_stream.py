"""GET /api/events/stream over real HTTP: httpx's ASGI transport buffers whole responses,
so an endless stream needs a real server (uvicorn in this event loop, as the runtime runs it)."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
import httpx
import pytest

from conftest import free_port
from lightning_api.app import create_app
from lightning_core.events import CloudEvent
from lightning_core.http import serve_asgi
from lightning_core.records import mark_processed, record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage


@dataclass
class Message:
    event: str | None = None
    data: Any = None
    comment: str | None = None


@dataclass
class Server:
    url: str
    stop: asyncio.Event
    task: asyncio.Task[None]


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The SSE messages of a response (one `data:` line each, as the API sends them)."""
    message = Message()
    async for line in response.aiter_lines():
        if not line:
            yield message
            message = Message()
        elif line.startswith(":"):
            message.comment = line[1:].strip()
        elif line.startswith("event: "):
            message.event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            message.data = json.loads(line.removeprefix("data: "))


async def serve(context: ServiceContext) -> AsyncIterator[Server]:
    stop = asyncio.Event()
    port = free_port()
    task = asyncio.create_task(serve_asgi(create_app(context, stop=stop), "127.0.0.1", port, stop))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.get(f"{url}/healthz")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
    yield Server(url, stop, task)
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def server(context: ServiceContext) -> AsyncIterator[Server]:
    async for running in serve(context):
        yield running


async def next_message(stream: AsyncIterator[Message], *, skip_comments: bool = True) -> Message:
    async with asyncio.timeout(5):
        async for message in stream:
            if message.comment is None or not skip_comments:
                return message
    raise AssertionError("the stream ended")


async def test_streams_new_events_and_their_processing(
    server: Server, context: ServiceContext
) -> None:
    before = await record_received(
        context.storage, CloudEvent(user=context.settings.dev_user, source="t", type="old")
    )
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/api/events/stream") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = messages(response)
        assert (await next_message(stream)).event == "ready"

        submitted = (await client.post("/api/events", json={"type": "door.opened"})).json()
        received = await next_message(stream)
        assert (received.event, received.data) == ("received", submitted)

        await mark_processed(context.storage, CloudEvent.model_validate(submitted["event"]))
        processed = await next_message(stream)
        assert processed.event == "processed"
        assert processed.data["event"]["id"] == submitted["event"]["id"]
        assert processed.data["processed_at"] is not None

        # Known before the stream opened: not news, but its processing is.
        await mark_processed(context.storage, before.event)
        later = await next_message(stream)
        assert (later.event, later.data["event"]["id"]) == ("processed", before.event.id)


async def test_streams_only_the_callers_events(server: Server, context: ServiceContext) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/api/events/stream") as response,
    ):
        stream = messages(response)
        assert (await next_message(stream)).event == "ready"
        theirs = CloudEvent(user="someone-else", source="t", type="secret")
        await record_received(context.storage, theirs)
        await mark_processed(context.storage, theirs)
        mine = (await client.post("/api/events", json={"type": "mine"})).json()
        only = await next_message(stream)
        assert only.data["event"]["id"] == mine["event"]["id"]


async def test_heartbeats_keep_an_idle_stream_open(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.2)  # 15 s in production
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/api/events/stream") as response,
    ):
        stream = messages(response)
        assert (await next_message(stream)).event == "ready"
        assert (await next_message(stream, skip_comments=False)).comment == "ping"


async def test_stream_ends_when_the_service_stops(server: Server) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/api/events/stream") as response,
    ):
        stream = messages(response)
        assert (await next_message(stream)).event == "ready"
        server.stop.set()
        async with asyncio.timeout(5):
            rest = [message async for message in stream]
    assert all(message.comment is not None for message in rest)
    await asyncio.wait_for(server.task, 5)  # uvicorn was not left waiting on the stream


class CountingStorage(SqliteStorage):
    queries = 0

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        CountingStorage.queries += 1
        return await super().query(*args, **kwargs)


async def test_stream_stops_polling_when_the_client_goes(context: ServiceContext) -> None:
    async with CountingStorage(context.settings.sqlite_path) as storage:
        counted = ServiceContext(context.settings, storage, context.bus)
        async for running in serve(counted):
            async with (
                httpx.AsyncClient(base_url=running.url, timeout=10) as client,
                client.stream("GET", "/api/events/stream") as response,
            ):
                stream = messages(response)  # held: a dropped line iterator closes it
                assert (await next_message(stream)).event == "ready"
                while_open = CountingStorage.queries
                await asyncio.sleep(0.6)
                assert CountingStorage.queries > while_open  # it does poll while open
            await asyncio.sleep(0.3)  # the server notices the closed connection
            after_close = CountingStorage.queries
            await asyncio.sleep(1)
            assert CountingStorage.queries == after_close
