"""Webhook tasks against real HTTP servers on loopback: the allow-list compares origins
exactly (IPv6 too), a slow target holds the worker no longer than the total deadline, and
a huge reply is read no further than the byte cap."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from lightning_core.bus.memory import MemoryBus
from lightning_core.domain import TASK_REQUESTED, TASKS, Task, TaskKind, TaskStatus
from lightning_core.events import CloudEvent
from lightning_core.storage.sqlite import SqliteStorage
from lightning_processor.drivers import Registry, TaskRunner
from lightning_processor.drivers.base import SOURCE
from lightning_processor.drivers.tasks import TaskError, origin
from lightning_processor.handler import Processor

DEADLINE = 1.0
CAP = 64 * 1024
HUGE = 50 * 1024 * 1024
CHUNK = b"x" * (256 * 1024)

Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    await reader.readexactly(length)


Serve = Callable[[Reply], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts loopback HTTP servers answering every POST with a reply; yields their URL."""
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await _read_request(reader)
                await reply(writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the runner hung up: what these tests want
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def run_webhook(storage: SqliteStorage, bus: MemoryBus, url: str) -> Task:
    runner = TaskRunner(
        webhook_origins=[url], webhook_deadline=DEADLINE, webhook_max_response_bytes=CAP
    )
    processor = Processor(storage, bus, Registry([runner]), max_follow_ups=100)
    task = Task(user="alice", kind=TaskKind.WEBHOOK, params={"url": url}, max_attempts=1)
    await storage.create(TASKS, "alice", task.id, task.model_dump(mode="json"))
    await processor.handle(
        CloudEvent(source=SOURCE, type=TASK_REQUESTED, user="alice", data={"task_id": task.id})
    )
    return Task.model_validate((await storage.get(TASKS, "alice", task.id)).body)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://[::1:8080]/", "http://[::1:8080]:80"),
        ("http://[::1]:8080/x", "http://[::1]:8080"),
        ("HTTPS://Hooks.Example.com/in", "https://hooks.example.com:443"),
        ("https://hooks.example.com:443", "https://hooks.example.com:443"),
        ("http://hooks.example.com:80/", "http://hooks.example.com:80"),
        ("http://bücher.example/", "http://xn--bcher-kva.example:80"),
        ("http://hooks.example.com\\@evil.example/", "http://evil.example:80"),
    ],
)
def test_origins_are_normalised_and_keep_ipv6_brackets(url: str, expected: str) -> None:
    assert origin(url) == expected


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http:///x", "http://[::1/", "hooks"])
def test_what_is_not_an_http_url_has_no_origin(url: str) -> None:
    with pytest.raises(TaskError, match="not an http"):
        origin(url)


async def test_an_ipv6_url_outside_the_allow_list_is_refused(
    storage: SqliteStorage, bus: MemoryBus
) -> None:
    """`[::1:8080]` is the host ::1:8080 on port 80, not ::1 on port 8080."""
    runner = TaskRunner(webhook_origins=["http://[::1]:8080"])
    processor = Processor(storage, bus, Registry([runner]), max_follow_ups=100)
    task = Task(
        user="alice", kind=TaskKind.WEBHOOK, params={"url": "http://[::1:8080]/"}, max_attempts=1
    )
    await storage.create(TASKS, "alice", task.id, task.model_dump(mode="json"))
    await processor.handle(
        CloudEvent(source=SOURCE, type=TASK_REQUESTED, user="alice", data={"task_id": task.id})
    )
    failed = Task.model_validate((await storage.get(TASKS, "alice", task.id)).body)
    assert failed.error == "TaskError: webhook origin http://[::1:8080]:80 is not allow-listed"


async def _drip_head(writer: asyncio.StreamWriter) -> None:
    """The status line and headers one byte at a time: each read alone is quick."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Slow: " + b"a" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.05)


async def _drip_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("reply", [_drip_head, _drip_body], ids=["head", "body"])
async def test_a_dripping_target_holds_the_worker_no_longer_than_the_deadline(
    storage: SqliteStorage,
    bus: MemoryBus,
    serve: Serve,
    reply: Reply,
) -> None:
    """The target would take 5 s in all, a byte every 50 ms (no single read is slow)."""
    url = await serve(reply)
    started = time.monotonic()
    failed = await run_webhook(storage, bus, url)
    elapsed = time.monotonic() - started
    assert DEADLINE <= elapsed < DEADLINE + 1.0
    assert failed.status is TaskStatus.FAILED
    assert failed.error == (
        f"TaskError: webhook {origin(url)} did not answer in full within 1 s "
        "(LIGHTNING_WEBHOOK_DEADLINE_SECONDS)"
    )


async def test_a_huge_reply_is_read_only_up_to_the_cap(
    storage: SqliteStorage, bus: MemoryBus, serve: Serve
) -> None:
    """50 MB on offer; the runner reads the cap's worth, memory stays flat, and the status
    decides: the task succeeds and its result says the body was cut."""
    sent: list[int] = []

    async def huge(writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n".encode())
        for _ in range(HUGE // len(CHUNK)):
            writer.write(CHUNK)
            await writer.drain()
            sent.append(len(CHUNK))

    url = await serve(huge)
    tracemalloc.start()
    try:
        done = await run_webhook(storage, bus, url)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done.status is TaskStatus.SUCCEEDED, done.error
    assert done.result == {"status_code": 200, "body_bytes": CAP, "body_truncated": True}
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while reading the reply"
    await asyncio.sleep(0.1)  # the server notices the closed connection
    assert sum(sent) < HUGE
