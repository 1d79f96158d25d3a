"""Accepting submitted events: store each `received`, then publish the new ones at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import HTTPException, status

from lightning_api.publishing import publish_batch_within, publish_within
from lightning_core.events import CloudEvent
from lightning_core.records import EVENTS, EventRecord, EventStatus, mark_failed, record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Conflict, PreconditionFailed, Storage


@dataclass(frozen=True)
class Accepted:
    """An event's record; `new` when this request stored (or reopened) and published it."""

    record: EventRecord
    new: bool


async def accept(
    context: ServiceContext, events: list[CloudEvent], *, batch: bool
) -> list[Accepted]:
    """Store `events` and publish the new ones (as one batch when `batch`), in order; those the
    bus does not take within LIGHTNING_PUBLISH_TIMEOUT_SECONDS are marked `failed` and
    HTTPException 503 says so, unless the processor got every one after all."""
    accepted = await asyncio.gather(*(store(context.storage, event) for event in events))
    fresh = [item.record.event for item in accepted if item.new]
    if not fresh:
        return accepted
    seconds = context.settings.publish_timeout_seconds
    if batch:
        reason = await publish_batch_within(context.bus, fresh, seconds)
    else:
        reason = await publish_within(context.bus, fresh[0], seconds)
    if reason is None:
        return accepted
    marked = await asyncio.gather(
        *(mark_failed(context.storage, event, f"not published: {reason}") for event in fresh)
    )
    failed = [event.id for event, was_marked in zip(fresh, marked, strict=True) if was_marked]
    if failed:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{_failed(failed)} not published: {reason}; {_resend(failed)}",
        )
    return accepted


async def store(storage: Storage, event: CloudEvent) -> Accepted:
    """`event` stored `received`; or the record already kept under its id, reopened
    (`received` again, to publish) when it is `failed`."""
    try:
        return Accepted(await record_received(storage, event), new=True)
    except Conflict:
        document = await storage.get(EVENTS, event.user, event.id)
    kept = EventRecord.from_document(document)
    if kept.status is not EventStatus.FAILED:
        return Accepted(kept, new=False)
    reopened = EventRecord(
        event=kept.event, status=EventStatus.RECEIVED, received_at=datetime.now(UTC)
    )
    try:
        await storage.replace(
            EVENTS, event.user, event.id, reopened.to_body(), if_match=document.etag
        )
    except PreconditionFailed:  # a concurrent resubmission reopened it first
        document = await storage.get(EVENTS, event.user, event.id)
        return Accepted(EventRecord.from_document(document), new=False)
    return Accepted(reopened, new=True)


def _failed(ids: list[str]) -> str:
    return f"event {ids[0]}" if len(ids) == 1 else f"{len(ids)} events ({ids[0]}, ...)"


def _resend(ids: list[str]) -> str:
    if len(ids) == 1:
        return "it is recorded as failed, send it again"
    return "they are recorded as failed, send them again"
