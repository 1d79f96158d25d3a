"""The drivers on embedded storage (SQLite) and a real MemoryBus that remembers what it got."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings
from lightning_core.domain import (
    INSTRUCTIONS,
    MAX_HOPS,
    NOTIFICATION_REQUESTED,
    NOTIFICATIONS,
    TASK_FAILED,
    TASK_REQUESTED,
    TASK_SUCCEEDED,
    TASKS,
    Emit,
    Instruction,
    Notification,
    Notify,
    RequestTask,
    Task,
    TaskKind,
    TaskStatus,
)
from lightning_core.events import CloudEvent
from lightning_core.records import EVENTS, EventRecord, EventStatus, record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Storage
from lightning_core.storage.sqlite import SqliteStorage
from lightning_processor.drivers import (
    Driver,
    InstructionEngine,
    Notifier,
    Registry,
    TaskRunner,
    builtin_registry,
)
from lightning_processor.drivers.base import SOURCE, matches
from lightning_processor.drivers.instructions import render
from lightning_processor.handler import Processor
from lightning_processor.main import service


class RecordingBus(MemoryBus):
    """A MemoryBus whose publishes tests can read back in order."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[CloudEvent] = []

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        self.published.extend(events)
        await super()._publish(events)

    def of_type(self, type_: str) -> list[CloudEvent]:
        return [event for event in self.published if event.type == type_]


@pytest.fixture
async def recording_bus() -> AsyncIterator[RecordingBus]:
    async with RecordingBus() as connected:
        yield connected


@pytest.fixture
def processor(settings: Settings, storage: SqliteStorage, recording_bus: RecordingBus) -> Processor:
    return Processor.from_settings(storage, recording_bus, settings)


def processor_of(
    storage: Storage, bus: RecordingBus, *drivers: Driver, max_follow_ups: int = 100
) -> Processor:
    return Processor(storage, bus, Registry(drivers), max_follow_ups=max_follow_ups)


async def add_instruction(storage: Storage, **fields: object) -> Instruction:
    """Stored as the API stores it: the model's JSON form under its id."""
    instruction = Instruction.model_validate({"user": "alice", "name": "rule", **fields})
    body = instruction.model_dump(mode="json")
    await storage.create(INSTRUCTIONS, instruction.user, instruction.id, body)
    return instruction


async def add_task(storage: Storage, **fields: object) -> Task:
    task = Task.model_validate({"user": "alice", **fields})
    await storage.create(TASKS, task.user, task.id, task.model_dump(mode="json"))
    return task


async def get_task(storage: Storage, task_id: str) -> Task:
    return Task.model_validate((await storage.get(TASKS, "alice", task_id)).body)


async def all_of(storage: Storage, collection: str) -> list[dict[str, object]]:
    return [document.body for document in (await storage.query(collection, "alice")).items]


def user_event(type_: str = "order.created", **data: object) -> CloudEvent:
    return CloudEvent(source="test", type=type_, user="alice", data=data)


def requested(task: Task) -> CloudEvent:
    return CloudEvent(
        source=SOURCE, type=TASK_REQUESTED, user="alice", data={"task_id": task.id}, hops=1
    )


async def run_to_quiet(
    processor: Processor, bus: RecordingBus, event: CloudEvent
) -> list[CloudEvent]:
    """Handle `event` and every follow-up it causes, in order, as the consumer would."""
    handled: list[CloudEvent] = []
    pending = [event]
    while pending:
        current = pending.pop(0)
        before = len(bus.published)
        await processor.handle(current)
        handled.append(current)
        pending.extend(bus.published[before:])
        assert len(handled) < 100, "the chain does not end"
    return handled


# -- routing ----------------------------------------------------------------------------


def test_wildcards_never_match_internal_types() -> None:
    assert matches("*", "order.created")
    assert matches("order.*", "order.created")
    assert not matches("order.*", "Order.created")  # case-sensitive on every platform
    assert not matches("*", TASK_REQUESTED)
    assert not matches("*.requested", TASK_REQUESTED)
    assert matches("lightning.task.*", TASK_REQUESTED)


def test_the_registry_routes_each_type_to_its_drivers(settings: Settings) -> None:
    registry = builtin_registry(settings)
    assert [d.name for d in registry.routes("order.created")] == ["instructions"]
    assert [d.name for d in registry.routes(TASK_REQUESTED)] == ["tasks"]
    assert [d.name for d in registry.routes(NOTIFICATION_REQUESTED)] == ["notifier"]
    assert registry.routes(TASK_SUCCEEDED) == []


def test_driver_names_are_unique_since_they_name_ledger_groups() -> None:
    with pytest.raises(ValueError, match="unique"):
        Registry([Notifier(), Notifier()])


# -- instruction engine -----------------------------------------------------------------


async def test_a_request_task_instruction_stores_a_pending_task_and_requests_it(
    storage: SqliteStorage, recording_bus: RecordingBus
) -> None:
    instruction = await add_instruction(
        storage,
        event_type="order.*",
        action=RequestTask(task=TaskKind.WAIT, params={"seconds": 0}),
    )
    event = user_event(n=1)
    await InstructionEngine().handle(event, processor_of(storage, recording_bus).context)
    [task_body] = await all_of(storage, TASKS)
    task = Task.model_validate(task_body)
    assert (task.status, task.kind, task.params) == (
        TaskStatus.PENDING,
        TaskKind.WAIT,
        {"seconds": 0},
    )
    assert (task.source_event_id, task.correlationid) == (event.id, event.id)
    [follow_up] = recording_bus.published
    assert follow_up.type == TASK_REQUESTED
    assert follow_up.data == {"task_id": task.id}
    assert (follow_up.user, follow_up.source, follow_up.hops) == ("alice", SOURCE, 1)
    assert follow_up.correlationid == event.id
    assert instruction.id not in follow_up.id  # derived, but opaque


@pytest.mark.parametrize(
    ("fields", "runs"),
    [
        ({"event_type": "order.*", "data_filter": {"vip": True}}, True),
        ({"event_type": "order.*", "data_filter": {"vip": 1}}, False),  # JSON: true is not 1
        ({"event_type": "order.*", "data_filter": {"missing": None}}, False),
        ({"event_type": "order.created", "data_filter": {"n": 3}}, True),
        ({"event_type": "order.created", "data_filter": {"n": 4}}, False),
        ({"event_type": "invoice.*"}, False),
        ({"event_type": "order.*", "enabled": False}, False),
    ],
)
async def test_instructions_match_by_pattern_data_filter_and_enabled(
    processor: Processor, recording_bus: RecordingBus, fields: dict[str, object], runs: bool
) -> None:
    await add_instruction(processor.context.storage, action=Notify(title="hi"), **fields)
    await processor.handle(user_event(vip=True, n=3))
    assert len(recording_bus.of_type(NOTIFICATION_REQUESTED)) == int(runs)


async def test_instructions_only_see_their_users_events(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    await add_instruction(processor.context.storage, event_type="*", action=Notify(title="hi"))
    await processor.handle(CloudEvent(source="test", type="order.created", user="bob"))
    assert recording_bus.published == []


def test_render_substitutes_data_fields_and_nothing_else() -> None:
    data = {"name": "Ada", "total": 12.5}
    assert render("{name} paid {total}", data, 200) == "Ada paid 12.5"
    assert render("{missing} {name.__class__} {0} {{name}}", data, 200) == (
        "{missing} {name.__class__} {0} {Ada}"
    )
    assert render("{name}" * 100, data, 10) == "AdaAdaAdaA"


async def test_a_notify_instruction_renders_title_and_body_from_the_event(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    await add_instruction(
        processor.context.storage,
        event_type="order.*",
        action=Notify(title="Order from {name}", body="{total} EUR"),
    )
    await processor.handle(user_event(name="Ada", total=12))
    [request] = recording_bus.of_type(NOTIFICATION_REQUESTED)
    assert request.data == {"title": "Order from Ada", "body": "12 EUR"}


async def test_an_instruction_may_not_emit_internal_types(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    await add_instruction(
        processor.context.storage, event_type="order.*", action=Emit(type=TASK_REQUESTED)
    )
    await processor.handle(user_event())
    assert recording_bus.published == []


async def test_an_instruction_emitting_what_it_matches_stops_at_max_hops(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    await add_instruction(
        processor.context.storage,
        event_type="ping.*",
        action=Emit(type="ping.again", data={"x": 1}),
    )
    first = user_event("ping.first")
    handled = await run_to_quiet(processor, recording_bus, first)
    assert [event.hops for event in handled] == list(range(MAX_HOPS + 1))
    assert {event.correlationid or event.id for event in handled} == {first.id}
    assert all(event.user == "alice" for event in handled)


async def test_internal_events_never_run_instructions(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    await add_instruction(processor.context.storage, event_type="*", action=Notify(title="hi"))
    await processor.handle(user_event(TASK_SUCCEEDED, task_id="t"))
    assert recording_bus.published == []


# -- idempotency ------------------------------------------------------------------------


async def test_a_redelivered_event_makes_one_task_and_one_notification(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    storage = processor.context.storage
    await add_instruction(
        storage,
        event_type="order.*",
        action=RequestTask(task=TaskKind.NOTIFY, params={"title": "New order"}),
    )
    event = user_event()
    await run_to_quiet(processor, recording_bus, event)
    await run_to_quiet(processor, recording_bus, event)  # redelivered after it was recorded
    assert len(recording_bus.of_type(TASK_REQUESTED)) == 1
    # Redelivered before it was marked processed: the engine runs again, publishes the same
    # ids, and every consumer skips them.
    await storage.delete(EVENTS, "alice", event.id)
    await run_to_quiet(processor, recording_bus, event)
    assert len({e.id for e in recording_bus.of_type(TASK_REQUESTED)}) == 1
    assert len(await all_of(storage, TASKS)) == 1
    assert len(await all_of(storage, NOTIFICATIONS)) == 1
    assert len(recording_bus.of_type(TASK_SUCCEEDED)) == 1


# -- task runner ------------------------------------------------------------------------


async def test_a_notify_task_requests_a_notification_and_succeeds(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    task = await add_task(
        processor.context.storage, kind=TaskKind.NOTIFY, params={"title": "t", "body": "b"}
    )
    await processor.handle(requested(task))
    [request] = recording_bus.of_type(NOTIFICATION_REQUESTED)
    assert request.data == {"title": "t", "body": "b"}
    done = await get_task(processor.context.storage, task.id)
    assert (done.status, done.attempts) == (TaskStatus.SUCCEEDED, 1)
    assert done.result == {"notification_event_id": request.id}
    [succeeded] = recording_bus.of_type(TASK_SUCCEEDED)
    assert succeeded.data == {"task_id": task.id, "result": done.result}


async def test_a_wait_task_waits_at_most_the_bound(
    storage: SqliteStorage, recording_bus: RecordingBus
) -> None:
    processor = processor_of(storage, recording_bus, TaskRunner(max_wait=0.01))
    task = await add_task(storage, kind=TaskKind.WAIT, params={"seconds": 3600})
    async with asyncio.timeout(2):
        await processor.handle(requested(task))
    assert (await get_task(storage, task.id)).result == {"waited": 0.01}
    nan = await add_task(storage, kind=TaskKind.WAIT, params={"seconds": "nan"}, max_attempts=1)
    await processor.handle(requested(nan))
    assert (await get_task(storage, nan.id)).error == "TaskError: wait seconds is NaN"


async def test_an_emit_task_publishes_a_user_event_one_hop_further(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    task = await add_task(
        processor.context.storage,
        kind=TaskKind.EMIT,
        params={"type": "report.ready", "data": {"k": "v"}},
    )
    request = requested(task)
    await processor.handle(request)
    [emitted] = recording_bus.of_type("report.ready")
    assert (emitted.data, emitted.hops, emitted.correlationid) == ({"k": "v"}, 2, request.id)


def streamed(status: int, body: bytes = b"") -> httpx.Response:
    """A reply as the network gives it: a body not read yet (the runner streams it)."""
    return httpx.Response(status, stream=httpx.ByteStream(body))


async def test_a_webhook_posts_only_to_an_allow_listed_origin(
    storage: SqliteStorage, recording_bus: RecordingBus
) -> None:
    received: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return streamed(204)

    runner = TaskRunner(
        webhook_origins=["https://Hooks.example.com"], transport=httpx.MockTransport(answer)
    )
    processor = processor_of(storage, recording_bus, runner)
    allowed = await add_task(
        storage,
        kind=TaskKind.WEBHOOK,
        params={"url": "https://hooks.example.com/in?x=1", "payload": {"a": 1}},
    )
    await processor.handle(requested(allowed))
    [request] = received
    assert json.loads(request.content) == {"a": 1}
    assert (await get_task(storage, allowed.id)).result == {
        "status_code": 204,
        "body_bytes": 0,
        "body_truncated": False,
    }

    for url in ("https://hooks.example.com:8443/in", "http://hooks.example.com/in", "file:///x"):
        refused = await add_task(
            storage, kind=TaskKind.WEBHOOK, params={"url": url}, max_attempts=1
        )
        await processor.handle(requested(refused))
        failed = await get_task(storage, refused.id)
        assert failed.status is TaskStatus.FAILED
        assert failed.error is not None
    assert len(received) == 1


async def test_webhooks_are_refused_when_no_origin_is_allow_listed(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    task = await add_task(
        processor.context.storage,
        kind=TaskKind.WEBHOOK,
        params={"url": "https://hooks.example.com/"},
        max_attempts=1,
    )
    await processor.handle(requested(task))
    failed = await get_task(processor.context.storage, task.id)
    assert "not allow-listed" in (failed.error or "")
    [report] = recording_bus.of_type(TASK_FAILED)
    assert report.data == {"task_id": task.id, "error": failed.error}


async def test_a_failing_task_is_retried_by_a_new_request_until_it_succeeds(
    storage: SqliteStorage, recording_bus: RecordingBus
) -> None:
    statuses = iter([500, 502, 200])
    runner = TaskRunner(
        webhook_origins=["https://hooks.example.com"],
        transport=httpx.MockTransport(lambda _request: streamed(next(statuses))),
    )
    processor = processor_of(storage, recording_bus, runner)
    task = await add_task(
        storage, kind=TaskKind.WEBHOOK, params={"url": "https://hooks.example.com/"}
    )
    await run_to_quiet(processor, recording_bus, requested(task))
    done = await get_task(storage, task.id)
    assert (done.status, done.attempts, done.error) == (TaskStatus.SUCCEEDED, 3, None)
    assert len(recording_bus.of_type(TASK_REQUESTED)) == 2  # the two retries


async def test_a_task_failing_every_attempt_fails_and_reports_it(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    task = await add_task(
        processor.context.storage, kind=TaskKind.NOTIFY, params={"no_title": 1}, max_attempts=2
    )
    await run_to_quiet(processor, recording_bus, requested(task))
    failed = await get_task(processor.context.storage, task.id)
    assert (failed.status, failed.attempts) == (TaskStatus.FAILED, 2)
    assert "ValidationError" in (failed.error or "")
    assert len(recording_bus.of_type(TASK_FAILED)) == 1


@pytest.mark.parametrize("status", [TaskStatus.CANCELLED, TaskStatus.SUCCEEDED])
async def test_final_tasks_are_not_run(
    processor: Processor, recording_bus: RecordingBus, status: TaskStatus
) -> None:
    task = await add_task(
        processor.context.storage, kind=TaskKind.NOTIFY, params={"title": "t"}, status=status
    )
    await processor.handle(requested(task))
    assert recording_bus.published == []
    assert (await get_task(processor.context.storage, task.id)).status is status


async def test_a_request_for_a_missing_task_is_dropped(
    processor: Processor, recording_bus: RecordingBus
) -> None:
    await processor.handle(requested(Task(user="alice", kind=TaskKind.WAIT)))
    assert recording_bus.published == []


# -- notifier ---------------------------------------------------------------------------


async def test_the_notifier_stores_once_and_keeps_what_the_user_did_since(
    processor: Processor,
) -> None:
    storage = processor.context.storage
    request = CloudEvent(
        source=SOURCE,
        type=NOTIFICATION_REQUESTED,
        user="alice",
        data={"title": "t", "body": "b"},
        correlationid="c-1",
    )
    await processor.handle(request)
    [body] = await all_of(storage, NOTIFICATIONS)
    notification = Notification.model_validate(body)
    assert (notification.title, notification.body, notification.read) == ("t", "b", False)
    assert (notification.correlationid, notification.source_event_id) == ("c-1", request.id)
    read = notification.model_copy(update={"read": True})
    await storage.upsert(NOTIFICATIONS, "alice", read.id, read.model_dump(mode="json"))
    await storage.delete(EVENTS, "alice", request.id)
    await processor.handle(request)  # redelivered before it was marked processed
    [body] = await all_of(storage, NOTIFICATIONS)
    assert Notification.model_validate(body).read


# -- end to end -------------------------------------------------------------------------


async def records(storage: Storage) -> list[EventRecord]:
    return [EventRecord.from_document(doc) for doc in (await storage.query(EVENTS, "alice")).items]


async def test_an_instruction_requesting_a_notify_task_ends_in_a_stored_notification(
    context: ServiceContext, storage: SqliteStorage, bus: MemoryBus
) -> None:
    """Embedded mode end to end: the worker's consume loop runs the whole chain."""
    await add_instruction(
        storage,
        event_type="order.*",
        action=RequestTask(task=TaskKind.NOTIFY, params={"title": "New order"}),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(service(context, stop))
    event = user_event(n=1)
    await record_received(storage, event)
    await bus.publish(event)
    # The order, then task requested, notification requested and task succeeded.
    async with asyncio.timeout(5):
        while [r.status for r in await records(storage)] != [EventStatus.PROCESSED] * 4:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, 5)

    [task_body] = await all_of(storage, TASKS)
    task = Task.model_validate(task_body)
    [notification_body] = await all_of(storage, NOTIFICATIONS)
    notification = Notification.model_validate(notification_body)
    assert (task.status, task.attempts, task.source_event_id) == (
        TaskStatus.SUCCEEDED,
        1,
        event.id,
    )
    assert notification.title == "New order"
    assert task.correlationid == notification.correlationid == event.id
    chain = [record.event for record in await records(storage)]
    assert {e.correlationid or e.id for e in chain} == {event.id}
    assert sorted(e.type for e in chain) == sorted(
        ["order.created", TASK_REQUESTED, NOTIFICATION_REQUESTED, TASK_SUCCEEDED]
    )


async def test_an_instruction_saved_after_a_users_event_applies_once_its_ttl_passed(
    storage: SqliteStorage, recording_bus: RecordingBus
) -> None:
    processor = processor_of(storage, recording_bus, InstructionEngine(ttl=0.05))
    await processor.handle(user_event())  # alice has no instruction: that is remembered
    await add_instruction(storage, event_type="order.*", action=Emit(type="order.seen", data={}))
    await processor.handle(user_event())
    assert recording_bus.of_type("order.seen") == []  # within the TTL: not read yet
    await asyncio.sleep(0.06)
    await processor.handle(user_event())
    assert len(recording_bus.of_type("order.seen")) == 1
