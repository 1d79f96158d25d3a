"""The one handler every host calls (the worker now; the Azure Function later)."""

from __future__ import annotations

import logging

from lightning_core.events import CloudEvent
from lightning_core.records import mark_processed
from lightning_core.storage.base import Storage

log = logging.getLogger(__name__)

CONSUMER_GROUP = "event-processor"


async def handle(storage: Storage, event: CloudEvent) -> None:
    """Record the event as processed; a redelivered event changes nothing."""
    if await mark_processed(storage, event):
        log.info("processed %s %s for %s", event.type, event.id, event.user)
    else:
        log.info("skipped %s: already processed", event.id)
