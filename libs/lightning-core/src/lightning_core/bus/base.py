"""The event-bus contract, and the delivery loop every provider shares (`BusBase.consume`):
at least once, in order per user and subject, retries then a dead letter (docs/core.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from lightning_core.backoff import backoff, retry
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
        return backoff(attempt, self.base_delay, self.max_delay)


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
        """Create the group if missing (or verify it); it keeps every event published from
        then on, even while no consumer runs."""

    async def consume(self, group: str, handler: Handler, *, stop: asyncio.Event) -> None:
        """Deliver events to `handler` until `stop` is set and in-flight work is done."""

    async def dead_letters(self, group: str) -> list[DeadLetter]: ...

    async def backlog(self, group: str) -> int | None:
        """Events published for the group and not settled yet; None where the broker cannot tell."""

    async def replay(self, group: str, event_id: str) -> None:
        """Deliver a dead letter to its group again; KeyError if there is none."""


#: LIGHTNING_PROCESSOR_CONCURRENCY's default, for buses built without settings.
DEFAULT_CONCURRENCY = 32

# "The server went away": worth a reconnect, not a crash. Providers add their SDK's errors.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, OSError, TimeoutError)


class BusBase(Connectable, ABC):
    """The delivery loop, written once; providers supply the broker operations."""

    receive_wait: float = 0.5  # bounds the reaction to `stop`
    reconnect_delay: float = 0.2
    reconnect_max_delay: float = 2.0
    ack_linger: float = 0.005  # handled deliveries wait this long to share one ack
    publish_timeout: float = 30.0  # `publish` raises after retrying this long

    def __init__(
        self,
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        super().__init__()
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.window = max(batch_size, concurrency)  # held by one `consume`, not yet settled
        self.connection_errors: tuple[type[BaseException], ...] = CONNECTION_ERRORS

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
        await self._run(group, handler, stop, self.receive_wait)

    async def _run(
        self,
        group: str,
        handler: Handler,
        stop: asyncio.Event,
        wait: float,
        *,
        until_idle: bool = False,
    ) -> None:
        """Receive and handle until `stop` (or, `until_idle`, until a receive waiting `wait`
        finds nothing and nothing is in flight); then hand back what was not started."""
        flow = _Flow(self, group, handler, stop)
        async with asyncio.TaskGroup() as tasks:
            acks = tasks.create_task(flow.acknowledge())
            while not stop.is_set():
                room = self.window - flow.held
                if room <= 0:
                    await flow.wait_for_room(self.receive_wait)
                    continue
                receive = functools.partial(self._receive, group, min(self.batch_size, room), wait)
                batch = await self._until_connected(receive, stop)
                if batch is None:
                    break
                if not batch and until_idle and flow.held == 0:
                    break
                for delivery in batch:
                    flow.add(delivery, tasks)
            await flow.lanes_done()
            flow.finish()
            await acks
        if left := flow.unstarted():
            await self._until_connected(functools.partial(self._release, group, left))

    async def _deliver(
        self, group: str, delivery: Delivery, handler: Handler, flow: _Flow
    ) -> bool | Delivery:
        """Run the handler with retries: True once it succeeded, False once dead-lettered, or
        (stopped during a backoff) the delivery to hand back, its attempts counted."""
        attempt = delivery.previous_attempts
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                async with flow.slots:
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
                if await flow.stopped_within(self.retry.delay(attempt)):
                    return dataclasses.replace(delivery, previous_attempts=attempt)
            else:
                HANDLE_SECONDS.labels(group).observe(time.perf_counter() - started)
                HANDLED.labels(group, "ok").inc()
                return True

    async def _until_connected(
        self, operation: Callable[[], Awaitable[T]], stop: asyncio.Event | None = None
    ) -> T | None:
        """Run `operation`, retrying while the server is unreachable; None if `stop` was set."""
        try:
            return await retry(
                operation,
                self.connection_errors,
                what="bus",
                first=self.reconnect_delay,
                cap=self.reconnect_max_delay,
                stop=stop,
            )
        except self.connection_errors:
            if stop is None or not stop.is_set():
                raise
            return None


Lane = tuple[str, str | None]  # (user, subject): deliveries of one lane run in order


class _Flow:
    """One `consume` call's deliveries in flight: a task per lane, handler slots, batched acks."""

    def __init__(self, bus: BusBase, group: str, handler: Handler, stop: asyncio.Event) -> None:
        self.bus, self.group, self.handler, self.stop = bus, group, handler, stop
        self.slots = asyncio.Semaphore(bus.concurrency)
        self.held = 0  # received, not settled
        self._lanes: dict[Lane, deque[tuple[int, Delivery]]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._sequence = itertools.count()
        self._handled: list[Delivery] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._finished = False

    def add(self, delivery: Delivery, tasks: asyncio.TaskGroup) -> None:
        self.held += 1
        entry = (next(self._sequence), delivery)
        key = (delivery.event.user, delivery.event.subject)
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(entry)
            return
        self._lanes[key] = deque([entry])
        worker = tasks.create_task(self._work(key))
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _work(self, key: Lane) -> None:
        lane = self._lanes[key]
        while lane and not self.stop.is_set():
            sequence, delivery = lane[0]
            outcome = await self.bus._deliver(self.group, delivery, self.handler, self)
            if isinstance(outcome, Delivery):  # stopped during a backoff: hand it back
                lane[0] = (sequence, outcome)
                return
            lane.popleft()
            self.held -= 1
            self._room.set()
            if outcome:
                self._handled.append(delivery)
                self._wake.set()
        if not lane:
            del self._lanes[key]

    async def wait_for_room(self, longest: float) -> None:
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), longest)

    async def stopped_within(self, delay: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), delay)
        return self.stop.is_set()

    async def acknowledge(self) -> None:
        """Acknowledge handled deliveries in batches (lingering `ack_linger`) until `finish`."""
        while True:
            await self._wake.wait()
            if not self._finished:
                await asyncio.sleep(self.bus.ack_linger)
            self._wake.clear()
            while self._handled:
                handled, self._handled = self._handled, []
                await self.bus._until_connected(
                    functools.partial(self.bus._ack, self.group, handled)
                )
            if self._finished:
                return

    async def lanes_done(self) -> None:
        while self._workers:
            await asyncio.wait(set(self._workers))

    def finish(self) -> None:
        self._finished = True
        self._wake.set()

    def unstarted(self) -> list[Delivery]:
        """What the lanes still hold, in the order it was received."""
        entries = sorted(entry for lane in self._lanes.values() for entry in lane)
        return [delivery for _, delivery in entries]
