"""serve_asgi answers only the Host names its mode allows, through a real uvicorn server."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port
from lightning_core.config import Settings, load_settings
from lightning_core.http import RepeatFilter, host_name, serve_asgi


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
