"""The one handler every host calls: the worker (`service.py`) and the Azure Function.

`Processor.handle` routes the event to the drivers, then marks it processed. In that order
so that "processed" (what the API shows) means the drivers are done and their follow-ups
published; and a redelivery still runs any driver that had not finished (each driver's
ledger skips what it already did), then finds the event processed.
"""

from __future__ import annotations

import logging

from lightning_core.bus.base import EventBus
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.events import CloudEvent
from lightning_core.records import mark_processed
from lightning_core.storage.base import Storage
from lightning_processor.drivers import DriverContext, Registry

log = logging.getLogger(__name__)

CONSUMER_GROUP = PROCESSOR_GROUP


class Processor:
    """Built once per process from the providers; `handle` is called for every event."""

    def __init__(self, storage: Storage, bus: EventBus, registry: Registry) -> None:
        self.context = DriverContext(storage, bus)
        self.registry = registry

    async def connect(self) -> None:
        """Connect storage and bus (both idempotent), for hosts that connect lazily."""
        await self.context.storage.connect()
        await self.context.bus.connect()

    async def handle(self, event: CloudEvent) -> None:
        await self.registry.dispatch(event, self.context)
        if await mark_processed(self.context.storage, event):
            log.info("processed %s %s for %s", event.type, event.id, event.user)
        else:
            log.info("skipped %s: already processed", event.id)
