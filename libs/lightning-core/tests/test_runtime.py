"""The runtime builds, connects and hands out only the providers its services declare."""

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lightning_core.bus.memory import MemoryBus
from lightning_core.config import ConfigError, load_settings
from lightning_core.providers import STARTUP_WAIT
from lightning_core.runtime import EXIT_CONFIG, EXIT_UNAVAILABLE
from lightning_core.service import ENTRY_POINT_GROUP, ServiceContext
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.backends.postgres import ADMIN_URL, PROVIDE_POSTGRES, database_url
from lightning_core.testing.machine import free_port, require
from lightning_core.testing.runtime import clean_environment
from lightning_core.topology import SERVICES, BusRight, ServiceNeeds, service_needs

AZURE_SERVERS = ("COSMOS_CONNECTION_STRING", "SERVICE_BUS_CONNECTION_STRING")


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in (
        "LIGHTNING_MODE",
        "LIGHTNING_STORAGE_PROVIDER",
        "LIGHTNING_EVENT_BUS_PROVIDER",
        "SERVICE_TYPE",
        "COSMOS_ENDPOINT",
        "SERVICE_BUS_NAMESPACE",
        *AZURE_SERVERS,
    ):
        monkeypatch.delenv(name, raising=False)


def test_services_together_need_the_union_of_their_needs() -> None:
    assert service_needs(["ui"]) == ServiceNeeds(storage=False, bus=frozenset())
    assert service_needs(["api", "ui"]) == SERVICES["api"]
    assert service_needs(["event-processor", "ui"]).bus == {BusRight.SEND, BusRight.RECEIVE}
    assert service_needs(["not-declared"]) == service_needs([])


def test_the_ui_in_azure_mode_needs_no_storage_or_bus_settings() -> None:
    settings = load_settings(LIGHTNING_MODE="azure", SERVICE_TYPE="ui")
    assert settings.service_types() == ["ui"]


@pytest.mark.parametrize("services", ["api", "event-processor", "ui,api"])
def test_a_service_using_storage_and_bus_still_needs_their_settings(services: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(LIGHTNING_MODE="azure", SERVICE_TYPE=services)
    assert [problem.split(" ")[0] for problem in caught.value.problems] == list(AZURE_SERVERS)


async def test_a_context_without_a_provider_says_where_to_declare_it(tmp_path: Path) -> None:
    settings = load_settings()
    async with SqliteStorage(tmp_path / "x.db") as storage, MemoryBus() as bus:
        full = ServiceContext(settings, storage, bus)
        assert full.providers() == (storage, bus)
        ui = full.narrowed_to(SERVICES["ui"])
        assert ui.settings is settings
        assert ui.providers() == ()
        for provider in ("storage", "bus"):
            with pytest.raises(RuntimeError, match=r"lightning_core\.topology\.SERVICES"):
                getattr(ui, provider)
        api = full.narrowed_to(SERVICES["api"])
        assert (api.storage, api.bus) == (storage, bus)


# In a process of its own: `run` installs signal handlers.
RUN_TWO_SERVICES = """
import asyncio, sys
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import load_settings
from lightning_core.runtime import run
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage

def seen_by(name):
    async def service(context, stop):
        print(name, [type(p).__name__ for p in context.providers()], flush=True)
    return service

storage, bus = SqliteStorage(sys.argv[1]), MemoryBus()
context = ServiceContext(load_settings(), storage, bus)
asyncio.run(run(context, {"ui": seen_by("ui"), "api": seen_by("api")}))
"""


def test_each_service_runs_with_only_what_it_declared(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUN_TWO_SERVICES, str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ui []",
        "api ['SqliteStorage', 'MemoryBus']",
    ]


def stand_in_services(directory: Path) -> str:
    """A directory for PYTHONPATH declaring `api` and `event-processor` as services of the
    test's own (entry points as a service package declares them, running until stopped),
    so the runtime's start-up is tested with lightning-core alone installed."""
    info = directory / "stand_in_services-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stand-in-services\nVersion: 0\n")
    entry = "stand_in_services:service"
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\napi = {entry}\nevent-processor = {entry}\n"
    )
    (directory / "stand_in_services.py").write_text(
        "async def service(context, stop):\n    await stop.wait()\n"
    )
    return str(directory)


def start_runtime_with(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lightning_core.runtime"],
        env={
            **clean_environment(),
            "LIGHTNING_API_PORT": str(free_port()),
            "PYTHONPATH": stand_in_services(tmp_path / "services"),
            **env,
        },
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def postgres_missing_database() -> str:
    require(
        asyncio.run(accepts(ADMIN_URL)),
        f"PostgreSQL at {ADMIN_URL}",
        PROVIDE_POSTGRES,
    )
    return database_url(ADMIN_URL, f"missing_{uuid.uuid4().hex[:12]}")


async def accepts(url: str) -> bool:
    parts = urlsplit(url)
    try:
        _, writer = await asyncio.open_connection(parts.hostname, parts.port or 5432)
    except OSError:
        return False
    writer.close()
    return True


@pytest.mark.parametrize(
    ("database_url", "says"),
    [
        (postgres_missing_database, "does not exist): fix DATABASE_URL"),
        (lambda: "mysql://user@127.0.0.1/lightning", "DATABASE_URL has the scheme 'mysql'"),
    ],
    ids=["missing-database", "unknown-scheme"],
)
def test_a_database_url_waiting_cannot_fix_fails_at_once_in_one_line(
    tmp_path: Path, database_url: Callable[[], str], says: str
) -> None:
    env = {
        "LIGHTNING_MODE": "local",
        "SERVICE_TYPE": "api",
        "DATABASE_URL": database_url(),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    started = time.monotonic()
    process = start_runtime_with(env, tmp_path)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_CONFIG, stderr
    assert time.monotonic() - started < STARTUP_WAIT, "it waited for what cannot come"
    [line] = stderr.splitlines()
    assert line.startswith("error: "), line
    assert says in line, line


def test_an_unreachable_server_is_waited_for_a_bounded_time_then_named(tmp_path: Path) -> None:
    closed = free_port()
    env = {
        "LIGHTNING_MODE": "local",
        "LIGHTNING_STORAGE_PROVIDER": "sqlite",
        "LIGHTNING_SQLITE_PATH": str(tmp_path / "x.db"),
        "SERVICE_TYPE": "event-processor",
        "REDIS_URL": f"redis://127.0.0.1:{closed}/0",
    }
    started = time.monotonic()
    process = start_runtime_with(env, tmp_path)
    _, stderr = process.communicate(timeout=STARTUP_WAIT + 30)
    assert process.returncode == EXIT_UNAVAILABLE, stderr
    assert STARTUP_WAIT <= time.monotonic() - started < STARTUP_WAIT + 15
    waiting, error = stderr.splitlines()
    assert f"waiting up to {STARTUP_WAIT:.0f} s for Redis at 127.0.0.1:{closed} (REDIS_URL)" in (
        waiting
    )
    assert error.startswith(f"error: Redis at 127.0.0.1:{closed} (REDIS_URL) did not answer")
    assert "start it, or point REDIS_URL at a running server" in error
