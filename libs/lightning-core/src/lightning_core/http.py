"""Serve an ASGI app inside the runtime's event loop, stopping when the runtime says so.

uvicorn normally owns SIGINT/SIGTERM and re-raises them after shutdown; here the runtime
owns the signals (several services share one process in `invoke dev`), so the server only
watches the shared stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn

# Any ASGI 3 application (FastAPI, Starlette); typed loosely so core needs neither.
AsgiApp = Callable[[Any, Any, Any], Awaitable[None]]


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


async def serve_asgi(app: AsgiApp, host: str, port: int, stop: asyncio.Event) -> None:
    server = _EmbeddedServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    try:
        await serving  # uvicorn calls sys.exit(1) when it cannot bind
    except SystemExit:
        raise OSError(f"cannot listen on {host}:{port}: is the port already in use?") from None
