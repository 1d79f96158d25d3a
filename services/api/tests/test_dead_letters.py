import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.events import CloudEvent


@pytest.fixture
async def bus(fast_retry: RetryPolicy) -> AsyncIterator[MemoryBus]:
    async with MemoryBus(fast_retry) as connected:
        yield connected


async def run_processor(bus: MemoryBus, fail: bool, until: int) -> list[CloudEvent]:
    """Consume as the processor's group until `until` events were handled or dead-lettered."""
    seen: list[CloudEvent] = []
    stop = asyncio.Event()

    async def handler(event: CloudEvent) -> None:
        if fail:
            raise RuntimeError("driver broke")
        seen.append(event)

    consuming = asyncio.create_task(bus.consume(PROCESSOR_GROUP, handler, stop=stop))
    async with asyncio.timeout(5):
        while len(seen) + len(await bus.dead_letters(PROCESSOR_GROUP)) < until:
            await asyncio.sleep(0.01)
    stop.set()
    await consuming
    return seen


async def dead_letters_of(bus: MemoryBus, *users: str) -> list[CloudEvent]:
    await bus.open_group(PROCESSOR_GROUP)
    events = [CloudEvent(source="test", type="order.created", user=user) for user in users]
    await bus.publish_batch(events)
    await run_processor(bus, fail=True, until=len(events))
    return events


async def test_the_caller_lists_and_replays_only_their_own(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, bus: MemoryBus
) -> None:
    alices, bobs = await dead_letters_of(bus, "alice", "bob")

    [letter] = (await alice.get("/api/dead-letters")).json()["items"]
    assert letter["event"]["id"] == alices.id
    assert letter["reason"] == "RuntimeError: driver broke"
    assert letter["attempts"] == 3
    [other] = (await bob.get("/api/dead-letters")).json()["items"]
    assert other["event"]["id"] == bobs.id

    assert (await bob.post(f"/api/dead-letters/{alices.id}/replay")).status_code == 404
    assert (await alice.post("/api/dead-letters/nope/replay")).status_code == 404
    assert (await alice.post(f"/api/dead-letters/{alices.id}/replay")).status_code == 202
    assert (await alice.get("/api/dead-letters")).json() == {"items": [], "continuation": None}
    assert (await alice.post(f"/api/dead-letters/{alices.id}/replay")).status_code == 404

    redelivered = await run_processor(bus, fail=False, until=2)  # bob's stays dead
    assert [event.id for event in redelivered] == [alices.id]


async def test_dead_letters_come_in_pages_newest_first(
    alice: httpx.AsyncClient, bus: MemoryBus
) -> None:
    events = await dead_letters_of(bus, *["alice"] * 5)
    seen: list[str] = []
    continuation = None
    while True:
        params = {"limit": 2} | ({"continuation": continuation} if continuation else {})
        page = (await alice.get("/api/dead-letters", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [letter["event"]["id"] for letter in page["items"]]
        continuation = page["continuation"]
        if continuation is None:
            break
    assert sorted(seen) == sorted(event.id for event in events)
    assert len(seen) == 5
    forged = await alice.get("/api/dead-letters", params={"continuation": "not-a-token"})
    assert forged.status_code == 400
