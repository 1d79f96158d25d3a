"""Backpressure: past LIGHTNING_MAX_BACKLOG the API refuses new work with 503 and
Retry-After and stores nothing; /readyz shows the backlog and stays ready; the bus is
asked at most once per second however many requests come."""

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from lightning_api.admission import MAX_RETRY_AFTER, Backlog, retry_after
from lightning_core.bus.memory import MemoryBus
from lightning_core.records import EVENTS
from lightning_core.service import ServiceContext

ClientAs = Callable[[ServiceContext, str], httpx.AsyncClient]  # the `client_as` fixture

EVENT = {"type": "door.opened"}
BATCH = [{"specversion": "1.0", "id": "1", "source": "s", "type": "a.b"}]


class BackloggedBus(MemoryBus):
    """The memory bus reporting `depth` waiting events, counting how often it is asked."""

    def __init__(self, depth: int | None) -> None:
        super().__init__()
        self.depth, self.asked = depth, 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def backlog(self, _group: str) -> int | None:
        self.asked += 1
        await self.gate.wait()
        return self.depth


def bounded(context: ServiceContext, bus: MemoryBus, bound: int = 10) -> ServiceContext:
    settings = context.settings.model_copy(update={"max_backlog": bound})
    return ServiceContext(settings, context.storage, bus)


async def nothing_stored(context: ServiceContext) -> bool:
    return (await context.storage.query(EVENTS, "alice")).items == []


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/api/events", EVENT, "application/json"),
        ("/api/events", BATCH, "application/cloudevents-batch+json"),
        ("/api/tasks", {"kind": "wait"}, "application/json"),
    ],
)
async def test_past_the_bound_new_work_is_503_with_retry_after(
    context: ServiceContext, path: str, body: object, content_type: str, client_as: ClientAs
) -> None:
    async with BackloggedBus(11) as bus, client_as(bounded(context, bus), "alice") as alice:
        response = await alice.post(
            path, content=json.dumps(body), headers={"content-type": content_type}
        )
    assert response.status_code == 503
    assert 1 <= int(response.headers["Retry-After"]) <= MAX_RETRY_AFTER
    assert "LIGHTNING_MAX_BACKLOG" in response.json()["detail"]
    assert await nothing_stored(context)


@pytest.mark.parametrize("depth", [10, None])
async def test_within_the_bound_or_untold_events_are_accepted(
    context: ServiceContext, depth: int | None, client_as: ClientAs
) -> None:
    async with BackloggedBus(depth) as bus, client_as(bounded(context, bus), "alice") as alice:
        assert (await alice.post("/api/events", json=EVENT)).status_code == 202


async def test_readyz_shows_the_backlog_and_stays_ready_past_the_bound(
    context: ServiceContext,
    client_as: ClientAs,
) -> None:
    async with BackloggedBus(11) as bus, client_as(bounded(context, bus), "alice") as alice:
        ready = await alice.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"storage": "ok", "bus": "ok", "backlog": 11, "max_backlog": 10}


async def test_concurrent_requests_ask_the_bus_once(
    context: ServiceContext, client_as: ClientAs
) -> None:
    async with BackloggedBus(0) as bus, client_as(bounded(context, bus), "alice") as alice:
        bus.gate.clear()
        posts = [asyncio.create_task(alice.post("/api/events", json=EVENT)) for _ in range(20)]
        await asyncio.sleep(0.2)
        bus.gate.set()
        responses = await asyncio.gather(*posts)
    assert [response.status_code for response in responses] == [202] * 20
    assert bus.asked == 1


async def test_the_backlog_is_read_again_only_after_the_ttl() -> None:
    now = [0.0]
    async with BackloggedBus(5) as bus:
        backlog = Backlog(bus, ttl=1.0, clock=lambda: now[0])
        for at in (0.0, 0.5, 0.99):
            now[0] = at
            assert (await backlog.reading()).depth == 5
        assert bus.asked == 1
        now[0], bus.depth = 1.0, 3
        assert (await backlog.reading()).depth == 5  # the one before, while it reads again
        async with asyncio.timeout(1.0):
            while (await backlog.reading()).depth != 3:
                await asyncio.sleep(0)
        assert bus.asked == 2
        assert backlog.drain_rate() == 2.0


async def test_a_slow_read_after_the_first_holds_no_caller() -> None:
    now = [0.0]
    async with BackloggedBus(5) as bus:
        backlog = Backlog(bus, ttl=1.0, clock=lambda: now[0])
        await backlog.reading()
        bus.gate.clear()  # the bus stops answering
        now[0] = 2.0
        async with asyncio.timeout(0.5):
            readings = [await backlog.reading() for _ in range(10)]
        assert {reading.depth for reading in readings} == {5}
        await asyncio.sleep(0.01)  # the read started for them runs up to the silent bus
        assert bus.asked == 2  # one, for all ten
        bus.gate.set()


async def test_an_unreadable_backlog_admits_and_says_why(
    context: ServiceContext, client_as: ClientAs
) -> None:
    class BrokenBus(MemoryBus):
        async def backlog(self, _group: str) -> int | None:
            raise ConnectionError("gone")

    async with BrokenBus() as bus, client_as(bounded(context, bus), "alice") as alice:
        assert (await alice.post("/api/events", json=EVENT)).status_code == 202
        ready = (await alice.get("/readyz")).json()
    assert ready["backlog"] == "unavailable: ConnectionError: gone"


def test_retry_after_is_the_time_to_drain_within_bounds() -> None:
    assert retry_after(100, 50.0) == 2
    assert retry_after(1, 1000.0) == 1
    assert retry_after(10_000, 1.0) == MAX_RETRY_AFTER
    assert retry_after(100, 0.0) == MAX_RETRY_AFTER  # not draining
    assert retry_after(100, None) == 5  # not seen draining yet
