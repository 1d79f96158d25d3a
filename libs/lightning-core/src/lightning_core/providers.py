"""Build the storage and bus that the settings select.

Each provider module is imported only when chosen, so a provider's SDK is imported only by
the deployments that use it, and a missing SDK is reported as the extra to install (one
line, like every other configuration problem) instead of an ImportError. Every provider
module exposes `from_settings(settings)`.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from lightning_core.bus.base import EventBus
from lightning_core.config import BusProvider, ConfigError, Settings, StorageProvider
from lightning_core.storage.base import Storage


class ProviderModule(NamedTuple):
    module: str
    extra: str | None  # the lightning-core extra holding its SDK; None: no SDK needed


STORAGE_MODULES: dict[StorageProvider, ProviderModule] = {
    StorageProvider.SQLITE: ProviderModule("lightning_core.storage.sqlite", None),
    StorageProvider.POSTGRES: ProviderModule("lightning_core.storage.postgres", "local"),
    StorageProvider.COSMOS: ProviderModule("lightning_core.storage.cosmos", "azure"),
}

BUS_MODULES: dict[BusProvider, ProviderModule] = {
    BusProvider.MEMORY: ProviderModule("lightning_core.bus.memory", None),
    BusProvider.REDIS: ProviderModule("lightning_core.bus.redis", "local"),
    BusProvider.RABBITMQ: ProviderModule("lightning_core.bus.rabbitmq", "local"),
    BusProvider.SERVICEBUS: ProviderModule("lightning_core.bus.servicebus", "azure"),
}


def load_provider(setting: str, provider: str, spec: ProviderModule) -> Any:
    """Import a provider's module; a missing SDK becomes a ConfigError naming the extra."""
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as error:
        if spec.extra is None or (error.name or "").startswith("lightning_core"):
            raise
        raise ConfigError(
            [
                f"{setting}={provider} needs the {error.name!r} package, which is not "
                f"installed: install lightning-core[{spec.extra}]"
            ]
        ) from None


def build_storage(settings: Settings) -> Storage:
    spec = STORAGE_MODULES[settings.storage]
    module = load_provider("LIGHTNING_STORAGE_PROVIDER", settings.storage, spec)
    storage: Storage = module.from_settings(settings)
    return storage


def build_bus(settings: Settings) -> EventBus:
    spec = BUS_MODULES[settings.event_bus]
    module = load_provider("LIGHTNING_EVENT_BUS_PROVIDER", settings.event_bus, spec)
    bus: EventBus = module.from_settings(settings)
    return bus
