"""`python -m lightning_devtools.bench.api`: the API's POST throughput next to a bare FastAPI
endpoint, and the time from POST to `processed` visible through the API, in one run.

Throughput: the embedded runtime (API and processor) and `bare_app`, served alike and loaded
alike (wrk, else an asyncio generator) in `--rounds` pairs; the ratio is the median of the
pairs'. Batches: CloudEvents batches against single POSTs, the API alone. Latency: POST to
`processed`, on the event stream and by polling, in embedded and local mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import FastAPI, status
from rich.console import Console
from rich.table import Table

from lightning_devtools.bench.body import (  # module level: FastAPI resolves annotations here
    BATCH_TYPE,
    EventBody,
)
from lightning_devtools.bench.load import Connection
from lightning_devtools.bench.processes import (
    LOAD_CPUS,
    RUNTIME,
    SERVER_CPUS,
    free_port,
    runtime_env,
    server,
    started_on,
)
from lightning_devtools.bench.servers import (
    REDIS_URL,
    bench_settings,
    remove_namespace,
    scratch_database,
)
from lightning_devtools.bench.timeline import percentile

CONNECTIONS = 64
DURATION = 5.0  # seconds of measured load
ROUNDS = 5  # bare/API pairs; the median of their ratios is reported
WARMUP = 2.0  # seconds of load before it, not counted
LATENCY_EVENTS = 300
POLL_EVERY = 0.005  # seconds between GETs in polled_latency
PROCESSED_NEWEST = {"status": "processed", "limit": "1"}
EVENT_TIMEOUT = 30.0  # seconds an event may take to show up as processed
TARGET_RATIO = 0.70
# The idle stream's poll interval (`lightning_api.stream_watchers.SLOW`): pauses up to it
# land each POST anywhere in the stream's cycle.
STREAM_IDLE_POLL = 0.5
BODY: EventBody = {
    "type": "bench.api",
    "source": "bench",
    "subject": "load",
    "data": {"n": 1, "kind": "bench"},
}
BATCH_SIZE = 100  # events per batch POST
INSTALL_WRK = (
    "wrk is not installed: `apt-get install -y wrk` (falling back to a plain asyncio generator)"
)

Generator = Literal["wrk", "asyncio"]


@dataclass(frozen=True)
class Latency:
    path: str
    via: str
    p50: float  # seconds
    p99: float
    count: int


def bare_app() -> FastAPI:
    """One POST endpoint taking the API's body (`EventBody`), answering 202: the ceiling."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/events", status_code=status.HTTP_202_ACCEPTED)
    async def submit(body: EventBody) -> EventBody:
        return body

    return app


def serve_bare(port: int) -> None:
    """Run `bare_app` as the runtime runs the API: `serve_asgi`, stopped by SIGTERM."""
    from lightning_core.http import serve_asgi  # noqa: PLC0415

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve_asgi(bare_app(), "127.0.0.1", port, stop)

    asyncio.run(run())


def bare_server() -> contextlib.AbstractContextManager[str]:
    port = free_port()
    argv = [sys.executable, "-m", "lightning_devtools.bench.api", "bare-server", str(port)]
    return server(argv, os.environ, port)


def runtime_server(
    services: str = "api,event-processor", **settings: str
) -> contextlib.AbstractContextManager[str]:
    """The real runtime with `services` (the API and the processor) in one process."""
    port = free_port()
    env = runtime_env(
        SERVICE_TYPE=services,
        LIGHTNING_HOST="127.0.0.1",
        LIGHTNING_API_PORT=str(port),
        LIGHTNING_API_URL=f"http://127.0.0.1:{port}",
        **settings,
    )
    return server(RUNTIME, env, port)


def embedded_server(sqlite_path: Path) -> contextlib.AbstractContextManager[str]:
    return runtime_server(LIGHTNING_MODE="embedded", LIGHTNING_SQLITE_PATH=str(sqlite_path))


def post_rate(
    url: str,
    generator: Generator,
    connections: int,
    duration: float,
    warmup: float,
    *,
    batch: int = 0,
) -> float:
    """Accepted events per second through POST /api/events over `duration`, after `warmup`;
    with `batch`, batches of that many (by the asyncio generator: wrk sends one body)."""
    target = f"{url}/api/events"
    if generator == "wrk" and not batch:
        if warmup > 0:
            run_wrk(target, connections, warmup)
        return run_wrk(target, connections, duration)
    argv = [sys.executable, "-m", "lightning_devtools.bench.api", "load", target]
    argv += ["--connections", str(connections), "--duration", str(duration)]
    argv += ["--warmup", str(warmup), "--batch", str(batch)]
    with started_on(LOAD_CPUS):
        output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout  # noqa: S603
    rate: float = json.loads(output)["rate"]
    return rate


def run_wrk(target: str, connections: int, duration: float) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    try:
        argv = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s"]
        argv += ["-s", script.name, target]
        with started_on(LOAD_CPUS):
            output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout  # noqa: S603
    finally:
        os.unlink(script.name)
    if bad := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        raise RuntimeError(f"{bad.group(1)} requests failed under wrk:\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not found:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(found.group(1))


async def asyncio_load(
    target: str, connections: int, duration: float, warmup: float, batch: int = 0
) -> float:
    """Events per second over `connections` keep-alive connections posting back to back, each
    POST a batch of `batch` CloudEvents or one event; anything but a 202 raises."""
    numbers = itertools.count()
    single = json.dumps(BODY).encode()

    def body() -> bytes:
        return json.dumps([cloudevent(next(numbers)) for _ in range(batch)]).encode()

    async def worker(until: float) -> int:
        done = 0
        async with Connection(target) as connection:
            while time.perf_counter() < until:
                if batch:
                    status_code, answer = await connection.post(body(), BATCH_TYPE)
                else:
                    status_code, answer = await connection.post(single)
                if status_code != 202:
                    raise RuntimeError(f"POST answered {status_code}: {answer[:300]!r}")
                done += batch or 1
        return done

    async def load(seconds: float) -> float:
        started = time.perf_counter()
        counts = await asyncio.gather(*(worker(started + seconds) for _ in range(connections)))
        return sum(counts) / (time.perf_counter() - started)

    if warmup > 0:
        await load(warmup)
    return await load(duration)


def cloudevent(number: int) -> dict[str, Any]:
    """The benchmark's event as a CloudEvent, its id unique in the run."""
    return {"specversion": "1.0", "id": f"bench-{number}", **BODY}


def generator_available() -> Generator:
    return "wrk" if shutil.which("wrk") else "asyncio"


@dataclass(frozen=True)
class Throughput:
    """Accepted POSTs per second, one (bare, api) pair per round, in the order measured."""

    pairs: list[tuple[float, float]]
    label: str

    @property
    def ratios(self) -> list[float]:
        return [api / bare for bare, api in self.pairs]

    @property
    def ratio(self) -> float:
        """The median of the pairs' ratios: each API run against the bare run beside it."""
        return statistics.median(self.ratios)

    @property
    def api(self) -> float:
        return statistics.median(api for _, api in self.pairs)

    @property
    def bare(self) -> float:
        return statistics.median(bare for bare, _ in self.pairs)


def measure_throughput(
    generator: Generator,
    connections: int,
    duration: float,
    warmup: float,
    *,
    rounds: int,
    work: Path,
) -> Throughput:
    """`rounds` pairs of runs in fresh server processes, the side that goes first alternating
    so a machine getting slower or faster favours neither."""
    pairs: list[tuple[float, float]] = []
    for round_number in range(rounds):
        rates: dict[str, float] = {}
        sides = ("bare", "api") if round_number % 2 == 0 else ("api", "bare")
        for side in sides:
            start = (
                bare_server()
                if side == "bare"
                else embedded_server(work / f"throughput-{round_number}.db")
            )
            with start as url:
                rates[side] = post_rate(url, generator, connections, duration, warmup)
        pairs.append((rates["bare"], rates["api"]))
    label = f"bare FastAPI POST, {generator} -c{connections}, {duration:g} s, {rounds} pairs"
    if SERVER_CPUS is not None:
        label += f", servers on CPU {','.join(map(str, sorted(SERVER_CPUS)))}, load on the rest"
    return Throughput(pairs, label)


@dataclass(frozen=True)
class Batching:
    """Events per second through single POSTs and through batches, one pair per round."""

    pairs: list[tuple[float, float]]  # (single, batched)
    size: int
    label: str

    @property
    def ratio(self) -> float:
        """The median of the pairs' batched / single ratios."""
        return statistics.median(batched / single for single, batched in self.pairs)

    @property
    def single(self) -> float:
        return statistics.median(single for single, _ in self.pairs)

    @property
    def batched(self) -> float:
        return statistics.median(batched for _, batched in self.pairs)


def measure_batching(
    connections: int, duration: float, warmup: float, *, size: int, rounds: int, work: Path
) -> Batching:
    """`rounds` pairs of runs against the embedded runtime's API alone (no consumer to wait
    for), single POSTs and batches of `size` taking turns first, each in a fresh server."""
    pairs: list[tuple[float, float]] = []
    for round_number in range(rounds):
        rates: dict[int, float] = {}
        for batch in (0, size) if round_number % 2 == 0 else (size, 0):
            start = runtime_server(
                "api",
                LIGHTNING_MODE="embedded",
                LIGHTNING_SQLITE_PATH=str(work / f"batching-{round_number}-{batch}.db"),
            )
            with start as url:
                rates[batch] = post_rate(url, "asyncio", connections, duration, warmup, batch=batch)
        pairs.append((rates[0], rates[size]))
    label = f"single POSTs, asyncio -c{connections}, {duration:g} s, {rounds} pairs"
    return Batching(pairs, size, label)


async def processed_latency(url: str, count: int) -> list[float]:
    """Seconds from each POST (one at a time) to its `processed` message on the SSE stream;
    a random pause before each keeps the POSTs out of step with the stream's polling."""
    loop = asyncio.get_running_loop()
    arrivals: dict[str, asyncio.Future[float]] = {}
    ready = asyncio.Event()
    pauses = random.Random(4)  # noqa: S311 - jitter, not security

    def arrival(event_id: str) -> asyncio.Future[float]:
        return arrivals.setdefault(event_id, loop.create_future())

    async with httpx.AsyncClient(base_url=url, timeout=EVENT_TIMEOUT) as client:

        async def watch() -> None:
            async with client.stream("GET", "/api/events/stream") as response:
                response.raise_for_status()
                name = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        name = line.removeprefix("event:").strip()
                    elif line.startswith("data:") and name == "ready":
                        ready.set()
                    elif line.startswith("data:") and name == "processed":
                        record = json.loads(line.removeprefix("data:"))
                        future = arrival(record["event"]["id"])
                        if not future.done():
                            future.set_result(time.perf_counter())
                    elif not line:
                        name = ""

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.wait_for(ready.wait(), EVENT_TIMEOUT)
            latencies = []
            for n in range(count):
                await asyncio.sleep(pauses.uniform(0, STREAM_IDLE_POLL))
                started = time.perf_counter()
                event_id = await post_one(client, n)
                processed = await asyncio.wait_for(arrival(event_id), EVENT_TIMEOUT)
                latencies.append(processed - started)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return latencies


async def polled_latency(url: str, count: int) -> list[float]:
    """Seconds from each POST (one at a time) until GET ?status=processed&limit=1, asked every
    POLL_EVERY, names it: the processing path without the stream's pace."""
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=EVENT_TIMEOUT) as client:
        for n in range(count):
            started = time.perf_counter()
            event_id = await post_one(client, n)
            while True:
                response = await client.get("/api/events", params=PROCESSED_NEWEST)
                response.raise_for_status()
                items = response.json()["items"]
                if items and items[0]["event"]["id"] == event_id:
                    latencies.append(time.perf_counter() - started)
                    break
                if time.perf_counter() - started > EVENT_TIMEOUT:
                    raise TimeoutError(f"event {event_id} not processed in {EVENT_TIMEOUT} s")
                await asyncio.sleep(POLL_EVERY)
    return latencies


async def post_one(client: httpx.AsyncClient, n: int) -> str:
    response = await client.post("/api/events", json={**BODY, "data": {"n": n}})
    response.raise_for_status()
    event_id: str = response.json()["event"]["id"]
    return event_id


def summarize(path: str, via: str, latencies: list[float]) -> Latency:
    return Latency(
        path, via, percentile(latencies, 0.50), percentile(latencies, 0.99), len(latencies)
    )


async def both_latencies(url: str, mode: str, count: int) -> list[Latency]:
    path = f"POST → processed, {mode}"
    return [
        summarize(path, "SSE /api/events/stream", await processed_latency(url, count)),
        summarize(
            path,
            f"GET ?status=processed every {POLL_EVERY * 1000:g} ms",
            await polled_latency(url, count),
        ),
    ]


async def embedded_latency(count: int, work: Path) -> list[Latency]:
    with embedded_server(work / "latency.db") as url:
        return await both_latencies(url, "embedded (SQLite + memory)", count)


async def local_latency(count: int) -> list[Latency]:
    """PostgreSQL in a scratch database and Redis under a namespace of its own, both removed."""
    from lightning_core.providers import build_bus  # noqa: PLC0415

    settings = bench_settings(LIGHTNING_EVENT_BUS_PROVIDER="redis")
    async with scratch_database() as database_url:
        try:
            with runtime_server(
                LIGHTNING_MODE="local",
                DATABASE_URL=database_url,
                REDIS_URL=REDIS_URL,
                LIGHTNING_BUS_NAMESPACE=settings.bus_namespace,
            ) as url:
                return await both_latencies(url, "local (PostgreSQL + Redis)", count)
        finally:
            bus = build_bus(settings)
            await bus.connect()
            await remove_namespace(bus)
            await bus.close()


@dataclass(frozen=True)
class Measurements:
    throughput: Throughput
    batching: Batching
    latencies: list[Latency]
    generator: Generator


def measure(
    generator: Generator | None = None,
    connections: int = CONNECTIONS,
    duration: float = DURATION,
    warmup: float = WARMUP,
    events: int = LATENCY_EVENTS,
    *,
    rounds: int = ROUNDS,
    batch_size: int = BATCH_SIZE,
) -> Measurements:
    chosen = generator or generator_available()
    with tempfile.TemporaryDirectory(prefix="lightning-bench-api-") as work:
        throughput = measure_throughput(
            chosen, connections, duration, warmup, rounds=rounds, work=Path(work)
        )
        batching = measure_batching(
            connections, duration, warmup, size=batch_size, rounds=rounds, work=Path(work)
        )
        latencies = asyncio.run(embedded_latency(events, Path(work)))
        latencies += asyncio.run(local_latency(events))
    return Measurements(throughput, batching, latencies, chosen)


def report(measurements: Measurements, console: Console) -> None:
    table = Table(title="Lightning OS API: throughput next to bare FastAPI, latency (one run)")
    # Each rate column is that side's own median; the ratio is the median of the pairs'.
    columns = (
        "path",
        "api /s (median)",
        "bare /s (median)",
        "ratio (median of pairs)",
        "p50 ms",
        "p99 ms",
        "compared with",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in (columns[0], columns[-1]) else "right")
    throughput = measurements.throughput
    ratios = throughput.ratios
    table.add_row(
        "POST /api/events, embedded (api+processor)",
        f"{throughput.api:,.0f}",
        f"{throughput.bare:,.0f}",
        f"{throughput.ratio:.2f}",
        "-",
        "-",
        f"{throughput.label}; pair ratios {min(ratios):.2f} to {max(ratios):.2f}",
    )
    batching = measurements.batching
    table.add_row(
        f"events/s in batches of {batching.size}, embedded",
        f"{batching.batched:,.0f}",
        f"{batching.single:,.0f}",
        f"{batching.ratio:.2f}",
        "-",
        "-",
        batching.label,
    )
    for latency in measurements.latencies:
        table.add_row(
            latency.path,
            "-",
            "-",
            "-",
            f"{latency.p50 * 1000:,.1f}",
            f"{latency.p99 * 1000:,.1f}",
            f"{latency.count} events one at a time, seen via {latency.via}",
        )
    console.print(table)
    verdict = "met" if throughput.ratio >= TARGET_RATIO else "NOT met"
    console.print(
        f"throughput target (>= {TARGET_RATIO:.0%} of bare, median of the pairs' ratios): "
        f"{verdict} ({throughput.ratio:.0%})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_devtools.bench.api")
    commands = parser.add_subparsers(dest="command")
    bare = commands.add_parser("bare-server", help="(internal) serve the bare FastAPI app")
    bare.add_argument("port", type=int)
    load = commands.add_parser("load", help="(internal) the asyncio load generator")
    load.add_argument("target")
    for options in (parser, load):
        options.add_argument("--connections", type=int, default=CONNECTIONS)
        options.add_argument("--duration", type=float, default=DURATION)
        options.add_argument("--warmup", type=float, default=WARMUP)
    load.add_argument("--batch", type=int, default=0)
    parser.add_argument("--events", type=int, default=LATENCY_EVENTS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="bare/API pairs (the median of their ratios)"
    )
    parser.add_argument("--generator", choices=("wrk", "asyncio"), default=None)
    args = parser.parse_args(argv)

    if args.command == "bare-server":
        serve_bare(args.port)
        return 0
    if args.command == "load":
        rate = asyncio.run(
            asyncio_load(args.target, args.connections, args.duration, args.warmup, args.batch)
        )
        print(json.dumps({"rate": rate}))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 140)
    if args.generator is None and not shutil.which("wrk"):
        console.print(INSTALL_WRK, highlight=False)
    measurements = measure(
        args.generator,
        args.connections,
        args.duration,
        args.warmup,
        args.events,
        rounds=args.rounds,
        batch_size=args.batch_size,
    )
    report(measurements, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
