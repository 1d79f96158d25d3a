"""SQLite storage for embedded mode: one file, one table, documents as JSON text.

One table holds every collection, so a collection exists as soon as a document is written
to it. WAL mode lets readers (the API listing events) run beside the writer (the processor).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiosqlite

from lightning_core.config import Settings
from lightning_core.lifecycle import Connectable
from lightning_core.storage.base import (
    Conflict,
    Document,
    JsonScalar,
    NotFound,
    Page,
    PreconditionFailed,
    check_field_name,
    decode_offset,
    encode_offset,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL,
    partition  TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    etag       TEXT NOT NULL,
    PRIMARY KEY (collection, partition, id)
)
"""


def _etag() -> str:
    return uuid.uuid4().hex


class SqliteStorage(Connectable):
    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self._path = str(path)
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStorage is not connected: use `async with storage:`")
        return self._db

    async def _connect(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute(_SCHEMA)
        await self._db.commit()

    async def _close(self) -> None:
        await self.db.close()
        self._db = None

    async def ping(self) -> None:
        await self.db.execute("SELECT 1")

    async def create(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        etag = _etag()
        try:
            await self.db.execute(
                "INSERT INTO documents (collection, partition, id, body, etag) VALUES (?,?,?,?,?)",
                (collection, partition, doc_id, json.dumps(body), etag),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"{collection}/{doc_id} already exists") from None
        await self.db.commit()
        return Document(doc_id, partition, body, etag)

    async def get(self, collection: str, partition: str, doc_id: str) -> Document:
        async with self.db.execute(
            "SELECT body, etag FROM documents WHERE collection=? AND partition=? AND id=?",
            (collection, partition, doc_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"{collection}/{doc_id} not found")
        return Document(doc_id, partition, json.loads(row[0]), row[1])

    async def replace(
        self,
        collection: str,
        partition: str,
        doc_id: str,
        body: dict[str, Any],
        *,
        if_match: str,
    ) -> Document:
        etag = _etag()
        cursor = await self.db.execute(
            "UPDATE documents SET body=?, etag=? "
            "WHERE collection=? AND partition=? AND id=? AND etag=?",
            (json.dumps(body), etag, collection, partition, doc_id, if_match),
        )
        await self.db.commit()
        if cursor.rowcount == 0:
            await self.get(collection, partition, doc_id)  # NotFound if it is gone
            raise PreconditionFailed(f"{collection}/{doc_id} changed since etag {if_match}")
        return Document(doc_id, partition, body, etag)

    async def upsert(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        etag = _etag()
        await self.db.execute(
            "INSERT INTO documents (collection, partition, id, body, etag) VALUES (?,?,?,?,?) "
            "ON CONFLICT (collection, partition, id) DO UPDATE SET body=excluded.body, "
            "etag=excluded.etag",
            (collection, partition, doc_id, json.dumps(body), etag),
        )
        await self.db.commit()
        return Document(doc_id, partition, body, etag)

    async def delete(
        self, collection: str, partition: str, doc_id: str, *, if_match: str | None = None
    ) -> None:
        sql = "DELETE FROM documents WHERE collection=? AND partition=? AND id=?"
        params: tuple[str, ...] = (collection, partition, doc_id)
        if if_match is not None:
            sql += " AND etag=?"
            params += (if_match,)
        cursor = await self.db.execute(sql, params)
        await self.db.commit()
        if cursor.rowcount == 0:
            await self.get(collection, partition, doc_id)
            raise PreconditionFailed(f"{collection}/{doc_id} changed since etag {if_match}")

    async def query(
        self,
        collection: str,
        partition: str,
        *,
        where: Mapping[str, JsonScalar] | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
        continuation: str | None = None,
    ) -> Page:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        offset = decode_offset(continuation) if continuation else 0
        clauses = ["collection=?", "partition=?"]
        params: list[Any] = [collection, partition]
        for field, value in (where or {}).items():
            path = f"$.{check_field_name(field)}"
            if value is None:
                clauses.append("json_extract(body, ?) IS NULL")
                params.append(path)
            else:
                clauses.append("json_extract(body, ?) = ?")
                params.extend([path, value])
        direction = "DESC" if descending else "ASC"
        order = f"id {direction}"
        if order_by is not None:
            order = f"json_extract(body, ?) {direction}, {order}"
            params.append(f"$.{check_field_name(order_by)}")
        # Clauses and ORDER BY are built from fixed fragments; values are all bound parameters.
        sql = (
            f"SELECT id, body, etag FROM documents WHERE {' AND '.join(clauses)} "  # noqa: S608
            f"ORDER BY {order} LIMIT ? OFFSET ?"
        )
        params.extend([limit + 1, offset])
        async with self.db.execute(sql, params) as cursor:
            rows = list(await cursor.fetchall())
        items = [Document(row[0], partition, json.loads(row[1]), row[2]) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_offset(offset + limit) if more else None)


def from_settings(settings: Settings) -> SqliteStorage:
    return SqliteStorage(settings.sqlite_path)
