"""The event streams' watchers: one per user, fast after activity and slow when idle, woken
by POSTs, feeding every stream of their user and only theirs, capped per user."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from lightning_api import stream_watchers
from lightning_api.event_changes import Change
from lightning_api.stream_watchers import (
    ACTIVE_FOR,
    BACKLOG_LIMIT,
    FAST,
    SLOW,
    Activity,
    Feed,
    Pace,
    TooManyStreams,
    first_of,
)
from lightning_core.events import CloudEvent
from lightning_core.records import EventRecord, record_received
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.clock import Clock


class CountingStorage(SqliteStorage):
    """SQLite counting the queries each partition (user) was asked, and failing on demand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queries: dict[str, int] = {}
        self.failing = False

    async def query(self, collection: str, partition: str, *args: Any, **kwargs: Any) -> Any:
        self.queries[partition] = self.queries.get(partition, 0) + 1
        if self.failing:
            raise ConnectionError("storage is gone")
        return await super().query(collection, partition, *args, **kwargs)


@pytest.fixture
async def storage(tmp_path: Any) -> AsyncIterator[CountingStorage]:
    async with CountingStorage(tmp_path / "pace.db") as connected:
        yield connected


async def next_changes(feed: Feed) -> list[EventRecord]:
    await asyncio.wait_for(feed.changed.wait(), 5)
    return [change.record for change in feed.take()]


def test_fast_for_a_while_after_activity_then_slow() -> None:
    clock = Clock()
    pace = Pace(clock)
    assert pace.interval() == SLOW
    pace.saw_activity()
    assert pace.interval() == FAST
    clock.now += ACTIVE_FOR - 0.1
    assert pace.interval() == FAST
    clock.now += 0.2
    assert pace.interval() == SLOW


async def test_one_watcher_feeds_every_stream_of_its_user_and_only_theirs(
    storage: CountingStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_watchers, "SLOW", 60)  # only a notification makes a watcher look
    activity = Activity()
    async with AsyncExitStack() as streams:
        first, second, bobs = [
            await streams.enter_async_context(activity.feed(storage, user, limit=10))
            for user in ("alice", "alice", "bob")
        ]
        for feed in (first, second, bobs):
            await feed.started()
        assert storage.queries == {"alice": 2, "bob": 2}  # one first look per user, not per feed

        event = CloudEvent(user="alice", source="t", type="door.opened")
        await record_received(storage, event)
        activity.notify("alice")
        for feed in (first, second):
            assert [record.event.id for record in await next_changes(feed)] == [event.id]
        assert storage.queries == {"alice": 4, "bob": 2}
        assert not bobs.changed.is_set()


async def test_the_last_stream_of_a_user_stops_their_watcher(storage: CountingStorage) -> None:
    activity = Activity()
    async with activity.feed(storage, "alice", limit=10) as feed:
        await feed.started()
        await asyncio.sleep(SLOW * 1.5)
        assert storage.queries["alice"] > 2  # it does look while a stream is open
    stopped = storage.queries["alice"]
    await asyncio.sleep(SLOW * 2)
    assert storage.queries["alice"] == stopped
    activity.notify("alice")  # nobody watching: nothing to do


async def test_a_user_has_at_most_limit_streams_and_others_are_not_counted(
    storage: CountingStorage,
) -> None:
    activity = Activity()
    async with AsyncExitStack() as streams:
        for _ in range(2):
            await streams.enter_async_context(activity.feed(storage, "alice", limit=2))
        with pytest.raises(TooManyStreams, match="2 event streams are open"):
            await streams.enter_async_context(activity.feed(storage, "alice", limit=2))
        await streams.enter_async_context(activity.feed(storage, "bob", limit=2))
    async with activity.feed(storage, "alice", limit=2) as feed:  # the closed ones freed theirs
        await feed.started()


async def test_a_failing_storage_ends_the_streams_and_the_next_stream_starts_afresh(
    storage: CountingStorage,
) -> None:
    activity = Activity()
    async with activity.feed(storage, "alice", limit=10) as feed:
        await feed.started()
        storage.failing = True
        activity.notify("alice")
        assert await next_changes(feed) == []
        assert feed.closed
        async with activity.feed(storage, "alice", limit=10) as another:
            with pytest.raises(ConnectionError):
                await another.started()
        storage.failing = False
        async with activity.feed(storage, "alice", limit=10) as again:
            await again.started()
            assert not again.closed


async def test_a_stream_too_far_behind_is_closed(storage: CountingStorage) -> None:
    activity = Activity()
    async with activity.feed(storage, "alice", limit=10) as feed:
        record = await record_received(storage, CloudEvent(user="alice", source="t", type="x"))
        feed.put([Change.of(record)] * BACKLOG_LIMIT)
        assert len(feed.take()) == BACKLOG_LIMIT  # as far behind as it may be
        feed.put([Change.of(record)] * (BACKLOG_LIMIT + 1))
        assert feed.closed
        assert feed.take() == []


async def test_first_of_returns_when_one_is_set_or_the_time_is_up() -> None:
    stop, woken = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().call_soon(woken.set)
    await asyncio.wait_for(first_of([stop, woken]), 5)
    assert woken.is_set()
    await first_of([asyncio.Event()], within=0.01)  # nothing set: back after the time
