"""Long task attempts (wait, webhook) off the delivery path, at most `limit` at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Attempt = Callable[[], Awaitable[None]]


class LongTasks:
    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._waiting: dict[object, tuple[asyncio.Task[None], Attempt]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False

    def start(self, attempt: Attempt, hand_back: Attempt) -> None:
        """Run `attempt` once a slot is free; on a stop before that, `hand_back` instead."""
        if self._stopping:
            raise RuntimeError("long tasks are stopping: no new attempt starts")
        token = object()
        task = asyncio.create_task(self._run(token, attempt))
        self._waiting[token] = (task, hand_back)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, token: object, attempt: Attempt) -> None:
        async with self._slots:
            self._waiting.pop(token, None)
            try:
                await attempt()
            except Exception:  # the task stays as it was; recovery requests it again
                log.exception("a long task attempt failed outside the task's own handling")

    async def stop(self) -> None:
        """Let running attempts finish; hand back those still waiting for a slot."""
        self._stopping = True
        waiting, self._waiting = list(self._waiting.values()), {}
        for task, _ in waiting:
            task.cancel()
        for _, hand_back in waiting:
            try:
                await hand_back()
            except Exception:  # recovery requests it later
                log.exception("handing back a long task failed")
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
