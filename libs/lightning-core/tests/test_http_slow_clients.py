"""1,100 slow clients cannot take a service down: a real server, on a laptop's file limit."""

import asyncio
import contextlib
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lightning_core.http import HEADER_TIMEOUT
from lightning_core.testing.machine import free_port, require

SLOW_CLIENTS = 1100
OPEN_FILES = 1024  # a common default: fewer than the slow clients

# serve_asgi as the runtime runs it, logging as the runtime logs.
SERVER = """
import asyncio, logging, sys
from lightning_core.http import serve_asgi

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

async def healthz(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

asyncio.run(serve_asgi(healthz, "127.0.0.1", int(sys.argv[1]), asyncio.Event()))
"""


def laptop_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


@contextlib.contextmanager
def server(log: Path) -> Iterator[int]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=laptop_file_limit,  # noqa: PLW1509 - only sets a limit
        )
        try:
            httpx_ready(port, process)
            yield port
        finally:
            process.kill()
            process.wait()


def httpx_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        time.sleep(0.1)
    pytest.fail("the server did not start")


async def drip(port: int, closed: asyncio.Event | None = None) -> None:
    """A client sending its request head one byte a second, until the server hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100
    try:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    if await reader.read(1) == b"":
                        break
    except ConnectionError:
        pass
    finally:
        writer.close()
        if closed is not None:
            closed.set()


async def healthz_times(port: int, count: int) -> list[float]:
    times = []
    async with httpx.AsyncClient() as client:
        for _ in range(count):
            started = time.monotonic()
            response = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert response.status_code == 200
            times.append(time.monotonic() - started)
            await asyncio.sleep(1)
    return times


async def test_slow_clients_leave_health_checks_answered_and_the_log_small(
    tmp_path: Path,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SLOW_CLIENTS + 256  # this process plays the clients
    enough = hard == resource.RLIM_INFINITY or wanted <= hard
    require(enough, f"{wanted} open files for the test's clients", "raise `ulimit -Hn`")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    log = tmp_path / "server.log"
    with server(log) as port:
        clients = [asyncio.create_task(drip(port)) for _ in range(SLOW_CLIENTS - 1)]
        await asyncio.sleep(1)  # let them all connect
        last_closed = asyncio.Event()
        last_opened = time.monotonic()
        clients.append(asyncio.create_task(drip(port, last_closed)))
        try:
            times = await healthz_times(port, 5)
            # The newest slow client is never made room for: only its deadline closes it.
            async with asyncio.timeout(HEADER_TIMEOUT + 5):
                await last_closed.wait()
            closed_after = time.monotonic() - last_opened
        finally:
            for client in clients:
                client.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
    assert max(times) < 1.0, times
    assert HEADER_TIMEOUT - 1 < closed_after < HEADER_TIMEOUT + 5
    written = log.read_bytes()
    assert len(written) < 4096, written[:2000]
    assert written.count(b"\n") <= 10, written[:2000]
