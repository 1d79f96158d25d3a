"""What changed in one user's events since the last look: the source of the live stream.

The stream polls storage instead of consuming the bus, for three reasons:
- status changes are storage writes (the processor marks a record `processed`); the bus
  only carries submitted events, so it could never report them;
- a consumer group per API replica (`api-stream-<uuid>`) would leave a queue or
  subscription behind on RabbitMQ, Service Bus and Redis every time a replica dies, and
  each replica's group would receive every user's events just to drop most of them;
- a partition-scoped query is the same operation on SQLite, PostgreSQL and Cosmos DB, and
  the partition key *is* the user, so isolation needs no extra filtering.
The price is latency (at most one poll interval) and two small queries per open stream
per interval.

Storage can only filter by equality, so each poll reads the newest records in two
orders — by `received_at` (new events) and by `processed_at` among processed ones (status
changes) — stopping at a horizon `LOOKBACK` before the previous poll. Looking back that
far catches a write that became visible late (committed after a later one, or stamped
by a replica whose clock lags); `_sent` remembers what was already reported within the
horizon, so a record is reported once per status, and never back from `processed`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

from lightning_core.records import EVENTS, EventRecord, EventStatus
from lightning_core.storage.base import JsonScalar, Storage

LOOKBACK = timedelta(seconds=5)
PAGE_SIZE = 25


class EventChanges:
    def __init__(self, storage: Storage, user: str) -> None:
        self._storage = storage
        self._user = user
        self._sent: dict[str, EventRecord] = {}
        self._horizon = datetime.now(UTC) - LOOKBACK

    async def poll(self) -> list[EventRecord]:
        """Records that are new, or newly processed, since the previous poll; oldest first."""
        started = datetime.now(UTC)
        changed: list[EventRecord] = []
        for field, where in (("received_at", None), ("processed_at", {"status": "processed"})):
            recent = [record async for record in self._newest(field, where)]
            for record in reversed(recent):
                known = self._sent.get(record.event.id)
                if known is None or (
                    known.status is EventStatus.RECEIVED and record.status is EventStatus.PROCESSED
                ):
                    self._sent[record.event.id] = record
                    changed.append(record)
        self._horizon = started - LOOKBACK
        self._forget_older_than(self._horizon)
        return changed

    async def _newest(
        self, field: str, where: Mapping[str, JsonScalar] | None
    ) -> AsyncIterator[EventRecord]:
        continuation: str | None = None
        while True:
            page = await self._storage.query(
                EVENTS,
                self._user,
                where=where,
                order_by=field,
                descending=True,
                limit=PAGE_SIZE,
                continuation=continuation,
            )
            for document in page.items:
                record = EventRecord.from_document(document)
                stamp = record.received_at if field == "received_at" else record.processed_at
                if stamp is None or stamp < self._horizon:
                    return
                yield record
            if page.continuation is None:
                return
            continuation = page.continuation

    def _forget_older_than(self, horizon: datetime) -> None:
        """Drop what no scan can see again, so a long-lived stream holds bounded memory."""
        self._sent = {
            event_id: record
            for event_id, record in self._sent.items()
            if record.received_at >= horizon
            or (record.processed_at is not None and record.processed_at >= horizon)
        }
