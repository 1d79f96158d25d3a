"""PostgreSQL storage for local mode: one jsonb table, answering as SQLite does; each write
records a token, so a retry after a dropped connection applies it once (docs/core.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from lightning_core.backoff import retry
from lightning_core.ids import new_token
from lightning_core.lifecycle import Connectable
from lightning_core.storage.base import (
    After,
    Conflict,
    Document,
    JsonScalar,
    KeysetPaging,
    NotFound,
    PreconditionFailed,
    StorageError,
    check_document,
    check_field_name,
    check_filter_values,
    check_keys,
)
from lightning_core.topology import COLLECTIONS, Collection

log = logging.getLogger(__name__)

T = TypeVar("T")

# The lock: concurrent CREATE TABLE IF NOT EXISTS can fail. The catalog is checked first:
# ALTER TABLE and CREATE INDEX lock the table even when IF NOT EXISTS finds nothing to do.
_SCHEMA = """
DO $$ BEGIN
    PERFORM pg_advisory_xact_lock(328185899124);  -- "Light": this schema's lock
    CREATE TABLE IF NOT EXISTS documents (
        collection text COLLATE "C" NOT NULL,
        partition  text COLLATE "C" NOT NULL,
        id         text COLLATE "C" NOT NULL,
        body       jsonb NOT NULL,
        etag       text NOT NULL,
        written_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (collection, partition, id)
    );
    CREATE TABLE IF NOT EXISTS document_writes (
        token      text COLLATE "C" PRIMARY KEY,
        written_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS document_writes_written_at
        ON document_writes USING brin (written_at);
    IF NOT EXISTS (
        SELECT FROM pg_attribute WHERE attrelid = 'documents'::regclass
        AND attname = 'written_at' AND NOT attisdropped
    ) THEN
        ALTER TABLE documents ADD COLUMN written_at timestamptz NOT NULL DEFAULT now();
    END IF;
{indexes}
END $$
"""
# Partial indexes give the planner no statistics on their expressions (docs/core.md).
_STATISTICS = """
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'CREATE STATISTICS IF NOT EXISTS "{name}" ON ({expression}) FROM documents';
    END IF;"""
_INDEX = """
    IF to_regclass(format('%I.%I', current_schema(), '{name}')) IS NULL THEN
        CREATE INDEX "{name}" ON documents ({columns}) WHERE collection = {collection};
    END IF;"""

# Each write records its token ($5) in the same statement when it changed the document.
_CREATE = """
WITH written AS (
    INSERT INTO documents (collection, partition, id, body, etag)
    VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING etag
)
INSERT INTO document_writes (token) SELECT etag FROM written
"""
_UPSERT = """
WITH written AS (
    INSERT INTO documents (collection, partition, id, body, etag)
    VALUES ($1, $2, $3, $4::jsonb, $5)
    ON CONFLICT (collection, partition, id)
    DO UPDATE SET body=excluded.body, etag=excluded.etag, written_at=excluded.written_at
    RETURNING etag
)
INSERT INTO document_writes (token) SELECT etag FROM written
"""
_REPLACE = """
WITH written AS (
    UPDATE documents SET body=$4::jsonb, etag=$5, written_at=now()
    WHERE collection=$1 AND partition=$2 AND id=$3 AND etag=$6 RETURNING etag
)
INSERT INTO document_writes (token) SELECT etag FROM written
"""
_DELETE = """
WITH written AS (
    DELETE FROM documents
    WHERE collection=$1 AND partition=$2 AND id=$3 AND etag=coalesce($4::text, etag)
    RETURNING id
)
INSERT INTO document_writes (token) SELECT $5::text FROM written
"""
_KEY = "collection=$1 AND partition=$2 AND id=$3"
_PURGE = """
WITH expired AS (
    SELECT partition, id FROM documents
    WHERE collection = {collection} AND written_at < $1 LIMIT $2
)
DELETE FROM documents USING expired
WHERE documents.collection = {collection}
AND documents.partition = expired.partition AND documents.id = expired.id
"""

# Far longer than any retry: a token is looked for at most `retry_for` after its write.
_PRUNE = "DELETE FROM document_writes WHERE written_at < now() - interval '10 minutes'"
_PRUNE_EVERY = 60.0

# Connection loss through asyncpg. InternalClientError: a pooled connection handed out stuck
# on a dying server's FATAL message (asyncpg issues 784, 1069); the statement was never sent.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InternalClientError,
)


def _literal(text: str) -> str:
    """`text` as an SQL string literal, so the planner can match a partial expression index."""
    return "'" + text.replace("'", "''") + "'"


def _field(name: str) -> str:
    """SQL for a body field as jsonb (SQL NULL when missing)."""
    return f"(body->{_literal(check_field_name(name))})"


def _sort_key(value: str) -> list[str]:
    """SQL sorting the jsonb `value` as SQLite's json_extract does; never NULL, so rows
    compare as a whole for keyset paging."""
    kind = f"jsonb_typeof({value})"
    scalar = f"({value} #>> '{{}}')"
    return [
        f"(CASE {kind} WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 "
        f"WHEN 'object' THEN 2 WHEN 'array' THEN 2 ELSE 0 END)",
        f"coalesce(CASE {kind} WHEN 'number' THEN {scalar}::numeric "
        f"WHEN 'boolean' THEN {scalar}::boolean::int END, 0)",
        f"(coalesce(CASE {kind} WHEN 'string' THEN {scalar} WHEN 'object' THEN {value}::text "
        f"WHEN 'array' THEN {value}::text END, '') COLLATE \"C\")",
    ]


def _equal_numbers(value: float) -> list[str]:
    """The JSON values SQLite's json_extract finds equal to the number (or boolean) `value`."""
    number = int(value) if isinstance(value, bool) else value
    matching = [json.dumps(number)]
    if number in (0, 1):
        matching.append(json.dumps(bool(number)))
    return matching


def schema(collections: Sequence[Collection]) -> str:
    """The DDL creating the tables and every index the declared collections need."""
    indexes = []
    filtered = sorted({field for collection in collections for field in collection.filters})
    statistics = [
        _STATISTICS.format(
            name=f"documents_{field}_statistics", expression=_field(field).replace("'", "''")
        )
        for field in filtered
    ]
    for collection in collections:
        for index in collection.key_indexes():
            columns = [
                *(["partition"] if index.per_partition else []),
                *(_field(field) for field in index.equal),
                *(f"({key})" for key in _sort_key(_field(index.order))),
                "id",
            ]
            indexes.append((index.name, collection.name, columns))
        if collection.expires:
            name = f"documents_{collection.name}_written_at"
            indexes.append((name, collection.name, ["written_at"]))
    return _SCHEMA.replace(
        "{indexes}",
        "".join(
            [
                *statistics,
                *(
                    _INDEX.format(
                        name=name, columns=", ".join(columns), collection=_literal(collection)
                    )
                    for name, collection, columns in indexes
                ),
            ]
        ),
    )


def _encode(body: dict[str, Any]) -> str:
    """The body as JSON text; InvalidDocument if no provider can store it."""
    check_document(body)
    return json.dumps(body)


class PostgresStorage(KeysetPaging, Connectable):
    """Storage in one PostgreSQL database; `collections` declares the indexes to build."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        retry_for: float = 30.0,
        collections: Sequence[Collection] = COLLECTIONS,
    ) -> None:
        super().__init__()
        self._schema = schema(collections)
        self._declared = frozenset(collection.name for collection in collections)
        self._dsn = dsn
        self._pool_size = pool_size
        self._retry_for = retry_for
        self._pool: asyncpg.Pool | None = None
        self._prune_at = 0.0  # monotonic

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresStorage is not connected: use `async with storage:`")
        return self._pool

    async def _connect(self) -> None:
        # min_size=0: the first connection opens under the retry loop, riding out a restart.
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=0, max_size=self._pool_size, reset=_rollback_if_open
        )

        async def create_schema(connection: Any) -> None:
            await connection.execute(self._schema)

        try:
            await self._run(create_schema)
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def _close(self) -> None:
        await self.pool.close()
        self._pool = None

    async def _run(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        """Run `operation(connection)`, retrying on connection loss for up to `retry_for`."""

        async def once() -> T:
            outcome: list[T] = []
            try:
                async with self.pool.acquire() as connection:
                    outcome.append(await operation(connection))
            except CONNECTION_ERRORS:
                if not outcome:
                    raise
                # Only handing the broken connection back failed: the pool drops it.
            return outcome[0]

        return await retry(once, CONNECTION_ERRORS, what="PostgreSQL", within=self._retry_for)

    async def _write(self, statement: str, *args: Any, token: str) -> bool:
        """Run a write `statement` recording `token`; True if any attempt changed the document."""

        async def attempt(connection: Any) -> bool:
            try:
                if await connection.execute(statement, *args) == "INSERT 0 1":
                    return True
            except asyncpg.UniqueViolationError:
                pass  # the id is taken, perhaps by our own earlier attempt
            recorded: bool = await connection.fetchval(
                "SELECT EXISTS (SELECT FROM document_writes WHERE token=$1)", token
            )
            return recorded

        changed = await self._run(attempt)
        await self._prune_tokens()
        return changed

    async def _prune_tokens(self) -> None:
        """Forget old write tokens, at most once a minute, best effort."""
        if time.monotonic() < self._prune_at:
            return
        self._prune_at = time.monotonic() + _PRUNE_EVERY
        try:
            async with self.pool.acquire() as connection:
                await connection.execute(_PRUNE)
        except CONNECTION_ERRORS as error:
            log.warning("pruning PostgreSQL write tokens failed (%s); will try again", error)

    async def ping(self) -> None:
        # No retry: readiness reports the store as it is now.
        async with self.pool.acquire() as connection:
            await connection.execute("SELECT 1")

    async def _missing_or_changed(
        self, collection: str, partition: str, doc_id: str, if_match: str | None
    ) -> StorageError:
        """The error for a conditional write that matched no document."""

        async def exists(connection: Any) -> bool:
            found: bool = await connection.fetchval(
                f"SELECT EXISTS (SELECT FROM documents WHERE {_KEY})",  # noqa: S608
                collection,
                partition,
                doc_id,
            )
            return found

        if await self._run(exists):
            return PreconditionFailed(f"{collection}/{doc_id} changed since etag {if_match}")
        return NotFound(f"{collection}/{doc_id} not found")

    async def create(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        check_keys(partition=partition, id=doc_id)
        etag = new_token()
        args = (collection, partition, doc_id, _encode(body), etag)
        if not await self._write(_CREATE, *args, token=etag):
            raise Conflict(f"{collection}/{doc_id} already exists")
        return Document(doc_id, partition, body, etag)

    async def get(self, collection: str, partition: str, doc_id: str) -> Document:
        check_keys(partition=partition, id=doc_id)

        async def select(connection: Any) -> Any:
            return await connection.fetchrow(
                f"SELECT body::text AS body, etag FROM documents WHERE {_KEY}",  # noqa: S608
                collection,
                partition,
                doc_id,
            )

        row = await self._run(select)
        if row is None:
            raise NotFound(f"{collection}/{doc_id} not found")
        return Document(doc_id, partition, json.loads(row["body"]), row["etag"])

    async def replace(
        self,
        collection: str,
        partition: str,
        doc_id: str,
        body: dict[str, Any],
        *,
        if_match: str,
    ) -> Document:
        check_keys(partition=partition, id=doc_id)
        etag = new_token()
        args = (collection, partition, doc_id, _encode(body), etag, if_match)
        if not await self._write(_REPLACE, *args, token=etag):
            raise await self._missing_or_changed(collection, partition, doc_id, if_match)
        return Document(doc_id, partition, body, etag)

    async def upsert(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        check_keys(partition=partition, id=doc_id)
        etag = new_token()
        args = (collection, partition, doc_id, _encode(body), etag)
        await self._write(_UPSERT, *args, token=etag)
        return Document(doc_id, partition, body, etag)

    async def delete(
        self, collection: str, partition: str, doc_id: str, *, if_match: str | None = None
    ) -> None:
        check_keys(partition=partition, id=doc_id)
        token = new_token()
        args = (collection, partition, doc_id, if_match, token)
        if not await self._write(_DELETE, *args, token=token):
            raise await self._missing_or_changed(collection, partition, doc_id, if_match)

    def _collection(self, collection: str, bind: Callable[[Any], str]) -> str:
        """SQL naming the collection: a literal if declared (so its partial indexes match)."""
        return _literal(collection) if collection in self._declared else bind(collection)

    async def _select(
        self,
        collection: str,
        partition: str | None,
        *,
        where: Mapping[str, JsonScalar] | None,
        order_by: str | None,
        descending: bool,
        limit: int,
        after: After | None,
    ) -> list[Document]:
        """Up to `limit + 1` documents after `after`, of one partition or (None) all."""
        sql, params = self.select_statement(
            collection,
            partition,
            where=where,
            order_by=order_by,
            descending=descending,
            limit=limit,
            after=after,
        )

        async def select(connection: Any) -> Any:
            return await connection.fetch(sql, *params)

        return [
            Document(row["id"], row["partition"], json.loads(row["body"]), row["etag"])
            for row in await self._run(select)
        ]

    def select_statement(
        self,
        collection: str,
        partition: str | None,
        *,
        where: Mapping[str, JsonScalar] | None,
        order_by: str | None,
        descending: bool,
        limit: int,
        after: After | None,
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters `_select` runs."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        check_filter_values(where)
        params: list[Any] = []

        def bind(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        clauses = [f"collection={self._collection(collection, bind)}"]
        if partition is not None:
            check_keys(partition=partition)
            clauses.append(f"partition={bind(partition)}")
        for name, value in (where or {}).items():
            field = _field(name)
            if value is None:
                clauses.append(f"coalesce(jsonb_typeof({field}), 'null') = 'null'")
            elif isinstance(value, str):
                clauses.append(f"{field} = {bind(json.dumps(value))}::jsonb")
            elif isinstance(value, int | float):  # bool too: SQLite binds it as 1 or 0
                matching = ", ".join(f"{bind(text)}::jsonb" for text in _equal_numbers(value))
                clauses.append(f"{field} IN ({matching})")
            else:
                raise TypeError(f"filter {name!r}: {value!r} is not a JSON scalar")
        keys = ["id"] if order_by is None else [*_sort_key(_field(order_by)), "id"]
        if after is not None:
            bounds = (
                [] if order_by is None else _sort_key(f"{bind(json.dumps(after.value))}::jsonb")
            )
            bounds.append(bind(after.id))
            clauses.append(
                f"({', '.join(keys)}) {'<' if descending else '>'} ({', '.join(bounds)})"
                if len(keys) > 1
                else f"id {'<' if descending else '>'} {bounds[0]}"
            )
        direction = "DESC" if descending else "ASC"
        order = ", ".join(f"{key} {direction}" for key in keys)
        # Fixed fragments, literals of declared names and checked fields; values are bound.
        sql = (
            f"SELECT id, partition, body::text AS body, etag FROM documents "  # noqa: S608
            f"WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT {bind(limit + 1)}"
        )
        return sql, params

    async def purge(self, collection: str, *, before: datetime, limit: int = 1000) -> int:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        params: list[Any] = [before, limit]

        def bind(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        sql = _PURGE.format(collection=self._collection(collection, bind))

        async def delete(connection: Any) -> int:
            status: str = await connection.execute(sql, *params)
            return int(status.rsplit(maxsplit=1)[-1])

        return await self._run(delete)


async def _rollback_if_open(connection: asyncpg.Connection) -> None:
    """Roll back an interrupted transaction: the only session state calls leave behind."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")
