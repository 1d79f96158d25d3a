"""The storage contract: JSON documents in collections, partitioned by user, with etags.

Services type against the `Storage` protocol only. Every provider gives the same answers,
including the same exceptions, so a handler written against SQLite behaves the same on
PostgreSQL or Cosmos DB.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

JsonScalar = str | int | float | bool | None

# Field names reach SQL as JSON paths: allow plain identifiers only.
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class StorageError(Exception):
    """Base of every storage failure a caller may handle."""


class NotFound(StorageError, LookupError):
    """No document with that id in that partition."""


class Conflict(StorageError):
    """`create` found a document with that id already in that partition."""


class PreconditionFailed(StorageError):
    """The document changed since the caller read it (etag mismatch)."""


@dataclass(frozen=True)
class Document:
    id: str
    partition: str
    body: dict[str, Any]
    etag: str


@dataclass(frozen=True)
class Page:
    items: list[Document]
    continuation: str | None


def encode_offset(offset: int) -> str:
    """An opaque continuation token for providers that page by offset (SQLite, PostgreSQL)."""
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def decode_offset(token: str) -> int:
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        raise ValueError("invalid continuation token") from None
    if offset < 0:
        raise ValueError("invalid continuation token")
    return offset


def check_field_name(name: str) -> str:
    if not FIELD_NAME.match(name):
        raise ValueError(f"invalid field name {name!r}: use letters, digits and underscores")
    return name


class Storage(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached (used by /readyz)."""

    async def create(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document: ...

    async def get(self, collection: str, partition: str, doc_id: str) -> Document: ...

    async def replace(
        self,
        collection: str,
        partition: str,
        doc_id: str,
        body: dict[str, Any],
        *,
        if_match: str,
    ) -> Document: ...

    async def upsert(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document: ...

    async def delete(
        self, collection: str, partition: str, doc_id: str, *, if_match: str | None = None
    ) -> None: ...

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
    ) -> Page: ...
