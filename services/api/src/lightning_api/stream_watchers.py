"""One watcher per user and replica polls storage and feeds all of that user's open event
streams, so what streams cost storage grows with users, not with tabs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from fastapi import Request

from lightning_api.event_changes import Change, EventChanges, Position
from lightning_core.storage.base import Storage

log = logging.getLogger(__name__)

FAST = 0.05
SLOW = 0.5
ACTIVE_FOR = 10.0
BACKLOG_LIMIT = 1000  # changes a stream may have waiting; past it the stream ends (it resumes)


class Pace:
    """Poll every FAST seconds for ACTIVE_FOR seconds after activity, else every SLOW."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._active_until = float("-inf")

    def saw_activity(self) -> None:
        self._active_until = self._clock() + ACTIVE_FOR

    def interval(self) -> float:
        return FAST if self._clock() < self._active_until else SLOW


class TooManyStreams(Exception):
    """The user already has as many open streams in this replica as allowed."""


class Feed:
    """One stream's share of its user's changes: what the watcher found since the stream
    joined and the stream did not take yet. `closed` once the watcher failed or the stream
    fell `BACKLOG_LIMIT` changes behind: the stream then ends and its client resumes."""

    def __init__(self, watcher: Watcher) -> None:
        self.joined = Position(datetime.now(UTC))
        self.changed = asyncio.Event()
        self.closed = False
        self._watcher = watcher
        self._pending: list[Change] = []

    async def started(self) -> None:
        """Return once the watcher has had its first look; raise what that look raised."""
        await asyncio.shield(self._watcher.started)

    def take(self) -> list[Change]:
        """The changes waiting, in position order, and none left waiting."""
        taken, self._pending = self._pending, []
        self.changed.clear()
        return taken

    def put(self, changes: Sequence[Change]) -> None:
        self._pending.extend(changes)
        if len(self._pending) > BACKLOG_LIMIT:
            self.close()
        self.changed.set()

    def close(self) -> None:
        self.closed = True
        self._pending = []
        self.changed.set()


class Watcher:
    """Looks at one user's changes for every stream of that user in this replica."""

    def __init__(self, storage: Storage, user: str) -> None:
        self.user = user
        self.feeds: set[Feed] = set()
        self.woken = asyncio.Event()
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._changes = EventChanges(storage, user)
        self._task = asyncio.create_task(self._run(), name=f"event-stream watcher of {user}")

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if not self.started.done():
            self.started.cancel()

    async def _run(self) -> None:
        pace = Pace()
        try:
            await self._changes.poll()  # what exists is no news
            self.started.set_result(None)
            while True:
                await first_of([self.woken], pace.interval())
                if self.woken.is_set():
                    self.woken.clear()
                    pace.saw_activity()
                records = await self._changes.poll()
                if records:
                    pace.saw_activity()
                    changes = [Change.of(record) for record in records]
                    for feed in self.feeds:
                        feed.put(changes)
        except Exception as error:  # storage failed: the streams end, their clients resume
            log.warning("event streams of %s end: %s: %s", self.user, type(error).__name__, error)
            if not self.started.done():
                self.started.set_exception(error)
            for feed in self.feeds:
                feed.close()


class Activity:
    """This replica's watchers, one per user with open streams; a POST wakes its user's."""

    def __init__(self) -> None:
        self._watchers: dict[str, Watcher] = {}

    def notify(self, user: str) -> None:
        watcher = self._watchers.get(user)
        if watcher is not None:
            watcher.woken.set()

    @contextlib.asynccontextmanager
    async def feed(self, storage: Storage, user: str, limit: int) -> AsyncIterator[Feed]:
        """A feed of `user`'s changes while the block runs, starting that user's watcher
        if none runs; TooManyStreams when `user` already has `limit` feeds."""
        watcher = self._watchers.get(user)
        if watcher is None or not watcher.running:
            watcher = self._watchers[user] = Watcher(storage, user)
        if len(watcher.feeds) >= limit:
            raise TooManyStreams(f"{limit} event streams are open for this user")
        feed = Feed(watcher)
        watcher.feeds.add(feed)
        try:
            yield feed
        finally:
            watcher.feeds.discard(feed)
            if not watcher.feeds:
                if self._watchers.get(user) is watcher:
                    del self._watchers[user]
                await watcher.stop()


def activity(request: Request) -> Activity:
    """This app's watchers (`create_app` makes them): POSTs wake their user's."""
    woken: Activity = request.app.state.activity
    return woken


async def first_of(events: list[asyncio.Event], within: float | None = None) -> None:
    """Return once any of `events` is set, or after `within` seconds (if given)."""
    waiting = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiting, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiting:
            waiter.cancel()
