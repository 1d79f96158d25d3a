"""The `stack` fixture: the environment a whole-system runtime needs for each storage + bus
combination the product supports on this machine: embedded (SQLite + memory bus), local
with PostgreSQL + Redis, and local with PostgreSQL + RabbitMQ.

The shared servers are left as found: a scratch PostgreSQL database per test (on the
server DATABASE_URL names), a bus namespace per test, and that namespace's Redis keys or
RabbitMQ exchanges and queues deleted afterwards. Runtimes must be stopped before the
fixture ends (tests enter them inside their own body).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from lightning_core.bus.rabbitmq import RabbitMqBus
from lightning_core.bus.redis import RedisBus
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.testing.backends import postgres, rabbitmq, redis
from lightning_core.testing.machine import require


@dataclass
class Stack:
    """The environment a runtime needs for one storage + bus combination."""

    name: str
    env: dict[str, str]
    shared_bus: bool  # True: a second process sees the same events (not the memory bus)
    cleanups: list[Callable[[], None]] = field(default_factory=list)


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _scratch_database(stack: Stack) -> None:
    """A database of this test's own on the shared server, dropped afterwards."""
    name = f"lightning_scenario_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(postgres.ADMIN_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        require(
            False,
            f"PostgreSQL at {postgres.ADMIN_URL} ({error})",
            postgres.PROVIDE_POSTGRES,
        )
    stack.cleanups.append(
        lambda: asyncio.run(
            _admin(postgres.ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )
    )
    stack.env["DATABASE_URL"] = postgres.database_url(postgres.ADMIN_URL, name)


async def _delete_redis_namespace(namespace: str) -> None:
    async with RedisBus(redis.REDIS_URL, namespace) as bus:
        await bus.delete_namespace()


async def _delete_rabbitmq_topology(namespace: str) -> None:
    """AMQP cannot list queues: declare the groups the runtime used (idempotent) on a bus of
    the same namespace, so that its delete_topology removes them and the exchanges."""
    async with RabbitMqBus(rabbitmq.RABBITMQ_URL, namespace) as bus:
        await bus.open_group(PROCESSOR_GROUP)
        await bus.delete_topology()


def _use_redis(stack: Stack, namespace: str) -> None:
    reachable = asyncio.run(redis.reachable(redis.REDIS_URL))
    require(reachable, f"Redis at {redis.REDIS_URL}", redis.PROVIDE_REDIS)
    stack.env |= {"LIGHTNING_EVENT_BUS_PROVIDER": "redis", "REDIS_URL": redis.REDIS_URL}
    stack.cleanups.append(lambda: asyncio.run(_delete_redis_namespace(namespace)))


def _use_rabbitmq(stack: Stack, namespace: str) -> None:
    reachable = asyncio.run(rabbitmq.reachable(rabbitmq.RABBITMQ_URL))
    require(reachable, f"RabbitMQ at {rabbitmq.RABBITMQ_URL}", rabbitmq.PROVIDE_RABBITMQ)
    stack.env |= {"LIGHTNING_EVENT_BUS_PROVIDER": "rabbitmq", "RABBITMQ_URL": rabbitmq.RABBITMQ_URL}
    stack.cleanups.append(lambda: asyncio.run(_delete_rabbitmq_topology(namespace)))


BUS_SETUP = {"postgres-redis": _use_redis, "postgres-rabbitmq": _use_rabbitmq}


@pytest.fixture(params=["embedded", *BUS_SETUP])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    name: str = request.param
    if name == "embedded":
        env = {"LIGHTNING_MODE": "embedded", "LIGHTNING_SQLITE_PATH": str(tmp_path / "db")}
        yield Stack(name, env, shared_bus=False)
        return
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    current = Stack(
        name, {"LIGHTNING_MODE": "local", "LIGHTNING_BUS_NAMESPACE": namespace}, shared_bus=True
    )
    try:
        _scratch_database(current)
        BUS_SETUP[name](current, namespace)
        yield current
    finally:
        for cleanup in reversed(current.cleanups):  # newest first
            cleanup()
