"""What a service is to the runtime: an async callable registered as a package entry point.

Services register under the `lightning.services` entry-point group (see each service's
pyproject.toml), so core finds them by name and never imports one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from lightning_core.bus.base import EventBus
from lightning_core.config import Settings
from lightning_core.storage.base import Storage

ENTRY_POINT_GROUP = "lightning.services"


@dataclass(frozen=True)
class ServiceContext:
    """What the runtime hands every service: settings and the connected providers."""

    settings: Settings
    storage: Storage
    bus: EventBus


class Service(Protocol):
    async def __call__(self, context: ServiceContext, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then finish in-flight work and return."""
