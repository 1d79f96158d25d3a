"""The one handler every host calls: the worker (`service.py`) and the Azure Function."""

from __future__ import annotations

import logging

from lightning_core.bus.base import EventBus
from lightning_core.config import Settings
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.events import CloudEvent
from lightning_core.records import is_processed, read_record, settle_processed
from lightning_core.storage.base import Storage
from lightning_core.telemetry import handling
from lightning_processor.background import LongTasks
from lightning_processor.drivers import DriverContext, Registry, builtin_registry

log = logging.getLogger(__name__)

CONSUMER_GROUP = PROCESSOR_GROUP


class Processor:
    """Built once per process from the providers; `handle` is called for every event."""

    def __init__(
        self, storage: Storage, bus: EventBus, registry: Registry, *, max_follow_ups: int
    ) -> None:
        self.context = DriverContext(storage, bus, max_follow_ups)
        self.registry = registry

    @classmethod
    def from_settings(
        cls,
        storage: Storage,
        bus: EventBus,
        settings: Settings,
        long_tasks: LongTasks | None = None,
    ) -> Processor:
        """The built-in drivers with the limits `settings` set; long attempts in `long_tasks`."""
        return cls(
            storage,
            bus,
            builtin_registry(settings, long_tasks),
            max_follow_ups=settings.max_follow_ups_per_event,
        )

    async def connect(self) -> None:
        """Connect storage and bus (both idempotent), for hosts that connect lazily."""
        await self.context.storage.connect()
        await self.context.bus.connect()

    async def handle(self, event: CloudEvent) -> None:
        """Run the drivers, then mark the event processed, so "processed" means they are done;
        an event already processed is skipped, and a driver's failure propagates."""
        storage = self.context.storage
        with handling(event):
            record = await read_record(storage, event)
            if is_processed(record):
                log.debug("skipped %s: already processed", event.id)
                return
            await self.registry.dispatch(event, self.context)
            await settle_processed(storage, event, record)
            log.debug("processed %s %s for %s", event.type, event.id, event.user)
