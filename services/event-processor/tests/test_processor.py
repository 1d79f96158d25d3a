import asyncio
from pathlib import Path
from typing import Any

import pytest

from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings
from lightning_core.domain import NOTIFICATION_REQUESTED
from lightning_core.events import CloudEvent
from lightning_core.heartbeats import instance_name, recent
from lightning_core.records import EVENTS, EventRecord, EventStatus, record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Document, Page
from lightning_core.storage.sqlite import SqliteStorage
from lightning_processor.handler import CONSUMER_GROUP, Processor
from lightning_processor.main import service


@pytest.fixture
def processor(settings: Settings, storage: SqliteStorage, bus: MemoryBus) -> Processor:
    return Processor.from_settings(storage, bus, settings)


def make_event() -> CloudEvent:
    return CloudEvent(source="test", type="order.created", user="alice")


async def stored(storage: SqliteStorage, event: CloudEvent) -> EventRecord:
    return EventRecord.from_document(await storage.get(EVENTS, event.user, event.id))


async def test_handle_marks_the_event_processed_once(
    storage: SqliteStorage, processor: Processor
) -> None:
    event = make_event()
    await record_received(storage, event)
    await processor.handle(event)
    first = await stored(storage, event)
    assert first.status is EventStatus.PROCESSED
    await processor.handle(event)  # a redelivery
    assert (await stored(storage, event)).processed_at == first.processed_at


async def test_handle_records_events_published_without_a_record(
    storage: SqliteStorage, processor: Processor
) -> None:
    event = make_event()
    await processor.handle(event)
    assert (await stored(storage, event)).status is EventStatus.PROCESSED


async def test_service_consumes_until_stopped(
    context: ServiceContext, storage: SqliteStorage, bus: MemoryBus
) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(service(context, stop))
    events = [make_event() for _ in range(20)]
    for event in events:
        await record_received(storage, event)
    await bus.publish_batch(events)
    async with asyncio.timeout(5):
        while (await stored(storage, events[-1])).status is not EventStatus.PROCESSED:
            await asyncio.sleep(0.01)
    [beat] = await recent(storage)  # the worker said it is alive while it ran
    assert (beat.service, beat.instance) == (CONSUMER_GROUP, instance_name())
    stop.set()
    await asyncio.wait_for(running, 5)
    statuses = {(await stored(storage, event)).status for event in events}
    assert statuses == {EventStatus.PROCESSED}


async def test_the_worker_publishes_again_what_the_api_stored_but_never_published(
    settings: Settings, storage: SqliteStorage, bus: MemoryBus
) -> None:
    """An API that died between storing and publishing left the record `received`."""
    settings = settings.model_copy(update={"republish_after_seconds": 0.2})
    orphan = make_event()
    await record_received(storage, orphan)
    stop = asyncio.Event()
    running = asyncio.create_task(service(ServiceContext(settings, storage, bus), stop))
    async with asyncio.timeout(5):
        while (await stored(storage, orphan)).status is not EventStatus.PROCESSED:
            await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(running, 5)


class CountingStorage(SqliteStorage):
    """Counts the calls the processor makes: each is a round trip on a server's storage."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[str] = []

    async def get(self, collection: str, partition: str, doc_id: str) -> Document:
        self.calls.append(f"get {collection}")
        return await super().get(collection, partition, doc_id)

    async def create(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        self.calls.append(f"create {collection}")
        return await super().create(collection, partition, doc_id, body)

    async def replace(
        self,
        collection: str,
        partition: str,
        doc_id: str,
        body: dict[str, Any],
        *,
        if_match: str,
    ) -> Document:
        self.calls.append(f"replace {collection}")
        return await super().replace(collection, partition, doc_id, body, if_match=if_match)

    async def upsert(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        self.calls.append(f"upsert {collection}")
        return await super().upsert(collection, partition, doc_id, body)

    async def query(self, collection: str, partition: str, **options: Any) -> Page:
        self.calls.append(f"query {collection}")
        return await super().query(collection, partition, **options)


async def test_an_event_without_instructions_costs_three_storage_calls(
    settings: Settings, bus: MemoryBus, tmp_path: Path
) -> None:
    """Read the record, look for instructions, mark it processed; a redelivery only reads."""
    async with CountingStorage(tmp_path / "counted.db") as storage:
        processor = Processor.from_settings(storage, bus, settings)
        event = make_event()
        await record_received(storage, event)
        storage.calls.clear()
        await processor.handle(event)
        assert storage.calls == ["get events", "query instructions", "replace events"]
        storage.calls.clear()
        await processor.handle(event)
        assert storage.calls == ["get events"]
        storage.calls.clear()
        follow = make_event()  # the same user, within the instructions' TTL: no query
        await record_received(storage, follow)
        await processor.handle(follow)
        assert storage.calls == ["create events", "get events", "replace events"]


async def test_a_follow_up_without_a_record_is_recorded_processed_in_one_write(
    settings: Settings, bus: MemoryBus, tmp_path: Path
) -> None:
    async with CountingStorage(tmp_path / "counted.db") as storage:
        processor = Processor.from_settings(storage, bus, settings)
        event = CloudEvent(
            source="test", type=NOTIFICATION_REQUESTED, user="alice", data={"title": "t"}
        )
        await processor.handle(event)
        assert storage.calls == ["get events", "create notifications", "create events"]
        assert (await stored(storage, event)).status is EventStatus.PROCESSED
