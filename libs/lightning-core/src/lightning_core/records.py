"""The event record the API and the processor both keep: one document per event, written
`received` on acceptance, then marked `processed` or `failed`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel

from lightning_core.events import CloudEvent
from lightning_core.storage.base import Conflict, Document, NotFound, PreconditionFailed, Storage

EVENTS = "events"


class EventStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"  # the bus did not take it: `error` says why


class EventRecord(BaseModel):
    event: CloudEvent
    status: EventStatus
    received_at: datetime
    processed_at: datetime | None = None
    failed_at: datetime | None = None
    error: str | None = None

    @classmethod
    def from_document(cls, document: Document) -> EventRecord:
        return cls.model_validate(document.body)

    def to_body(self) -> dict[str, object]:
        return self.model_dump(mode="json")


async def record_received(storage: Storage, event: CloudEvent) -> EventRecord:
    record = EventRecord(event=event, status=EventStatus.RECEIVED, received_at=datetime.now(UTC))
    await storage.create(EVENTS, event.user, event.id, record.to_body())
    return record


async def read_record(storage: Storage, event: CloudEvent) -> Document | None:
    """The event's record; None when its producer kept none (another service, a replay)."""
    try:
        return await storage.get(EVENTS, event.user, event.id)
    except NotFound:
        return None


def is_processed(document: Document | None) -> bool:
    return document is not None and document.body.get("status") == EventStatus.PROCESSED


async def settle_processed(storage: Storage, event: CloudEvent, document: Document | None) -> bool:
    """Mark the event processed, given its record as read before (None: create it processed);
    False when it already was. PreconditionFailed if it changed since that read."""
    if document is None:
        record = EventRecord(
            event=event,
            status=EventStatus.PROCESSED,
            received_at=event.time,
            processed_at=datetime.now(UTC),
        )
        try:
            await storage.create(EVENTS, event.user, event.id, record.to_body())
        except Conflict:  # created meanwhile (a racing consumer, a late producer)
            return await mark_processed(storage, event)
        return True
    record = EventRecord.from_document(document)
    if record.status is EventStatus.PROCESSED:
        return False
    processed = record.model_copy(
        update={"status": EventStatus.PROCESSED, "processed_at": datetime.now(UTC), "error": None}
    )
    await storage.replace(EVENTS, event.user, event.id, processed.to_body(), if_match=document.etag)
    return True


async def mark_processed(storage: Storage, event: CloudEvent) -> bool:
    """Mark the event processed; False when it already was (a redelivery: nothing to do)."""
    return await settle_processed(storage, event, await read_record(storage, event))


async def mark_failed(storage: Storage, event: CloudEvent, reason: str) -> bool:
    """Mark a `received` event failed with `reason`; False when it is no longer `received`."""
    document = await storage.get(EVENTS, event.user, event.id)
    record = EventRecord.from_document(document)
    if record.status is not EventStatus.RECEIVED:
        return False
    failed = record.model_copy(
        update={"status": EventStatus.FAILED, "failed_at": datetime.now(UTC), "error": reason}
    )
    try:
        await storage.replace(
            EVENTS, event.user, event.id, failed.to_body(), if_match=document.etag
        )
    except PreconditionFailed:
        return False
    return True
