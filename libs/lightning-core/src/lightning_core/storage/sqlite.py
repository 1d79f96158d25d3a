"""SQLite storage for embedded mode: one file, one table, one thread owning the connection;
writes are group-committed, each returning once its commit is done (docs/core.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic_core import to_json

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
    check_document,
    check_field_name,
    check_filter_values,
    check_keys,
)
from lightning_core.topology import COLLECTIONS, Collection

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL,
    partition  TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    etag       TEXT NOT NULL,
    written_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (collection, partition, id)
)
"""
# For files made before written_at; their documents count as written when it is added.
_ADD_WRITTEN_AT = "ALTER TABLE documents ADD COLUMN written_at REAL NOT NULL DEFAULT 0"
# Greater than no JSON value: missing and null order values sort first, as NULL did.
_MISSING = "-9e999"
_INDEX = (
    'CREATE INDEX IF NOT EXISTS "{name}" ON documents ({columns}) WHERE collection = {collection}'
)
_PURGE = (
    "DELETE FROM documents WHERE rowid IN (SELECT rowid FROM documents "
    "WHERE collection = {collection} AND written_at < ? LIMIT ?)"
)


def _literal(text: str) -> str:
    """`text` as an SQL string literal, so the planner can match a partial expression index."""
    return "'" + text.replace("'", "''") + "'"


def _field(name: str) -> str:
    """SQL for a body field as json_extract gives it (NULL when missing)."""
    return f"json_extract(body, {_literal('$.' + check_field_name(name))})"


def _sort_key(value: str) -> str:
    """SQL ordering `value` as it is, but never NULL, so rows compare as a whole."""
    return f"coalesce({value}, {_MISSING})"


def schema(collections: Sequence[Collection]) -> list[str]:
    """The index DDL the declared collections' queries and retention sweep need."""
    statements = []
    for collection in collections:
        for index in collection.key_indexes():
            columns = [
                *(["partition"] if index.per_partition else []),
                *(_field(field) for field in index.equal),
                _sort_key(_field(index.order)),
                "id",
            ]
            statements.append((index.name, collection.name, columns))
        if collection.expires:
            statements.append(
                (f"documents_{collection.name}_written_at", collection.name, ["written_at"])
            )
    return [
        _INDEX.format(name=name, columns=", ".join(columns), collection=_literal(collection))
        for name, collection, columns in statements
    ]


Params = Sequence[Any]
Write = tuple[str, Params, "asyncio.Future[int]"]  # resolved with the row count


def _encode(body: dict[str, Any]) -> str:
    """The body as JSON text; InvalidDocument if no provider can store it."""
    check_document(body)
    return to_json(body).decode()


def _open(path: str, indexes: Sequence[str] = ()) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; `_apply` opens and commits its own.
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # One write transaction: processes opening the same file at once take turns.
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
        if "written_at" not in columns:
            db.execute(_ADD_WRITTEN_AT)
            db.execute("UPDATE documents SET written_at = ?", (time.time(),))
        for statement in indexes:
            db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        db.close()
        raise
    return db


def _apply(db: sqlite3.Connection, statements: list[tuple[str, Params]]) -> list[int | Exception]:
    """Run the statements in one transaction; each one's row count or its own error. An error
    ending the transaction (a full disk) or a failed commit is every statement's error."""
    try:
        cursor = db.cursor()  # one for the batch: `db.execute` makes one per statement
        cursor.execute("BEGIN IMMEDIATE")
        outcomes: list[int | Exception] = []
        for sql, params in statements:
            try:
                outcomes.append(cursor.execute(sql, params).rowcount)
            except sqlite3.Error as error:
                if not db.in_transaction:  # SQLite rolled it all back by itself
                    return [error] * len(statements)
                outcomes.append(error)
        cursor.execute("COMMIT")
    except sqlite3.Error as error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        return [error] * len(statements)
    return outcomes


def _fetch(db: sqlite3.Connection, sql: str, params: Params) -> list[Any]:
    return db.execute(sql, params).fetchall()


class SqliteStorage(KeysetPaging, Connectable):
    """Storage in one SQLite file; `collections` declares the indexes to build."""

    def __init__(
        self, path: Path | str, *, collections: Sequence[Collection] = COLLECTIONS
    ) -> None:
        super().__init__()
        self._indexes = schema(collections)
        self._declared = frozenset(collection.name for collection in collections)
        self._path = str(path)
        self._thread: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._writes: asyncio.Queue[Write | None] | None = None
        self._writer: asyncio.Task[None] | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStorage is not connected: use `async with storage:`")
        return self._db

    async def _connect(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db = await self._run(_open, self._path, self._indexes)
        self._writes = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(self._writes), name="sqlite-writer")
        self._writer.add_done_callback(functools.partial(self._writer_ended, self._writes))

    async def _close(self) -> None:
        writes, self._writes = self._writes, None  # writes from here on are refused
        if writes is not None and self._writer is not None:
            writes.put_nowait(None)
            # Shielded: cancelling close() must not cut a commit in half.
            await asyncio.shield(self._writer)
        await self._run(self.db.close)
        self._db = None
        if self._thread is not None:
            self._thread.shutdown()

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """Call `function(*args)` on the connection's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(function, *args))

    async def _read(self, sql: str, params: Params) -> list[Any]:
        return await self._run(_fetch, self.db, sql, params)

    async def _write(self, sql: str, params: Params) -> int:
        """Queue one statement for the next group commit; its row count once committed."""
        if self._writes is None:
            raise RuntimeError("SqliteStorage is not connected: use `async with storage:`")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._writes.put_nowait((sql, params, done))
        return await done

    async def _write_loop(self, writes: asyncio.Queue[Write | None]) -> None:
        """Commit whatever is waiting, one transaction at a time, until a None arrives."""
        while True:
            batch = [await writes.get()]
            while not writes.empty():
                batch.append(writes.get_nowait())
            pending = [write for write in batch if write is not None]
            if pending:
                await self._commit(pending)
            if len(pending) < len(batch):
                return

    def _writer_ended(self, writes: asyncio.Queue[Write | None], _task: object) -> None:
        """However the writer ended, queued writes fail instead of waiting forever."""
        if self._writes is writes:
            self._writes = None
        while not writes.empty():
            write = writes.get_nowait()
            if write is not None and not write[2].done():
                write[2].set_exception(RuntimeError("SQLite storage closed before this write"))

    async def _commit(self, pending: list[Write]) -> None:
        statements = [(sql, params) for sql, params, _ in pending]
        try:
            outcomes = await self._run(_apply, self.db, statements)
        except Exception as error:  # the thread is gone: nobody's write is stored
            outcomes = [error] * len(pending)
        for (_, _, done), outcome in zip(pending, outcomes, strict=True):
            if done.done():  # the caller was cancelled; its write stands or fails alike
                continue
            if isinstance(outcome, Exception):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)

    async def ping(self) -> None:
        await self._read("SELECT 1", ())

    async def create(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        check_keys(partition=partition, id=doc_id)
        etag = new_token()
        try:
            await self._write(
                "INSERT INTO documents (collection, partition, id, body, etag, written_at) "
                "VALUES (?,?,?,?,?,?)",
                (collection, partition, doc_id, _encode(body), etag, time.time()),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"{collection}/{doc_id} already exists") from None
        return Document(doc_id, partition, body, etag)

    async def get(self, collection: str, partition: str, doc_id: str) -> Document:
        check_keys(partition=partition, id=doc_id)
        rows = await self._read(
            "SELECT body, etag FROM documents WHERE collection=? AND partition=? AND id=?",
            (collection, partition, doc_id),
        )
        if not rows:
            raise NotFound(f"{collection}/{doc_id} not found")
        return Document(doc_id, partition, json.loads(rows[0][0]), rows[0][1])

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
        changed = await self._write(
            "UPDATE documents SET body=?, etag=?, written_at=? "
            "WHERE collection=? AND partition=? AND id=? AND etag=?",
            (_encode(body), etag, time.time(), collection, partition, doc_id, if_match),
        )
        if changed == 0:
            await self.get(collection, partition, doc_id)  # NotFound if it is gone
            raise PreconditionFailed(f"{collection}/{doc_id} changed since etag {if_match}")
        return Document(doc_id, partition, body, etag)

    async def upsert(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        check_keys(partition=partition, id=doc_id)
        etag = new_token()
        await self._write(
            "INSERT INTO documents (collection, partition, id, body, etag, written_at) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (collection, partition, id) DO UPDATE SET "
            "body=excluded.body, etag=excluded.etag, written_at=excluded.written_at",
            (collection, partition, doc_id, _encode(body), etag, time.time()),
        )
        return Document(doc_id, partition, body, etag)

    async def delete(
        self, collection: str, partition: str, doc_id: str, *, if_match: str | None = None
    ) -> None:
        check_keys(partition=partition, id=doc_id)
        sql = "DELETE FROM documents WHERE collection=? AND partition=? AND id=?"
        params: tuple[str, ...] = (collection, partition, doc_id)
        if if_match is not None:
            sql += " AND etag=?"
            params += (if_match,)
        if await self._write(sql, params) == 0:
            await self.get(collection, partition, doc_id)
            raise PreconditionFailed(f"{collection}/{doc_id} changed since etag {if_match}")

    def _collection(self, collection: str, params: list[Any]) -> str:
        """SQL naming the collection: a literal if declared (so its partial indexes match)."""
        if collection in self._declared:
            return _literal(collection)
        params.append(collection)
        return "?"

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
        if limit < 1:
            raise ValueError("limit must be at least 1")
        check_filter_values(where)
        params: list[Any] = []
        clauses = [f"collection={self._collection(collection, params)}"]
        if partition is not None:
            check_keys(partition=partition)
            clauses.append("partition=?")
            params.append(partition)
        for name, value in (where or {}).items():
            if value is None:
                clauses.append(f"{_field(name)} IS NULL")
            else:
                clauses.append(f"{_field(name)} = ?")
                params.append(value)
        keys = ["id"] if order_by is None else [_sort_key(_field(order_by)), "id"]
        if after is not None:
            if order_by is not None:
                bound = _sort_key("json_extract(?, '$')")  # the order value's JSON text
                clauses.append(f"({', '.join(keys)}) {'<' if descending else '>'} ({bound}, ?)")
                params.append(json.dumps(after.value))
            else:
                clauses.append(f"id {'<' if descending else '>'} ?")
            params.append(after.id)
        direction = "DESC" if descending else "ASC"
        order = ", ".join(f"{key} {direction}" for key in keys)
        # Fixed fragments, literals of declared names and checked fields; values are bound.
        sql = (
            f"SELECT id, partition, body, etag FROM documents "  # noqa: S608
            f"WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT ?"
        )
        params.append(limit + 1)
        rows = await self._read(sql, params)
        return [Document(row[0], row[1], json.loads(row[2]), row[3]) for row in rows]

    async def purge(self, collection: str, *, before: datetime, limit: int = 1000) -> int:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        params: list[Any] = []
        sql = _PURGE.format(collection=self._collection(collection, params))
        return await self._write(sql, [*params, before.timestamp(), limit])
