"""What changed in one user's events since the last look: the source of the live stream.

The stream polls storage instead of consuming the bus, for three reasons:
- status changes are storage writes (the processor marks a record `processed`); the bus
  only carries submitted events, so it could never report them;
- a consumer group per API replica (`api-stream-<uuid>`) would leave a queue or
  subscription behind on RabbitMQ, Service Bus and Redis every time a replica dies, and
  each replica's group would receive every user's events just to drop most of them;
- a partition-scoped query is the same operation on SQLite, PostgreSQL and Cosmos DB, and
  the partition key *is* the user, so isolation needs no extra filtering.
The price is latency (at most one poll interval) and two small queries per interval for
each user with open streams in a replica (`lightning_api.pace`: one watcher per user feeds
all of that user's streams).

Storage can only filter by equality, so each poll reads the newest records in two
orders — by `received_at` (new events) and by `processed_at` among processed ones (status
changes) — stopping at a horizon `LOOKBACK` before the previous poll. Looking back that
far catches a write that became visible late (committed after a later one, or stamped
by a replica whose clock lags); `_sent` remembers what was already reported within the
horizon, so a record is reported once per status, and never back from `processed`. A
record the API marks `failed` (its publish failed, within LIGHTNING_PUBLISH_TIMEOUT_SECONDS
of its receipt) is reported by the `received_at` scan when it is still within the horizon.

Each change has a `Position`: the time it happened (received, or processed) and the event
id, and each poll reports its changes in that order. The stream sends it as the SSE `id`,
so a client that reconnects (EventSource sends `Last-Event-ID` by itself, e.g. after Front
Door or a replica closed the connection) can `resume` after it: the new stream first reports
what changed after that position, from the same scans (its own, once), bounded by
`REPLAY_LIMIT`, then what its user's watcher finds, less what it already reported. What it
cannot know is which writes the old stream saw late, so a change that becomes visible only
after the client's last message with a time before that message's is not replayed (the
LOOKBACK race, across the reconnect).
"""

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
    def __init__(self, storage: Storage, user: str) -> None:
        self._storage = storage
        self._user = user
        self._sent: dict[str, EventRecord] = {}
        self._horizon = datetime.now(UTC) - LOOKBACK

    async def resume(self, after: Position) -> list[EventRecord] | None:
        """The changes after `after` in position order, the stream continuing from there; None,
        learning nothing, when `after` is in the future (a forged id, or another clock's) or
        more than REPLAY_LIMIT records back: the client must then list what exists."""
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
        """Records that are new, or newly processed, since the previous poll; in position
        order."""
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
