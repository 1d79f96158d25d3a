"""What the contract suite cannot say about PostgreSQL: it answers queries exactly as SQLite
does across JSON types, and it rides out a kill -9 of its server without losing a write or
applying one twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

import pytest

from lightning_core.config import Settings, StorageProvider
from lightning_core.providers import build_storage
from lightning_core.storage.base import PreconditionFailed, Storage
from lightning_core.storage.postgres import PostgresStorage
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.backends import Faulty
from lightning_core.testing.machine import free_port

# Every JSON scalar shape SQLite distinguishes, with ties, case and non-ASCII bytes.
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    -2.5,
    10,
    2**53 + 1,
    "",
    "1",
    "B",
    "a",
    "aa",
    "é",
    "Z",
    "true",
]


async def _fill(store: Storage) -> None:
    for n, value in enumerate(VALUES):
        await store.create("mixed", "alice", f"d{n:02}", {"v": value, "group": n % 3})
    await store.create("mixed", "alice", "no-v", {"group": 0})
    await store.create("mixed", "bob", "d00", {"v": None})


async def _ids(store: Storage, **query: Any) -> list[str]:
    ids: list[str] = []
    continuation = None
    while True:
        page = await store.query("mixed", "alice", limit=4, continuation=continuation, **query)
        ids += [doc.id for doc in page.items]
        if page.continuation is None:
            return ids
        continuation = page.continuation


async def test_filters_and_order_match_sqlite_for_every_json_scalar(
    storage_postgres: PostgresStorage, tmp_path: Path
) -> None:
    async with SqliteStorage(tmp_path / "reference.db") as sqlite:
        await _fill(sqlite)
        await _fill(storage_postgres)
        queries: list[dict[str, Any]] = [
            {"order_by": "v"},
            {"order_by": "v", "descending": True},
            {"order_by": "group", "where": {"group": 1}},
            *({"where": {"v": value}} for value in [*VALUES, 2, "missing"]),
            {"where": {"v": 1, "group": 1}},
        ]
        for query in queries:
            expected = await _ids(sqlite, **query)
            assert await _ids(storage_postgres, **query) == expected, query


async def test_a_write_that_landed_before_the_connection_dropped_is_not_reported_twice(
    faulty_postgres: Faulty,
) -> None:
    """16 writers create 1,500 documents and bump one counter with replace-if-match while
    the server is killed (SIGKILL) and restarted: every call succeeds, every document is
    there once, and the counter counts every bump exactly once."""
    storage = cast(PostgresStorage, faulty_postgres.make())
    await storage.connect()
    total, bumps = 1_500, 0
    counter = await storage.create("faults", "p", "counter", {"n": 0})
    numbers = iter(range(total))
    written = 0

    async def bump() -> None:
        nonlocal bumps
        while True:
            current = await storage.get("faults", "p", "counter")
            try:
                await storage.replace(
                    "faults", "p", "counter", {"n": current.body["n"] + 1}, if_match=current.etag
                )
            except PreconditionFailed:
                continue
            bumps += 1
            return

    async def writer() -> None:
        nonlocal written
        for n in numbers:
            await storage.create("faults", "p", f"d{n}", {"n": n})
            written += 1
            if n % 10 == 0:
                await bump()

    async def crash() -> None:
        while written < total // 3:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(faulty_postgres.server.stop)
        await asyncio.sleep(1)
        await asyncio.to_thread(faulty_postgres.server.start)

    try:
        await asyncio.wait_for(asyncio.gather(crash(), *(writer() for _ in range(16))), 120)
        found: list[int] = []
        continuation = None
        while True:
            page = await storage.query(
                "faults", "p", order_by="n", limit=500, continuation=continuation
            )
            found += [doc.body["n"] for doc in page.items if doc.id != counter.id]
            if page.continuation is None:
                break
            continuation = page.continuation
        assert found == list(range(total))
        assert (await storage.get("faults", "p", "counter")).body == {"n": bumps}
        assert bumps == total // 10
    finally:
        await storage.close()


async def test_an_unreachable_server_fails_after_the_retry_window() -> None:
    storage = PostgresStorage(f"postgresql://postgres@127.0.0.1:{free_port()}/x", retry_for=0.5)
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await storage.connect()
    assert 0.5 <= time.monotonic() - started < 3


async def test_settings_select_it_with_database_url(
    settings: Settings, postgres_database: str
) -> None:
    chosen = settings.model_copy(
        update={"storage_provider": StorageProvider.POSTGRES, "database_url": postgres_database}
    )
    storage = build_storage(chosen)
    assert isinstance(storage, PostgresStorage)
    async with storage:
        await storage.ping()


async def test_a_released_connection_is_rolled_back_and_not_reset_otherwise(
    storage_postgres: PostgresStorage,
) -> None:
    """The pool's reset rolls back what an interrupted call left open, and nothing else
    (asyncpg's default reset would cost a round trip on every storage call)."""
    pool = storage_postgres._pool
    assert pool is not None
    async with pool.acquire() as connection:
        await connection.execute("SET application_name = 'kept'")  # session state: kept
        await connection.execute("BEGIN")  # asyncpg logs the release of an open transaction
        backend = connection.get_server_pid()
    async with pool.acquire() as connection:
        assert connection.get_server_pid() == backend  # the idle connection comes back
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SHOW application_name") == "kept"
