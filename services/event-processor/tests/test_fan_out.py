"""The fan-out bound: one user's event causes at most LIGHTNING_MAX_FOLLOW_UPS_PER_EVENT
counted follow-ups in total, and what passes the bound is refused with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings
from lightning_core.domain import (
    INSTRUCTIONS,
    MAX_HOPS,
    NOTIFICATION_REQUESTED,
    TASK_FAILED,
    TASK_REQUESTED,
    TASK_SUCCEEDED,
    TASKS,
    Instruction,
    Task,
    TaskKind,
    TaskStatus,
)
from lightning_core.events import CloudEvent
from lightning_core.records import EVENTS, EventRecord, EventStatus, record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Storage
from lightning_core.storage.sqlite import SqliteStorage
from lightning_processor.drivers.base import SOURCE
from lightning_processor.drivers.budget import FanOutBound, allot
from lightning_processor.handler import CONSUMER_GROUP, Processor
from lightning_processor.main import service

LIMIT = 100
REASON = "FanOutBound: fan-out bound: 3 follow-ups asked, 2 left of "
REASON += f"LIGHTNING_MAX_FOLLOW_UPS_PER_EVENT={LIMIT}"


class CountingBus(MemoryBus):
    """A MemoryBus that keeps what was published, with retries quick enough for tests."""

    def __init__(self) -> None:
        super().__init__(RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001))
        self.published: list[CloudEvent] = []

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        self.published.extend(events)
        await super()._publish(events)


@pytest.fixture
async def counting_bus() -> AsyncIterator[CountingBus]:
    async with CountingBus() as connected:
        yield connected


async def add_instruction(storage: Storage, event_type: str, action: object) -> None:
    instruction = Instruction.model_validate(
        {"user": "alice", "name": "rule", "event_type": event_type, "action": action}
    )
    await storage.create(INSTRUCTIONS, "alice", instruction.id, instruction.model_dump(mode="json"))


async def run_until_settled(context: ServiceContext, event: CloudEvent) -> None:
    """The worker consumes `event` and what it causes until every event is processed or a
    dead letter (the memory bus runs its backlog before `service` returns)."""
    stop = asyncio.Event()
    running = asyncio.create_task(service(context, stop))
    await record_received(context.storage, event)
    await context.bus.publish(event)
    async with asyncio.timeout(20):
        while await unsettled(context):
            await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(running, 10)


async def unsettled(context: ServiceContext) -> list[str]:
    """Ids of events neither processed nor dead letters."""
    dead = {letter.event.id for letter in await context.bus.dead_letters(CONSUMER_GROUP)}
    records = [
        EventRecord.from_document(d) for d in (await context.storage.query(EVENTS, "alice")).items
    ]
    return [
        record.event.id
        for record in records
        if record.status is not EventStatus.PROCESSED and record.event.id not in dead
    ]


def test_a_tree_of_any_shape_holds_at_most_the_limit() -> None:
    """Every event that can still fan out does, as wide as its budget allows or wider."""

    def caused(budget: int | None, width: int) -> int:
        event = CloudEvent(source="test", type="x", user="alice", budget=budget)
        try:
            share = allot(event, width, LIMIT)
        except FanOutBound:
            return 0
        return width + sum(caused(share, width) for _ in range(width))

    for width in range(1, 12):
        assert 0 < caused(None, width) <= LIMIT, width
    assert caused(None, LIMIT) == LIMIT
    with pytest.raises(FanOutBound, match="101 follow-ups asked, 100 left"):
        allot(CloudEvent(source="test", type="x", user="alice"), LIMIT + 1, LIMIT)
    # A budget above the limit (the setting was lowered since) counts as the limit.
    assert allot(CloudEvent(source="t", type="x", user="a", budget=10**6), 1, LIMIT) == 99


async def test_three_fan_instructions_cause_at_most_the_limit_and_say_why(
    settings: Settings, storage: SqliteStorage, counting_bus: CountingBus
) -> None:
    """Unbounded, this is 1 + 3 + ... + 3^8 = 9,841 events; bounded: 3 + 9 + 27 follow-ups,
    and the 27 events that would have asked for 3 more each are dead letters saying why."""
    for _ in range(3):
        await add_instruction(storage, "fan.*", {"kind": "emit", "type": "fan.x"})
    context = ServiceContext(settings, storage, counting_bus)
    first = CloudEvent(source="test", type="fan.start", user="alice")
    await run_until_settled(context, first)

    follow_ups = [event for event in counting_bus.published if event.id != first.id]
    assert len(follow_ups) == 3 + 9 + 27 <= settings.max_follow_ups_per_event
    assert [e.budget for e in follow_ups[:3]] == [32] * 3  # (100 - 3) // 3
    assert {e.correlationid for e in follow_ups} == {first.id}
    dead = await counting_bus.dead_letters(CONSUMER_GROUP)
    assert len(dead) == 27
    assert {letter.reason for letter in dead} == {REASON}
    assert {letter.event.hops for letter in dead} == {3}


async def test_a_chain_of_one_instruction_still_runs_to_max_hops(
    settings: Settings, storage: SqliteStorage, counting_bus: CountingBus
) -> None:
    await add_instruction(storage, "ping.*", {"kind": "emit", "type": "ping.again"})
    context = ServiceContext(settings, storage, counting_bus)
    first = CloudEvent(source="test", type="ping.first", user="alice")
    await run_until_settled(context, first)
    chain = counting_bus.published
    assert [event.hops for event in chain] == list(range(MAX_HOPS + 1))
    assert [event.budget for event in chain[1:]] == [LIMIT - hop for hop in range(1, MAX_HOPS + 1)]
    assert await counting_bus.dead_letters(CONSUMER_GROUP) == []


async def test_the_walkthrough_task_and_its_lifecycle_are_not_held_by_the_bound(
    settings: Settings, storage: SqliteStorage, counting_bus: CountingBus
) -> None:
    """README: an instruction requests a notify task; the task's notification and report
    are its lifecycle, published whatever the request's budget."""
    await add_instruction(
        storage,
        "door.opened",
        {"kind": "request_task", "task": "notify", "params": {"title": "Front door opened"}},
    )
    settings = settings.model_copy(update={"max_follow_ups_per_event": 1})
    context = ServiceContext(settings, storage, counting_bus)
    event = CloudEvent(source="api", type="door.opened", user="alice", data={"by": "alice"})
    await run_until_settled(context, event)
    types = sorted(published.type for published in counting_bus.published)
    assert types == sorted(["door.opened", TASK_REQUESTED, NOTIFICATION_REQUESTED, TASK_SUCCEEDED])
    [request] = [e for e in counting_bus.published if e.type == TASK_REQUESTED]
    assert request.budget == 0
    [task] = (await storage.query(TASKS, "alice")).items
    assert task.body["status"] == TaskStatus.SUCCEEDED
    assert await counting_bus.dead_letters(CONSUMER_GROUP) == []


async def test_an_emit_task_without_budget_fails_with_the_reason(
    settings: Settings, storage: SqliteStorage, counting_bus: CountingBus
) -> None:
    """A task never becomes a dead letter: the bound is its error, reported as failed."""
    task = Task(user="alice", kind=TaskKind.EMIT, params={"type": "x.y"}, max_attempts=1)
    await storage.create(TASKS, "alice", task.id, task.model_dump(mode="json"))
    processor = Processor.from_settings(storage, counting_bus, settings)
    request = CloudEvent(
        source=SOURCE, type=TASK_REQUESTED, user="alice", data={"task_id": task.id}, budget=0
    )
    await processor.handle(request)
    failed = Task.model_validate((await storage.get(TASKS, "alice", task.id)).body)
    assert failed.status is TaskStatus.FAILED
    assert failed.error == (
        "FanOutBound: fan-out bound: 1 follow-ups asked, 0 left of "
        f"LIGHTNING_MAX_FOLLOW_UPS_PER_EVENT={LIMIT}"
    )
    assert [e.type for e in counting_bus.published] == [TASK_FAILED]
    record = EventRecord.from_document(await storage.get(EVENTS, "alice", request.id))
    assert record.status is EventStatus.PROCESSED
