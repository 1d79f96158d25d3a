"""The event-bus contract: the same delivery semantics on every provider.

At-least-once: a consumer group sees every event published after the group first
existed (the memory bus: since the process started), the handler's success acknowledges
it, a failure retries with exponential backoff up to `RetryPolicy.max_attempts`, then the
event becomes a dead letter carrying the last error as its reason. `consume` returns once
`stop` is set and the in-flight event is finished, so a SIGTERM never loses work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lightning_core.events import CloudEvent

Handler = Callable[[CloudEvent], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        """Backoff before retry number `attempt` (1-based): doubling, capped."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class DeadLetter:
    event: CloudEvent
    group: str
    reason: str
    attempts: int
    failed_at: datetime


class EventBus(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the bus cannot be reached (used by /readyz)."""

    async def publish(self, event: CloudEvent) -> None: ...

    async def publish_batch(self, events: Sequence[CloudEvent]) -> None: ...

    async def consume(self, group: str, handler: Handler, *, stop: asyncio.Event) -> None:
        """Deliver events to `handler` until `stop` is set and in-flight work is done."""

    async def dead_letters(self, group: str) -> list[DeadLetter]: ...

    async def replay(self, group: str, event_id: str) -> None:
        """Move a dead letter back onto the group's queue; KeyError if there is none."""
