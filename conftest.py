"""Fixtures every package's tests share: connected embedded providers and a service context."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.sync_api import Browser, sync_playwright

import provider_backends
from lightning_api.app import create_app as create_api
from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings, load_settings
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage
from lightning_devtools.dev import wait_until_healthy
from lightning_ui.api_client import ApiClient
from lightning_ui.app import create_app as create_ui

pytest_plugins = [*provider_backends.PLUGINS, "stacks"]

REPO = Path(__file__).resolve().parent
ARTIFACTS = REPO / "test-artifacts"


def require(available: bool, what: str, fix: str) -> None:
    """Skip a test whose tool or server is missing, saying how to get it; in CI, fail."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"{what} is not available and CI must not skip this test: {fix}")
    pytest.skip(f"{what} is not available: {fix}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process finishes from here on (on its SDK tracer provider, set if
    none is); tests read the spans they made and clear nothing."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


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


# Debian's chromium here; CI runners point this at the Chrome they ship.
CHROMIUM = Path(os.environ.get("LIGHTNING_TEST_CHROMIUM", "/usr/bin/chromium"))
# Flags that keep Chromium quiet on a closed network (see ENVIRONMENT.md).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    require(
        CHROMIUM.exists(),
        f"a Chromium at {CHROMIUM}",
        "install Chromium (apt-get install -y chromium, brew install --cask chromium) or set "
        "LIGHTNING_TEST_CHROMIUM to a Chrome or Chromium binary",
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@dataclass(frozen=True)
class RunningSystem:
    api_url: str
    ui_url: str


def clean_environment() -> dict[str, str]:
    """This process's environment without the Lightning settings it may carry (a developer's
    shell, CI's DATABASE_URL), so a runtime under test sees only what the test gives it."""
    connection = {"DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "SERVICE_TYPE"}
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LIGHTNING_") and key not in connection
    }


@contextlib.contextmanager
def start_runtime(env: Mapping[str, str], cwd: Path, *, services: str) -> Iterator[RunningSystem]:
    """`python -m lightning_core.runtime` hosting `services` with `env` (over the clean
    environment), on free ports; yields once healthy and ready, and requires a clean stop
    (exit 0) on SIGTERM. Failures show the end of the runtime's log."""
    api_port, ui_port = free_port(), free_port()
    system = RunningSystem(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}")
    health = [f"{system.api_url}/healthz", f"{system.api_url}/readyz"]
    if "ui" in services.split(","):
        health.append(f"{system.ui_url}/healthz")
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = cwd / "runtime.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lightning_core.runtime"],
            env={
                **clean_environment(),
                **env,
                "SERVICE_TYPE": services,
                "LIGHTNING_API_PORT": str(api_port),
                "LIGHTNING_UI_PORT": str(ui_port),
                "LIGHTNING_API_URL": system.api_url,
            },
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            ready = wait_until_healthy(process, health)
            assert ready, f"the runtime ({services}) did not become ready:\n{_tail(log_path)}"
            yield system
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=60)  # an embedded processor may drain for 30 s
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
            assert code == 0, f"the runtime exited {code} on SIGTERM:\n{_tail(log_path)}"


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def embedded_system(tmp_path: Path) -> Iterator[RunningSystem]:
    """API, processor and UI in one runtime process (as `invoke dev` runs them)."""
    env = {"LIGHTNING_MODE": "embedded", "LIGHTNING_SQLITE_PATH": str(tmp_path / "system.db")}
    with start_runtime(env, tmp_path, services="api,event-processor,ui") as system:
        yield system


def api_client_as(context: ServiceContext, user: str) -> httpx.AsyncClient:
    """An embedded-mode API client whose dev identity is `user` (one app per user, shared
    stores): how the tests show one user never sees another's records."""
    settings = context.settings.model_copy(update={"dev_user": user})
    app = create_api(ServiceContext(settings, context.storage, context.bus))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def ui_client(api: ApiClient) -> httpx.AsyncClient:
    """A client of the UI app (in process) whose calls to the API go through `api`."""
    app = create_ui(api)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")


@pytest.fixture
async def ui_api(context: ServiceContext) -> AsyncIterator[ApiClient]:
    """The UI's API client over the embedded API app (in process, dev identity)."""
    client = ApiClient("http://api", transport=httpx.ASGITransport(app=create_api(context)))
    yield client
    await client.aclose()


@pytest.fixture
async def alice(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client_as(context, "alice") as client:
        yield client


@pytest.fixture
async def bob(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client_as(context, "bob") as client:
        yield client
