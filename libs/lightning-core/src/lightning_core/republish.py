"""Publish again the events still `received` long after they were accepted.

An API that dies between storing an event's record and publishing it leaves the record
`received` with nothing on the bus to process it. A sweep finds the oldest such records
in every partition and publishes their events again. Republishing is safe because
processing is idempotent: `mark_processed` skips an event already processed and each
driver's ledger skips work already done. A stale event the processor dead-lettered is
marked `failed` with the dead letter's reason instead (replaying it marks it processed).

The same loop enforces retention: the collections topology declares as expiring lose
their documents last written more than the retention ago, a bounded batch per round
(Cosmos DB's container TTL does it by itself; the purge finds what it left).
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
    """Publish again the events of the oldest `limit` records still `received` whose
    `received_at` is more than `older_than` before `now`, or mark them `failed` if the
    processor's group holds them as dead letters; how many were published.

    An event still queued behind a backlog longer than `older_than` is published again at
    every sweep until processed: `limit` bounds those duplicates per sweep.
    """
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
        if received_at.tzinfo is None:  # written by a producer that sent a naive time
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
    """Sweep now and every `every` seconds until `stop` is set, and purge what is older
    than `retention` (if given); a failed round is logged and tried again at the next."""
    sweeps: dict[str, Sweep] = {}
    if retention is not None:
        sweeps[f"purging documents older than {retention}"] = functools.partial(
            purge_expired, storage, retention=retention
        )
    sweeps[f"republishing events still received after {older_than}"] = functools.partial(
        republish_stale, storage, bus, older_than=older_than
    )
    await run_every(every, stop, sweeps)
