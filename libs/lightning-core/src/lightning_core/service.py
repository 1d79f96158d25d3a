"""What a service is to the runtime: an async callable registered under the
`lightning.services` entry-point group, so core finds it by name and never imports it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from lightning_core.bus.base import EventBus
from lightning_core.config import Settings
from lightning_core.storage.base import Storage
from lightning_core.topology import ServiceNeeds

ENTRY_POINT_GROUP = "lightning.services"


class ServiceContext:
    """Settings and the providers the service declared; an undeclared one raises RuntimeError."""

    __slots__ = ("_bus", "_storage", "settings")

    def __init__(
        self, settings: Settings, storage: Storage | None = None, bus: EventBus | None = None
    ) -> None:
        self.settings = settings
        self._storage = storage
        self._bus = bus

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise RuntimeError(_undeclared("storage", "storage=True"))
        return self._storage

    @property
    def bus(self) -> EventBus:
        if self._bus is None:
            raise RuntimeError(_undeclared("bus", "the bus rights it uses"))
        return self._bus

    def providers(self) -> tuple[Storage | EventBus, ...]:
        """The providers this context holds, storage first."""
        return tuple(provider for provider in (self._storage, self._bus) if provider is not None)

    def narrowed_to(self, needs: ServiceNeeds) -> ServiceContext:
        """This context with only the providers `needs` declares."""
        return ServiceContext(
            self.settings,
            self._storage if needs.storage else None,
            self._bus if needs.bus else None,
        )


def _undeclared(provider: str, declaration: str) -> str:
    return (
        f"this service's context has no {provider}: declare {declaration} for the service "
        "in lightning_core.topology.SERVICES"
    )


class Service(Protocol):
    async def __call__(self, context: ServiceContext, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then finish in-flight work and return."""
