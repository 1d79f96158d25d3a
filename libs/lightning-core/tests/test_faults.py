"""Kill a provider's private server in the middle of a stream of 5,000 events.

For every FAULTY backend (see provider_backends): a publisher and a consumer run while the
server is killed with SIGKILL and restarted. Afterwards every event must have been handled
and its effect applied exactly once, with no help from the test: publishers and consumers
reconnect by themselves, redeliveries are absorbed by the idempotency ledger.
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
from provider_backends import Faulty, listed

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


def stream() -> list[CloudEvent]:
    return [
        CloudEvent(source="fault-test", type="fault.tick", data={"n": n}, user=f"u{n % 7}")
        for n in range(TOTAL)
    ]


async def test_every_event_is_applied_once_across_a_server_kill(
    faulty: Faulty, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)  # the outage logs a warning per retry; keep output short
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

    async def publish() -> None:
        for start in range(0, TOTAL, BATCH):
            await bus.publish_batch(events[start : start + BATCH])
            await asyncio.sleep(0.005)  # a steady stream, so the kill lands mid-way

    async def kill_and_restart() -> None:
        while len(applied) < KILL_AFTER:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(faulty.server.stop)
        await asyncio.sleep(DOWNTIME)
        await asyncio.to_thread(faulty.server.start)

    try:
        async with asyncio.timeout(240):
            await asyncio.gather(publish(), kill_and_restart())
            await everything_applied.wait()
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 60)
        await bus.close()
        await storage.close()

    assert set(applied) == {event.id for event in events}
    duplicates = {event_id: count for event_id, count in applied.items() if count != 1}
    assert duplicates == {}, f"{len(duplicates)} effects applied more than once"
