"""Redis Streams bus: the shared server for the contract suite, a private one for faults.

The contract suite uses the machine's Redis (REDIS_URL, default 127.0.0.1:6379) under a
random namespace per test, deleting its keys afterwards. The fault suite gets a private
redis-server with AOF fsynced on every write, so SIGKILL loses no acknowledged publish;
wiping its directory while it is down brings it back empty.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.redis import RedisBus
from lightning_core.testing.backends import Faulty, ServerProcess, emptier
from lightning_core.testing.machine import free_port, require

BUSES = ["bus_redis"]
FAULTY = ["faulty_redis"]
BACK_EMPTY = ["faulty_redis"]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
PROVIDE_REDIS = (
    f"start one (docker run -d -p 6379:6379 redis:7, or your package manager's redis: "
    f"{START_REDIS}) or set REDIS_URL"
)
#: Abandoned entries are reclaimed after this long in tests (production default: 30 s).
TEST_CLAIM_IDLE = 0.3


async def reachable(url: str) -> bool:
    async with Redis.from_url(url, socket_connect_timeout=2) as client:
        try:
            await client.ping()
        except (RedisConnectionError, OSError):
            return False
    return True


@pytest.fixture
async def redis_namespace() -> AsyncIterator[str]:
    """A fresh key prefix on the shared Redis, deleted afterwards."""
    require(await reachable(REDIS_URL), f"Redis at {REDIS_URL}", PROVIDE_REDIS)
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    yield namespace
    async with RedisBus(REDIS_URL, namespace) as bus:
        await bus.delete_namespace()


@pytest.fixture
async def bus_redis(fast_retry: RetryPolicy, redis_namespace: str) -> AsyncIterator[RedisBus]:
    bus = RedisBus(REDIS_URL, redis_namespace, retry=fast_retry, claim_idle=TEST_CLAIM_IDLE)
    async with bus:
        yield bus


@pytest.fixture
def faulty_redis(tmp_path: Path) -> Iterator[Faulty]:
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    server = ServerProcess(
        [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(data),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
        ],
        port,
        log=tmp_path / "redis.log",
    )  # fmt: skip
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        # Entries a kill loses in transit (delivered, reply never read) come back after 2 s.
        yield Faulty(
            "bus", server, lambda: RedisBus(url, "faults", claim_idle=2.0), wipe=emptier(data)
        )
    finally:
        server.stop()
