"""The benchmarks' events, their batches, and the callers that write them at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from lightning_core.events import CloudEvent

BATCH = 100  # events per publish, per read, per prefetch
USERS = 100  # a backlog's events are spread over this many users
CALLERS = 16  # concurrent writers: a service under load


def user_events(count: int, users: int = USERS) -> list[CloudEvent]:
    """`count` events, round-robin over `users` users."""
    return [
        CloudEvent(source="bench", type="bench.tick", data={"n": n}, user=f"u{n % users}")
        for n in range(count)
    ]


def batches(items: Sequence[CloudEvent], size: int = BATCH) -> list[Sequence[CloudEvent]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


async def in_parallel(count: int, operation: Callable[[int], Awaitable[object]]) -> None:
    """`operation(n)` for each n below `count`, by CALLERS callers at once."""
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            await operation(n)

    await asyncio.gather(*(worker() for _ in range(CALLERS)))
