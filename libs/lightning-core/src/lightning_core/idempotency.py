"""Effects happen once: a ledger of processed events, written after the effect (a failure in
between repeats it; an effect that must never repeat keys its own result by the event id).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from lightning_core.bus.base import Handler
from lightning_core.events import CloudEvent
from lightning_core.storage.base import Conflict, NotFound, Storage

LEDGER = "ledger"


def ledger_key(group: str, event: CloudEvent) -> str:
    return f"{group}:{event.id}"


async def already_processed(storage: Storage, group: str, event: CloudEvent) -> bool:
    try:
        await storage.get(LEDGER, event.user, ledger_key(group, event))
    except NotFound:
        return False
    return True


async def record_processed(storage: Storage, group: str, event: CloudEvent) -> None:
    body = {"group": group, "event_id": event.id, "processed_at": datetime.now(UTC).isoformat()}
    with contextlib.suppress(Conflict):  # a concurrent delivery recorded it first
        await storage.create(LEDGER, event.user, ledger_key(group, event), body)


def idempotent(storage: Storage, group: str, handler: Handler) -> Handler:
    """`handler`, skipping events the group has already processed."""

    async def once(event: CloudEvent) -> None:
        if await already_processed(storage, group, event):
            return
        await handler(event)
        await record_processed(storage, group, event)

    return once
