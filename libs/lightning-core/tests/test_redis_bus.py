"""What only the Redis bus has: consumers that die with entries pending, foreign entries,
a server that forgot its groups. The shared contract lives in test_bus_contract.py."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.redis import RedisBus
from lightning_core.config import load_settings
from lightning_core.events import CloudEvent
from lightning_core.idempotency import idempotent
from lightning_core.providers import build_bus
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.backends.redis import REDIS_URL, TEST_CLAIM_IDLE


def make_event(n: int) -> CloudEvent:
    return CloudEvent(source="test", type="test.happened", data={"n": n}, user="alice")


@pytest.fixture
async def other_bus(fast_retry: RetryPolicy, redis_namespace: str) -> AsyncIterator[RedisBus]:
    """A second bus instance on the same namespace: another process's consumer."""
    bus = RedisBus(REDIS_URL, redis_namespace, retry=fast_retry, claim_idle=TEST_CLAIM_IDLE)
    async with bus:
        yield bus


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    async with Redis.from_url(REDIS_URL) as connected:
        yield connected


async def test_a_killed_consumers_batch_is_reclaimed_by_another(
    bus_redis: RedisBus, other_bus: RedisBus
) -> None:
    events = [make_event(n) for n in range(10)]
    started: list[CloudEvent] = []

    async def hangs(event: CloudEvent) -> None:
        started.append(event)
        await asyncio.Event().wait()  # never finishes: the process dies first

    await bus_redis.open_group("g")
    crashed = asyncio.create_task(bus_redis.consume("g", hangs, stop=asyncio.Event()))
    await bus_redis.publish_batch(events)
    async with asyncio.timeout(5):
        while not started:
            await asyncio.sleep(0.005)
    crashed.cancel()  # like kill -9: no ack, no release; the batch stays pending
    with pytest.raises(asyncio.CancelledError):
        await crashed

    seen: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        seen.append(event)

    stop = asyncio.Event()
    survivor = asyncio.create_task(other_bus.consume("g", record, stop=stop))
    async with asyncio.timeout(5):
        while len(seen) < len(events):
            await asyncio.sleep(0.005)
    stop.set()
    await survivor
    assert [event.id for event in seen] == [event.id for event in events]


async def test_reclaimed_entries_count_the_dead_consumers_delivery(
    bus_redis: RedisBus, other_bus: RedisBus
) -> None:
    await bus_redis._open_group("g")
    await other_bus._open_group("g")
    await bus_redis.publish_batch([make_event(n) for n in range(3)])
    taken = await bus_redis._receive("g", 10, 0.1)
    assert len(taken) == 3

    assert await other_bus._receive("g", 10, 0.1) == []  # not idle long enough yet
    await asyncio.sleep(TEST_CLAIM_IDLE + other_bus.claim_interval)
    reclaimed = await other_bus._receive("g", 10, 0.1)
    assert [d.event for d in reclaimed] == [d.event for d in taken]
    assert [d.previous_attempts for d in reclaimed] == [1, 1, 1]


async def test_released_entries_go_to_the_next_consumer_at_once_uncounted(
    bus_redis: RedisBus, other_bus: RedisBus
) -> None:
    await bus_redis._open_group("g")
    await bus_redis.publish_batch([make_event(n) for n in range(3)])
    taken = await bus_redis._receive("g", 10, 0.1)
    await bus_redis._release("g", taken[1:])

    await other_bus._open_group("g")  # a consumer starting now, well within claim_idle
    handed_back = await other_bus._receive("g", 10, 0.1)
    assert [d.event for d in handed_back] == [d.event for d in taken[1:]]
    assert [d.previous_attempts for d in handed_back] == [0, 0]


async def test_an_entry_that_is_not_an_event_is_dropped(
    bus_redis: RedisBus, redis_namespace: str, client: Redis
) -> None:
    await bus_redis._open_group("g")
    await client.xadd(f"{redis_namespace}:events", {"something": "else"})
    event = make_event(1)
    await bus_redis.publish(event)
    deliveries = await bus_redis._receive("g", 10, 0.1)
    assert [d.event for d in deliveries] == [event]
    await bus_redis._ack("g", deliveries)
    pending = await client.xpending(f"{redis_namespace}:events", "g")
    assert pending["pending"] == 0


async def test_a_server_that_lost_its_groups_is_consumed_again(
    bus_redis: RedisBus, redis_namespace: str, client: Redis
) -> None:
    seen: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        seen.append(event)

    stop = asyncio.Event()
    await bus_redis.open_group("g")
    task = asyncio.create_task(bus_redis.consume("g", record, stop=stop))
    await bus_redis.publish(make_event(1))
    async with asyncio.timeout(5):
        while not seen:
            await asyncio.sleep(0.005)
    # What a restart of a Redis that keeps nothing on disk looks like to the consumer.
    await client.delete(f"{redis_namespace}:events", f"{redis_namespace}:replay:g")
    await bus_redis.publish(make_event(2))
    async with asyncio.timeout(5):
        while len(seen) < 2:
            await asyncio.sleep(0.005)
    stop.set()
    await task
    assert [event.data["n"] for event in seen] == [1, 2]


async def test_a_group_opened_on_a_stream_with_history_gets_that_history(
    bus_redis: RedisBus,
) -> None:
    events = [make_event(n) for n in range(3)]
    await bus_redis.publish_batch(events)  # the API published before the processor started
    await bus_redis.open_group("g")
    deliveries = await bus_redis._receive("g", 10, 0.1)
    assert [d.event for d in deliveries] == events


async def test_claiming_on_a_deleted_group_recreates_it_from_the_start(
    bus_redis: RedisBus, redis_namespace: str, client: Redis
) -> None:
    await bus_redis.open_group("g")
    events = [make_event(n) for n in range(3)]
    await bus_redis.publish_batch(events)
    await client.xgroup_destroy(f"{redis_namespace}:events", "g")
    bus_redis._next_claim["g"] = 0.0  # this receive looks for abandoned entries first
    assert await bus_redis._receive("g", 10, 0.1) == []
    deliveries = await bus_redis._receive("g", 10, 0.1)
    assert [d.event for d in deliveries] == events


async def test_releasing_into_a_deleted_group_hands_nothing_back_and_loses_nothing(
    bus_redis: RedisBus, redis_namespace: str, client: Redis
) -> None:
    await bus_redis.open_group("g")
    events = [make_event(n) for n in range(3)]
    await bus_redis.publish_batch(events)
    taken = await bus_redis._receive("g", 10, 0.1)
    await client.xgroup_destroy(f"{redis_namespace}:events", "g")
    await bus_redis._release("g", taken)
    await bus_redis.open_group("g")
    deliveries = await bus_redis._receive("g", 10, 0.1)
    assert [d.event for d in deliveries] == events


async def test_a_group_deleted_mid_stream_is_recreated_and_skips_nothing(
    bus_redis: RedisBus, redis_namespace: str, client: Redis, tmp_path: Path
) -> None:
    applied: collections.Counter[str] = collections.Counter()
    started, deleted = asyncio.Event(), asyncio.Event()

    async def effect(event: CloudEvent) -> None:
        started.set()
        await deleted.wait()  # the first batch is in flight while the group goes
        applied[event.id] += 1

    before, after = [make_event(n) for n in range(5)], [make_event(n) for n in range(5, 10)]
    async with SqliteStorage(tmp_path / "ledger.db") as ledger:
        stop = asyncio.Event()
        await bus_redis.open_group("g")
        handler = idempotent(ledger, "g", effect)
        task = asyncio.create_task(bus_redis.consume("g", handler, stop=stop))
        await bus_redis.publish_batch(before)
        await asyncio.wait_for(started.wait(), 5)
        await client.xgroup_destroy(f"{redis_namespace}:events", "g")
        await asyncio.sleep(bus_redis.claim_interval)  # the next receive claims first
        deleted.set()
        await bus_redis.publish_batch(after)
        async with asyncio.timeout(5):
            while len(applied) < len(before) + len(after):
                assert not task.done(), task
                await asyncio.sleep(0.005)
        stop.set()
        await task
    assert applied == {event.id: 1 for event in before + after}


async def test_a_letter_replayed_into_a_lost_replay_stream_is_delivered(
    bus_redis: RedisBus, redis_namespace: str, client: Redis
) -> None:
    await bus_redis.open_group("g")
    event = make_event(1)
    await bus_redis.publish(event)
    [delivery] = await bus_redis._receive("g", 10, 0.1)
    await bus_redis._dead_letter("g", delivery, "RuntimeError: no", 5)
    await client.delete(f"{redis_namespace}:replay:g")  # the server lost it, group and all
    await bus_redis.replay("g", event.id)  # recreates the stream, without the group
    await bus_redis.open_group("g")  # a consumer starting afterwards
    deliveries = await bus_redis._receive("g", 10, 0.1)
    assert [d.event for d in deliveries] == [event]


async def test_settings_select_the_redis_bus(redis_namespace: str) -> None:
    settings = load_settings(
        LIGHTNING_EVENT_BUS_PROVIDER="redis",
        REDIS_URL=REDIS_URL,
        LIGHTNING_BUS_NAMESPACE=redis_namespace,
        LIGHTNING_BUS_MAX_ATTEMPTS=7,
    )
    bus = build_bus(settings)
    assert isinstance(bus, RedisBus)
    assert (bus.namespace, bus.retry.max_attempts) == (redis_namespace, 7)
    async with bus:
        await bus.ping()


async def test_handled_entries_are_acknowledged_while_a_slow_one_runs(
    bus_redis: RedisBus, client: Redis
) -> None:
    release = asyncio.Event()
    handled: list[CloudEvent] = []

    async def slow_first(event: CloudEvent) -> None:
        if event.data["n"] == 0:
            await release.wait()
        handled.append(event)

    await bus_redis.open_group("g")
    stop = asyncio.Event()
    consumer = asyncio.create_task(bus_redis.consume("g", slow_first, stop=stop))
    await bus_redis.publish(CloudEvent(source="t", type="t", data={"n": 0}, user="slow"))
    await bus_redis.publish_batch(
        [CloudEvent(source="t", type="t", data={"n": n}, user=f"u{n}") for n in range(1, 6)]
    )
    async with asyncio.timeout(5):
        while (await client.xpending(bus_redis._stream, "g"))["pending"] != 1:
            await asyncio.sleep(0.01)
    assert len(handled) == 5  # the others, acknowledged: only the slow one is pending
    release.set()
    async with asyncio.timeout(5):
        while (await client.xpending(bus_redis._stream, "g"))["pending"] != 0:
            await asyncio.sleep(0.01)
    stop.set()
    await consumer


async def test_a_stop_during_a_retry_backoff_hands_the_entry_back_with_its_attempts(
    bus_redis: RedisBus, other_bus: RedisBus
) -> None:
    bus_redis.retry = RetryPolicy(max_attempts=5, base_delay=30.0, max_delay=30.0)
    failed = asyncio.Event()

    async def fail(_event: CloudEvent) -> None:
        failed.set()
        raise RuntimeError("not yet")

    await bus_redis.open_group("g")
    stop = asyncio.Event()
    consumer = asyncio.create_task(bus_redis.consume("g", fail, stop=stop))
    await bus_redis.publish(make_event(1))
    await asyncio.wait_for(failed.wait(), 5)
    stop.set()
    await asyncio.wait_for(consumer, 2)  # not after the 30 s backoff
    (delivery,) = await other_bus._receive("g", 10, 0.5)
    assert delivery.previous_attempts == 1
