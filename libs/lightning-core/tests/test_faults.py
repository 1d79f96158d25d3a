"""Kill a provider's private server in the middle of a stream of events.

For every FAULTY backend (see lightning_core.testing.backends): a publisher and a consumer
run while the server is killed with SIGKILL and restarted. Afterwards every event must have
been handled and its effect applied exactly once, with no help from the test: publishers and
consumers reconnect by themselves, redeliveries are absorbed by the idempotency ledger.

For every BACK_EMPTY bus, the server also comes back with no data (a broker that keeps
nothing on disk, or a fresh node): what it held is lost with it, but the consumer keeps
running and every event published after the restart is applied exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from pathlib import Path
from typing import cast

import pytest

from lightning_core.bus.base import EventBus, RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.events import CloudEvent
from lightning_core.idempotency import idempotent
from lightning_core.storage.base import Storage
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.backends import Faulty, listed

TOTAL = 5_000
BATCH = 50
KILL_AFTER = TOTAL // 3  # events handled before the server is killed
DOWNTIME = 1.0
# Outages are not poison: allow enough attempts that a handler failing while the server is
# down is retried until it is back, rather than dead-lettered.
PATIENT = RetryPolicy(max_attempts=20, base_delay=0.05, max_delay=1.0)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=listed("FAULTY"))
def faulty(request: pytest.FixtureRequest) -> Faulty:
    backend: Faulty = request.getfixturevalue(request.param)
    return backend


def providers(faulty: Faulty, tmp_path: Path) -> tuple[EventBus, Storage]:
    """The faulty provider plus an embedded partner for the other half."""
    if faulty.kind == "bus":
        return cast(EventBus, faulty.make()), SqliteStorage(tmp_path / "ledger.db")
    return MemoryBus(retry=PATIENT), cast(Storage, faulty.make())


@pytest.fixture(params=listed("BACK_EMPTY"))
def back_empty(request: pytest.FixtureRequest) -> Faulty:
    backend: Faulty = request.getfixturevalue(request.param)
    return backend


def stream(total: int = TOTAL) -> list[CloudEvent]:
    return [
        CloudEvent(source="fault-test", type="fault.tick", data={"n": n}, user=f"u{n % 7}")
        for n in range(total)
    ]


async def publish(bus: EventBus, events: list[CloudEvent]) -> None:
    """A steady stream in batches, so a kill lands mid-way."""
    for start in range(0, len(events), BATCH):
        await bus.publish_batch(events[start : start + BATCH])
        await asyncio.sleep(0.005)


async def test_every_event_is_applied_once_across_a_server_kill(
    faulty: Faulty, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)  # the outage logs a warning per operation; keep output short
    bus, storage = providers(faulty, tmp_path)
    events = stream()
    applied: collections.Counter[str] = collections.Counter()
    everything_applied = asyncio.Event()

    async def effect(event: CloudEvent) -> None:
        applied[event.id] += 1
        if len(applied) == TOTAL:
            everything_applied.set()

    await storage.connect()
    await bus.connect()
    await bus.open_group("g")
    stop = asyncio.Event()
    consumer = asyncio.create_task(bus.consume("g", idempotent(storage, "g", effect), stop=stop))

    async def kill_and_restart() -> None:
        while len(applied) < KILL_AFTER:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(faulty.server.stop)
        await asyncio.sleep(DOWNTIME)
        await asyncio.to_thread(faulty.server.start)

    try:
        async with asyncio.timeout(240):
            await asyncio.gather(publish(bus, events), kill_and_restart())
            await everything_applied.wait()
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 60)
        await bus.close()
        await storage.close()

    assert set(applied) == {event.id for event in events}
    duplicates = {event_id: count for event_id, count in applied.items() if count != 1}
    assert duplicates == {}, f"{len(duplicates)} effects applied more than once"


async def test_a_server_back_empty_keeps_its_consumer_and_applies_what_follows_once(
    back_empty: Faulty, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    bus = cast(EventBus, back_empty.make())
    storage = SqliteStorage(tmp_path / "ledger.db")
    events = stream(2_000)
    before, after = events[:1_000], events[1_000:]
    applied: collections.Counter[str] = collections.Counter()

    async def effect(event: CloudEvent) -> None:
        applied[event.id] += 1

    async def kill_wipe_and_restart() -> None:
        while len(applied) < len(before) // 3:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(back_empty.server.stop)
        assert back_empty.wipe is not None
        await asyncio.to_thread(back_empty.wipe)
        await asyncio.sleep(DOWNTIME)
        await asyncio.to_thread(back_empty.server.start)

    await storage.connect()
    await bus.connect()
    await bus.open_group("g")
    stop = asyncio.Event()
    consumer = asyncio.create_task(bus.consume("g", idempotent(storage, "g", effect), stop=stop))
    try:
        async with asyncio.timeout(240):
            # The publisher keeps going through the outage; then more follow the restart.
            await asyncio.gather(publish(bus, before), kill_wipe_and_restart())
            await publish(bus, after)
            while not all(event.id in applied for event in after):
                assert not consumer.done(), "the consumer exited"
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 60)
        await bus.close()
        await storage.close()

    duplicates = {event_id: count for event_id, count in applied.items() if count != 1}
    assert duplicates == {}, f"{len(duplicates)} effects applied more than once"
