"""serve_asgi through a real uvicorn server: the Host names each mode answers, and the
connection guards with either of uvicorn's HTTP/1.1 protocols."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from lightning_core import http
from lightning_core.asgi import ASGIApp
from lightning_core.config import Settings, load_settings
from lightning_core.http import MAX_HEAD_BYTES, GuardedH11, RepeatFilter, host_name, serve_asgi
from lightning_core.testing.machine import free_port


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("LIGHTNING_MODE", "LIGHTNING_ALLOWED_HOSTS", "LIGHTNING_HOST", "SERVICE_TYPE"):
        monkeypatch.delenv(name, raising=False)


async def hello(scope: Any, _receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@asynccontextmanager
async def serving(settings: Settings | None) -> AsyncIterator[Callable[..., Any]]:
    """A real server for `hello` with `settings`; yields `get(host, path="/")`."""
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(serve_asgi(hello, "127.0.0.1", port, stop, settings=settings))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

        async def get(host: str, path: str = "/") -> int:
            for _ in range(50):
                try:
                    response = await client.get(path, headers={"Host": host})
                    return response.status_code
                except httpx.ConnectError:  # still starting
                    await asyncio.sleep(0.05)
            pytest.fail("the server never started")

        try:
            yield get
        finally:
            stop.set()
            await task


LOCAL_HOSTS = ["127.0.0.1:8000", "localhost", "LOCALHOST:8080", "[::1]:8000", "api:8000", "ui"]


@pytest.mark.parametrize("mode", ["embedded", "local"])
async def test_local_modes_answer_only_their_own_names(mode: str) -> None:
    settings = load_settings(LIGHTNING_MODE=mode, SERVICE_TYPE="ui")
    async with serving(settings) as get:
        for host in LOCAL_HOSTS:
            assert await get(host) == 200, host
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::2]", ""):
            assert await get(host) == 400, host
        # Health probes from an orchestrator carry the container's address as Host.
        for path in ("/healthz", "/readyz"):
            assert await get("10.0.0.7:8000", path) == 200


async def test_listed_names_are_answered_too() -> None:
    settings = load_settings(
        SERVICE_TYPE="ui",
        LIGHTNING_ALLOWED_HOSTS="lightning.lan, *.example.org",
        LIGHTNING_HOST="0.0.0.0",  # noqa: S104 - a name, never bound here
    )
    async with serving(settings) as get:
        for host in ("lightning.lan:8000", "a.example.org", "0.0.0.0:8000", "localhost"):
            assert await get(host) == 200, host
        for host in ("example.org", "lightning.lan.evil.example"):
            assert await get(host) == 400, host


async def test_azure_checks_only_when_names_are_listed() -> None:
    anywhere = load_settings(LIGHTNING_MODE="azure", SERVICE_TYPE="ui")
    async with serving(anywhere) as get:
        assert await get("lightning-abc.azurefd.net") == 200
    listed = load_settings(
        LIGHTNING_MODE="azure", SERVICE_TYPE="ui", LIGHTNING_ALLOWED_HOSTS="*.azurefd.net"
    )
    async with serving(listed) as get:
        assert await get("lightning-abc.azurefd.net") == 200
        assert await get("localhost") == 400
        assert await get("10.0.0.7", "/healthz") == 200


async def test_without_settings_only_loopback_names_are_answered() -> None:
    async with serving(None) as get:
        assert await get("127.0.0.1") == 200
        assert await get("evil.example") == 400


async def test_a_request_without_host_is_refused() -> None:
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(serve_asgi(hello, "127.0.0.1", port, stop))
    await asyncio.sleep(0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    status = await reader.readline()
    writer.close()
    stop.set()
    await task
    assert status.startswith(b"HTTP/1.1 400")


def test_host_names_lose_ports_brackets_and_case() -> None:
    assert host_name("[::1]:8000") == "::1"
    assert host_name("Example.COM.:443") == "example.com"
    assert host_name("[::1") == ""


def test_repeated_lines_pass_once_per_interval_with_a_count() -> None:
    repeat = RepeatFilter(("flood",), interval=60)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.WARNING, __file__, 1, message, None, None)

    assert repeat.filter(record("flood: one"))
    assert not any(repeat.filter(record("flood: again")) for _ in range(999))
    assert repeat.filter(record("something else"))
    repeat._next.clear()  # the interval has passed
    first_after = record("flood: later")
    assert repeat.filter(first_after)
    assert first_after.getMessage() == "flood: later (999 more like it in the last 60 s)"


# --- the connection guards, with either of uvicorn's HTTP/1.1 protocols ---------------------


def test_httptools_parses_where_it_is_installed() -> None:
    pytest.importorskip("httptools")
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415

    assert issubclass(http.http_protocol(), HttpToolsProtocol)


@pytest.fixture(params=["httptools", "h11"])
def protocol(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve with httptools' protocol, or with h11's as where httptools is not installed."""
    if request.param == "httptools":
        pytest.importorskip("httptools")
    else:
        monkeypatch.setattr(http, "http_protocol", lambda: GuardedH11)


def released_by(released: asyncio.Event) -> ASGIApp:
    """200 at once, or for /held once `released` is set; /early answers before reading the body."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/held":
            await released.wait()
        elif scope["path"] != "/early":
            while (await receive()).get("more_body"):
                pass
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@asynccontextmanager
async def raw_server(max_connections: int = 10) -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A real server for `released_by`; yields its port and the event releasing /held."""
    settings = load_settings(SERVICE_TYPE="ui", LIGHTNING_MAX_CONNECTIONS=max_connections)
    port, stop, released = free_port(), asyncio.Event(), asyncio.Event()
    app = released_by(released)
    task = asyncio.create_task(serve_asgi(app, "127.0.0.1", port, stop, settings=settings))
    try:
        for _ in range(50):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionError:  # still starting
                await asyncio.sleep(0.05)
            else:
                writer.close()
                break
        yield port, released
    finally:
        released.set()
        stop.set()
        await task


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def status_or_closed(reader: asyncio.StreamReader) -> bytes:
    """The status line answered, or b"" if the server closed without one."""
    async with asyncio.timeout(5):
        return (await reader.readline()).rstrip()


GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.usefixtures("protocol")
async def test_past_the_cap_the_longest_idle_connection_is_closed_or_503() -> None:
    async with raw_server(max_connections=2) as (port, released):
        idle_reader, _ = await connect(port)
        busy_reader, busy = await connect(port)
        busy.write(b"GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await asyncio.sleep(0.2)
        newest_reader, newest = await connect(port)
        assert await status_or_closed(idle_reader) == b""  # made room for the newest
        newest.write(b"GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await asyncio.sleep(0.2)
        refused_reader, _ = await connect(port)  # both others are busy
        assert await status_or_closed(refused_reader) == b"HTTP/1.1 503 Service Unavailable"
        released.set()
        assert await status_or_closed(busy_reader) == b"HTTP/1.1 200 OK"
        assert await status_or_closed(newest_reader) == b"HTTP/1.1 200 OK"


@pytest.mark.usefixtures("protocol")
async def test_a_head_is_due_within_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "HEADER_TIMEOUT", 0.3)
    async with raw_server() as (port, _):
        reader, writer = await connect(port)
        writer.write(GET)  # answered; the next head is due within the deadline too
        assert await status_or_closed(reader) == b"HTTP/1.1 200 OK"
        await reader.readuntil(b"\r\n\r\nok")
        writer.write(GET[:20])
        started = asyncio.get_running_loop().time()
        assert await status_or_closed(reader) == b""
        assert 0.2 < asyncio.get_running_loop().time() - started < 2


@pytest.mark.usefixtures("protocol")
async def test_a_head_left_incomplete_past_its_size_is_answered_400() -> None:
    async with raw_server() as (port, _):
        reader, writer = await connect(port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
        for _ in range(MAX_HEAD_BYTES // 1024 + 1):
            writer.write(b"a" * 1024)
            await asyncio.sleep(0.01)
        assert (await status_or_closed(reader)).startswith(b"HTTP/1.1 400")


@pytest.mark.usefixtures("protocol")
async def test_a_body_answered_before_it_is_read_is_not_taken_for_a_head() -> None:
    body = b"a" * (4 * MAX_HEAD_BYTES)
    head = b"POST /early HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: %d\r\n\r\n"
    async with raw_server() as (port, _):
        reader, writer = await connect(port)
        writer.write(head % len(body))
        assert await status_or_closed(reader) == b"HTTP/1.1 200 OK"
        await reader.readuntil(b"\r\n\r\nok")
        for start in range(0, len(body), 1024):
            writer.write(body[start : start + 1024])
            await asyncio.sleep(0.001)
        writer.write(GET)
        assert await status_or_closed(reader) == b"HTTP/1.1 200 OK"
