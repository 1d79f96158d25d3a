"""Fixtures every package's tests share: connected embedded providers and a service context."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import provider_backends
from lightning_api.app import create_app as create_api
from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings, load_settings
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage
from lightning_devtools.dev import wait_until_healthy

pytest_plugins = provider_backends.PLUGINS

REPO = Path(__file__).resolve().parent
ARTIFACTS = REPO / "test-artifacts"


def require(available: bool, what: str, fix: str) -> None:
    """Skip a test whose tool or server is missing, saying how to get it; in CI, fail."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"{what} is missing and CI must not skip this test: {fix}")
    pytest.skip(f"{what} is missing: {fix}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Retries quick enough for tests; the backoff shape is the production one."""
    return RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)


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


@dataclass(frozen=True)
class RunningSystem:
    api_url: str
    ui_url: str


@pytest.fixture
def embedded_system(tmp_path: Path) -> Iterator[RunningSystem]:
    """API, processor and UI in one runtime process (as `invoke dev` runs them)."""
    api_port, ui_port = free_port(), free_port()
    system = RunningSystem(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}")
    env = {
        **os.environ,
        "LIGHTNING_MODE": "embedded",
        "SERVICE_TYPE": "api,event-processor,ui",
        "LIGHTNING_API_PORT": str(api_port),
        "LIGHTNING_UI_PORT": str(ui_port),
        "LIGHTNING_API_URL": system.api_url,
        "LIGHTNING_SQLITE_PATH": str(tmp_path / "system.db"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lightning_core.runtime"], env=env, cwd=tmp_path
    )
    try:
        healthy = wait_until_healthy(
            process, [f"{system.api_url}/healthz", f"{system.ui_url}/healthz"]
        )
        assert healthy, "the runtime did not become healthy"
        yield system
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def api_client_as(context: ServiceContext, user: str) -> httpx.AsyncClient:
    """An embedded-mode API client whose dev identity is `user` (one app per user, shared
    stores): how the tests show one user never sees another's records."""
    settings = context.settings.model_copy(update={"dev_user": user})
    app = create_api(ServiceContext(settings, context.storage, context.bus))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.fixture
async def alice(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client_as(context, "alice") as client:
        yield client


@pytest.fixture
async def bob(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client_as(context, "bob") as client:
        yield client
