"""What the shared bus contract cannot see of the in-process bus: how fast it wakes, and
that a stopping consumer empties its backlog, since nothing keeps it after the process.

The contract's consumers poll every `receive_wait` anyway, so a missed wake-up would only
make them slower. Here the wait is long, so only the wake-up can deliver in time.
"""

import asyncio
import logging

import pytest

from lightning_core.bus.memory import MemoryBus
from lightning_core.events import CloudEvent

LONG_WAIT = 30.0  # seconds: far beyond the test's timeout


def event(n: int) -> CloudEvent:
    return CloudEvent(source="test", type="t", data={"n": n}, user="alice")


async def test_a_publish_wakes_every_waiting_group_at_once() -> None:
    bus = MemoryBus()
    for group in ("a", "b"):
        await bus.open_group(group)
    waiting = [asyncio.create_task(bus._receive(group, 10, LONG_WAIT)) for group in ("a", "b")]
    await asyncio.sleep(0.01)  # both are waiting now
    await bus.publish(event(1))
    async with asyncio.timeout(1.0):
        received = await asyncio.gather(*waiting)
    assert [[d.event.data["n"] for d in batch] for batch in received] == [[1], [1]]


async def test_a_group_woken_for_nothing_keeps_waiting_for_its_own() -> None:
    """A release for group a wakes b too; b must wait on, and still see the next publish."""
    bus = MemoryBus()
    for group in ("a", "b"):
        await bus.open_group(group)
    await bus.publish(event(1))
    (delivery,) = await bus._receive("a", 10, LONG_WAIT)
    (seen_by_b,) = await bus._receive("b", 10, LONG_WAIT)
    waiting_b = asyncio.create_task(bus._receive("b", 10, LONG_WAIT))
    await asyncio.sleep(0.01)
    await bus._release("a", [delivery])  # wakes b, which has nothing new
    await asyncio.sleep(0.01)
    assert not waiting_b.done()
    await bus.publish(event(2))
    async with asyncio.timeout(1.0):
        (for_b,) = await waiting_b
    assert (seen_by_b.event.data, for_b.event.data) == ({"n": 1}, {"n": 2})


async def test_receiving_gives_up_after_the_wait() -> None:
    bus = MemoryBus()
    await bus.open_group("a")
    assert await bus._receive("a", 10, 0.01) == []


async def test_more_handed_back_than_one_batch_holds_come_in_later_batches() -> None:
    bus = MemoryBus()
    await bus.open_group("g")
    await bus.publish_batch([event(n) for n in range(5)])
    await bus._release("g", await bus._receive("g", 10, LONG_WAIT))

    async with asyncio.timeout(1.0):
        batches = [await bus._receive("g", 3, LONG_WAIT) for _ in range(2)]

    assert [[d.event.data["n"] for d in batch] for batch in batches] == [[0, 1, 2], [3, 4]]


async def consume_until_stopped(bus: MemoryBus, handled: list[int], stop: asyncio.Event) -> None:
    """Consume group g, stopping once the first event is being handled."""

    async def slow(delivered: CloudEvent) -> None:
        stop.set()
        await asyncio.sleep(0.01)
        handled.append(delivered.data["n"])

    await bus.consume("g", slow, stop=stop)


async def test_a_stopping_consumer_first_handles_every_event_already_published() -> None:
    bus = MemoryBus(batch_size=7)  # several batches, one released half-done by the stop
    await bus.open_group("g")
    await bus.publish_batch([event(n) for n in range(20)])
    handled: list[int] = []

    await consume_until_stopped(bus, handled, asyncio.Event())

    assert handled == list(range(20))


async def test_a_stopping_consumer_waits_briefly_for_requests_finishing_after_the_stop() -> None:
    bus = MemoryBus()
    await bus.open_group("g")
    await bus.publish(event(0))
    handled: list[int] = []
    consuming = asyncio.create_task(consume_until_stopped(bus, handled, asyncio.Event()))
    async with asyncio.timeout(1.0):
        while not handled:  # the backlog is empty from here on
            await asyncio.sleep(0.001)
    await asyncio.sleep(bus.drain_quiet / 4)
    await bus.publish(event(1))  # a request whose commit was still under way

    await asyncio.wait_for(consuming, 5)

    assert handled == [0, 1]


async def test_what_the_drain_could_not_handle_in_time_is_named_when_closing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MemoryBus()
    bus.drain_timeout = 0.05  # about five of the events
    await bus.connect()
    await bus.open_group("g")
    await bus.publish_batch([event(n) for n in range(50)])
    handled: list[int] = []

    await asyncio.wait_for(consume_until_stopped(bus, handled, asyncio.Event()), 5)
    with caplog.at_level(logging.WARNING, logger="lightning_core.bus.memory"):
        await bus.close()

    assert 1 < len(handled) < 50  # the drain handled some, then the deadline stopped it
    assert handled == list(range(len(handled)))  # in order, none skipped
    assert caplog.messages == [
        f"memory bus closed with {50 - len(handled)} events that group g never processed: "
        "embedded mode keeps no queue across restarts"
    ]


async def test_publishers_wait_while_a_group_is_at_high_water_and_go_once_it_reads() -> None:
    bus = MemoryBus(high_water=3)
    await bus.open_group("slow")
    await bus.publish_batch([event(n) for n in range(3)])
    held = asyncio.create_task(bus.publish(event(3)))
    await asyncio.sleep(0.01)
    assert not held.done()  # 3 unread: at high water
    await bus._receive("slow", 2, LONG_WAIT)
    async with asyncio.timeout(1.0):
        await held
    assert await bus.backlog("slow") == 2


async def test_the_settings_bus_slows_its_publishers_to_its_consumer() -> None:
    """Publishing far faster than a slow handler: the backlog never passes high water."""
    from lightning_core.bus import memory  # noqa: PLC0415
    from lightning_core.config import load_settings  # noqa: PLC0415
    from lightning_core.providers import build_bus  # noqa: PLC0415

    bus = build_bus(load_settings(LIGHTNING_MODE="embedded"))
    assert isinstance(bus, MemoryBus)
    assert bus.high_water == memory.HIGH_WATER
    bus.high_water = 20
    handled = 0

    async def slow(_: CloudEvent) -> None:
        nonlocal handled
        await asyncio.sleep(0.001)
        handled += 1

    stop = asyncio.Event()
    await bus.open_group("g")
    consumer = asyncio.create_task(bus.consume("g", slow, stop=stop))
    deepest = 0
    for n in range(300):
        await bus.publish(event(n))
        deepest = max(deepest, await bus.backlog("g") or 0)
    stop.set()
    await consumer
    assert deepest <= 20
    assert handled == 300
