"""`python -m lightning_devtools.bench.peers` for each kind, against the machine's servers.

Each run drains a small backlog in a scratch database; no timing is asserted (the machines
are shared and noisy; a benchmark is not a timed test), only that every event ends up
processed and the stream or queue is gone afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from aiormq.exceptions import ChannelNotFoundEntity
from redis.asyncio import Redis

from lightning_core.testing.backends.postgres import PROVIDE_POSTGRES
from lightning_core.testing.backends.rabbitmq import PROVIDE_RABBITMQ
from lightning_core.testing.backends.rabbitmq import reachable as rabbitmq_reachable
from lightning_core.testing.backends.redis import PROVIDE_REDIS
from lightning_core.testing.backends.redis import reachable as redis_reachable
from lightning_core.testing.machine import require
from lightning_devtools.bench import servers

COUNT, USERS = 300, 10
TIMEOUT = 45.0  # seconds per run; a run takes a few


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A scratch database on the shared PostgreSQL server, dropped afterwards."""
    scratch = contextlib.AsyncExitStack()
    try:
        url = await scratch.enter_async_context(servers.scratch_database())
    except (OSError, asyncpg.PostgresError) as error:
        require(False, f"PostgreSQL at {servers.SERVER_URL} ({error})", PROVIDE_POSTGRES)
    async with scratch:
        yield url


async def require_servers(kind: str) -> None:
    if kind.endswith("redis"):
        require(
            await redis_reachable(servers.REDIS_URL), f"Redis at {servers.REDIS_URL}", PROVIDE_REDIS
        )
    else:
        require(
            await rabbitmq_reachable(servers.RABBITMQ_URL),
            f"RabbitMQ at {servers.RABBITMQ_URL}",
            PROVIDE_RABBITMQ,
        )
    if kind.startswith("faststream"):
        require(
            importlib.util.find_spec("faststream") is not None,
            "faststream",
            "install the bench dependency group (uv sync --group bench)",
        )


async def run_peer(kind: str, database_url: str, name: str, cwd: Path) -> tuple[int, str, str]:
    """The peer's exit status, stdout and stderr; stopped with SIGTERM (so it cleans up)
    if it overruns TIMEOUT."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LIGHTNING_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lightning_devtools.bench.peers",
        kind,
        "--database-url",
        database_url,
        "--count",
        str(COUNT),
        "--users",
        str(USERS),
        "--name",
        name,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    communicating = asyncio.ensure_future(process.communicate())
    try:
        stdout, stderr = await asyncio.wait_for(asyncio.shield(communicating), TIMEOUT)
    except TimeoutError:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(communicating, 30)
        pytest.fail(f"{kind} did not finish in {TIMEOUT} s:\n{stderr.decode()[-2000:]}")
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def leftovers(kind: str, name: str) -> list[str]:
    """The stream's keys or the queue still on the shared server."""
    if kind.endswith("redis"):
        async with Redis.from_url(servers.REDIS_URL) as client:
            return [key.decode() async for key in client.scan_iter(match=f"{name}*")]
    connection = await aio_pika.connect(servers.RABBITMQ_URL)
    try:
        channel = await connection.channel()
        await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return []
    finally:
        await connection.close()
    return [name]


async def event_rows(database_url: str) -> list[tuple[str, dict[str, object]]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT partition, body::text AS body FROM documents WHERE collection = 'events'"
        )
    finally:
        await connection.close()
    return [(row["partition"], json.loads(row["body"])) for row in rows]


@pytest.mark.parametrize("kind", ["plain-redis", "plain-rabbitmq", "faststream-redis"])
async def test_each_peer_drains_its_backlog_and_leaves_no_stream_or_queue(
    kind: str, database_url: str, tmp_path: Path
) -> None:
    await require_servers(kind)
    name = f"test-bench-peers-{uuid.uuid4().hex[:12]}"

    code, stdout, stderr = await run_peer(kind, database_url, name, tmp_path)

    assert code == 0, f"{kind} exited {code}:\n{stderr[-2000:]}"
    lines = stdout.splitlines()
    assert lines[0] == "ready", stdout
    assert json.loads(lines[-1])["events"] == COUNT
    rows = await event_rows(database_url)
    assert len(rows) == COUNT
    assert {partition for partition, _ in rows} == {f"u{n}" for n in range(USERS)}
    for _, body in rows:
        assert body["status"] == "processed", body
        processed_at = datetime.fromisoformat(str(body["processed_at"]))
        assert processed_at.tzinfo == UTC
    assert await leftovers(kind, name) == []


def test_an_unreachable_server_is_one_line_of_stderr_and_a_failed_exit(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_devtools.bench.peers",
            "plain-redis",
            "--database-url",
            "postgresql://127.0.0.1:1/nothing",
            "--count",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Cannot connect to PostgreSQL at postgresql://127.0.0.1:1/nothing" in result.stderr
