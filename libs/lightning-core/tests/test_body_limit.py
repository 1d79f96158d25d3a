"""BodyLimit answers 413 before the app reads past the limit, declared or streamed."""

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from lightning_core.body_limit import BodyLimit

LIMIT = 1024


class Reader:
    """An app reading the whole body, noting how much of it it saw."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.calls = 0

    async def echo(self, request: Request) -> JSONResponse:
        self.calls += 1
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            self.seen.append(received)
        return JSONResponse({"received": received})


@pytest.fixture
def reader() -> Reader:
    return Reader()


@pytest.fixture
async def client(reader: Reader) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/", reader.echo, methods=["POST"])])
    limited = BodyLimit(app, max_bytes=LIMIT, setting="TEST_MAX_BYTES")
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    async def generate() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"x" * size

    return generate()


async def test_a_body_within_the_limit_reaches_the_app(client: httpx.AsyncClient) -> None:
    response = await client.post("/", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json() == {"received": LIMIT}


async def test_a_declared_length_over_the_limit_is_413_before_the_app_runs(
    client: httpx.AsyncClient, reader: Reader
) -> None:
    response = await client.post("/", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert "TEST_MAX_BYTES" in response.json()["detail"]
    assert str(LIMIT) in response.json()["detail"]
    assert response.headers["connection"] == "close"
    assert reader.calls == 0


async def test_a_streamed_body_is_cut_off_once_over_the_limit(
    client: httpx.AsyncClient, reader: Reader
) -> None:
    response = await client.post("/", content=chunks(100, 256))  # chunked, no length
    assert response.status_code == 413
    assert "TEST_MAX_BYTES" in response.json()["detail"]
    assert reader.calls == 1
    assert max(reader.seen, default=0) <= LIMIT  # never handed the chunk that passed it


async def test_a_streamed_body_within_the_limit_reaches_the_app(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/", content=chunks(4, 256))
    assert response.status_code == 200
    assert response.json() == {"received": 1024}


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, _receive: Receive, _send: Send) -> None:
        seen.append(str(scope["type"]))

    async def nothing() -> Message:
        raise AssertionError("not called")

    async def ignore(_message: Message) -> None:
        raise AssertionError("not called")

    limited = BodyLimit(app, max_bytes=1, setting="TEST_MAX_BYTES")
    await limited({"type": "lifespan"}, nothing, ignore)
    assert seen == ["lifespan"]
