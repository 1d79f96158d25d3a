"""The pytest plugin every package's tests load: embedded settings and providers, a
service context over them, retries quick enough for tests, and the spans a test made.

Load it from a conftest.py: `pytest_plugins = ["lightning_core.testing.fixtures"]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings, load_settings
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage


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
