"""The machine's shared servers and the scratch databases and bus namespaces taken on them."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from lightning_core.bus.base import EventBus
from lightning_core.config import Settings, load_settings

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVER_URL = os.environ.get("DATABASE_URL", "postgresql:///postgres")


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """The URL of a new database on the PostgreSQL server, dropped on exit."""
    import asyncpg  # noqa: PLC0415 - only benchmarks load raw clients

    name = f"lightning_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(SERVER_URL)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def bench_settings(**overrides: str) -> Settings:
    """Settings on the shared servers, under a bus namespace of their own."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    return load_settings(
        LIGHTNING_BUS_NAMESPACE=namespace,
        REDIS_URL=REDIS_URL,
        RABBITMQ_URL=RABBITMQ_URL,
        **overrides,
    )


async def remove_namespace(bus: EventBus) -> None:
    """Delete what `bus` declared on its broker (the memory bus keeps nothing)."""
    from lightning_core.bus.rabbitmq import RabbitMqBus  # noqa: PLC0415 - SDK imports
    from lightning_core.bus.redis import RedisBus  # noqa: PLC0415

    if isinstance(bus, RedisBus):
        await bus.delete_namespace()
    elif isinstance(bus, RabbitMqBus):
        await bus.delete_topology()
