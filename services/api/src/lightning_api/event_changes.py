"""What changed in one user's events since the last look, read from storage (not the bus),
and the `Position` of each change, which a reconnecting stream resumes after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lightning_core.records import EVENTS, EventRecord, EventStatus
from lightning_core.storage.base import JsonScalar, Storage

LOOKBACK = timedelta(seconds=5)
PAGE_SIZE = 25
REPLAY_LIMIT = 4 * PAGE_SIZE  # records a resume reads at most; further back, the client relists
_POSITION_MAX_LENGTH = 200
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # no record is older; nor, so, a real position


@dataclass(frozen=True, order=True)
class Position:
    """A point in one user's changes: everything up to `stamp` (and, at that time, up to
    `event_id`) is behind it. Its text form is the stream's SSE `id`."""

    stamp: datetime
    event_id: str = ""

    def __str__(self) -> str:
        return f"{self.stamp.isoformat()} {self.event_id}".rstrip()

    @classmethod
    def of(cls, record: EventRecord) -> Position:
        """Where the record's latest change (its receipt, or its processing) stands."""
        return cls(record.processed_at or record.failed_at or record.received_at, record.event.id)

    @classmethod
    def parse(cls, text: str | None) -> Position | None:
        """The position an SSE id names; None for anything else (no id, forged, garbled)."""
        if not text or len(text) > _POSITION_MAX_LENGTH:
            return None
        stamp_text, _, event_id = text.partition(" ")
        try:
            stamp = datetime.fromisoformat(stamp_text)
            if stamp.tzinfo is None or stamp < _EARLIEST:
                return None
            return cls(stamp.astimezone(UTC), event_id)
        except (ValueError, OverflowError):
            return None


@dataclass(frozen=True)
class Change:
    """A record's change as a stream sends it, encoded once for all the streams sending it:
    the SSE `id` (its position) and the record as JSON."""

    record: EventRecord
    id: str
    data: str

    @classmethod
    def of(cls, record: EventRecord) -> Change:
        return cls(record, str(Position.of(record)), record.model_dump_json())


class EventChanges:
    """One user's changes: each record reported once per status, never back from
    `processed`, including writes that became visible up to LOOKBACK late."""

    def __init__(self, storage: Storage, user: str) -> None:
        self._storage = storage
        self._user = user
        self._sent: dict[str, EventRecord] = {}
        self._horizon = datetime.now(UTC) - LOOKBACK

    async def resume(self, after: Position) -> list[EventRecord] | None:
        """The changes after `after`, in position order; None, learning nothing, when `after` is
        in the future or more than REPLAY_LIMIT records back (the client must then relist)."""
        started = datetime.now(UTC)
        if after.stamp > started:
            return None
        horizon = after.stamp - LOOKBACK
        recent: list[EventRecord] = []
        async for record in self._recent(horizon):
            recent.append(record)
            if len(recent) > REPLAY_LIMIT:
                return None
        return [record for record in self._learn(recent, started) if Position.of(record) > after]

    async def poll(self) -> list[EventRecord]:
        """Records that are new, or newly processed, since the previous poll, in position order."""
        started = datetime.now(UTC)
        return self._learn([record async for record in self._recent(self._horizon)], started)

    def _learn(self, recent: list[EventRecord], started: datetime) -> list[EventRecord]:
        """What in `recent` was not reported yet (now it is), and the horizon moves on."""
        changed: list[EventRecord] = []
        for record in recent:
            known = self._sent.get(record.event.id)
            if known is None or (
                known.status is EventStatus.RECEIVED and record.status is not EventStatus.RECEIVED
            ):
                self._sent[record.event.id] = record
                changed.append(record)
        self._horizon = started - LOOKBACK
        self._forget_older_than(self._horizon)
        return sorted(changed, key=Position.of)

    async def _recent(self, horizon: datetime) -> AsyncIterator[EventRecord]:
        """Records received, then records processed, since `horizon`; newest first in each."""
        for field, where in (("received_at", None), ("processed_at", {"status": "processed"})):
            async for record in self._newest(field, where, horizon):
                yield record

    async def _newest(
        self, field: str, where: Mapping[str, JsonScalar] | None, horizon: datetime
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
                if stamp is None or stamp < horizon:
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
            if Position.of(record).stamp >= horizon
        }
