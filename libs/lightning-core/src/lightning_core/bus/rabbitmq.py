"""RabbitMQ event bus: a durable fanout exchange, one durable queue per consumer group.

Topology under the namespace `ns` (all durable, so a broker restart loses nothing):
- `{ns}.events`: fanout exchange; every event is published to it as a persistent message,
  a batch awaiting its publisher confirms together (one wait per batch).
- `{ns}.{group}`: classic queue per consumer group, bound to `{ns}.events`. Consumers read
  it with manual acks and prefetch = batch size; a batch is settled by one multiple-ack.
- `{ns}.history`: a stream (append-only log) bound to `{ns}.events` that keeps the last
  `HISTORY_MAX_AGE` of events. A fanout drops what no queue is bound to yet, but the
  contract says a group also sees events published before its first consumer ran (the API
  may accept an event before the processor ever created its group), as the Redis stream
  and the in-memory log do. When `_open_group` creates a group's queue, it copies that
  history into the new queue ahead of the live events (see `_backfill`).
- `{ns}.dead`: direct exchange for dead letters, routed by group name to the queue
  `{ns}.{group}.dead`.

Group queues are classic, not quorum: in RabbitMQ 3.10 only classic queues have
priorities, which `_backfill` uses to put history ahead of live events. The cost is the
attempt count: classic queues only flag a redelivery, so `previous_attempts` is 1 for a
redelivered message (the broker got it back from a consumer that died, or that was stopped
before it started the event) and 0 otherwise.

Dead letters are published to `{ns}.dead` (confirmed) and only then is the original
acknowledged. Rejecting into a dead-letter exchange would be atomic, but the broker's
x-death header cannot carry the handler's error, and the reason is part of the contract.
If the consumer dies between the two steps, the event is delivered again and may become a
second dead letter (listed twice); nothing is lost.

The connection is aio-pika's robust one: after a broker restart it reconnects, reopens the
channels, redeclares the topology and restarts the consumers by itself. Operations during
the outage raise `connection_errors`, so the shared loop backs off and retries. Messages
received on a channel that died are dropped rather than handled or acknowledged: their
delivery tags mean nothing on the new channel, and the broker redelivers them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError, ChannelNotFoundEntity
from pydantic import ValidationError

from lightning_core.bus.base import BusBase, DeadLetter, Delivery, Handler, RetryPolicy
from lightning_core.config import ConfigError, Settings
from lightning_core.events import CloudEvent

log = logging.getLogger(__name__)

#: How long the history stream keeps events for groups created later (RabbitMQ duration).
HISTORY_MAX_AGE = "1h"
#: Small stream segments, so retention (applied per whole segment) is close to the max age.
HISTORY_SEGMENT_BYTES = 8_000_000
#: Header naming a marker: a message published only to the history stream, never an event.
MARKER = "x-lightning-marker"
#: Priority of history copied into a new group's queue: ahead of the live events (0).
HISTORY_PRIORITY = 1
#: A history read that gets nothing for this long lost its consumer (connection lost).
BACKFILL_IDLE = 10.0
#: /readyz must answer while the robust connection waits for the broker to come back.
PING_TIMEOUT = 5.0
CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True)
class _Broker:
    """What `_connect` opens: the connection, the confirming publisher channel, exchanges."""

    connection: AbstractRobustConnection
    publisher: AbstractChannel
    events: AbstractExchange
    dead: AbstractExchange


@dataclass
class _Group:
    """One group being consumed by this bus: its channel, consumer and local buffer."""

    channel: AbstractChannel
    buffer: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)
    #: Events copied from history that may also arrive live (see `_backfill`), and those
    #: of them already delivered once.
    doubles: set[str] = field(default_factory=set)
    delivered: set[str] = field(default_factory=set)


def _stale(message: AbstractIncomingMessage) -> bool:
    """Whether the message came on a channel that has since died."""
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:
        return True


class RabbitMqBus(BusBase):
    """Durable queues, publisher confirms, manual acks, dead letters with their reason."""

    def __init__(
        self,
        url: str,
        namespace: str,
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
    ) -> None:
        super().__init__(retry, batch_size)
        self.url = url
        self.namespace = namespace
        self.connection_errors += (AMQPConnectionError, ChannelInvalidStateError)
        self._broker: _Broker | None = None
        self._groups: dict[str, _Group] = {}
        self._consuming: set[str] = set()
        #: Groups whose queue this bus created but whose history copy has not finished yet:
        #: the first marker, so a retried `_open_group` copies from the same point.
        self._unfilled: dict[str, str] = {}

    # -- names --------------------------------------------------------------------------

    @property
    def history(self) -> str:
        return f"{self.namespace}.history"

    def queue_name(self, group: str) -> str:
        return f"{self.namespace}.{group}"

    def dead_queue_name(self, group: str) -> str:
        return f"{self.namespace}.{group}.dead"

    # -- lifecycle ----------------------------------------------------------------------

    async def _connect(self) -> None:
        connection = await aio_pika.connect_robust(self.url)
        # A message no queue takes (a dead-letter queue deleted by hand) raises, not vanishes.
        publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        events = await publisher.declare_exchange(
            f"{self.namespace}.events", aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead = await publisher.declare_exchange(
            f"{self.namespace}.dead", aio_pika.ExchangeType.DIRECT, durable=True
        )
        history = await publisher.declare_queue(
            self.history,
            durable=True,
            arguments={
                "x-queue-type": "stream",
                "x-max-age": HISTORY_MAX_AGE,
                "x-stream-max-segment-size-bytes": HISTORY_SEGMENT_BYTES,
            },
        )
        await history.bind(events)
        self._broker = _Broker(connection, publisher, events, dead)

    async def _close(self) -> None:
        if self._broker is not None:
            await self._broker.connection.close()
        self._broker = None
        self._groups.clear()

    @property
    def broker(self) -> _Broker:
        if self._broker is None:
            raise RuntimeError("RabbitMqBus is not connected: call `await bus.connect()` first")
        return self._broker

    async def ping(self) -> None:
        """One round trip to the broker (redeclaring the events exchange is idempotent)."""
        async with asyncio.timeout(PING_TIMEOUT):
            await self.broker.publisher.declare_exchange(
                f"{self.namespace}.events", aio_pika.ExchangeType.FANOUT, durable=True
            )

    # -- publishing ---------------------------------------------------------------------

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        await _confirmed(self.broker.events, "", [_message(event) for event in events])

    async def _mark(self) -> str:
        """Append a marker to the history stream (only there) and return its id."""
        marker = uuid.uuid4().hex
        message = aio_pika.Message(
            b"", headers={MARKER: marker}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await self.broker.publisher.default_exchange.publish(message, self.history)
        return marker

    # -- consuming ----------------------------------------------------------------------

    async def consume(self, group: str, handler: Handler, *, stop: asyncio.Event) -> None:
        """The shared loop, plus closing the group's channel afterwards.

        Closing the channel hands every prefetched, unacknowledged message back to the
        queue. One bus consumes a group once at a time, which keeps one batch outstanding
        per channel and makes a multiple-ack exact; run more processes to add consumers.
        """
        if group in self._consuming:
            raise RuntimeError(
                f"group {group!r} is already being consumed by this bus: "
                "run another bus (process) to add a consumer"
            )
        self._consuming.add(group)
        try:
            await super().consume(group, handler, stop=stop)
        finally:
            self._consuming.discard(group)
            state = self._groups.pop(group, None)
            if state is not None and not state.channel.is_closed:
                try:
                    await state.channel.close()
                except self.connection_errors as error:
                    log.warning("%s: closing the channel failed: %s", group, error)

    async def _open_group(self, group: str) -> None:
        if group in self._groups:
            return
        name = self.queue_name(group)
        if group not in self._unfilled and not await self._exists(name):
            self._unfilled[group] = await self._mark()
        channel = await self.broker.connection.channel()
        try:
            await channel.set_qos(prefetch_count=self.batch_size)
            queue = await channel.declare_queue(
                name, durable=True, arguments={"x-max-priority": HISTORY_PRIORITY}
            )
            await queue.bind(f"{self.namespace}.events")
            state = _Group(channel)
            if group in self._unfilled:
                state.doubles = await self._backfill(name, self._unfilled[group])
                del self._unfilled[group]
            await self._declare_dead_queue(channel, group)

            async def buffer(message: AbstractIncomingMessage) -> None:
                state.buffer.put_nowait(message)

            await queue.consume(buffer)
        except BaseException:
            with contextlib.suppress(*self.connection_errors):
                await channel.close()
            raise
        self._groups[group] = state

    async def _exists(self, queue: str) -> bool:
        """Whether the queue exists (a failed passive declare closes its channel: a spare one)."""
        channel = await self.broker.connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()
        return True

    async def _backfill(self, queue: str, first_marker: str) -> set[str]:
        """Copy the history into a new group's queue, ahead of the live events.

        The queue was bound after `first_marker` went into the stream; a second marker goes
        in now. Events before the first marker reached only the stream; events after the
        second reached the queue too. Both kinds between the markers are copied (the queue
        may lack them), and their ids are returned so `_receive` skips a live duplicate.
        Copies carry a higher priority: nothing consumes the queue yet, so they are
        delivered before every live event, in stream order.
        """
        target = self.broker.publisher.default_exchange
        last_marker = await self._mark()
        channel = await self.broker.connection.channel()
        doubles: set[str] = set()
        try:
            await channel.set_qos(prefetch_count=self.batch_size)
            stream = await channel.declare_queue(self.history, passive=True)
            received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

            async def receive(message: AbstractIncomingMessage) -> None:
                received.put_nowait(message)

            await stream.consume(receive, arguments={"x-stream-offset": "first"}, robust=False)
            copies: list[aio_pika.Message] = []
            between = False
            while True:
                message = await asyncio.wait_for(received.get(), BACKFILL_IDLE)
                await message.ack()  # a stream keeps it; the ack only grants credit
                marker = (message.headers or {}).get(MARKER)
                if marker == last_marker:
                    break
                between = between or marker == first_marker
                if marker is not None:
                    continue
                if between and message.message_id is not None:
                    doubles.add(message.message_id)
                copies.append(
                    aio_pika.Message(
                        message.body,
                        message_id=message.message_id,
                        content_type=message.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        priority=HISTORY_PRIORITY,
                    )
                )
                if len(copies) >= self.batch_size:
                    await _confirmed(target, queue, copies)
                    copies = []
            await _confirmed(target, queue, copies)
        finally:
            if not channel.is_closed:
                await channel.close()
        return doubles

    async def _receive(self, group: str, max_count: int, wait: float) -> list[Delivery]:
        state = self._groups[group]
        try:
            first = await asyncio.wait_for(state.buffer.get(), wait)
        except TimeoutError:
            return []
        messages = [first]
        while len(messages) < max_count and not state.buffer.empty():
            messages.append(state.buffer.get_nowait())
        deliveries: list[Delivery] = []
        for message in messages:
            if not _stale(message):
                delivery = await self._delivery(group, state, message)
                if delivery is not None:
                    deliveries.append(delivery)
        return deliveries

    async def _delivery(
        self, group: str, state: _Group, message: AbstractIncomingMessage
    ) -> Delivery | None:
        """The message as a delivery; None (settled) if it is no event or a second copy."""
        try:
            event = CloudEvent.from_json(message.body)
        except ValidationError as error:
            log.error("%s: dropping message %s, not an event: %s", group, message.message_id, error)
            await message.reject(requeue=False)
            return None
        if event.id in state.doubles:
            if event.id in state.delivered and not message.redelivered:
                state.doubles.discard(event.id)
                await message.ack()
                return None
            state.delivered.add(event.id)
        return Delivery(event, message, 1 if message.redelivered else 0)

    async def _ack(self, _group: str, deliveries: Sequence[Delivery]) -> None:
        """One multiple-ack up to the newest delivery of the batch.

        Exact because the group's channel has one consumer and one batch out at a time:
        every older delivery on it is in this batch or already settled (dead-lettered,
        released, skipped). Deliveries from a channel that died are left to redelivery.
        """
        live = [d.receipt for d in deliveries if not _stale(d.receipt)]
        if live:
            newest = max(live, key=lambda message: message.delivery_tag or 0)
            await newest.ack(multiple=True)

    async def _release(self, _group: str, deliveries: Sequence[Delivery]) -> None:
        """Requeue each one (one by one: a multiple-nack would also requeue handled ones)."""
        for delivery in deliveries:
            if not _stale(delivery.receipt):
                await delivery.receipt.nack(requeue=True)

    async def _dead_letter(
        self, group: str, delivery: Delivery, reason: str, attempts: int
    ) -> None:
        letter = aio_pika.Message(
            delivery.event.to_json(),
            message_id=delivery.event.id,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={
                "reason": reason,
                "attempts": attempts,
                "failed_at": datetime.now(UTC).isoformat(),
            },
        )
        await self.broker.dead.publish(letter, group)
        if not _stale(delivery.receipt):
            await delivery.receipt.ack()

    async def _declare_dead_queue(self, channel: AbstractChannel, group: str) -> AbstractQueue:
        queue = await channel.declare_queue(self.dead_queue_name(group), durable=True)
        await queue.bind(f"{self.namespace}.dead", group)
        return queue

    # -- dead letters -------------------------------------------------------------------

    async def dead_letters(self, group: str) -> list[DeadLetter]:
        """Every dead letter of the group, oldest first, left in place.

        Read with basic.get on a channel of its own, then handed back by closing it: the
        broker requeues them at their original positions. While a listing is in progress,
        a concurrent listing or replay does not see the letters it holds.
        """
        letters: list[DeadLetter] = []
        for message in await self._browse(group):
            headers = message.headers or {}
            try:
                event = CloudEvent.from_json(message.body)
            except ValidationError as error:
                log.error("%s: skipping dead letter %s: %s", group, message.message_id, error)
                continue
            letters.append(
                DeadLetter(
                    event,
                    group,
                    str(headers.get("reason", "")),
                    int(str(headers.get("attempts", 0))),
                    datetime.fromisoformat(str(headers.get("failed_at"))),
                )
            )
        return letters

    async def replay(self, group: str, event_id: str) -> None:
        """Put the dead letter back on the group's queue (only that group sees it again)."""
        channel = await self.broker.connection.channel()
        try:
            queue = await self._declare_dead_queue(channel, group)
            while (message := await queue.get(fail=False)) is not None:
                if message.message_id == event_id:
                    event = CloudEvent.from_json(message.body)
                    await self.broker.publisher.default_exchange.publish(
                        _message(event), self.queue_name(group)
                    )
                    await message.ack()
                    return
        finally:
            await channel.close()  # requeues the letters read past
        raise KeyError(f"no dead letter {event_id} in group {group}")

    async def _browse(self, group: str) -> list[AbstractIncomingMessage]:
        channel = await self.broker.connection.channel()
        try:
            queue = await self._declare_dead_queue(channel, group)
            messages: list[AbstractIncomingMessage] = []
            while (message := await queue.get(fail=False)) is not None:
                messages.append(message)
            return messages
        finally:
            await channel.close()


async def _confirmed(
    exchange: AbstractExchange, routing_key: str, messages: Sequence[aio_pika.Message]
) -> None:
    """Publish all, then await their confirms together; raise the first failure, if any."""
    results = await asyncio.gather(
        *(exchange.publish(message, routing_key) for message in messages),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _message(event: CloudEvent) -> aio_pika.Message:
    return aio_pika.Message(
        event.to_json(),
        message_id=event.id,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def from_settings(settings: Settings) -> RabbitMqBus:
    if settings.rabbitmq_url is None:  # load_settings reports this first; here for direct callers
        raise ConfigError(
            ["RABBITMQ_URL is missing (needed by LIGHTNING_EVENT_BUS_PROVIDER=rabbitmq)"]
        )
    return RabbitMqBus(
        settings.rabbitmq_url,
        settings.bus_namespace,
        RetryPolicy(max_attempts=settings.bus_max_attempts),
    )
