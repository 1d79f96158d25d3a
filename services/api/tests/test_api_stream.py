"""GET /api/events/stream over real HTTP: httpx's ASGI transport buffers whole responses,
so an endless stream needs a real server (uvicorn in this event loop, as the runtime runs it)."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
import httpx
import pytest

from lightning_api import event_changes, stream
from lightning_api.app import create_app
from lightning_api.auth import TokenValidator
from lightning_api.stream_watchers import SLOW
from lightning_core.config import Mode, TokenVersion
from lightning_core.events import CloudEvent
from lightning_core.http import serve_asgi
from lightning_core.records import EventRecord, mark_processed, record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.entra_fake import EntraTokens, new_key
from lightning_core.testing.machine import free_port


@dataclass
class Message:
    event: str | None = None
    data: Any = None
    comment: str | None = None
    id: str | None = None


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
        elif line.startswith("id: "):
            message.id = line.removeprefix("id: ")


async def serve(
    context: ServiceContext, validator: TokenValidator | None = None
) -> AsyncIterator[Server]:
    stop = asyncio.Event()
    port = free_port()
    app = create_app(context, validator, stop=stop)
    task = asyncio.create_task(serve_asgi(app, "127.0.0.1", port, stop))
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


def changed(message: Message) -> tuple[str | None, str]:
    return message.event, message.data["event"]["id"]


async def test_a_reconnecting_client_receives_exactly_the_changes_it_missed(
    server: Server, context: ServiceContext
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        async with client.stream("GET", "/api/events/stream") as response:
            stream = messages(response)
            ready = await next_message(stream)
            assert (ready.event, ready.data) == ("ready", {"resumed": False})
            first = (await client.post("/api/events", json={"type": "a"})).json()["event"]
            assert changed(await next_message(stream)) == ("received", first["id"])
            await mark_processed(context.storage, CloudEvent.model_validate(first))
            last = await next_message(stream)
            assert changed(last) == ("processed", first["id"])
        # Gone (a proxy closed it, a replica stopped): meanwhile two more come, one is processed.
        second = (await client.post("/api/events", json={"type": "b"})).json()["event"]
        third = (await client.post("/api/events", json={"type": "c"})).json()["event"]
        await mark_processed(context.storage, CloudEvent.model_validate(second))

        assert last.id is not None
        resume = {"Last-Event-ID": last.id}
        async with client.stream("GET", "/api/events/stream", headers=resume) as response:
            stream = messages(response)
            ready = await next_message(stream)
            assert (ready.event, ready.data, ready.id) == ("ready", {"resumed": True}, last.id)
            missed = [changed(await next_message(stream)) for _ in range(2)]
            assert missed == [("received", third["id"]), ("processed", second["id"])]
            fourth = (await client.post("/api/events", json={"type": "d"})).json()["event"]
            assert changed(await next_message(stream)) == ("received", fourth["id"])


async def test_a_stream_resumes_from_its_ready_message_too(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        async with client.stream("GET", "/api/events/stream") as response:
            ready = await next_message(messages(response))
        assert ready.id is not None
        submitted = (await client.post("/api/events", json={"type": "a"})).json()["event"]
        resume = {"Last-Event-ID": ready.id}
        async with client.stream("GET", "/api/events/stream", headers=resume) as response:
            stream = messages(response)
            assert (await next_message(stream)).data == {"resumed": True}
            assert changed(await next_message(stream)) == ("received", submitted["id"])


@pytest.mark.parametrize(
    "last_event_id",
    [
        "garbage",
        "2026-01-01T00:00:00 naive-time",
        "2999-01-01T00:00:00+00:00 from-the-future",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-05:00",
        "1969-12-31T23:59:59+00:00",
        "x" * 5000,
    ],
)
async def test_a_forged_or_garbled_last_event_id_starts_a_fresh_stream(
    server: Server, context: ServiceContext, last_event_id: str
) -> None:
    await record_received(
        context.storage, CloudEvent(user=context.settings.dev_user, source="t", type="old")
    )
    resume = {"Last-Event-ID": last_event_id}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/api/events/stream", headers=resume) as response,
    ):
        assert response.status_code == 200
        stream = messages(response)
        assert (await next_message(stream)).data == {"resumed": False}
        new = (await client.post("/api/events", json={"type": "new"})).json()["event"]
        assert changed(await next_message(stream)) == ("received", new["id"])  # not the old one


async def test_a_client_too_far_behind_gets_a_fresh_stream_to_list_from(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_changes, "REPLAY_LIMIT", 2)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        async with client.stream("GET", "/api/events/stream") as response:
            ready = await next_message(messages(response))
        for kind in ("a", "b", "c"):
            await client.post("/api/events", json={"type": kind})
        assert ready.id is not None
        resume = {"Last-Event-ID": ready.id}
        async with client.stream("GET", "/api/events/stream", headers=resume) as response:
            stream = messages(response)
            assert (await next_message(stream)).data == {"resumed": False}
            new = (await client.post("/api/events", json={"type": "new"})).json()["event"]
            assert changed(await next_message(stream)) == ("received", new["id"])


async def test_the_streams_of_one_user_share_one_watcher(context: ServiceContext) -> None:
    async with CountingStorage(context.settings.sqlite_path) as storage:
        counted = ServiceContext(context.settings, storage, context.bus)
        async for running in serve(counted):
            async with (
                httpx.AsyncClient(base_url=running.url, timeout=10) as client,
                contextlib.AsyncExitStack() as opened,
            ):
                streams = []
                for _ in range(5):
                    response = await opened.enter_async_context(
                        client.stream("GET", "/api/events/stream")
                    )
                    streams.append(messages(response))
                    assert (await next_message(streams[-1])).event == "ready"
                before = CountingStorage.queries
                await asyncio.sleep(SLOW * 3)
                # One watcher: two queries a look, a look each SLOW (five watchers: 30).
                assert CountingStorage.queries - before <= 2 * 5

                submitted = (await client.post("/api/events", json={"type": "a"})).json()
                for stream in streams:
                    assert changed(await next_message(stream)) == (
                        "received",
                        submitted["event"]["id"],
                    )


async def test_one_stream_past_the_users_cap_is_refused(context: ServiceContext) -> None:
    capped = context.settings.model_copy(update={"max_streams_per_user": 2})
    async for running in serve(ServiceContext(capped, context.storage, context.bus)):
        async with (
            httpx.AsyncClient(base_url=running.url, timeout=10) as client,
            contextlib.AsyncExitStack() as opened,
        ):
            streams = []  # held: a dropped line iterator closes its stream
            for _ in range(2):
                response = await opened.enter_async_context(
                    client.stream("GET", "/api/events/stream")
                )
                streams.append(messages(response))
                assert (await next_message(streams[-1])).event == "ready"
            refused = await client.get("/api/events/stream")
            assert refused.status_code == 429
            assert refused.headers["retry-after"].isdigit()
            assert refused.json() == {
                "detail": "2 event streams are open for this user "
                "(LIGHTNING_MAX_STREAMS_PER_USER): close one, then retry"
            }
            await opened.aclose()  # the client closes its two streams
            for _ in range(50):
                async with client.stream("GET", "/api/events/stream") as response:
                    if response.status_code == 200:
                        break
                await asyncio.sleep(0.1)  # the server notices the closed connections
            assert response.status_code == 200


TENANT = "8c2b6a47-5c39-4d8a-9b0e-1f2a3b4c5d6e"
API_CLIENT_ID = "3f1c9a2e-7b4d-4e6f-8a9b-0c1d2e3f4a5b"


async def test_the_streams_of_two_users_are_isolated(context: ServiceContext) -> None:
    tokens = EntraTokens(tenant=TENANT, audience=API_CLIENT_ID, version=2, key=new_key())

    async def keys() -> dict[str, Any]:
        return tokens.keys()

    validator = TokenValidator(
        issuer=f"https://login.microsoftonline.com/{TENANT}/v2.0",
        audience=API_CLIENT_ID,
        version=TokenVersion(2),
        fetch_jwks=keys,
    )
    settings = context.settings.model_copy(update={"mode": Mode.AZURE, "max_streams_per_user": 1})
    azure = ServiceContext(settings, context.storage, context.bus)
    as_user = {user: {"Authorization": f"Bearer {tokens.user(user)}"} for user in ("al", "bo")}
    async for running in serve(azure, validator):
        async with (
            httpx.AsyncClient(base_url=running.url, timeout=10) as client,
            client.stream("GET", "/api/events/stream", headers=as_user["al"]) as als,
            client.stream("GET", "/api/events/stream", headers=as_user["bo"]) as bos,
        ):
            al_stream, bo_stream = messages(als), messages(bos)  # one each: the cap is per user
            assert (await next_message(al_stream)).event == "ready"
            assert (await next_message(bo_stream)).event == "ready"
            posted = {}
            for user in ("al", "bo"):
                response = await client.post(
                    "/api/events", json={"type": user}, headers=as_user[user]
                )
                posted[user] = response.json()["event"]["id"]
            assert changed(await next_message(al_stream)) == ("received", posted["al"])
            assert changed(await next_message(bo_stream)) == ("received", posted["bo"])


async def test_a_resumed_stream_reports_once_what_its_replay_and_its_watcher_both_saw(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = asyncio.Event()

    class HeldResume(event_changes.EventChanges):
        async def resume(self, after: event_changes.Position) -> list[EventRecord] | None:
            await go.wait()
            return await super().resume(after)

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/api/events/stream") as other,
    ):
        others = messages(other)  # held open: the user's watcher keeps running throughout
        assert (await next_message(others)).event == "ready"
        async with client.stream("GET", "/api/events/stream") as response:
            ready = await next_message(messages(response))
        assert ready.id is not None

        monkeypatch.setattr(stream, "EventChanges", HeldResume)
        resume = {"Last-Event-ID": ready.id}
        async with client.stream("GET", "/api/events/stream", headers=resume) as response:
            resumed = messages(response)
            # While its replay waits, the watcher feeds the resuming stream this change too.
            both = (await client.post("/api/events", json={"type": "a"})).json()["event"]
            assert changed(await next_message(others)) == ("received", both["id"])
            go.set()
            assert (await next_message(resumed)).data == {"resumed": True}
            assert changed(await next_message(resumed)) == ("received", both["id"])
            after = (await client.post("/api/events", json={"type": "b"})).json()["event"]
            assert changed(await next_message(resumed)) == ("received", after["id"])
