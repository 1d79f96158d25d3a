"""What the RabbitMQ bus adds to the contract: opening a group takes no messages from its
consumers, dead-letter browsing leaves letters in place, one consumer per group per bus."""

import asyncio

import pytest

from lightning_core.bus.rabbitmq import RabbitMqBus
from lightning_core.events import CloudEvent


def make_event(n: int) -> CloudEvent:
    return CloudEvent(source="test", type="test.happened", data={"n": n}, user="alice")


async def test_opening_a_group_holds_no_events_back_from_its_consumers(
    bus_rabbitmq: RabbitMqBus,
) -> None:
    await bus_rabbitmq.open_group("g")  # as a producer provisioning it at startup
    events = [make_event(n) for n in range(5)]
    await bus_rabbitmq.publish_batch(events)
    seen: list[CloudEvent] = []
    stop = asyncio.Event()

    async def record(event: CloudEvent) -> None:
        seen.append(event)
        if len(seen) == len(events):
            stop.set()

    consumer = RabbitMqBus(bus_rabbitmq.url, bus_rabbitmq.namespace, bus_rabbitmq.retry)
    async with consumer:
        await asyncio.wait_for(consumer.consume("g", record, stop=stop), 10)
    assert [event.id for event in seen] == [event.id for event in events]


async def test_listing_dead_letters_leaves_them_in_place_in_order(
    bus_rabbitmq: RabbitMqBus,
) -> None:
    async def fail(_event: CloudEvent) -> None:
        raise ValueError("no")

    await bus_rabbitmq.open_group("g")
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
