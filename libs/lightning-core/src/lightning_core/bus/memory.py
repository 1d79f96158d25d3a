"""In-process event bus for embedded mode: a log with one cursor per consumer group. Told to
stop, a consumer first handles its group's backlog, which nothing else would keep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from lightning_core.bus.base import (
    DEFAULT_CONCURRENCY,
    BusBase,
    DeadLetter,
    Delivery,
    Handler,
    RetryPolicy,
)
from lightning_core.events import CloudEvent
from lightning_core.metrics import PUBLISHED

log = logging.getLogger(__name__)

#: Unread events of one group at which a bus built from settings holds publishers back.
HIGH_WATER = 1_000


class MemoryBus(BusBase):
    receive_wait = 0.05  # waiting is free in-process; a short wait makes `stop` prompt
    drain_timeout = 30.0  # how long a stopping consumer goes on emptying its backlog
    drain_quiet = 0.2  # no arrival for this long: the backlog counts as empty

    def __init__(
        self,
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
        concurrency: int = DEFAULT_CONCURRENCY,
        high_water: int | None = None,
    ) -> None:
        super().__init__(retry, batch_size, concurrency)
        self.high_water = high_water
        self._log: list[CloudEvent] = []
        self._trimmed = 0  # entries dropped from the front of _log
        self._cursors: dict[str, int] = {}
        self._redeliver: dict[str, list[Delivery]] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()  # a group read: publishers held back may go on

    async def ping(self) -> None:
        """Always reachable: it lives in this process."""

    async def consume(self, group: str, handler: Handler, *, stop: asyncio.Event) -> None:
        await super().consume(group, handler, stop=stop)
        if left := self._backlog(group):
            log.info(
                "%s: handling the %d events still queued before stopping (at most %g s)",
                group,
                left,
                self.drain_timeout,
            )
        deadline = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(self.drain_timeout, deadline.set)
        try:
            await self._run(group, handler, deadline, self.drain_quiet, until_idle=True)
        finally:
            timer.cancel()

    async def _close(self) -> None:
        for group in self._cursors:
            if left := self._backlog(group):
                log.warning(
                    "memory bus closed with %d events that group %s never processed: "
                    "embedded mode keeps no queue across restarts",
                    left,
                    group,
                )

    async def publish_batch(self, events: Sequence[CloudEvent]) -> None:
        """Straight to the log, once no group is at `high_water`: nothing to retry in-process."""
        if events:
            await self._room()
            await self._publish(events)
            PUBLISHED.labels("ok").inc(len(events))

    async def _room(self) -> None:
        """Wait while some group has `high_water` events or more unread."""
        while self.high_water is not None and any(
            self._backlog(group) >= self.high_water for group in self._cursors
        ):
            self._taken.clear()
            await self._taken.wait()

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        self._log.extend(events)
        self._arrived.set()

    async def _open_group(self, group: str) -> None:
        self._cursors.setdefault(group, self._trimmed)

    async def _receive(self, group: str, max_count: int, wait: float) -> list[Delivery]:
        if not await self._arrival(group, wait):
            return []
        handed_back = self._redeliver.pop(group, [])
        batch, later = handed_back[:max_count], handed_back[max_count:]
        if later:
            self._redeliver[group] = later
        start = self._cursors[group] - self._trimmed
        fresh = self._log[start : start + max_count - len(batch)]
        self._cursors[group] += len(fresh)
        self._trim()
        self._taken.set()
        return batch + [Delivery(event, receipt=None) for event in fresh]

    async def _arrival(self, group: str, wait: float) -> bool:
        """Whether the group has something to receive, waiting up to `wait` for it."""
        if self._backlog(group):
            return True
        try:
            async with asyncio.timeout(wait):
                while not self._backlog(group):
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return False
        return True

    async def backlog(self, group: str) -> int | None:
        return self._backlog(group) if group in self._cursors else 0

    def _backlog(self, group: str) -> int:
        """Events the group has yet to receive: handed back ones, then unread ones."""
        unread = len(self._log) - (self._cursors[group] - self._trimmed)
        return len(self._redeliver.get(group, ())) + unread

    def _trim(self) -> None:
        done = min(self._cursors.values()) - self._trimmed
        if done > 0:
            del self._log[:done]
            self._trimmed += done

    async def _ack(self, group: str, deliveries: Sequence[Delivery]) -> None:
        """Nothing to settle: the cursor moved past these when they were received."""

    async def _release(self, group: str, deliveries: Sequence[Delivery]) -> None:
        self._redeliver[group] = [*deliveries, *self._redeliver.get(group, [])]
        self._arrived.set()

    async def _dead_letter(
        self, group: str, delivery: Delivery, reason: str, attempts: int
    ) -> None:
        letter = DeadLetter(delivery.event, group, reason, attempts, datetime.now(UTC))
        self._dead.setdefault(group, []).append(letter)

    async def dead_letters(self, group: str) -> list[DeadLetter]:
        return list(self._dead.get(group, []))

    async def replay(self, group: str, event_id: str) -> None:
        letters = self._dead.get(group, [])
        for index, letter in enumerate(letters):
            if letter.event.id == event_id:
                del letters[index]
                await self._release(group, [Delivery(letter.event, receipt=None)])
                return
        raise KeyError(f"no dead letter {event_id} in group {group}")
