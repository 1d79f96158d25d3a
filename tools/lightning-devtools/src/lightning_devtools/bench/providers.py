"""`nox -s bench-providers`: provider throughput next to the raw client ceiling, measured in
one run.

Each provider path runs beside the bare client library doing the same work (the ratio is
the number to watch), in a namespace or database of its own, removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from rich.console import Console
from rich.table import Table

from lightning_core.bus.base import EventBus
from lightning_core.events import CloudEvent
from lightning_core.providers import build_bus, build_storage
from lightning_core.records import EVENTS, EventRecord, EventStatus
from lightning_core.storage.base import After, Storage
from lightning_devtools.bench.events import BATCH, batches, in_parallel
from lightning_devtools.bench.servers import (
    RABBITMQ_URL,
    REDIS_URL,
    bench_settings,
    remove_namespace,
    scratch_database,
)

ROUNDS = 3
QUERY_EVENTS = 20_000  # stored events, spread over QUERY_USERS users
QUERY_USERS = 10
PAGE = 50
DEEP_PAGE = 20
QUERIES = 50  # timed queries per round
# The events list's former query: bound field names (no index matches), pages by offset.
OFFSET_QUERY = (
    "SELECT id, partition, body::text AS body, etag FROM documents "
    "WHERE collection=$1 AND partition=$2 ORDER BY "
    "CASE jsonb_typeof(body->$3::text) WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 "
    "WHEN 'string' THEN 2 WHEN 'object' THEN 2 WHEN 'array' THEN 2 ELSE 0 END DESC, "
    "CASE jsonb_typeof(body->$3::text) WHEN 'number' THEN (body->>$3::text)::numeric "
    "WHEN 'boolean' THEN (body->>$3::text)::boolean::int END DESC, "
    "CASE jsonb_typeof(body->$3::text) WHEN 'string' THEN body->>$3::text END COLLATE \"C\" DESC, "
    "id DESC LIMIT $4 OFFSET $5"
)

Workload = Callable[[int], Awaitable[float]]  # count -> seconds taken


@dataclass(frozen=True)
class Result:
    path: str
    provider: float  # operations per second, median of ROUNDS
    raw: float | None
    raw_label: str

    @property
    def ratio(self) -> float | None:
        return self.provider / self.raw if self.raw else None


def make_events(count: int) -> list[CloudEvent]:
    return [
        CloudEvent(source="bench", type="bench.tick", data={"n": n}, user="bench")
        for n in range(count)
    ]


async def median_rate(workload: Workload, count: int) -> float:
    rates = [count / await workload(count) for _ in range(ROUNDS)]
    return statistics.median(rates)


async def provider_bus_end_to_end(provider: str, count: int) -> float:
    """Publish `count` events in batches while one consumer with a no-op handler drains them."""
    bus: EventBus = build_bus(bench_settings(LIGHTNING_EVENT_BUS_PROVIDER=provider))
    events = make_events(count)
    seen = 0
    drained = asyncio.Event()

    async def no_op(_event: CloudEvent) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            drained.set()

    await bus.connect()
    await bus.open_group("bench")
    stop = asyncio.Event()
    consumer = asyncio.create_task(bus.consume("bench", no_op, stop=stop))
    started = time.perf_counter()
    for batch in batches(events):
        await bus.publish_batch(batch)
    await drained.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    await consumer
    await remove_namespace(bus)
    await bus.close()
    return elapsed


async def raw_redis_end_to_end(count: int) -> float:
    """The same workload on bare redis-py: pipelined XADD, XREADGROUP COUNT 100 + XACK."""
    from redis.asyncio import Redis  # noqa: PLC0415 - only benchmarks load raw clients

    client = Redis.from_url(REDIS_URL)
    stream, group = f"bench-raw-{uuid.uuid4().hex[:8]}", "bench"
    await client.xgroup_create(stream, group, id="0", mkstream=True)
    payloads = [event.to_json() for event in make_events(count)]

    async def produce() -> None:
        for start in range(0, count, BATCH):
            pipe = client.pipeline(transaction=False)
            for payload in payloads[start : start + BATCH]:
                pipe.xadd(stream, {"e": payload})
            await pipe.execute()

    async def consume() -> None:
        seen = 0
        while seen < count:
            # RESP2 reply shape: [(stream, [(id, fields), ...])]
            reply = cast(
                list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                await client.xreadgroup(group, "c", {stream: ">"}, count=BATCH, block=500),
            )
            for _, entries in reply:
                ids = [entry_id for entry_id, _ in entries]
                for _, fields in entries:
                    CloudEvent.from_json(fields[b"e"])
                await client.xack(stream, group, *ids)
                seen += len(ids)

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - started
    await client.delete(stream)
    await client.aclose()
    return elapsed


async def raw_rabbitmq_end_to_end(count: int) -> float:
    """Bare aio-pika: persistent publishes with confirms (batches of 100), manual-ack consume."""
    import aio_pika  # noqa: PLC0415 - only benchmarks load raw clients

    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    publisher = await connection.channel(publisher_confirms=True)
    consumer = await connection.channel()
    await consumer.set_qos(prefetch_count=BATCH)
    queue = await consumer.declare_queue(f"bench-raw-{uuid.uuid4().hex[:8]}", durable=True)
    payloads = [event.to_json() for event in make_events(count)]
    drained = asyncio.Event()
    seen = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal seen
        CloudEvent.from_json(message.body)
        await message.ack()
        seen += 1
        if seen >= count:
            drained.set()

    consumer_tag = await queue.consume(on_message)
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        await asyncio.gather(
            *(
                publisher.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue.name,
                )
                for body in payloads[start : start + BATCH]
            )
        )
    await drained.wait()
    elapsed = time.perf_counter() - started
    await queue.cancel(consumer_tag)
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    return elapsed


async def provider_storage_writes(provider: str, database_url: str, count: int) -> float:
    """`create` one document per call, 16 callers at once (a service under load)."""
    storage = build_storage(
        bench_settings(
            LIGHTNING_STORAGE_PROVIDER=provider,
            DATABASE_URL=database_url,
            LIGHTNING_SQLITE_PATH=f"/tmp/lightning-bench-{uuid.uuid4().hex[:8]}.db",  # noqa: S108
        )
    )
    collection = f"bench_{uuid.uuid4().hex[:8]}"
    await storage.connect()
    started = time.perf_counter()
    await in_parallel(
        count, lambda n: storage.create(collection, "bench", f"d{n}", {"n": n, "kind": "bench"})
    )
    elapsed = time.perf_counter() - started
    await storage.close()
    return elapsed


async def raw_postgres_writes(database_url: str, count: int) -> float:
    """Bare asyncpg: one INSERT of a jsonb row per call and commit, 16 callers at once."""
    import asyncpg  # noqa: PLC0415 - only benchmarks load raw clients

    pool = await asyncpg.create_pool(database_url, min_size=16, max_size=16)
    table = f"bench_raw_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, body jsonb NOT NULL)")
    started = time.perf_counter()
    await in_parallel(
        count,
        lambda n: pool.execute(
            f"INSERT INTO {table} (id, body) VALUES ($1, $2::jsonb)",  # noqa: S608
            f"d{n}",
            f'{{"n": {n}, "kind": "bench"}}',
        ),
    )
    elapsed = time.perf_counter() - started
    await pool.execute(f"DROP TABLE {table}")
    await pool.close()
    return elapsed


async def stored_events(storage: Storage, events: int) -> None:
    """`events` event records as the API stores them, round-robin over QUERY_USERS users."""

    async def store(n: int) -> None:
        user = f"user{n % QUERY_USERS}"
        event = CloudEvent(source="bench", type="bench.tick", data={"n": n}, user=user)
        record = EventRecord(event=event, status=EventStatus.PROCESSED, received_at=event.time)
        await storage.create(EVENTS, user, event.id, record.to_body())

    await in_parallel(events, store)


async def list_queries(
    database_url: str, events: int = QUERY_EVENTS, queries: int = QUERIES
) -> tuple[list[Result], list[str]]:
    """Queries/s for page 1 and page DEEP_PAGE of one user's newest events, next to the
    offset query of before; and PostgreSQL's plan for each provider query."""
    import asyncpg  # noqa: PLC0415 - only benchmarks load raw clients

    from lightning_core.storage.postgres import PostgresStorage  # noqa: PLC0415 - needs asyncpg

    storage = PostgresStorage(database_url)
    await storage.connect()
    connection = await asyncpg.connect(database_url)
    try:
        await stored_events(storage, events)
        await connection.execute("ANALYZE documents")
        continuation = None
        for _ in range(DEEP_PAGE - 1):  # the deep page's token, as a client paging gets it
            page = await storage.query(
                EVENTS,
                "user0",
                order_by="received_at",
                descending=True,
                limit=PAGE,
                continuation=continuation,
            )
            continuation = page.continuation
        last = page.items[-1]
        after = After(last.id, last.body["received_at"])
        results = []
        for number, token in ((1, None), (DEEP_PAGE, continuation)):

            async def keyset(count: int, token: str | None = token) -> float:
                started = time.perf_counter()
                for _ in range(count):
                    await storage.query(
                        EVENTS,
                        "user0",
                        order_by="received_at",
                        descending=True,
                        limit=PAGE,
                        continuation=token,
                    )
                return time.perf_counter() - started

            async def offset(count: int, skip: int = (number - 1) * PAGE) -> float:
                started = time.perf_counter()
                for _ in range(count):
                    await connection.fetch(
                        OFFSET_QUERY, EVENTS, "user0", "received_at", PAGE + 1, skip
                    )
                return time.perf_counter() - started

            results.append(
                Result(
                    f"postgres list page {number} of {events // QUERY_USERS:,} events",
                    await median_rate(keyset, queries),
                    await median_rate(offset, queries),
                    "offset query, no usable index (before)",
                )
            )
        plans = []
        for name, partition, where, after_item, descending in [
            ("list page 1", "user0", None, None, True),
            (f"list page {DEEP_PAGE}", "user0", None, after, True),
            ("list processed", "user0", {"status": "processed"}, None, True),
            ("republish sweep", None, {"status": "received"}, None, False),
        ]:
            sql, params = storage.select_statement(
                EVENTS,
                partition,
                where=where,
                order_by="received_at",
                descending=descending,
                limit=PAGE,
                after=after_item,
            )
            lines = await connection.fetch(f"EXPLAIN {sql}", *params)
            plans.append(f"{name}: " + " / ".join(line[0].strip() for line in lines[:3]))
    finally:
        await connection.close()
        await storage.close()
    return results, plans


async def measure() -> tuple[list[Result], list[str]]:
    async with scratch_database() as database_url:
        results = await measure_paths(database_url)
    async with scratch_database() as database_url:
        queries, plans = await list_queries(database_url)
    return [*results, *queries], plans


async def measure_paths(database_url: str) -> list[Result]:
    redis_raw = "redis-py XADD pipelined + XREADGROUP/XACK"
    rabbit_raw = "aio-pika confirms + manual ack"
    pg_raw = "asyncpg INSERT jsonb"
    plans: list[tuple[str, Workload, Workload | None, str, int]] = [
        ("memory bus, end to end", _bus("memory"), None, "", 20_000),
        ("redis bus, end to end", _bus("redis"), raw_redis_end_to_end, redis_raw, 20_000),
        ("rabbitmq bus, end to end", _bus("rabbitmq"), raw_rabbitmq_end_to_end, rabbit_raw, 10_000),
        ("sqlite storage, create", _storage("sqlite", database_url), None, "", 2_000),
        (
            "postgres storage, create",
            _storage("postgres", database_url),
            functools.partial(raw_postgres_writes, database_url),
            pg_raw,
            5_000,
        ),
    ]
    results = []
    for path, provider, raw, label, count in plans:
        raw_rate = await median_rate(raw, count) if raw else None
        results.append(Result(path, await median_rate(provider, count), raw_rate, label))
    return results


def _bus(provider: str) -> Workload:
    return functools.partial(provider_bus_end_to_end, provider)


def _storage(provider: str, database_url: str) -> Workload:
    return functools.partial(provider_storage_writes, provider, database_url)


def report(results: list[Result], console: Console) -> None:
    table = Table(title=f"Lightning OS throughput (median of {ROUNDS} rounds, one run)")
    for column in ("path", "provider /s", "raw client /s", "ratio", "raw client"):
        table.add_column(column, justify="right" if column.endswith(("/s", "ratio")) else "left")
    for result in results:
        table.add_row(
            result.path,
            f"{result.provider:,.0f}",
            f"{result.raw:,.0f}" if result.raw else "-",
            f"{result.ratio:.2f}" if result.ratio else "-",
            result.raw_label,
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_devtools.bench.providers",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 140)
    results, plans = asyncio.run(measure())
    report(results, console)
    for plan in plans:
        console.print(plan, soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
