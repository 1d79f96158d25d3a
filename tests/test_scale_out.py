"""Two processor workers on one consumer group share the work with no duplicate effects.

As `--scale event-processor=2` (or two Container Apps replicas) runs them: each worker with
its own bus connection and its own storage pool, on Redis and on RabbitMQ. Every event
matches an instruction that requests a notify task, so a doubly handled event would show
as a second task or notification.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lightning_core.bus.base import EventBus
from lightning_core.bus.rabbitmq import RabbitMqBus
from lightning_core.bus.redis import RedisBus
from lightning_core.config import Settings
from lightning_core.domain import INSTRUCTIONS, PROCESSOR_GROUP, Instruction, RequestTask
from lightning_core.events import CloudEvent
from lightning_core.records import EVENTS, EventRecord, record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Document
from lightning_core.storage.sqlite import SqliteStorage
from lightning_processor.main import service

EVENTS_SENT = 200
USERS = 20
SETTLE_WITHIN = 60.0


@pytest.fixture(params=["bus_redis", "bus_rabbitmq"])
def shared_bus(request: pytest.FixtureRequest) -> EventBus:
    bus: EventBus = request.getfixturevalue(request.param)
    return bus


def sibling(bus: EventBus) -> EventBus:
    """A second connection to the same namespace, as another process would open."""
    if isinstance(bus, RedisBus):
        return RedisBus(bus.url, bus.namespace, retry=bus.retry, claim_idle=bus.claim_idle)
    assert isinstance(bus, RabbitMqBus)
    return RabbitMqBus(bus.url, bus.namespace, retry=bus.retry)


class CountingStorage(SqliteStorage):
    """Counts the event records it writes: the share of the work its worker did."""

    settled = 0

    async def replace(self, collection: str, *args: Any, **kwargs: Any) -> Document:
        if collection == EVENTS:
            self.settled += 1
        return await super().replace(collection, *args, **kwargs)


@pytest.fixture
async def second_storage(settings: Settings) -> AsyncIterator[SqliteStorage]:
    """The same database through a storage of its own, as another process would open."""
    other = CountingStorage(settings.sqlite_path)
    await other.connect()
    yield other
    await other.close()


async def test_two_workers_handle_every_event_once(
    settings: Settings,
    storage: SqliteStorage,
    second_storage: CountingStorage,
    shared_bus: EventBus,
) -> None:
    other_bus = sibling(shared_bus)
    await other_bus.connect()
    contexts = [
        ServiceContext(settings, storage, shared_bus),
        ServiceContext(settings, second_storage, other_bus),
    ]
    for n in range(USERS):
        instruction = Instruction(
            user=f"u{n}",
            name="door",
            event_type="door.opened",
            action=RequestTask(task="notify", params={"title": "Door"}),
        )
        body = instruction.model_dump(mode="json")
        await storage.create(INSTRUCTIONS, instruction.user, instruction.id, body)
    await shared_bus.open_group(PROCESSOR_GROUP)
    stop = asyncio.Event()
    workers = [asyncio.create_task(service(context, stop)) for context in contexts]
    events = [
        CloudEvent(source="test", type="door.opened", subject=f"d{n % 7}", user=f"u{n % USERS}")
        for n in range(EVENTS_SENT)
    ]
    for event in events:
        await record_received(storage, event)
    await shared_bus.publish_batch(events)
    try:
        async with asyncio.timeout(SETTLE_WITHIN):
            while True:
                records = [
                    EventRecord.from_document(d)
                    for d in await storage.query_all(EVENTS, limit=2 * EVENTS_SENT)
                ]
                tasks = await storage.query_all("tasks", limit=2 * EVENTS_SENT)
                notes = await storage.query_all("notifications", limit=2 * EVENTS_SENT)
                processed = {r.event.id for r in records if r.status == "processed"}
                if (
                    processed >= {e.id for e in events}
                    and all(t.body["status"] == "succeeded" for t in tasks)
                    and len(notes) >= EVENTS_SENT
                ):
                    break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), 60)
        await other_bus.close()
    tasks = await storage.query_all("tasks", limit=2 * EVENTS_SENT)
    notifications = await storage.query_all("notifications", limit=2 * EVENTS_SENT)
    handled = sum(r.status == "processed" for r in records)
    assert 0 < second_storage.settled < handled  # both workers took a share
    assert len(tasks) == EVENTS_SENT
    assert len(notifications) == EVENTS_SENT
    assert sorted(t.body["source_event_id"] for t in tasks) == sorted(e.id for e in events)
