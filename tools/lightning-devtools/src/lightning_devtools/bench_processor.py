"""The processor's part of `nox -s bench`: the real handler next to a plain consumer.

For each bus (Redis, RabbitMQ) the same run measures the event processor as it runs in
production (`Processor` with the built-in drivers on PostgreSQL, the shared delivery loop
at LIGHTNING_PROCESSOR_CONCURRENCY) draining events the API recorded and published, and a
plain consumer written directly against the client libraries doing the same statements
per event and the same acks. The ratio of the two rates is the number to watch.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from lightning_core.events import CloudEvent
from lightning_core.providers import build_bus, build_storage
from lightning_core.records import record_received
from lightning_devtools.bench import (
    BATCH,
    RABBITMQ_URL,
    REDIS_URL,
    Workload,
    _in_parallel,
    batches,
    bench_settings,
    remove_namespace,
)

USERS = 100  # events spread over this many users, as a busy system's are
#: The plain consumer's connections: the PostgreSQL provider's pool size.
POOL_SIZE = 10


def user_events(count: int) -> list[CloudEvent]:
    return [
        CloudEvent(source="bench", type="bench.tick", data={"n": n}, user=f"u{n % USERS}")
        for n in range(count)
    ]


async def processor_end_to_end(provider: str, database_url: str, count: int) -> float:
    """Seconds the real handler takes to drain `count` events recorded and published before
    the consumer started (none matches an instruction: the common case)."""
    from lightning_processor.handler import Processor  # noqa: PLC0415 - the service measured

    settings = bench_settings(
        LIGHTNING_EVENT_BUS_PROVIDER=provider,
        LIGHTNING_STORAGE_PROVIDER="postgres",
        DATABASE_URL=database_url,
    )
    storage, bus = build_storage(settings), build_bus(settings)
    events = user_events(count)
    await storage.connect()
    await bus.connect()
    await bus.open_group("bench")
    await _in_parallel(count, lambda n: record_received(storage, events[n]))
    for batch in batches(events):
        await bus.publish_batch(batch)
    processor = Processor.from_settings(storage, bus, settings)
    seen = 0
    drained = asyncio.Event()

    async def handle(event: CloudEvent) -> None:
        nonlocal seen
        await processor.handle(event)
        seen += 1
        if seen >= count:
            drained.set()

    stop = asyncio.Event()
    started = time.perf_counter()
    consumer = asyncio.create_task(bus.consume("bench", handle, stop=stop))
    await drained.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    await consumer
    await remove_namespace(bus)
    await bus.close()
    await storage.close()
    return elapsed


class PlainWork:
    """The handler's work for such an event, as bare asyncpg on the same rows: read the
    event's record, look for the user's enabled instructions, write the record processed.
    The rows live in the PostgreSQL provider's table, as the processor's do, so the two
    pay the same index upkeep and the ratio shows what the processor adds."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    async def __aenter__(self) -> PlainWork:
        import asyncpg  # noqa: PLC0415 - only benchmarks load raw clients

        settings = bench_settings(
            LIGHTNING_STORAGE_PROVIDER="postgres", DATABASE_URL=self.database_url
        )
        self.storage = build_storage(settings)
        await self.storage.connect()  # creates the provider's table, if this runs first
        # Without asyncpg's reset round trip on release, as the PostgreSQL provider: the
        # comparison is of the work, not of pool settings.
        self.pool = await asyncpg.create_pool(
            self.database_url, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_keep_session
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.pool.close()
        await self.storage.close()

    async def record(self, events: Sequence[CloudEvent]) -> None:
        """As the API records them (through the provider: its write bookkeeping included)."""
        await _in_parallel(len(events), lambda n: record_received(self.storage, events[n]))

    async def handle(self, event: CloudEvent) -> None:
        async with self.pool.acquire() as connection:
            row = await connection.fetchrow(
                "SELECT body::text AS body FROM documents "
                "WHERE collection = 'events' AND partition = $1 AND id = $2",
                event.user,
                event.id,
            )
            await connection.fetch(
                "SELECT body FROM documents WHERE collection = 'instructions' "
                "AND partition = $1 AND body->'enabled' = 'true'::jsonb",
                event.user,
            )
            body = json.loads(row["body"])
            body.update(status="processed", processed_at=datetime.now(UTC).isoformat())
            await connection.execute(
                "UPDATE documents SET body = $3::jsonb "
                "WHERE collection = 'events' AND partition = $1 AND id = $2",
                event.user,
                event.id,
                json.dumps(body),
            )


async def plain_redis(database_url: str, count: int) -> float:
    """XREADGROUP COUNT 100, the batch's work at once, one XACK per batch."""
    from redis.asyncio import Redis  # noqa: PLC0415 - only benchmarks load raw clients

    client = Redis.from_url(REDIS_URL)
    stream, group = f"bench-plain-{uuid.uuid4().hex[:8]}", "bench"
    await client.xgroup_create(stream, group, id="0", mkstream=True)
    events = user_events(count)
    async with PlainWork(database_url) as work:
        await work.record(events)
        for start in range(0, count, BATCH):
            pipe = client.pipeline(transaction=False)
            for event in events[start : start + BATCH]:
                pipe.xadd(stream, {"event": event.to_json()})
            await pipe.execute()
        started = time.perf_counter()
        seen = 0
        while seen < count:
            # RESP2 reply shape: [(stream, [(id, fields), ...])]
            reply = cast(
                list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                await client.xreadgroup(group, "c", {stream: ">"}, count=BATCH, block=500),
            )
            for _, entries in reply:
                await asyncio.gather(
                    *(work.handle(CloudEvent.from_json(fields[b"event"])) for _, fields in entries)
                )
                await client.xack(stream, group, *(entry_id for entry_id, _ in entries))
                seen += len(entries)
        elapsed = time.perf_counter() - started
    await client.delete(stream)
    await client.aclose()
    return elapsed


async def plain_rabbitmq(database_url: str, count: int) -> float:
    """aio-pika with prefetch 100: each message's work, then its ack."""
    import aio_pika  # noqa: PLC0415 - only benchmarks load raw clients

    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    publisher = await connection.channel(publisher_confirms=True)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=BATCH)
    queue = await channel.declare_queue(f"bench-plain-{uuid.uuid4().hex[:8]}", durable=True)
    events = user_events(count)
    drained = asyncio.Event()
    seen = 0
    async with PlainWork(database_url) as work:
        await work.record(events)
        for start in range(0, count, BATCH):
            await asyncio.gather(
                *(
                    publisher.default_exchange.publish(
                        aio_pika.Message(
                            event.to_json(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                        ),
                        routing_key=queue.name,
                    )
                    for event in events[start : start + BATCH]
                )
            )

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await work.handle(CloudEvent.from_json(message.body))
            await message.ack()
            seen += 1
            if seen >= count:
                drained.set()

        started = time.perf_counter()
        consumer_tag = await queue.consume(on_message)
        await drained.wait()
        elapsed = time.perf_counter() - started
        await queue.cancel(consumer_tag)
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    return elapsed


def processor_plans(
    database_url: str, count: int
) -> list[tuple[str, Workload, Workload, str, int]]:
    """(path, the processor, the plain consumer, its label, events) per bus, for `bench`."""
    return [
        (
            f"processor on {provider} + postgres",
            functools.partial(processor_end_to_end, provider, database_url),
            functools.partial(plain, database_url),
            label,
            count,
        )
        for provider, plain, label in (
            ("redis", plain_redis, "plain XREADGROUP + asyncpg, same rows"),
            ("rabbitmq", plain_rabbitmq, "plain aio-pika + asyncpg, same rows"),
        )
    ]


async def _keep_session(_connection: object) -> None:
    """The plain consumer's pool reset: nothing (it never leaves a transaction open)."""
