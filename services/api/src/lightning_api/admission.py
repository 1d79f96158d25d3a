"""Admission: new work is refused (503, Retry-After) while the processor's backlog is past
LIGHTNING_MAX_BACKLOG; a backlog the bus does not tell, or cannot, admits everything."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status

from lightning_core.bus.base import EventBus
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.metrics import BACKLOG

log = logging.getLogger(__name__)

#: Retry-After when the backlog has not been seen draining yet, and at most ever.
FIRST_RETRY_AFTER = 5
MAX_RETRY_AFTER = 60


@dataclass(frozen=True)
class Reading:
    """The backlog at `at` (the clock's seconds); None with `problem` when unknown."""

    depth: int | None
    at: float
    problem: str | None = None


class Backlog:
    """The processor group's backlog, read from the bus at most once per `ttl` seconds and
    within `timeout`; only the first read is waited for, later ones run in the background."""

    def __init__(
        self,
        bus: EventBus,
        *,
        group: str = PROCESSOR_GROUP,
        ttl: float = 1.0,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus, self.group, self.ttl, self.timeout, self.clock = bus, group, ttl, timeout, clock
        self._last: Reading | None = None
        self._before: Reading | None = None
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    async def reading(self) -> Reading:
        """The latest reading; one older than `ttl` starts a read for later callers."""
        if self._last is None:
            async with self._lock:
                return self._last or self._keep(await self._read())
        if self.clock() - self._last.at >= self.ttl and self._refresh is None:
            self._refresh = asyncio.create_task(self._refreshing())
        return self._last

    def _keep(self, reading: Reading) -> Reading:
        self._before, self._last = self._last, reading
        return reading

    async def _refreshing(self) -> None:
        try:
            self._keep(await self._read())
        finally:
            self._refresh = None

    def drain_rate(self) -> float | None:
        """Events per second the backlog shrank by between the last two readings (negative
        while it grows); None before two readings with a depth."""
        before, last = self._before, self._last
        if before is None or last is None or before.depth is None or last.depth is None:
            return None
        return (before.depth - last.depth) / max(last.at - before.at, 1e-9)

    async def _read(self) -> Reading:
        try:
            async with asyncio.timeout(self.timeout):
                depth = await self.bus.backlog(self.group)
        except Exception as error:  # an unreadable backlog admits; the publish will tell
            problem = f"unavailable: {type(error).__name__}: {error}"
            log.warning("backlog of %s %s", self.group, problem)
            return Reading(None, self.clock(), problem)
        if depth is None:
            return Reading(None, self.clock(), "not told by this bus")
        BACKLOG.labels(self.group).set(depth)
        return Reading(depth, self.clock(), None)


def retry_after(excess: int, drain_rate: float | None) -> int:
    """Seconds until a backlog `excess` events past the bound is back within it, at
    `drain_rate` events/s, between 1 and MAX_RETRY_AFTER."""
    if drain_rate is None:
        return FIRST_RETRY_AFTER
    if drain_rate <= 0:
        return MAX_RETRY_AFTER
    return max(1, min(MAX_RETRY_AFTER, math.ceil(excess / drain_rate)))


class Admission:
    """Refuses requests while `backlog` is past `bound` (LIGHTNING_MAX_BACKLOG)."""

    def __init__(self, backlog: Backlog, bound: int) -> None:
        self.backlog, self.bound = backlog, bound

    async def check(self) -> None:
        """Return when the backlog is within the bound (or unknown); else 503 with Retry-After."""
        depth = (await self.backlog.reading()).depth
        if depth is None or depth <= self.bound:
            return
        seconds = retry_after(depth - self.bound, self.backlog.drain_rate())
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{depth} events are waiting for the processor, more than LIGHTNING_MAX_BACKLOG "
            f"({self.bound}); nothing was stored, send it again after {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


def admission(request: Request) -> Admission:
    """This app's admission (`create_app` makes one)."""
    gate: Admission = request.app.state.admission
    return gate


async def _admit(request: Request) -> None:
    await admission(request).check()


#: A route dependency: 503 with Retry-After while the backlog is past the bound.
Admitted = Depends(_admit)
