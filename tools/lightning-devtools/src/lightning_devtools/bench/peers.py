"""`python -m lightning_devtools.bench.peers KIND ...`: a drain baseline or peer for `nox -s bench`.

Records `--count` events as the API does, publishes them to a stream or queue of its own,
prints `ready`, drains them with `PlainWork.handle`, deletes the stream or queue and prints
`{"events": N, "seconds": S}`. An unreachable server is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self, cast
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
from aiormq.exceptions import AMQPConnectionError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lightning_core.config import ConfigError
from lightning_core.events import CloudEvent
from lightning_core.providers import build_storage
from lightning_core.records import record_received
from lightning_devtools.bench.events import BATCH, USERS, in_parallel, user_events
from lightning_devtools.bench.servers import RABBITMQ_URL, REDIS_URL, bench_settings
from lightning_devtools.errors import ToolError

if TYPE_CHECKING:
    from faststream.redis import RedisBroker

POOL_SIZE = 10  # the PostgreSQL provider's
GROUP = "bench"
STOPPED = 128 + signal.SIGTERM  # exit status when SIGTERM or SIGINT ends the run early

Handle = Callable[[CloudEvent], Awaitable[None]]

UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    AMQPConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
)


def shown(url: str) -> str:
    """`url` without its password, fit for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@contextlib.contextmanager
def reaching(server: str, fix: str) -> Iterator[None]:
    """Connection failures inside as a ToolError naming `server` and how to provide it."""
    try:
        yield
    except UNREACHABLE as error:
        raise ToolError(
            f"Cannot connect to {server} ({error or type(error).__name__})", fix
        ) from None


@contextlib.contextmanager
def unlogged(name: str) -> Iterator[None]:
    """Logger `name` silent inside, so a failure it logs and raises is reported once."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


class PlainWork:
    """The processor's work for an event matching no instruction, in bare asyncpg on the
    PostgreSQL provider's table (so both pay the same index upkeep)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        settings = bench_settings(
            LIGHTNING_STORAGE_PROVIDER="postgres", DATABASE_URL=self.database_url
        )
        async with self._stack as stack:
            # The pool first: it fails at once where the provider retries for its grace period.
            with reaching(f"PostgreSQL at {shown(self.database_url)}", "check --database-url"):
                # No reset on release, as the provider: compare the work, not pool settings.
                self.pool = await asyncpg.create_pool(
                    self.database_url, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_keep_session
                )
                stack.push_async_callback(self.pool.close)
                self.storage = build_storage(settings)
                await self.storage.connect()  # creates the provider's table
                stack.push_async_callback(self.storage.close)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()

    async def record(self, events: Sequence[CloudEvent]) -> None:
        """Record `events` through the provider, as the API does."""
        await in_parallel(len(events), lambda n: record_received(self.storage, events[n]))

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


class Peer(Protocol):
    """A consumer on a stream or queue of its own, created on entry and deleted on exit."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *_: object) -> None: ...

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        """Publish every event, `BATCH` at a time, each body `event.to_json()`."""

    async def drain(self, handle: Handle, count: int) -> None:
        """Return once `count` events are handled and acked."""


class PlainRedis:
    """redis-py: XREADGROUP COUNT 100, the batch's work at once, one XACK per batch."""

    def __init__(self, name: str) -> None:
        self.stream = name
        self.client = Redis.from_url(REDIS_URL)

    async def __aenter__(self) -> Self:
        try:
            with reaching(f"Redis at {shown(REDIS_URL)}", "start Redis or set REDIS_URL"):
                await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except BaseException:
            await self.client.aclose()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await self.client.delete(self.stream)
        finally:
            await self.client.aclose()

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        for start in range(0, len(events), BATCH):
            pipe = self.client.pipeline(transaction=False)
            for event in events[start : start + BATCH]:
                pipe.xadd(self.stream, {"event": event.to_json()})
            await pipe.execute()

    async def drain(self, handle: Handle, count: int) -> None:
        seen = 0
        while seen < count:
            # RESP2 reply shape: [(stream, [(id, fields), ...])]
            reply = cast(
                list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                await self.client.xreadgroup(
                    GROUP, "c", {self.stream: ">"}, count=BATCH, block=500
                ),
            )
            for _, entries in reply:
                await asyncio.gather(
                    *(handle(CloudEvent.from_json(fields[b"event"])) for _, fields in entries)
                )
                await self.client.xack(self.stream, GROUP, *(entry_id for entry_id, _ in entries))
                seen += len(entries)


class PlainRabbitMq:
    """aio-pika with prefetch 100: each message's work, then its ack."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        async with self._stack as stack:
            with (
                reaching(
                    f"RabbitMQ at {shown(RABBITMQ_URL)}", "start RabbitMQ or set RABBITMQ_URL"
                ),
                unlogged("aiormq.connection"),
            ):
                connection = await aio_pika.connect_robust(RABBITMQ_URL)
            stack.push_async_callback(connection.close)
            self.publisher = await connection.channel(publisher_confirms=True)
            self.channel = await connection.channel()
            await self.channel.set_qos(prefetch_count=BATCH)
            self.queue = await self.channel.declare_queue(self.name, durable=True)
            stack.push_async_callback(self.queue.delete, if_unused=False, if_empty=False)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        exchange = self.publisher.default_exchange
        for start in range(0, len(events), BATCH):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            event.to_json(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                        ),
                        routing_key=self.name,
                    )
                    for event in events[start : start + BATCH]
                )
            )

    async def drain(self, handle: Handle, count: int) -> None:
        if count <= 0:
            return
        drained = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await handle(CloudEvent.from_json(message.body))
            await message.ack()
            seen += 1
            if seen >= count:
                drained.set()

        consumer_tag = await self.queue.consume(on_message)
        try:
            await drained.wait()
        finally:
            await self.queue.cancel(consumer_tag)


class FastStreamRedis:
    """FastStream's documented concurrent consumer-group subscriber on Redis Streams
    (`max_workers`, default acks), publishing through its own publisher."""

    def __init__(self, name: str) -> None:
        try:
            from faststream.redis import RedisBroker, StreamSub  # noqa: PLC0415 - bench group
        except ImportError:
            raise ToolError(
                "The FastStream peer needs faststream", "uv sync --group bench"
            ) from None
        self.stream = name
        # WARNING hides the per-message access log: the plain consumers log nothing per message.
        quiet = logging.getLogger("lightning_devtools.bench.peers.faststream")
        quiet.setLevel(logging.WARNING)
        self.broker: RedisBroker = RedisBroker(REDIS_URL, logger=quiet)
        self.publisher = self.broker.publisher(stream=name)
        # last_id "0": the group, created when the subscriber starts, sees the whole backlog.
        self.subscriber = self.broker.subscriber(
            stream=StreamSub(name, group=GROUP, consumer="c", last_id="0", max_records=BATCH),
            max_workers=BATCH,
        )

    async def __aenter__(self) -> Self:
        try:
            with reaching(f"Redis at {shown(REDIS_URL)}", "start Redis or set REDIS_URL"):
                self.client: Redis = await self.broker.connect()
                await self.client.ping()
        except BaseException:
            await self.broker.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await self.subscriber.stop()
            await self.client.delete(self.stream)
        finally:
            await self.broker.stop()

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        for start in range(0, len(events), BATCH):
            pipe = self.client.pipeline(transaction=False)
            for event in events[start : start + BATCH]:
                await self.publisher.publish(event.to_json(), pipeline=pipe)
            await pipe.execute()

    async def drain(self, handle: Handle, count: int) -> None:
        if count <= 0:
            return
        drained = asyncio.Event()
        seen = 0
        failed: list[Exception] = []

        @self.subscriber
        async def on_event(event: CloudEvent) -> None:
            nonlocal seen
            try:
                await handle(event)
            except Exception as error:
                failed.append(error)  # FastStream logs it and leaves the entry pending: stop
                drained.set()
                raise
            seen += 1
            if seen >= count:
                drained.set()

        await self.broker.start()
        await drained.wait()
        if failed:
            raise failed[0]
        await self.subscriber.stop()  # graceful: waits for the handlers in flight and acks
        pending = await self.client.xpending(self.stream, GROUP)
        if pending["pending"]:
            raise RuntimeError(f"FastStream left {pending['pending']} entries unacked")


PEERS: dict[str, Callable[[str], Peer]] = {
    "plain-redis": PlainRedis,
    "plain-rabbitmq": PlainRabbitMq,
    "faststream-redis": FastStreamRedis,
}


async def run(kind: str, database_url: str, count: int, users: int, name: str) -> float:
    """Set up, announce `ready` on stdout, drain; the drain's wall time in seconds."""
    events = user_events(count, users)
    async with PlainWork(database_url) as work, PEERS[kind](name) as peer:
        await work.record(events)
        await peer.publish(events)
        print("ready", flush=True)
        started = time.perf_counter()
        await peer.drain(work.handle, count)
        return time.perf_counter() - started


async def _unless_terminated(work: Awaitable[float]) -> float | None:
    """`work`'s result; None if SIGTERM or SIGINT came first and cancelled it (cleanup ran)."""
    task = cast(asyncio.Task[Any], asyncio.current_task())
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGTERM, signal.SIGINT):  # the benchmarks run on Unix (/proc)
        loop.add_signal_handler(stop, task.cancel)
    try:
        return await work
    except asyncio.CancelledError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_devtools.bench.peers",
        description="Drain a recorded backlog with a plain consumer or a peer framework.",
    )
    parser.add_argument("kind", choices=list(PEERS))
    parser.add_argument("--database-url", required=True, help="PostgreSQL database to use")
    parser.add_argument("--count", type=int, required=True, help="events to record and drain")
    parser.add_argument("--users", type=int, default=USERS, help="events spread over them")
    parser.add_argument("--name", help="the stream or queue to use (default: a new one)")
    args = parser.parse_args(argv)
    if args.count < 0 or args.users < 1:
        parser.error("--count must be 0 or more and --users 1 or more")
    name = args.name or f"bench-{args.kind}-{uuid.uuid4().hex[:8]}"
    try:
        seconds = asyncio.run(
            _unless_terminated(run(args.kind, args.database_url, args.count, args.users, name))
        )
    except (ToolError, ConfigError) as error:
        print(f"{parser.prog} {args.kind}: {error}", file=sys.stderr)
        return 1
    if seconds is None:
        print(
            f"{parser.prog} {args.kind}: stopped by a signal before the drain ended",
            file=sys.stderr,
        )
        return STOPPED
    print(json.dumps({"events": args.count, "seconds": round(seconds, 6)}), flush=True)
    return 0


async def _keep_session(_connection: object) -> None:
    """The consumers' pool reset: nothing (they never leave a transaction open)."""


if __name__ == "__main__":
    sys.exit(main())
