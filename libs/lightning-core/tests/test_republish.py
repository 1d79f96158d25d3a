"""The sweeper that publishes again events an API stored but never published."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.domain import INSTRUCTIONS, PROCESSOR_GROUP
from lightning_core.events import CloudEvent
from lightning_core.idempotency import LEDGER
from lightning_core.records import EVENTS, EventRecord, EventStatus, mark_processed
from lightning_core.republish import purge_expired, republish_stale, run_republisher
from lightning_core.storage.base import Document, JsonScalar, NotFound, Storage
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.backends import listed

GROUP = "sweep-test"
BOUND = timedelta(minutes=5)
SWEEP_AT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=listed("STORAGE"))
def store(request: pytest.FixtureRequest) -> Storage:
    storage: Storage = request.getfixturevalue(request.param)
    return storage


@pytest.fixture
async def memory_bus() -> AsyncIterator[MemoryBus]:
    async with MemoryBus() as bus:
        await bus.open_group(GROUP)
        yield bus


async def stored(
    storage: Storage,
    user: str,
    received_at: datetime,
    status: EventStatus = EventStatus.RECEIVED,
) -> CloudEvent:
    """A record as the API writes it before publishing, and no publish (a killed API)."""
    event = CloudEvent(source="test", type="door.opened", user=user)
    record = EventRecord(event=event, status=status, received_at=received_at)
    await storage.create(EVENTS, user, event.id, record.to_body())
    return event


async def handled(storage: Storage, bus: MemoryBus, count: int) -> list[str]:
    """Consume until `count` events were handled as the processor does; their ids."""
    return await handled_in(storage, bus, GROUP, count)


async def handled_in(storage: Storage, bus: MemoryBus, group: str, count: int) -> list[str]:
    seen: list[str] = []
    stop = asyncio.Event()

    async def handle(event: CloudEvent) -> None:
        await mark_processed(storage, event)
        seen.append(event.id)
        if len(seen) == count:
            stop.set()

    async with asyncio.timeout(10):
        await bus.consume(group, handle, stop=stop)
    return seen


async def status_of(storage: Storage, event: CloudEvent) -> EventStatus:
    return EventRecord.from_document(await storage.get(EVENTS, event.user, event.id)).status


async def test_a_stale_received_event_is_published_again_and_processed(
    store: Storage, memory_bus: MemoryBus
) -> None:
    stale = SWEEP_AT - BOUND - timedelta(seconds=1)
    orphans = [await stored(store, user, stale) for user in ("alice", "bob")]
    naive = await stored(store, "carol", stale.replace(tzinfo=None))
    fresh = await stored(store, "alice", SWEEP_AT - BOUND + timedelta(seconds=1))
    done = await stored(store, "alice", stale, EventStatus.PROCESSED)

    count = await republish_stale(store, memory_bus, older_than=BOUND, now=SWEEP_AT)

    assert count == 3
    assert sorted(await handled(store, memory_bus, 3)) == sorted(
        event.id for event in [*orphans, naive]
    )
    for event in [*orphans, naive, done]:
        assert await status_of(store, event) is EventStatus.PROCESSED
    assert await status_of(store, fresh) is EventStatus.RECEIVED
    assert await republish_stale(store, memory_bus, older_than=BOUND, now=SWEEP_AT) == 0


async def test_a_sweep_publishes_at_most_limit_events_oldest_first(
    store: Storage, memory_bus: MemoryBus
) -> None:
    oldest = SWEEP_AT - timedelta(hours=3)
    events = [
        await stored(store, user, oldest + timedelta(minutes=n))
        for n, user in enumerate(["bob", "alice", "carol"])
    ]
    assert await republish_stale(store, memory_bus, older_than=BOUND, limit=2, now=SWEEP_AT) == 2
    # The two oldest; handled concurrently (two users), so in either order.
    assert sorted(await handled(store, memory_bus, 2)) == sorted([events[0].id, events[1].id])


class FailingOnce(SqliteStorage):
    """Storage whose first sweep query fails, as an unreachable database would."""

    failed = False

    async def query_all(
        self,
        collection: str,
        *,
        where: Mapping[str, JsonScalar] | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
    ) -> list[Document]:
        if not self.failed:
            self.failed = True
            raise ConnectionError("database unreachable")
        return await super().query_all(
            collection, where=where, order_by=order_by, descending=descending, limit=limit
        )


class RefusingOnce(MemoryBus):
    """A bus whose first publish the broker refuses."""

    refused = False

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        if not self.refused:
            self.refused = True
            raise RuntimeError("broker said no")
        await super()._publish(events)


async def test_the_republisher_survives_storage_and_bus_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lightning_core.periodic")
    async with FailingOnce(tmp_path / "sweep.db") as storage, RefusingOnce() as bus:
        await bus.open_group(GROUP)
        orphan = await stored(storage, "alice", datetime.now(UTC) - BOUND)
        stop = asyncio.Event()
        sweeping = asyncio.create_task(
            run_republisher(storage, bus, every=0.01, older_than=BOUND, stop=stop)
        )
        assert await handled(storage, bus, 1) == [orphan.id]
        stop.set()
        async with asyncio.timeout(5):
            await sweeping
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "database unreachable" in warnings[0]
    assert "broker said no" in warnings[1]
    assert "republishing events still received after 0:05:00: 1" in caplog.messages


async def test_a_stale_event_the_processor_dead_lettered_is_marked_failed_not_republished(
    store: Storage,
) -> None:
    async with MemoryBus(retry=RetryPolicy(max_attempts=1)) as bus:
        await bus.open_group(PROCESSOR_GROUP)
        poisoned = await stored(store, "alice", SWEEP_AT - BOUND - timedelta(seconds=1))
        await bus.publish(poisoned)
        stop = asyncio.Event()

        async def refuse(_event: CloudEvent) -> None:
            stop.set()
            raise ValueError("no driver can take it")

        async with asyncio.timeout(10):
            await bus.consume(PROCESSOR_GROUP, refuse, stop=stop)
        assert [letter.event.id for letter in await bus.dead_letters(PROCESSOR_GROUP)] == [
            poisoned.id
        ]

        assert await republish_stale(store, bus, older_than=BOUND, now=SWEEP_AT) == 0

        record = EventRecord.from_document(await store.get(EVENTS, "alice", poisoned.id))
        assert record.status is EventStatus.FAILED
        assert record.error == "dead letter: ValueError: no driver can take it"
        await bus.replay(PROCESSOR_GROUP, poisoned.id)  # fixed, replayed: processed after all
        assert await handled_in(store, bus, PROCESSOR_GROUP, 1) == [poisoned.id]
        assert await status_of(store, poisoned) is EventStatus.PROCESSED


RETENTION = timedelta(days=30)


async def test_events_and_ledger_entries_past_the_retention_are_purged(store: Storage) -> None:
    old = [await stored(store, "alice", SWEEP_AT), await stored(store, "bob", SWEEP_AT)]
    await store.create(LEDGER, "alice", "old-entry", {})
    await store.create(INSTRUCTIONS, "alice", "kept", {})  # instructions never expire
    await asyncio.sleep(1.05)  # Cosmos DB stamps writes in whole seconds
    cutoff = datetime.now(UTC)
    fresh = await stored(store, "alice", SWEEP_AT)
    await store.create(LEDGER, "alice", "fresh-entry", {})

    assert await purge_expired(store, retention=RETENTION, now=cutoff + RETENTION) == 3
    for event in old:
        with pytest.raises(NotFound):
            await store.get(EVENTS, event.user, event.id)
    with pytest.raises(NotFound):
        await store.get(LEDGER, "alice", "old-entry")
    assert await status_of(store, fresh) is EventStatus.RECEIVED
    await store.get(LEDGER, "alice", "fresh-entry")
    await store.get(INSTRUCTIONS, "alice", "kept")


async def test_the_republisher_purges_with_a_retention(tmp_path: Path) -> None:
    async with SqliteStorage(tmp_path / "purge.db") as storage, MemoryBus() as bus:
        expired = await stored(storage, "alice", datetime.now(UTC), EventStatus.PROCESSED)
        await storage.create(INSTRUCTIONS, "alice", "kept", {})
        stop = asyncio.Event()
        sweeping = asyncio.create_task(
            run_republisher(
                storage, bus, every=0.01, older_than=BOUND, stop=stop, retention=timedelta(0)
            )
        )
        async with asyncio.timeout(5):
            while True:
                try:
                    await storage.get(EVENTS, "alice", expired.id)
                except NotFound:
                    break
                await asyncio.sleep(0.01)
        stop.set()
        await sweeping
        await storage.get(INSTRUCTIONS, "alice", "kept")
