"""The embedded providers: SQLite in a temporary file, the in-process bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.storage.sqlite import SqliteStorage

STORAGE = ["storage_sqlite"]
BUSES = ["bus_memory"]


@pytest.fixture
async def storage_sqlite(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    async with SqliteStorage(tmp_path / "contract.db") as storage:
        yield storage


@pytest.fixture
async def bus_memory(fast_retry: RetryPolicy) -> AsyncIterator[MemoryBus]:
    async with MemoryBus(retry=fast_retry) as bus:
        yield bus
