"""The runtime builds, connects and hands out only the providers its services declare."""

import subprocess
import sys
from pathlib import Path

import pytest

from lightning_core.bus.memory import MemoryBus
from lightning_core.config import ConfigError, load_settings
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.topology import SERVICES, BusRight, ServiceNeeds, service_needs

AZURE_SERVERS = ("COSMOS_CONNECTION_STRING", "SERVICE_BUS_CONNECTION_STRING")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
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


# In a process of its own: `run` installs signal handlers and settles the collector.
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
