"""Heartbeats: written through any storage, read back per instance, stale ones told apart
and long-gone ones forgotten."""

import asyncio
from datetime import timedelta

import pytest

from lightning_core.config import Settings
from lightning_core.domain import now
from lightning_core.heartbeats import (
    COLLECTION,
    FORGET_AFTER,
    PARTITION,
    STALE_AFTER,
    Heart,
    recent,
)
from lightning_core.storage.base import Document
from lightning_core.storage.sqlite import SqliteStorage


async def age(storage: SqliteStorage, doc_id: str, by: timedelta) -> None:
    """Pretend the beat `doc_id` was written `by` ago."""
    document = await storage.get(COLLECTION, PARTITION, doc_id)
    seen_at = (now() - by).isoformat(timespec="microseconds")
    await storage.upsert(COLLECTION, PARTITION, doc_id, {**document.body, "seen_at": seen_at})


async def test_each_instance_is_listed_with_its_latest_beat(storage: SqliteStorage) -> None:
    one, two = Heart(storage, "worker", "host-a:1"), Heart(storage, "worker", "host-b:1")
    await one.beat()
    await two.beat()
    await one.beat()
    beats = await recent(storage)
    assert [beat.instance for beat in beats] == ["host-a:1", "host-b:1"]  # newest first
    assert all(beat.alive(now()) for beat in beats)
    assert beats[0].started_at <= beats[0].seen_at


async def test_a_silent_instance_is_stale_then_forgotten(storage: SqliteStorage) -> None:
    await Heart(storage, "worker", "gone:1").beat()
    await age(storage, "worker@gone:1", STALE_AFTER + timedelta(seconds=1))
    [beat] = await recent(storage)
    assert not beat.alive(now())
    await age(storage, "worker@gone:1", FORGET_AFTER + timedelta(minutes=1))
    assert await recent(storage) == []
    await Heart(storage, "other", "x:1").beat()
    stop = asyncio.Event()
    stop.set()
    await Heart(storage, "worker", "new:1").beat_until(stop)  # starts by removing old beats
    assert [b.service for b in await recent(storage, forget_after=None)] == ["other"]


async def test_beats_repeat_until_stopped(storage: SqliteStorage) -> None:
    heart = Heart(storage, "worker", "host:1")
    stop = asyncio.Event()
    beating = asyncio.create_task(heart.beat_until(stop, interval=0.01))
    await asyncio.sleep(0.05)
    [first] = await recent(storage)
    await asyncio.sleep(0.05)
    [later] = await recent(storage)
    assert later.seen_at > first.seen_at
    stop.set()
    await asyncio.wait_for(beating, 1)
    assert await recent(storage) == []  # a stopped worker is not shown as running


class Throttled(Exception):
    """Not a StorageError: what a provider SDK may raise (Cosmos 429, a driver's own)."""


class Unavailable(SqliteStorage):
    async def upsert(self, *_args: object, **_kwargs: object) -> Document:
        raise Throttled("the store is down")


async def test_a_beat_storage_refuses_is_logged_not_raised(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await Heart(Unavailable(settings.sqlite_path), "worker", "host:1").try_beat()
    assert "heartbeat of worker not written: the store is down" in caplog.text


async def test_an_unreadable_beat_is_skipped(storage: SqliteStorage) -> None:
    await Heart(storage, "worker", "ok:1").beat()
    await storage.upsert(COLLECTION, PARTITION, "garbage", {"service": "worker", "seen_at": "x"})
    assert [beat.instance for beat in await recent(storage)] == ["ok:1"]
