"""The event-bus contract, written once; every provider runs it unchanged.

Providers come from lightning_core.testing.backends (one module each); nothing here names
one. Each is built with the `fast_retry` policy.
"""

import asyncio

import pytest

from lightning_core.bus.base import BusBase, EventBus, Handler, RetryPolicy
from lightning_core.events import CloudEvent
from lightning_core.idempotency import idempotent
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.backends import listed


@pytest.fixture(params=listed("BUSES"))
def event_bus(request: pytest.FixtureRequest) -> EventBus:
    bus: EventBus = request.getfixturevalue(request.param)
    return bus


def make_event(n: int) -> CloudEvent:
    return CloudEvent(source="test", type="test.happened", data={"n": n}, user="alice")


class Consumer:
    """Runs `consume` in the background and collects what the handler saw."""

    def __init__(self, bus: EventBus, group: str, handler: Handler | None = None) -> None:
        self.seen: list[CloudEvent] = []
        self.stop = asyncio.Event()
        self._handler = handler or self._record
        self.task = asyncio.create_task(bus.consume(group, self._handler, stop=self.stop))

    async def _record(self, event: CloudEvent) -> None:
        self.seen.append(event)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                await asyncio.sleep(0.005)

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5.0)


async def start(bus: EventBus, group: str, handler: Handler | None = None) -> Consumer:
    """Open the group, then consume it: every bus delivers what is published from here on."""
    await bus.open_group(group)
    return Consumer(bus, group, handler)


async def test_events_arrive_in_order_single_and_batch(event_bus: EventBus) -> None:
    consumer = await start(event_bus, "g")
    await event_bus.publish(make_event(0))
    await event_bus.publish_batch([make_event(n) for n in range(1, 50)])
    await consumer.wait_for(50)
    await consumer.shutdown()
    assert [event.data["n"] for event in consumer.seen] == list(range(50))


async def test_a_group_receives_events_published_before_its_consumer_started(
    event_bus: EventBus,
) -> None:
    await event_bus.open_group("g")  # as a deployment provisions it: no consumer yet
    await event_bus.publish(make_event(1))
    late = Consumer(event_bus, "g")
    await late.wait_for(1)
    await late.shutdown()


async def test_every_group_gets_every_event(event_bus: EventBus) -> None:
    first, second = await start(event_bus, "one"), await start(event_bus, "two")
    await event_bus.publish_batch([make_event(n) for n in range(5)])
    await first.wait_for(5)
    await second.wait_for(5)
    await first.shutdown()
    await second.shutdown()
    assert [e.id for e in first.seen] == [e.id for e in second.seen]


async def test_failures_retry_then_dead_letter_with_reason_and_replay(
    event_bus: EventBus, fast_retry: RetryPolicy
) -> None:
    attempts: list[str] = []
    healed = asyncio.Event()

    async def poison(event: CloudEvent) -> None:
        attempts.append(event.id)
        if not healed.is_set():
            raise RuntimeError(f"cannot handle {event.data['n']}")

    consumer = await start(event_bus, "g", poison)
    event = make_event(13)
    await event_bus.publish(event)
    async with asyncio.timeout(5):
        while not await event_bus.dead_letters("g"):
            await asyncio.sleep(0.005)
    [letter] = await event_bus.dead_letters("g")
    assert letter.event == event
    assert letter.attempts == fast_retry.max_attempts == len(attempts)
    assert letter.reason == "RuntimeError: cannot handle 13"

    healed.set()
    await event_bus.replay("g", event.id)
    async with asyncio.timeout(5):
        while len(attempts) <= fast_retry.max_attempts:
            await asyncio.sleep(0.005)
    await consumer.shutdown()
    assert await event_bus.dead_letters("g") == []
    with pytest.raises(KeyError):
        await event_bus.replay("g", event.id)


async def test_stop_finishes_the_event_in_flight(event_bus: EventBus) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(_event: CloudEvent) -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.set()

    consumer = await start(event_bus, "g", slow)
    await event_bus.publish(make_event(1))
    await asyncio.wait_for(started.wait(), 5)
    await consumer.shutdown()
    assert finished.is_set()


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=1.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]


async def test_the_ledger_applies_an_effect_once_under_redelivery(
    event_bus: EventBus, storage: SqliteStorage
) -> None:
    effects: list[str] = []
    deliveries: list[str] = []

    async def effect(event: CloudEvent) -> None:
        effects.append(event.id)

    once = idempotent(storage, "g", effect)

    async def flaky_ack(event: CloudEvent) -> None:
        deliveries.append(event.id)
        await once(event)
        if deliveries.count(event.id) == 1:
            raise ConnectionResetError("lost the ack")  # the bus must deliver it again

    consumer = await start(event_bus, "g", flaky_ack)
    events = [make_event(n) for n in range(10)]
    await event_bus.publish_batch(events)
    async with asyncio.timeout(10):
        while len(deliveries) < 2 * len(events):
            await asyncio.sleep(0.005)
    await consumer.shutdown()
    assert sorted(effects) == sorted(event.id for event in events)


async def test_the_backlog_counts_what_the_group_has_not_settled(event_bus: EventBus) -> None:
    await event_bus.open_group("waiting")
    before = await event_bus.backlog("waiting")
    if before is None:  # the broker does not tell (Service Bus without Manage rights)
        await event_bus.publish_batch([make_event(n) for n in range(3)])
        assert await event_bus.backlog("waiting") is None
        return
    assert before == 0
    await event_bus.publish_batch([make_event(n) for n in range(3)])
    async with asyncio.timeout(5):  # brokers count asynchronously (RabbitMQ's queue stats)
        while await event_bus.backlog("waiting") != 3:
            await asyncio.sleep(0.05)
    consumer = Consumer(event_bus, "waiting")
    await consumer.wait_for(3)
    await consumer.shutdown()
    async with asyncio.timeout(5):
        while await event_bus.backlog("waiting") != 0:
            await asyncio.sleep(0.05)


def user_event(user: str, n: int) -> CloudEvent:
    return CloudEvent(source="test", type="test.happened", data={"n": n}, user=user)


async def test_one_users_slow_event_holds_back_no_other_user(event_bus: EventBus) -> None:
    release = asyncio.Event()
    seen: list[CloudEvent] = []

    async def slow_for_one(event: CloudEvent) -> None:
        seen.append(event)
        if event.user == "slow":
            await release.wait()

    consumer = await start(event_bus, "g", slow_for_one)
    await event_bus.publish(user_event("slow", 0))
    await event_bus.publish_batch([user_event(f"u{n}", n) for n in range(1, 11)])
    async with asyncio.timeout(5):
        while len(seen) < 11:  # all of them, while the slow one still runs
            await asyncio.sleep(0.005)
    release.set()
    await consumer.shutdown()


async def test_each_users_events_keep_their_order(event_bus: EventBus) -> None:
    seen: list[CloudEvent] = []

    async def uneven(event: CloudEvent) -> None:
        await asyncio.sleep(0.001 * (event.data["n"] % 3))  # users overtake each other
        seen.append(event)

    consumer = await start(event_bus, "g", uneven)
    events = [user_event(f"u{n % 3}", n) for n in range(60)]
    await event_bus.publish_batch(events)
    async with asyncio.timeout(10):
        while len(seen) < len(events):
            await asyncio.sleep(0.005)
    await consumer.shutdown()
    for user in ("u0", "u1", "u2"):
        order = [e.data["n"] for e in seen if e.user == user]
        assert order == [e.data["n"] for e in events if e.user == user]


async def test_one_users_subjects_run_beside_each_other_each_in_order(
    event_bus: EventBus,
) -> None:
    """One user's two subjects: the slow one holds back only its own later events."""
    release = asyncio.Event()
    seen: list[str] = []

    async def slow_door(event: CloudEvent) -> None:
        if event.subject == "door" and event.data["n"] == 0:
            await release.wait()
        seen.append(f"{event.subject} {event.data['n']}")

    consumer = await start(event_bus, "g", slow_door)
    await event_bus.publish_batch(
        [
            CloudEvent(source="test", type="t", subject=subject, data={"n": n}, user="alice")
            for n in range(3)
            for subject in ("door", "window")
        ]
    )
    async with asyncio.timeout(5):
        while len(seen) < 3:
            await asyncio.sleep(0.005)
    assert seen == ["window 0", "window 1", "window 2"]  # while door 0 still runs
    release.set()
    async with asyncio.timeout(5):
        while len(seen) < 6:
            await asyncio.sleep(0.005)
    await consumer.shutdown()
    assert seen[3:] == ["door 0", "door 1", "door 2"]


async def test_a_retry_backoff_holds_no_handler_slot(event_bus: EventBus) -> None:
    """With one slot, a failing event's backoff leaves it free for another user's event."""
    assert isinstance(event_bus, BusBase)
    event_bus.concurrency = 1
    event_bus.retry = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=1.0)
    order: list[str] = []

    async def fails_once(event: CloudEvent) -> None:
        order.append(f"{event.user} attempt {order.count(event.user + ' attempt 1') + 1}")
        if order[-1] == "flaky attempt 1":
            raise RuntimeError("once")

    consumer = await start(event_bus, "g", fails_once)
    await event_bus.publish(user_event("flaky", 0))
    async with asyncio.timeout(5):
        while not order:
            await asyncio.sleep(0.005)
    await event_bus.publish(user_event("steady", 1))
    async with asyncio.timeout(5):
        while len(order) < 3:
            await asyncio.sleep(0.005)
    await consumer.shutdown()
    assert order == ["flaky attempt 1", "steady attempt 1", "flaky attempt 2"]
