"""The connection lifecycle every provider shares: idempotent connect, close, `async with`."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self


class Connectable:
    """Owns the open/close dance so each provider only writes `_connect` and `_close`."""

    def __init__(self) -> None:
        self._connected = False
        self._lock = asyncio.Lock()

    async def _connect(self) -> None:
        """Open the provider's connections (override when there is something to open)."""

    async def _close(self) -> None:
        """Release the provider's connections (override when there is something to release)."""

    async def connect(self) -> None:
        async with self._lock:
            if not self._connected:
                await self._connect()
                self._connected = True

    async def close(self) -> None:
        async with self._lock:
            if self._connected:
                self._connected = False
                await self._close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
