"""`nox -s bench`: the real pipeline (API, event processor, storage and bus as separate
processes, as deployed) under load, next to plain code and a peer framework doing the same
work, measured in one run. The README's performance section says how to read it.

Per bus: drains of a recorded backlog (Redis, RabbitMQ), saturation, then a fixed rate of
`--fraction` of saturation's processed/s. Each measurement has its own database, bus
namespace or SQLite file, removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from lightning_core.config import Settings, load_settings
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.providers import build_bus, build_storage
from lightning_core.records import EVENTS, EventRecord, record_received
from lightning_core.testing.health import wait_until_healthy
from lightning_devtools.bench.events import USERS, batches, in_parallel, user_events
from lightning_devtools.bench.load import CONNECTIONS
from lightning_devtools.bench.processes import (
    RUNTIME,
    CpuMeter,
    Pids,
    free_port,
    named,
    running,
    runtime_env,
)
from lightning_devtools.bench.report import plot, tables, write_json
from lightning_devtools.bench.servers import (
    RABBITMQ_URL,
    REDIS_URL,
    remove_namespace,
    scratch_database,
)
from lightning_devtools.bench.timeline import Drain, Load, PipelineRun, Results, Sample

BUSES = ("redis", "rabbitmq", "embedded")
DRAIN_EVENTS = 5_000
SATURATION = 20.0
DURATION = 120.0
FRACTION = 0.8
POLL = 0.25  # seconds between looks at the backlog
SETTLE = 60.0  # seconds the backlog may take to drain after the load
OUT = Path("bench-results")
BROKERS = {"redis": "redis-server", "rabbitmq": "beam.smp"}
PEERS = {
    "redis": {"plain-redis": "plain consumer", "faststream-redis": "FastStream"},
    "rabbitmq": {"plain-rabbitmq": "plain consumer"},
}
Counts = Callable[[], Awaitable[tuple[int, int]]]  # (events recorded, events processed)


@dataclass(frozen=True)
class System:
    """One local-mode measurement's data: a scratch database and a bus namespace."""

    bus: str
    database_url: str
    namespace: str

    def values(self) -> dict[str, str]:
        return {
            "LIGHTNING_MODE": "local",
            "LIGHTNING_EVENT_BUS_PROVIDER": self.bus,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL,
            "RABBITMQ_URL": RABBITMQ_URL,
            "LIGHTNING_BUS_NAMESPACE": self.namespace,
        }

    def settings(self) -> Settings:
        return load_settings(**self.values())

    def env(self, **settings: str) -> dict[str, str]:
        return runtime_env(**self.values(), LIGHTNING_HOST="127.0.0.1", **settings)


@contextlib.asynccontextmanager
async def postgres_counts(database_url: str) -> AsyncIterator[Counts]:
    """Counts of the events recorded and processed, over one connection kept open."""
    connection = await asyncpg.connect(database_url)

    async def counts() -> tuple[int, int]:
        with contextlib.suppress(asyncpg.UndefinedTableError):  # not created yet
            row = await connection.fetchrow(
                "SELECT count(*) AS recorded, "
                "count(*) FILTER (WHERE body->>'status' = 'processed') AS processed "
                "FROM documents WHERE collection = 'events'"
            )
            return int(row["recorded"]), int(row["processed"])
        return 0, 0

    try:
        yield counts
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def local_system(bus: str) -> AsyncIterator[System]:
    async with scratch_database() as database_url:
        system = System(bus, database_url, f"bench-{os.urandom(4).hex()}")
        try:
            yield system
        finally:
            event_bus = build_bus(system.settings())
            await event_bus.connect()
            await event_bus.open_group(PROCESSOR_GROUP)  # a bus removes what it declared
            await remove_namespace(event_bus)
            await event_bus.close()


@contextlib.contextmanager
def processors(system: System, count: int) -> Iterator[list[int]]:
    """`count` processor processes (their pids), started together, each up once its metrics
    endpoint answers."""
    with contextlib.ExitStack() as stack:
        started = []
        for _ in range(count):
            port = free_port()
            env = system.env(SERVICE_TYPE="event-processor", LIGHTNING_METRICS_PORT=str(port))
            started.append((stack.enter_context(running(RUNTIME, env)), port))
        for process, port in started:
            if not wait_until_healthy(process, [f"http://127.0.0.1:{port}/metrics"]):
                raise RuntimeError(f"a processor process did not start ({system.bus})")
        yield [process.pid for process, _ in started]


def servers(bus: str) -> dict[str, Pids]:
    return {"postgres": named("postgres"), bus: named(BROKERS[bus])}


async def processed_times(settings: Settings, limit: int) -> dict[str, float]:
    """When each processed event was processed (epoch seconds), by event id."""
    storage = build_storage(settings)
    await storage.connect()
    try:
        documents = await storage.query_all(EVENTS, limit=limit)
    finally:
        await storage.close()
    records = (EventRecord.from_document(document) for document in documents)
    return {r.event.id: r.processed_at.timestamp() for r in records if r.processed_at}


async def watch(
    progress: Progress,
    label: str,
    counts: Counts,
    done: Callable[[int, int], bool],
    meter: CpuMeter | None = None,
) -> tuple[int, int]:
    """Show the backlog every POLL seconds until `done(recorded, processed)` says so, and
    sample the `meter` as often."""
    task = progress.add_task(label, backlog="")
    try:
        while True:
            recorded, processed = await counts()
            progress.update(
                task,
                backlog=f"{processed:,}/{recorded:,} processed, backlog {recorded - processed:,}",
            )
            if meter is not None:
                meter.sample()
            if done(recorded, processed):
                return recorded, processed
            await asyncio.sleep(POLL)
    finally:
        progress.remove_task(task)


async def settle(progress: Progress, label: str, counts: Counts, expected: int) -> None:
    deadline = time.monotonic() + SETTLE
    await watch(
        progress,
        f"{label}: draining",
        counts,
        lambda _, processed: processed >= expected or time.monotonic() > deadline,
    )


def drain(path: str, bus: str, times: dict[str, float], cpu: dict[str, float]) -> Drain:
    seconds = max(times.values()) - min(times.values()) if times else 0.0
    return Drain(path=path, bus=bus, events=len(times), seconds=seconds, cpu=cpu)


async def drain_processors(bus: str, count: int, processes: int, progress: Progress) -> Drain:
    """`count` events recorded as the API records them, then published (batches of 100)
    to `processes` processor processes already waiting for them."""
    async with local_system(bus) as system:
        settings = system.settings()
        storage, event_bus = build_storage(settings), build_bus(settings)
        await storage.connect()
        events = user_events(count)
        await in_parallel(count, lambda n: record_received(storage, events[n]))
        await storage.close()
        name = f"{processes} processor{'s' * (processes > 1)}"
        label = f"{bus}: {name} drain {count:,}"
        with processors(system, processes) as pids:
            await event_bus.connect()
            await event_bus.open_group(PROCESSOR_GROUP)  # as the deployment provisions it
            meter = CpuMeter({"processor": lambda: pids, **servers(bus)})
            for batch in batches(events):
                await event_bus.publish_batch(batch)
            await event_bus.close()
            async with postgres_counts(system.database_url) as counts:
                await watch(progress, label, counts, lambda _, done: done >= count, meter)
            cpu = meter.shares()
        times = await processed_times(settings, count)
    return drain(f"{name} · {bus}", bus, times, cpu)


async def drain_peer(kind: str, name: str, bus: str, count: int, progress: Progress) -> Drain:
    """`bench.peers KIND` records, publishes and drains `count` events in its own process."""
    async with scratch_database() as database_url:
        argv = ["-m", "lightning_devtools.bench.peers", kind, "--database-url", database_url]
        argv += ["--count", str(count), "--users", str(USERS)]
        process = await asyncio.create_subprocess_exec(
            sys.executable, *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        reading = asyncio.create_task(process.communicate())
        system, label = System(bus, database_url, "bench-peer"), f"{bus}: {name} drain {count:,}"
        async with postgres_counts(database_url) as counts:
            await watch(progress, label, counts, lambda _, done: done > 0 or reading.done())
            meter = CpuMeter({name: lambda: [process.pid], **servers(bus)})
            await watch(
                progress, label, counts, lambda _, done: done >= count or reading.done(), meter
            )
            cpu = meter.shares()
        _, errors = await reading
        if process.returncode != 0:
            raise RuntimeError(f"bench.peers {kind} failed:\n{errors[-2000:].decode()}")
        times = await processed_times(system.settings(), count)
    return drain(f"{name} · {bus}", bus, times, cpu)


@dataclass(frozen=True)
class Tally:
    accepted: list[tuple[str, float, float]]  # id, sent, accepted
    refused: int
    started: float
    ended: float
    cpu: dict[str, float]


async def load(  # noqa: PLR0917 - one call per mode, each naming what it passes
    api: str,
    seconds: float,
    rate: float | None,
    progress: Progress,
    label: str,
    counts: Counts,
    metered: dict[str, Pids],
) -> Tally:
    """`bench.load` against `api` in a process of its own, then up to SETTLE seconds for the
    backlog to drain; with the CPUs the `metered` processes, generator and host used."""
    with tempfile.TemporaryDirectory(prefix="lightning-bench-") as work:
        out = Path(work) / "tally.json"
        argv = ["-m", "lightning_devtools.bench.load", f"{api}/api/events", str(out)]
        argv += ["--duration", str(seconds), "--connections", str(CONNECTIONS)]
        argv += ["--rate", str(rate)] if rate else []
        generator = await asyncio.create_subprocess_exec(
            sys.executable, *argv, stderr=subprocess.PIPE
        )
        meter = CpuMeter(metered)
        reading = asyncio.create_task(generator.communicate())
        await watch(progress, label, counts, lambda *_: reading.done(), meter)
        cpu = meter.shares()
        _, errors = await reading
        if generator.returncode != 0:
            raise RuntimeError(f"bench.load failed:\n{errors[-2000:].decode()}")
        tally = json.loads(out.read_text())
    if tally["failed"]:
        raise RuntimeError(f"POSTs failed under load: {tally['failed']}")
    accepted = [(str(id_), float(sent), float(done)) for id_, sent, done in tally["accepted"]]
    await settle(progress, label, counts, len(accepted))
    started, ended = float(tally["started"]), float(tally["ended"])
    cpu["load generator"] = round(tally["cpu_seconds"] / max(ended - started, 1e-9), 2)
    return Tally(accepted, tally["refused"], started, ended, cpu)


def pipeline_run(
    *,
    label: str,
    bus: str,
    processes: int,
    kind: Load,
    offered: float | None,
    tally: Tally,
    times: dict[str, float],
) -> PipelineRun:
    return PipelineRun(
        label=label,
        bus=bus,
        processors=processes,
        load=kind,
        offered=offered,
        started=tally.started,
        ended=tally.ended,
        samples=[Sample(sent, accepted, times.get(id_)) for id_, sent, accepted in tally.accepted],
        refused=tally.refused,
        cpu=tally.cpu,
    )


def run_label(bus: str, kind: Load, rate: float | None) -> str:
    return f"{bus} · {kind}" + (f" {rate:,.0f}/s" if rate else "")


async def local_run(
    bus: str, kind: Load, seconds: float, rate: float | None, progress: Progress
) -> PipelineRun:
    """The API and one processor in processes of their own, in local mode, under load."""
    label = run_label(bus, kind, rate)
    async with local_system(bus) as system:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = system.env(SERVICE_TYPE="api", LIGHTNING_API_PORT=str(port), LIGHTNING_API_URL=url)
        with (
            processors(system, 1) as pids,
            running(RUNTIME, env, health=f"{url}/healthz") as api,
        ):
            metered = {"api": lambda: [api.pid], "processor": lambda: pids, **servers(bus)}
            async with postgres_counts(system.database_url) as counts:
                tally = await load(url, seconds, rate, progress, label, counts, metered)
        times = await processed_times(system.settings(), len(tally.accepted) + 1)
    return pipeline_run(
        label=label, bus=bus, processes=1, kind=kind, offered=rate, tally=tally, times=times
    )


def sqlite_counts(path: Path) -> Counts:
    async def counts() -> tuple[int, int]:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            recorded, processed = db.execute(
                "SELECT count(*), coalesce(sum(json_extract(body, '$.status') = 'processed'), 0) "
                "FROM documents WHERE collection = 'events'"
            ).fetchone()
        return int(recorded), int(processed)

    return counts


async def embedded_run(
    kind: Load, seconds: float, rate: float | None, progress: Progress
) -> PipelineRun:
    """`invoke dev`'s runtime (API and processor in one process, SQLite, memory bus)."""
    label = run_label("embedded", kind, rate)
    with tempfile.TemporaryDirectory(prefix="lightning-bench-") as work:
        database = Path(work) / "lightning.db"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        values = {"LIGHTNING_MODE": "embedded", "LIGHTNING_SQLITE_PATH": str(database)}
        env = runtime_env(
            **values,
            SERVICE_TYPE="api,event-processor",
            LIGHTNING_HOST="127.0.0.1",
            LIGHTNING_API_PORT=str(port),
            LIGHTNING_API_URL=url,
        )
        counts = sqlite_counts(database)
        with running(RUNTIME, env, health=f"{url}/healthz") as runtime:
            metered: dict[str, Pids] = {"api + processor": lambda: [runtime.pid]}
            tally = await load(url, seconds, rate, progress, label, counts, metered)
        times = await processed_times(load_settings(**values), len(tally.accepted) + 1)
    return pipeline_run(
        label=label, bus="embedded", processes=1, kind=kind, offered=rate, tally=tally, times=times
    )


@dataclass(frozen=True)
class Options:
    buses: tuple[str, ...] = BUSES
    drain_events: int = DRAIN_EVENTS
    saturation: float = SATURATION
    duration: float = DURATION
    fraction: float = FRACTION


async def measure(options: Options, progress: Progress) -> Results:
    results = Results(machine=machine(options))
    for bus in options.buses:
        if bus == "embedded":
            saturated = await embedded_run("saturation", options.saturation, None, progress)
        else:
            await measure_drains(results, bus, options.drain_events, progress)
            saturated = await local_run(bus, "saturation", options.saturation, None, progress)
        results.runs.append(saturated)
        rate = options.fraction * saturated.processed_per_s
        if bus == "embedded":
            results.runs.append(await embedded_run("fixed", options.duration, rate, progress))
        else:
            results.runs.append(await local_run(bus, "fixed", options.duration, rate, progress))
    return results


async def measure_drains(results: Results, bus: str, count: int, progress: Progress) -> None:
    """The processor, 1 then 2 processes, beside the bus's plain consumer and peers."""
    peers = [
        await drain_peer(kind, name, bus, count, progress) for kind, name in PEERS[bus].items()
    ]
    plain = peers[0].path
    one = await drain_processors(bus, count, 1, progress)
    two = await drain_processors(bus, count, 2, progress)
    results.drains.extend(
        [
            Drain(**{**vars(one), "baseline": plain}),
            Drain(**{**vars(two), "baseline": one.path}),
            peers[0],
            *(Drain(**{**vars(peer), "baseline": plain}) for peer in peers[1:]),
        ]
    )


def machine(options: Options) -> dict[str, str | int | float]:
    return {
        "cpus": os.cpu_count() or 0,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "drain_events": options.drain_events,
        "saturation_seconds": options.saturation,
        "fixed_seconds": options.duration,
        "fraction": options.fraction,
        "connections": CONNECTIONS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nox -s bench --", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--buses", default=",".join(BUSES), help="comma-separated: %(default)s")
    parser.add_argument("--drain-events", type=int, default=DRAIN_EVENTS, help="%(default)s")
    parser.add_argument("--saturation", type=float, default=SATURATION, help="seconds: %(default)s")
    parser.add_argument(
        "--duration", type=float, default=DURATION, help="fixed-rate seconds: %(default)s"
    )
    parser.add_argument(
        "--fraction", type=float, default=FRACTION, help="of saturation's processed/s: %(default)s"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="JSON and plots go here: %(default)s")
    args = parser.parse_args(argv)
    buses = tuple(bus.strip() for bus in args.buses.split(",") if bus.strip())
    if unknown := set(buses) - set(BUSES):
        parser.error(f"unknown bus {', '.join(sorted(unknown))}; choose from {', '.join(BUSES)}")
    options = Options(buses, args.drain_events, args.saturation, args.duration, args.fraction)
    console = Console(width=None if sys.stdout.isatty() else 160)
    columns = (
        TextColumn("{task.description}"),
        TextColumn("{task.fields[backlog]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            results = asyncio.run(measure(options, progress))
    except (OSError, asyncpg.PostgresError) as error:
        console.print(
            f"bench: a server is unreachable ({type(error).__name__}: {error}); start PostgreSQL, "
            "Redis and RabbitMQ (`invoke compose-up` or the machine's own) or set DATABASE_URL, "
            "REDIS_URL, RABBITMQ_URL",
            style="red",
            highlight=False,
        )
        return 1
    for table in tables(results):
        console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(results, args.out / "results.json")
    written = plot(results, args.out)
    console.print(f"wrote {args.out / 'results.json'}, " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
