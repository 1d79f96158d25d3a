"""Fixtures every package's tests share: connected embedded providers and a service context."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings, load_settings
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Embedded settings isolated from the developer's environment and .env file."""
    monkeypatch.chdir(tmp_path)
    for name in ("LIGHTNING_MODE", "LIGHTNING_STORAGE_PROVIDER", "LIGHTNING_EVENT_BUS_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    return load_settings(LIGHTNING_SQLITE_PATH=str(tmp_path / "lightning.db"))


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[SqliteStorage]:
    async with SqliteStorage(settings.sqlite_path) as connected:
        yield connected


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    async with MemoryBus() as connected:
        yield connected


@pytest.fixture
def context(settings: Settings, storage: SqliteStorage, bus: MemoryBus) -> ServiceContext:
    return ServiceContext(settings, storage, bus)
