"""What the RabbitMQ bus adds to the contract: history copied into new groups, dead-letter
browsing that leaves letters in place, one consumer per group per bus."""

import asyncio

import pytest

from lightning_core.bus.rabbitmq import RabbitMqBus
from lightning_core.events import CloudEvent


def make_event(n: int) -> CloudEvent:
    return CloudEvent(source="test", type="test.happened", data={"n": n}, user="alice")


async def collect(bus: RabbitMqBus, group: str, count: int, seen: list[int]) -> None:
    stop = asyncio.Event()

    async def record(event: CloudEvent) -> None:
        seen.append(event.data["n"])
        if len(seen) == count:
            stop.set()

    await asyncio.wait_for(bus.consume(group, record, stop=stop), 10)


async def test_a_new_group_gets_the_history_first_then_live_events_once(
    bus_rabbitmq: RabbitMqBus,
) -> None:
    await bus_rabbitmq.publish_batch([make_event(n) for n in range(20)])
    seen: list[int] = []
    consumer = asyncio.create_task(collect(bus_rabbitmq, "new", 40, seen))
    for n in range(20, 40):  # published while the group is created and its history copied
        await bus_rabbitmq.publish(make_event(n))
    await consumer
    assert seen == list(range(40))


async def test_listing_dead_letters_leaves_them_in_place_in_order(
    bus_rabbitmq: RabbitMqBus,
) -> None:
    async def fail(_event: CloudEvent) -> None:
        raise ValueError("no")

    stop = asyncio.Event()
    consumer = asyncio.create_task(bus_rabbitmq.consume("g", fail, stop=stop))
    events = [make_event(n) for n in range(5)]
    await bus_rabbitmq.publish_batch(events)
    async with asyncio.timeout(5):
        while len(await bus_rabbitmq.dead_letters("g")) < len(events):
            await asyncio.sleep(0.01)
    stop.set()
    await consumer
    for _ in range(2):
        letters = await bus_rabbitmq.dead_letters("g")
        assert [letter.event.id for letter in letters] == [event.id for event in events]
        assert {letter.reason for letter in letters} == {"ValueError: no"}


async def test_a_bus_consumes_a_group_once_at_a_time(bus_rabbitmq: RabbitMqBus) -> None:
    async def ignore(_event: CloudEvent) -> None:
        return None

    stop = asyncio.Event()
    first = asyncio.create_task(bus_rabbitmq.consume("g", ignore, stop=stop))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already being consumed"):
        await bus_rabbitmq.consume("g", ignore, stop=stop)
    stop.set()
    await first
