"""Build the storage and bus that the settings select.

Each provider module is imported only when chosen, so a provider's SDK is imported only
by the deployments that use it. A provider named in the settings contract whose module has
not been written yet is refused here with the same one-line ConfigError as any other
misconfiguration.
"""

from __future__ import annotations

from lightning_core.bus.base import EventBus
from lightning_core.config import BusProvider, ConfigError, Settings, StorageProvider
from lightning_core.storage.base import Storage


def _unavailable(setting: str, provider: str, available: str) -> ConfigError:
    return ConfigError(
        [f"{setting}={provider} has no provider in this release (available: {available})"]
    )


def build_storage(settings: Settings) -> Storage:
    if settings.storage is StorageProvider.SQLITE:
        from lightning_core.storage.sqlite import SqliteStorage  # noqa: PLC0415

        return SqliteStorage(settings.sqlite_path)
    raise _unavailable("LIGHTNING_STORAGE_PROVIDER", settings.storage, StorageProvider.SQLITE)


def build_bus(settings: Settings) -> EventBus:
    if settings.event_bus is BusProvider.MEMORY:
        from lightning_core.bus.memory import MemoryBus  # noqa: PLC0415

        return MemoryBus()
    raise _unavailable("LIGHTNING_EVENT_BUS_PROVIDER", settings.event_bus, BusProvider.MEMORY)
