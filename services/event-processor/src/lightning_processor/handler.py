"""The one handler every host calls: the worker (`service.py`) and the Azure Function.

`Processor.handle` routes the event to the drivers, then marks it processed. In that order
so that "processed" (what the API shows) means the drivers are done and their follow-ups
published; and a redelivery still runs any driver that had not finished (each driver's
ledger skips what it already did), then finds the event processed.
"""

from __future__ import annotations

import logging

from lightning_core.bus.base import EventBus
from lightning_core.config import Settings
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.events import CloudEvent
from lightning_core.records import mark_processed
from lightning_core.storage.base import Storage
from lightning_core.telemetry import handling
from lightning_processor.drivers import DriverContext, Registry, builtin_registry

log = logging.getLogger(__name__)

CONSUMER_GROUP = PROCESSOR_GROUP


class Processor:
    """Built once per process from the providers; `handle` is called for every event."""

    def __init__(
        self, storage: Storage, bus: EventBus, registry: Registry, *, max_follow_ups: int
    ) -> None:
        """`max_follow_ups`: what one user's event may cause in total (`drivers.budget`)."""
        self.context = DriverContext(storage, bus, max_follow_ups)
        self.registry = registry

    @classmethod
    def from_settings(cls, storage: Storage, bus: EventBus, settings: Settings) -> Processor:
        """The built-in drivers with the limits `settings` set: what every host runs."""
        return cls(
            storage,
            bus,
            builtin_registry(settings),
            max_follow_ups=settings.max_follow_ups_per_event,
        )

    async def connect(self) -> None:
        """Connect storage and bus (both idempotent), for hosts that connect lazily."""
        await self.context.storage.connect()
        await self.context.bus.connect()

    async def handle(self, event: CloudEvent) -> None:
        """Within a span continuing the trace the event's publisher started."""
        with handling(event):
            await self.registry.dispatch(event, self.context)
            if await mark_processed(self.context.storage, event):
                log.info("processed %s %s for %s", event.type, event.id, event.user)
            else:
                log.info("skipped %s: already processed", event.id)
