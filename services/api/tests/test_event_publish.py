"""POST /api/events when the bus does not take the event: a bounded wait, 503, and a record
that says `failed` (never silently `received`), unless the processor got it after all."""

import asyncio
import time
from collections.abc import Callable, Sequence

import httpx

from lightning_api.event_changes import EventChanges
from lightning_core.bus.memory import MemoryBus
from lightning_core.events import CloudEvent
from lightning_core.records import (
    EVENTS,
    EventRecord,
    EventStatus,
    mark_failed,
    mark_processed,
    record_received,
)
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Storage

ClientAs = Callable[[ServiceContext, str], httpx.AsyncClient]  # the `client_as` fixture

EVENT = {"type": "door.opened", "data": {"by": "alice"}}


class RefusingBus(MemoryBus):
    """A broker that answers every publish with an error."""

    async def _publish(self, _events: Sequence[CloudEvent]) -> None:
        raise RuntimeError("broker said no")


class SilentBus(MemoryBus):
    """A broker that never answers."""

    async def _publish(self, _events: Sequence[CloudEvent]) -> None:
        await asyncio.Event().wait()


class LateProcessorBus(MemoryBus):
    """A broker that delivers (the processor marks the event) but then reports an error."""

    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self.storage = storage

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        for event in events:
            await mark_processed(self.storage, event)
        raise RuntimeError("lost the confirm")


async def stored(context: ServiceContext, event_id: str) -> EventRecord:
    return EventRecord.from_document(await context.storage.get(EVENTS, "alice", event_id))


async def only_record(context: ServiceContext) -> EventRecord:
    [document] = (await context.storage.query(EVENTS, "alice")).items
    return EventRecord.from_document(document)


async def test_a_refused_publish_is_503_and_the_record_failed(
    context: ServiceContext, client_as: ClientAs
) -> None:
    async with (
        RefusingBus() as refusing,
        client_as(ServiceContext(context.settings, context.storage, refusing), "alice") as alice,
    ):
        response = await alice.post("/api/events", json=EVENT)
        assert response.status_code == 503
        assert "RuntimeError: broker said no" in response.json()["detail"]
        [listed] = (await alice.get("/api/events")).json()["items"]
        failed = (await alice.get("/api/events", params={"status": "failed"})).json()["items"]
    assert listed["status"] == "failed"
    assert listed["error"] == "not published: RuntimeError: broker said no"
    assert failed == [listed]


async def test_a_silent_bus_costs_the_publish_timeout_not_more(
    context: ServiceContext, client_as: ClientAs
) -> None:
    settings = context.settings.model_copy(update={"publish_timeout_seconds": 0.3})
    async with (
        SilentBus() as silent,
        client_as(ServiceContext(settings, context.storage, silent), "alice") as alice,
    ):
        started = time.monotonic()
        response = await alice.post("/api/events", json=EVENT)
        took = time.monotonic() - started
    assert response.status_code == 503
    assert "LIGHTNING_PUBLISH_TIMEOUT_SECONDS" in response.json()["detail"]
    assert 0.3 <= took < 2
    record = await only_record(context)
    assert record.status is EventStatus.FAILED
    assert "within 0.3 s" in str(record.error)


async def test_an_event_the_processor_got_despite_a_publish_error_is_accepted(
    context: ServiceContext,
    client_as: ClientAs,
) -> None:
    async with (
        LateProcessorBus(context.storage) as late,
        client_as(ServiceContext(context.settings, context.storage, late), "alice") as alice,
    ):
        response = await alice.post("/api/events", json=EVENT)
    assert response.status_code == 202
    record = await stored(context, response.json()["event"]["id"])
    assert record.status is EventStatus.PROCESSED
    assert record.error is None


async def test_a_failed_event_the_broker_took_after_all_turns_processed(
    context: ServiceContext,
) -> None:
    event = CloudEvent(source="api", type="door.opened", user="alice")
    await record_received(context.storage, event)
    assert await mark_failed(context.storage, event, "not published: TimeoutError")
    assert (await stored(context, event.id)).status is EventStatus.FAILED

    assert await mark_processed(context.storage, event)  # the broker delivered it anyway
    record = await stored(context, event.id)
    assert record.status is EventStatus.PROCESSED
    assert record.error is None
    assert not await mark_failed(context.storage, event, "too late")
    assert (await stored(context, event.id)).status is EventStatus.PROCESSED


async def test_a_silent_bus_fails_a_task_request_within_the_timeout(
    context: ServiceContext,
    client_as: ClientAs,
) -> None:
    settings = context.settings.model_copy(update={"publish_timeout_seconds": 0.3})
    async with (
        SilentBus() as silent,
        client_as(ServiceContext(settings, context.storage, silent), "alice") as alice,
    ):
        started = time.monotonic()
        response = await alice.post("/api/tasks", json={"kind": "wait"})
        assert time.monotonic() - started < 2
        assert response.status_code == 503
        [task] = (await alice.get("/api/tasks")).json()["items"]
    assert task["status"] == "failed"
    assert "LIGHTNING_PUBLISH_TIMEOUT_SECONDS" in task["error"]


async def test_the_stream_reports_an_event_turning_failed(context: ServiceContext) -> None:
    changes = EventChanges(context.storage, "alice")
    event = CloudEvent(source="api", type="door.opened", user="alice")
    await record_received(context.storage, event)
    assert [record.status for record in await changes.poll()] == [EventStatus.RECEIVED]
    await mark_failed(context.storage, event, "not published: TimeoutError")
    [changed] = await changes.poll()
    assert (changed.status, changed.error) == (EventStatus.FAILED, "not published: TimeoutError")
    assert await changes.poll() == []
