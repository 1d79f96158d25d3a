"""`python -m lightning_devtools.bench.streams`: what open event streams cost PostgreSQL, and
what they do to POST /api/events.

The API runs alone in local mode on one CPU (scratch database and bus namespace, removed
afterwards); the streams and POSTs come from the others. Idle cost: PostgreSQL
transactions/s without streams, with `--streams` idle ones, and after one POST. Under load:
POST p50/p99 over `--events` records, without and with `--load-streams` streams open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table

from lightning_core.events import CloudEvent
from lightning_core.providers import build_bus, build_storage
from lightning_core.records import record_received
from lightning_devtools.bench.body import EventBody
from lightning_devtools.bench.events import in_parallel
from lightning_devtools.bench.processes import (
    LOAD_CPUS,
    RUNTIME,
    free_port,
    runtime_env,
    server,
    started_on,
)
from lightning_devtools.bench.servers import (
    REDIS_URL,
    SERVER_URL,
    bench_settings,
    remove_namespace,
    scratch_database,
)
from lightning_devtools.bench.timeline import percentile

USER = "bench-streams"
STREAMS = 50
WINDOW = 10.0  # seconds each transactions/s reading covers
LOAD_STREAMS = 500
EVENTS = 17_000
POSTS = 200
READY_TIMEOUT = 120.0  # seconds for every stream to say `ready`
TARGET_P99 = 0.100  # seconds: POST p99 with the load streams open


@dataclass(frozen=True)
class Rate:
    label: str
    per_second: float


@dataclass(frozen=True)
class Posts:
    label: str
    p50: float
    p99: float
    count: int


@dataclass(frozen=True)
class Measurements:
    rates: list[Rate]
    posts: list[Posts]


async def transactions(database: str) -> int:
    """Transactions PostgreSQL counted in `database` so far (committed and rolled back)."""
    connection = await asyncpg.connect(SERVER_URL)  # another database: this reading is not counted
    try:
        count: int = await connection.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            database,
        )
        return count
    finally:
        await connection.close()


async def transaction_rate(database: str, seconds: float) -> float:
    before = await transactions(database)
    await asyncio.sleep(seconds)
    return (await transactions(database) - before) / seconds


async def seed(database_url: str, count: int) -> None:
    """`count` received records of USER, written through the storage provider."""
    storage = build_storage(bench_settings(LIGHTNING_MODE="local", DATABASE_URL=database_url))
    await storage.connect()
    try:

        async def write(n: int) -> None:
            event = CloudEvent(user=USER, source="bench", type="bench.seed", data={"n": n})
            await record_received(storage, event)

        await in_parallel(count, write)
    finally:
        await storage.close()


async def hold_streams(url: str, count: int) -> None:
    """Open `count` streams, say `ready` on stdout once each had its `ready` message, and
    read (and drop) their messages until cancelled or killed."""
    ready = 0
    all_ready = asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)

    async def reader(client: httpx.AsyncClient) -> None:
        nonlocal ready
        async with client.stream("GET", "/api/events/stream") as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line == "event: ready":
                    ready += 1
                    if ready == count:
                        all_ready.set()

    timeout = httpx.Timeout(60, read=None)  # idle streams read nothing for a while
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        readers = [asyncio.create_task(reader(client)) for _ in range(count)]
        waiting = asyncio.create_task(all_ready.wait())
        await asyncio.wait([waiting, *readers], return_when=asyncio.FIRST_COMPLETED)
        for task in readers:
            if task.done():
                task.result()  # a refused stream: its error, not a silent hang
        print("ready", flush=True)
        await asyncio.gather(*readers)


@contextlib.asynccontextmanager
async def open_streams(url: str, count: int) -> AsyncIterator[None]:
    """`count` streams held open by a process of its own, so reading them never delays the
    POSTs this process times."""
    argv = [sys.executable, "-m", "lightning_devtools.bench.streams", "hold", url, str(count)]
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None  # noqa: S101 - PIPE was asked for
        line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT)
        if line.strip() != b"ready":
            raise RuntimeError(f"the streams did not open (exit {await process.wait()})")
        yield
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def post_latencies(client: httpx.AsyncClient, count: int) -> list[float]:
    latencies = []
    for n in range(count):
        started = time.perf_counter()
        body: EventBody = {"type": "bench.post", "data": {"n": n}}
        response = await client.post("/api/events", json=body)
        response.raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


def posts(label: str, latencies: list[float]) -> Posts:
    return Posts(label, percentile(latencies, 0.5), percentile(latencies, 0.99), len(latencies))


@contextlib.contextmanager
def api_server(database_url: str, namespace: str) -> Iterator[str]:
    """The API alone in local mode, its stream cap out of the way."""
    port = free_port()
    env = runtime_env(
        SERVICE_TYPE="api",
        LIGHTNING_MODE="local",
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        LIGHTNING_BUS_NAMESPACE=namespace,
        LIGHTNING_DEV_USER=USER,
        LIGHTNING_MAX_STREAMS_PER_USER=str(LOAD_STREAMS * 10),
        LIGHTNING_HOST="127.0.0.1",
        LIGHTNING_API_PORT=str(port),
        LIGHTNING_API_URL=f"http://127.0.0.1:{port}",
    )
    with server(RUNTIME, env, port) as url:
        yield url


async def measure_async(
    *, streams: int, window: float, load_streams: int, events: int, count: int, console: Console
) -> Measurements:
    settings = bench_settings(LIGHTNING_EVENT_BUS_PROVIDER="redis")
    rates: list[Rate] = []
    results: list[Posts] = []
    async with scratch_database() as database_url:
        database = database_url.rsplit("/", 1)[1]
        try:
            with api_server(database_url, settings.bus_namespace) as url:
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
                async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
                    console.print(f"idle cost: no stream, then {streams} streams ({window} s each)")
                    rates.append(Rate("no stream", await transaction_rate(database, window)))
                    async with open_streams(url, streams):
                        await asyncio.sleep(1)  # the streams' first looks are behind us
                        label = f"{streams} idle streams"
                        rates.append(Rate(label, await transaction_rate(database, window)))
                        await post_latencies(client, 1)
                        label = f"{streams} streams, {window} s after one POST"
                        rates.append(Rate(label, await transaction_rate(database, window)))
            console.print(f"seeding {events} records")
            await seed(database_url, events)
            with api_server(database_url, settings.bus_namespace) as url:
                async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
                    await post_latencies(client, 5)  # warm-up
                    console.print(f"{count} POSTs, no stream open")
                    alone = await post_latencies(client, count)
                    results.append(posts(f"POST, no stream, {events} records", alone))
                    console.print(f"opening {load_streams} streams")
                    async with open_streams(url, load_streams):
                        console.print(f"{count} POSTs, {load_streams} streams open")
                        loaded = await post_latencies(client, count)
                    label = f"POST, {load_streams} streams, {events} records"
                    results.append(posts(label, loaded))
        finally:
            bus = build_bus(settings)
            await bus.connect()
            await remove_namespace(bus)
            await bus.close()
    return Measurements(rates, results)


def measure(
    *,
    streams: int = STREAMS,
    window: float = WINDOW,
    load_streams: int = LOAD_STREAMS,
    events: int = EVENTS,
    count: int = POSTS,
    console: Console | None = None,
) -> Measurements:
    with started_on(LOAD_CPUS):
        return asyncio.run(
            measure_async(
                streams=streams,
                window=window,
                load_streams=load_streams,
                events=events,
                count=count,
                console=console or Console(),
            )
        )


def report(measurements: Measurements, console: Console) -> None:
    rates = Table(title="PostgreSQL transactions/s in the API's database")
    rates.add_column("situation")
    rates.add_column("transactions/s", justify="right")
    for rate in measurements.rates:
        rates.add_row(rate.label, f"{rate.per_second:.1f}")
    console.print(rates)
    table = Table(title="POST /api/events, one at a time")
    table.add_column("situation")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("posts", justify="right")
    for result in measurements.posts:
        table.add_row(
            result.label, f"{result.p50 * 1000:.1f}", f"{result.p99 * 1000:.1f}", str(result.count)
        )
    console.print(table)
    if len(measurements.posts) == 2:
        alone, loaded = measurements.posts
        verdict = "met" if loaded.p99 < TARGET_P99 else "NOT met"
        console.print(
            f"p99 with streams open: {loaded.p99 / alone.p99:.2f}x the p99 without; "
            f"target (< {TARGET_P99 * 1000:.0f} ms): {verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["hold"]:  # (internal) the stream holder open_streams starts
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(hold_streams(argv[1], int(argv[2])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m lightning_devtools.bench.streams")
    parser.add_argument("--streams", type=int, default=STREAMS, help="idle streams of one user")
    parser.add_argument("--window", type=float, default=WINDOW, help="seconds per reading")
    parser.add_argument("--load-streams", type=int, default=LOAD_STREAMS)
    parser.add_argument("--events", type=int, default=EVENTS, help="records of the user")
    parser.add_argument("--posts", type=int, default=POSTS)
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 140)
    measurements = measure(
        streams=args.streams,
        window=args.window,
        load_streams=args.load_streams,
        events=args.events,
        count=args.posts,
        console=console,
    )
    report(measurements, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
