"""RabbitMQ event bus: a durable fanout exchange, a durable classic queue per consumer group,
and dead letters in `{ns}.{group}.dead` with their reason (docs/core.md says why so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

from lightning_core.bus.base import (
    DEFAULT_CONCURRENCY,
    BusBase,
    DeadLetter,
    Delivery,
    Handler,
    RetryPolicy,
)
from lightning_core.events import CloudEvent

log = logging.getLogger(__name__)

#: /readyz must answer while the robust connection waits for the broker to come back.
PING_TIMEOUT = 5.0
CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True)
class _Broker:
    connection: AbstractRobustConnection
    publisher: AbstractChannel
    events: AbstractExchange
    dead: AbstractExchange


@dataclass
class _Group:
    """A group this bus consumes: its channel, buffer, and unsettled deliveries oldest first."""

    channel: AbstractChannel
    buffer: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)
    unsettled: dict[int, AbstractIncomingMessage] = field(default_factory=dict)

    def settled(self, message: AbstractIncomingMessage) -> None:
        self.unsettled.pop(message.delivery_tag or 0, None)


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
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        super().__init__(retry, batch_size, concurrency)
        self.url = url
        self.namespace = namespace
        self.connection_errors += (AMQPConnectionError, ChannelInvalidStateError)
        self._broker: _Broker | None = None
        self._groups: dict[str, _Group] = {}
        self._consuming: set[str] = set()
        self._declared: set[str] = set()

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    def queue_name(self, group: str) -> str:
        return f"{self.namespace}.{group}"

    def dead_queue_name(self, group: str) -> str:
        return f"{self.namespace}.{group}.dead"

    async def delete_topology(self) -> None:
        """Delete this namespace's exchanges and the queues this bus declared (tests, benches)."""
        channel = await self.broker.connection.channel()
        try:
            for group in sorted(self._declared):
                for queue in (self.queue_name(group), self.dead_queue_name(group)):
                    await channel.queue_delete(queue, if_unused=False, if_empty=False)
            for exchange in (self.events_exchange, f"{self.namespace}.dead"):
                await channel.exchange_delete(exchange)
        finally:
            await channel.close()
        self._declared.clear()

    async def _connect(self) -> None:
        connection = await aio_pika.connect_robust(self.url)
        # A message no queue takes (a dead-letter queue deleted by hand) raises, not vanishes.
        publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        events = await publisher.declare_exchange(
            self.events_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead = await publisher.declare_exchange(
            f"{self.namespace}.dead", aio_pika.ExchangeType.DIRECT, durable=True
        )
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
                self.events_exchange, aio_pika.ExchangeType.FANOUT, durable=True
            )

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        await _confirmed(self.broker.events, [_message(event) for event in events])

    async def consume(self, group: str, handler: Handler, *, stop: asyncio.Event) -> None:
        """The shared loop, then closing the group's channel (which requeues what it held);
        RuntimeError if this bus already consumes the group."""
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
        """Declare the group's queues on a channel of their own; consuming starts later."""
        channel = await self.broker.connection.channel()
        try:
            await self._declare_group(channel, group)
        finally:
            with contextlib.suppress(*self.connection_errors):
                await channel.close()

    async def _declare_group(self, channel: AbstractChannel, group: str) -> AbstractQueue:
        """The group's queue, bound to the events, and its dead-letter queue (idempotent)."""
        queue = await channel.declare_queue(self.queue_name(group), durable=True)
        await queue.bind(self.events_exchange)
        await self._declare_dead_queue(channel, group)
        return queue

    async def _start(self, group: str) -> _Group:
        """Consume the group on a robust channel of its own, buffering what arrives."""
        channel = await self.broker.connection.channel()
        try:
            await channel.set_qos(prefetch_count=self.window)
            queue = await self._declare_group(channel, group)
            state = _Group(channel)

            async def buffer(message: AbstractIncomingMessage) -> None:
                state.buffer.put_nowait(message)

            await queue.consume(buffer)
        except BaseException:
            with contextlib.suppress(*self.connection_errors):
                await channel.close()
            raise
        self._groups[group] = state
        return state

    async def _receive(self, group: str, max_count: int, wait: float) -> list[Delivery]:
        state = self._groups.get(group) or await self._start(group)
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
                delivery = await self._delivery(group, message)
                if delivery is not None:
                    deliveries.append(delivery)
                    state.unsettled[message.delivery_tag or 0] = message
        return deliveries

    async def _delivery(self, group: str, message: AbstractIncomingMessage) -> Delivery | None:
        """The message as a delivery; None (rejected, never redelivered) if it is no event."""
        try:
            event = CloudEvent.from_json(message.body)
        except ValidationError as error:
            log.error("%s: dropping message %s, not an event: %s", group, message.message_id, error)
            await message.reject(requeue=False)
            return None
        return Delivery(event, message, 1 if message.redelivered else 0)

    async def _ack(self, group: str, deliveries: Sequence[Delivery]) -> None:
        """One multiple-ack for the oldest unsettled deliveries, one ack each for those behind
        a delivery still running; those from a dead channel are left to redelivery."""
        state = self._groups.get(group)
        live = {d.receipt.delivery_tag or 0: d.receipt for d in deliveries if not _stale(d.receipt)}
        if state is None:
            for message in live.values():
                await message.ack()
            return
        for tag, message in list(state.unsettled.items()):
            if _stale(message):
                del state.unsettled[tag]  # tags count anew on the new channel
        newest: AbstractIncomingMessage | None = None
        for tag in list(state.unsettled):
            if tag not in live:
                break
            newest = live.pop(tag)
            del state.unsettled[tag]
        if newest is not None:
            await newest.ack(multiple=True)
        for message in live.values():
            state.settled(message)
            await message.ack()

    async def _release(self, group: str, deliveries: Sequence[Delivery]) -> None:
        """Requeue each one (one by one: a multiple-nack would also requeue handled ones)."""
        state = self._groups.get(group)
        for delivery in deliveries:
            if state is not None:
                state.settled(delivery.receipt)
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
        if (state := self._groups.get(group)) is not None:
            state.settled(delivery.receipt)
        if not _stale(delivery.receipt):
            await delivery.receipt.ack()

    async def _declare_dead_queue(self, channel: AbstractChannel, group: str) -> AbstractQueue:
        self._declared.add(group)  # every path declaring a group's queues passes here
        queue = await channel.declare_queue(self.dead_queue_name(group), durable=True)
        await queue.bind(f"{self.namespace}.dead", group)
        return queue

    async def dead_letters(self, group: str) -> list[DeadLetter]:
        """Every dead letter of the group, oldest first, left in place."""
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

    async def backlog(self, group: str) -> int | None:
        """The group queue's ready messages (a passive declare does not count unacked ones)."""
        channel = await self.broker.connection.channel()
        try:
            queue = await channel.declare_queue(self.queue_name(group), passive=True)
        except ChannelNotFoundEntity:
            return 0
        finally:
            if not channel.is_closed:
                await channel.close()
        return int(queue.declaration_result.message_count or 0)

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


async def _confirmed(exchange: AbstractExchange, messages: Sequence[aio_pika.Message]) -> None:
    """Publish all, then await their confirms together; raise the first failure, if any."""
    results = await asyncio.gather(
        *(exchange.publish(message, "") for message in messages),
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
