"""No user can stall another: wait and webhook attempts run off the delivery path.

The issue's scenario, scaled down: one user's six wait tasks (WAIT seconds each, so a
processor running them in its delivery loop would hold the next events for 6 x WAIT)
must delay another user's event, and the same user's own next event, by less than a
second. Run on the memory bus and on Redis.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from lightning_core.bus.base import EventBus
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings
from lightning_core.domain import INSTRUCTIONS, TASKS, Instruction, RequestTask, Task, TaskKind
from lightning_core.domain import TaskStatus as Status
from lightning_core.domain import now as utc_now
from lightning_core.events import CloudEvent
from lightning_core.records import EVENTS, EventRecord, EventStatus, record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Storage
from lightning_core.storage.sqlite import SqliteStorage
from lightning_processor.background import Attempt, LongTasks
from lightning_processor.handler import Processor
from lightning_processor.main import service
from lightning_processor.recovery import request_stalled_tasks

WAIT = 2.0  # seconds per task: long against the bound below, short for a unit test
BOUND = 1.0  # the bound on the delay, generous against the handling itself


@pytest.fixture(params=["bus", "bus_redis"])
def any_bus(request: pytest.FixtureRequest) -> EventBus:
    bus: EventBus = request.getfixturevalue(request.param)
    return bus


async def status_of(storage: Storage, event: CloudEvent) -> EventStatus:
    return EventRecord.from_document(await storage.get(EVENTS, event.user, event.id)).status


async def tasks_of(storage: Storage, user: str) -> list[Task]:
    page = await storage.query(TASKS, user)
    return [Task.model_validate(document.body) for document in page.items]


async def submit(storage: Storage, bus: EventBus, *events: CloudEvent) -> None:
    """As the API does: the record first, then the publish."""
    for event in events:
        await record_received(storage, event)
    await bus.publish_batch(list(events))


async def processed_within(storage: Storage, event: CloudEvent, bound: float) -> float:
    """Seconds until `event` is processed; fails past `bound`."""
    started = time.monotonic()
    async with asyncio.timeout(bound):
        while await status_of(storage, event) is not EventStatus.PROCESSED:
            await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_six_slow_tasks_of_one_user_delay_no_other_event(
    settings: Settings, storage: SqliteStorage, any_bus: EventBus
) -> None:
    waiting = Instruction(
        user="alice",
        name="slow",
        event_type="slow.start",
        action=RequestTask(task=TaskKind.WAIT, params={"seconds": WAIT}),
    )
    await storage.create(INSTRUCTIONS, "alice", waiting.id, waiting.model_dump(mode="json"))
    stop = asyncio.Event()
    running = asyncio.create_task(service(ServiceContext(settings, storage, any_bus), stop))
    try:
        await submit(
            storage,
            any_bus,
            *(CloudEvent(source="t", type="slow.start", user="alice") for _ in range(6)),
        )
        async with asyncio.timeout(5):  # every task is under way: the scenario holds
            while [t.status for t in await tasks_of(storage, "alice")] != [Status.RUNNING] * 6:
                await asyncio.sleep(0.01)
        others = CloudEvent(source="t", type="quick", user="bob")
        own = CloudEvent(source="t", type="quick", user="alice")
        await submit(storage, any_bus, others, own)
        await processed_within(storage, others, BOUND)
        await processed_within(storage, own, BOUND)
        assert Status.RUNNING in {t.status for t in await tasks_of(storage, "alice")}
    finally:
        stop.set()
        await asyncio.wait_for(running, WAIT + 5)
    assert [t.status for t in await tasks_of(storage, "alice")] == [Status.SUCCEEDED] * 6


async def test_a_stop_finishes_running_attempts_and_hands_back_waiting_ones() -> None:
    long_tasks = LongTasks(limit=1)
    finished: list[str] = []
    handed_back: list[str] = []

    def attempt(name: str, seconds: float) -> tuple[Attempt, Attempt]:
        async def run() -> None:
            await asyncio.sleep(seconds)
            finished.append(name)

        async def hand_back() -> None:
            handed_back.append(name)

        return run, hand_back

    for name in ("first", "second", "third"):
        run, hand_back = attempt(name, 0.05)
        long_tasks.start(run, hand_back)
    await asyncio.sleep(0.01)  # "first" holds the one slot
    await long_tasks.stop()
    assert (finished, handed_back) == (["first"], ["second", "third"])


async def test_long_tasks_a_dead_processor_left_are_requested_again(
    settings: Settings, storage: SqliteStorage, bus: MemoryBus
) -> None:
    stale = utc_now() - timedelta(minutes=10)
    left = {
        "running": Task(user="alice", kind=TaskKind.WAIT, status=Status.RUNNING, attempts=1),
        "pending": Task(user="alice", kind=TaskKind.WAIT, status=Status.PENDING),
        "recent": Task(user="alice", kind=TaskKind.WAIT, status=Status.RUNNING),
        "notify": Task(user="alice", kind=TaskKind.NOTIFY, params={"title": "t"}),
    }
    for name, task in left.items():
        if name != "recent":
            task.updated_at = stale
        await storage.create(TASKS, "alice", task.id, task.model_dump(mode="json"))
    await bus.open_group("seen")

    count = await request_stalled_tasks(storage, bus, older_than=timedelta(minutes=2))

    assert count == 2
    requests = await bus._receive("seen", 10, 0.1)
    asked = {delivery.event.data["task_id"] for delivery in requests}
    assert asked == {left["running"].id, left["pending"].id}
    processor = Processor.from_settings(storage, bus, settings)
    for delivery in requests:
        await processor.handle(delivery.event)
    statuses = {t.id: t.status for t in await tasks_of(storage, "alice")}
    assert statuses[left["running"].id] is statuses[left["pending"].id] is Status.SUCCEEDED
