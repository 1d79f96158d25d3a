"""Publish again the events still `received` long after they were accepted (an API died
between storing and publishing them), and purge expired documents (docs/core.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from lightning_core.bus.base import EventBus
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.domain import now as utc_now
from lightning_core.periodic import Sweep, run_every
from lightning_core.records import EVENTS, EventRecord, EventStatus, mark_failed
from lightning_core.storage.base import Storage
from lightning_core.topology import COLLECTIONS

log = logging.getLogger(__name__)


async def republish_stale(
    storage: Storage,
    bus: EventBus,
    *,
    older_than: timedelta,
    limit: int = 100,
    now: datetime | None = None,
) -> int:
    """Publish again the events of the oldest `limit` records still `received` more than
    `older_than` before `now`, or mark them `failed` if the processor's group holds them as
    dead letters; how many were published (`limit` bounds the duplicates per sweep)."""
    cutoff = (now or utc_now()) - older_than
    documents = await storage.query_all(
        EVENTS, where={"status": EventStatus.RECEIVED.value}, order_by="received_at", limit=limit
    )
    events = []
    for document in documents:
        try:
            record = EventRecord.from_document(document)
        except ValidationError as error:
            log.warning("event record %s unreadable, not republished: %s", document.id, error)
            continue
        received_at = record.received_at
        if received_at.tzinfo is None:  # a producer sent a naive time
            received_at = received_at.replace(tzinfo=UTC)
        if received_at < cutoff:
            events.append(record.event)
    if not events:
        return 0
    dead = {letter.event.id: letter.reason for letter in await bus.dead_letters(PROCESSOR_GROUP)}
    for event in (event for event in events if event.id in dead):
        await mark_failed(storage, event, f"dead letter: {dead[event.id]}")
    events = [event for event in events if event.id not in dead]
    if events:
        await bus.publish_batch(events)
    return len(events)


async def purge_expired(
    storage: Storage, *, retention: timedelta, limit: int = 1000, now: datetime | None = None
) -> int:
    """Delete up to `limit` documents of each expiring collection last written more than
    `retention` before `now`; how many."""
    before = (now or utc_now()) - retention
    purged = 0
    for collection in COLLECTIONS:
        if collection.expires:
            purged += await storage.purge(collection.name, before=before, limit=limit)
    return purged


async def run_republisher(
    storage: Storage,
    bus: EventBus,
    *,
    every: float,
    older_than: timedelta,
    stop: asyncio.Event,
    retention: timedelta | None = None,
) -> None:
    """Sweep now and every `every` s until `stop` is set, purging past `retention` (if given)."""
    sweeps: dict[str, Sweep] = {}
    if retention is not None:
        sweeps[f"purging documents older than {retention}"] = functools.partial(
            purge_expired, storage, retention=retention
        )
    sweeps[f"republishing events still received after {older_than}"] = functools.partial(
        republish_stale, storage, bus, older_than=older_than
    )
    await run_every(every, stop, sweeps)
