"""The event-bus contract, and the delivery loop every provider shares.

Semantics, the same on every provider (the contract suite pins them down):
- at-least-once: a consumer group sees every event published after the group was opened
  (`open_group`, which `consume` also does), even while no consumer runs; an event is
  acknowledged only after its handler succeeded. Subscription-based brokers (RabbitMQ,
  Service Bus) keep nothing for a group that does not exist yet, so deployments open the
  groups (or start their consumers) before producers publish;
- a failing handler is retried with exponential backoff until `RetryPolicy.max_attempts`
  attempts (counting deliveries the broker already made), then the event becomes a dead
  letter carrying the last error as its reason; dead letters can be listed and replayed;
- `consume` returns once `stop` is set and the in-flight event is finished; events fetched
  but not started are handed back to the broker, so a SIGTERM loses nothing (the memory
  bus, which has no broker to hand them to, first handles its backlog: `bus.memory`);
- losing the server is not fatal: the loop backs off and reconnects by itself.

The loop lives here, once (`BusBase.consume`); providers implement small hooks that map
it onto their broker's primitives (stream ids, delivery tags, message locks).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from lightning_core.events import CloudEvent
from lightning_core.lifecycle import Connectable
from lightning_core.metrics import HANDLE_SECONDS, HANDLED, PUBLISHED

log = logging.getLogger(__name__)

Handler = Callable[[CloudEvent], Awaitable[None]]
T = TypeVar("T")


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


@dataclass(frozen=True)
class Delivery:
    """One received message: the event, the broker's handle, and earlier failed deliveries."""

    event: CloudEvent
    receipt: Any
    previous_attempts: int = 0


class EventBus(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the bus cannot be reached (used by /readyz)."""

    async def publish(self, event: CloudEvent) -> None: ...

    async def publish_batch(self, events: Sequence[CloudEvent]) -> None: ...

    async def open_group(self, group: str) -> None:
        """Create the group if missing (without management rights: verify it exists); it
        keeps every event published from then on, even while no consumer runs.
        (Subscription-based brokers keep nothing from before.)"""

    async def consume(self, group: str, handler: Handler, *, stop: asyncio.Event) -> None:
        """Deliver events to `handler` until `stop` is set and in-flight work is done (on the
        memory bus: and its backlog, for up to `drain_timeout`)."""

    async def dead_letters(self, group: str) -> list[DeadLetter]: ...

    async def backlog(self, group: str) -> int | None:
        """Events published for the group and not settled yet; None where the broker does
        not tell with data-plane rights alone (Service Bus)."""

    async def replay(self, group: str, event_id: str) -> None:
        """Deliver a dead letter to its group again; KeyError if there is none."""


# Exceptions that mean "the server went away", worth a reconnect rather than a crash.
# Providers extend this with their SDK's connection errors.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, OSError, TimeoutError)


class BusBase(Connectable, ABC):
    """The delivery loop, written once; providers supply the broker operations."""

    #: How long one `_receive` may block waiting for events (bounds the reaction to `stop`).
    receive_wait: float = 0.5
    #: Backoff between reconnect attempts while the server is unreachable.
    reconnect_delay: float = 0.2
    reconnect_max_delay: float = 2.0
    #: How long `publish` keeps retrying through an outage before it gives up and raises.
    publish_timeout: float = 30.0

    def __init__(self, retry: RetryPolicy | None = None, batch_size: int = 100) -> None:
        super().__init__()
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.connection_errors: tuple[type[BaseException], ...] = CONNECTION_ERRORS

    # -- provider hooks -----------------------------------------------------------------

    @abstractmethod
    async def _open_group(self, group: str) -> None:
        """Create the group's subscription if missing (idempotent)."""

    @abstractmethod
    async def _receive(self, group: str, max_count: int, wait: float) -> list[Delivery]:
        """Up to `max_count` deliveries, waiting at most `wait` seconds for the first."""

    @abstractmethod
    async def _ack(self, group: str, deliveries: Sequence[Delivery]) -> None:
        """Settle handled deliveries so they are never delivered again."""

    @abstractmethod
    async def _dead_letter(
        self, group: str, delivery: Delivery, reason: str, attempts: int
    ) -> None:
        """Keep the event as a dead letter of `group` and settle the delivery."""

    @abstractmethod
    async def _release(self, group: str, deliveries: Sequence[Delivery]) -> None:
        """Hand fetched-but-unstarted deliveries back for redelivery (on stop)."""

    @abstractmethod
    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        """Send the events; return only once the broker has them (confirms, acks)."""

    # -- the loop ---------------------------------------------------------------------

    async def publish(self, event: CloudEvent) -> None:
        await self.publish_batch([event])

    async def publish_batch(self, events: Sequence[CloudEvent]) -> None:
        if not events:
            return
        try:
            async with asyncio.timeout(self.publish_timeout):
                await self._until_connected(functools.partial(self._publish, events))
        except Exception:
            PUBLISHED.labels("failed").inc(len(events))
            raise
        PUBLISHED.labels("ok").inc(len(events))

    async def open_group(self, group: str) -> None:
        await self._until_connected(functools.partial(self._open_group, group))

    async def consume(self, group: str, handler: Handler, *, stop: asyncio.Event) -> None:
        await self._until_connected(functools.partial(self._open_group, group), stop)
        receive = functools.partial(self._receive, group, self.batch_size, self.receive_wait)
        while not stop.is_set():
            batch = await self._until_connected(receive, stop)
            if batch:
                await self._process(group, batch, handler, stop)

    async def _process(
        self, group: str, batch: list[Delivery], handler: Handler, stop: asyncio.Event
    ) -> None:
        handled: list[Delivery] = []
        for index, delivery in enumerate(batch):
            if stop.is_set():
                await self._until_connected(functools.partial(self._release, group, batch[index:]))
                break
            if await self._deliver(group, delivery, handler):
                handled.append(delivery)
        if handled:
            await self._until_connected(functools.partial(self._ack, group, handled))

    async def _deliver(self, group: str, delivery: Delivery, handler: Handler) -> bool:
        """Run the handler with retries; True when it succeeded, False once dead-lettered."""
        attempt = delivery.previous_attempts
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                await handler(delivery.event)
            except Exception as error:  # any handler failure: retry, then dead-letter
                HANDLE_SECONDS.labels(group).observe(time.perf_counter() - started)
                HANDLED.labels(group, "error").inc()
                reason = f"{type(error).__name__}: {error}"
                log.warning(
                    "%s: event %s attempt %d failed: %s", group, delivery.event.id, attempt, reason
                )
                if attempt >= self.retry.max_attempts:
                    await self._until_connected(
                        functools.partial(self._dead_letter, group, delivery, reason, attempt)
                    )
                    HANDLED.labels(group, "dead_lettered").inc()
                    return False
                await asyncio.sleep(self.retry.delay(attempt))
            else:
                HANDLE_SECONDS.labels(group).observe(time.perf_counter() - started)
                HANDLED.labels(group, "ok").inc()
                return True

    async def _until_connected(
        self, operation: Callable[[], Awaitable[T]], stop: asyncio.Event | None = None
    ) -> T | None:
        """Run `operation`, backing off and retrying while the server is unreachable.

        Acks, dead letters and releases pass no `stop`: they must land, so they retry until
        the server is back. Receiving gives up once `stop` is set and returns None.
        """
        delay = self.reconnect_delay
        while True:
            try:
                return await operation()
            except self.connection_errors as error:
                if stop is not None and stop.is_set():
                    return None
                log.warning("bus unreachable (%s: %s); retrying", type(error).__name__, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_delay)
