"""How often an event stream looks at storage: often while its user is active, rarely when not.

A stream polls storage (see `lightning_api.changes` for why), so its latency is its poll
interval and its cost is one round of queries per interval. Users act in bursts: an event
goes in and its processing follows within a second or two. So a stream polls every `FAST`
seconds for `ACTIVE_FOR` seconds after it saw a change or this replica accepted an event
of its user (`Activity` wakes it at once), and every `SLOW` seconds otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

FAST = 0.05
SLOW = 0.5
ACTIVE_FOR = 10.0


class Pace:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._active_until = float("-inf")

    def saw_activity(self) -> None:
        self._active_until = self._clock() + ACTIVE_FOR

    def interval(self) -> float:
        return FAST if self._clock() < self._active_until else SLOW


class Activity:
    """Wakes the open streams of a user when this replica accepted one of their events."""

    def __init__(self) -> None:
        self._streams: dict[str, set[asyncio.Event]] = {}

    def notify(self, user: str) -> None:
        for woken in self._streams.get(user, ()):
            woken.set()

    @contextlib.contextmanager
    def watch(self, user: str) -> Iterator[asyncio.Event]:
        """An event set whenever `user` was active, for as long as the block runs."""
        woken = asyncio.Event()
        self._streams.setdefault(user, set()).add(woken)
        try:
            yield woken
        finally:
            streams = self._streams[user]
            streams.discard(woken)
            if not streams:
                del self._streams[user]


async def first_of(events: list[asyncio.Event], within: float) -> None:
    """Return once any of `events` is set, or after `within` seconds."""
    waiting = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiting, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiting:
            waiter.cancel()
