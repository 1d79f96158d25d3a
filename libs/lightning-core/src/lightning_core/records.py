"""The event record both the API and the processor keep: one document per event.

The API writes it `received` when it accepts an event and marks it `failed` (with the
reason) if the bus does not take it; the processor marks it `processed`, also a `failed` one
whose event the broker took despite the error.
The shape lives in core because both services read and write it and neither imports
the other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel

from lightning_core.events import CloudEvent
from lightning_core.storage.base import Document, NotFound, PreconditionFailed, Storage

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


async def mark_processed(storage: Storage, event: CloudEvent) -> bool:
    """Mark the event processed; False when it already was (a redelivery: nothing to do).

    The replace is conditional on the etag read, so two consumers racing on a redelivered
    event cannot both apply it: the loser gets PreconditionFailed and the bus retries it,
    then finds it processed.
    """
    try:
        document = await storage.get(EVENTS, event.user, event.id)
    except NotFound:
        # Published by a producer that does not keep records (another service, a replay).
        record = EventRecord(event=event, status=EventStatus.RECEIVED, received_at=event.time)
        document = await storage.upsert(EVENTS, event.user, event.id, record.to_body())
    record = EventRecord.from_document(document)
    if record.status is EventStatus.PROCESSED:
        return False
    processed = record.model_copy(
        update={"status": EventStatus.PROCESSED, "processed_at": datetime.now(UTC), "error": None}
    )
    await storage.replace(EVENTS, event.user, event.id, processed.to_body(), if_match=document.etag)
    return True


async def mark_failed(storage: Storage, event: CloudEvent, reason: str) -> bool:
    """Mark a `received` event failed with `reason`; False when it is no longer `received`
    (the processor got it after all), which the conditional replace also guarantees against
    a processor marking it in between."""
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
