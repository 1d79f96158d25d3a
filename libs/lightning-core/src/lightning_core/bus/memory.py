"""In-process event bus for embedded mode: the API and the processor share one process.

An append-only log with one cursor per consumer group, so each group sees every event,
including events published before the group's consumer started (the API may take a
request before the processor task is scheduled). Entries every group has passed are
trimmed, so memory stays bounded by the slowest group's backlog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from lightning_core.bus.base import DeadLetter, Handler, RetryPolicy
from lightning_core.events import CloudEvent
from lightning_core.lifecycle import Connectable

log = logging.getLogger(__name__)


class MemoryBus(Connectable):
    def __init__(self, retry: RetryPolicy | None = None) -> None:
        super().__init__()
        self.retry = retry or RetryPolicy()
        self._log: list[CloudEvent] = []
        self._trimmed = 0  # how many entries were dropped from the front of _log
        self._cursors: dict[str, int] = {}
        self._replays: dict[str, list[CloudEvent]] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self._changed = asyncio.Condition()

    async def ping(self) -> None:
        """Always reachable: it lives in this process."""

    async def publish(self, event: CloudEvent) -> None:
        await self.publish_batch([event])

    async def publish_batch(self, events: Sequence[CloudEvent]) -> None:
        async with self._changed:
            self._log.extend(events)
            self._changed.notify_all()

    async def dead_letters(self, group: str) -> list[DeadLetter]:
        return list(self._dead.get(group, []))

    async def replay(self, group: str, event_id: str) -> None:
        letters = self._dead.get(group, [])
        for index, letter in enumerate(letters):
            if letter.event.id == event_id:
                del letters[index]
                async with self._changed:
                    self._replays.setdefault(group, []).append(letter.event)
                    self._changed.notify_all()
                return
        raise KeyError(f"no dead letter {event_id} in group {group}")

    async def consume(self, group: str, handler: Handler, *, stop: asyncio.Event) -> None:
        self._cursors.setdefault(group, self._trimmed)
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                event = await self._next(group, stopping)
                if event is not None:
                    await self._deliver(group, event, handler)
        finally:
            stopping.cancel()

    async def _next(self, group: str, stopping: asyncio.Task[bool]) -> CloudEvent | None:
        async with self._changed:
            while True:
                replays = self._replays.get(group)
                if replays:
                    return replays.pop(0)
                position = self._cursors[group] - self._trimmed
                if position < len(self._log):
                    self._cursors[group] += 1
                    event = self._log[position]
                    self._trim()
                    return event
                if stopping.done():
                    return None
                waiting = asyncio.create_task(self._changed.wait())
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                    # Condition.wait re-acquires the lock even when cancelled.
                    await asyncio.gather(waiting, return_exceptions=True)

    def _trim(self) -> None:
        done = min(self._cursors.values()) - self._trimmed
        if done > 0:
            del self._log[:done]
            self._trimmed += done

    async def _deliver(self, group: str, event: CloudEvent, handler: Handler) -> None:
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                await handler(event)
            except Exception as error:  # any handler failure: retry, then dead-letter
                reason = f"{type(error).__name__}: {error}"
                log.warning(
                    "group %s: event %s attempt %d failed: %s", group, event.id, attempt, reason
                )
                if attempt == self.retry.max_attempts:
                    self._dead.setdefault(group, []).append(
                        DeadLetter(event, group, reason, attempt, datetime.now(UTC))
                    )
                    return
                await asyncio.sleep(self.retry.delay(attempt))
            else:
                return
