"""The storage contract: JSON documents in collections, partitioned by user, with etags;
every provider gives the same answers and raises the same exceptions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from lightning_core.events import MAX_DATA_DEPTH

JsonScalar = str | int | float | bool | None

# Field names reach SQL as JSON paths: allow plain identifiers only.
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: How deep a body may nest (the body is level 1): an event's `data`, and as many levels again.
STORAGE_MAX_DEPTH = 2 * MAX_DATA_DEPTH
_MAX_OFFSET = 2**63 - 1  # a signed 64-bit integer
# No provider stores these alike: NUL (PostgreSQL refuses it) and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_NOT_FINITE = "not a finite number (JSON has no NaN or Infinity)"
_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_MAX_PATH = 200  # characters of a field path quoted in an error message


class StorageError(Exception):
    """Base of every storage failure a caller may handle."""


class NotFound(StorageError, LookupError):
    """No document with that id in that partition."""


class Conflict(StorageError):
    """`create` found a document with that id already in that partition."""


class InvalidDocument(StorageError, ValueError):
    """The body, partition or id holds what no provider stores alike; the message says where."""


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
    """An opaque continuation token for providers that page by offset."""
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def decode_offset(token: str) -> int:
    """The offset in `token`; ValueError for anything `encode_offset` cannot have made."""
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError:  # binascii.Error and the Unicode errors are ValueErrors
        raise ValueError("invalid continuation token") from None
    if not 0 <= offset <= _MAX_OFFSET:
        raise ValueError("invalid continuation token")
    return offset


def check_field_name(name: str) -> str:
    if not FIELD_NAME.match(name):
        raise ValueError(f"invalid field name {name!r}: use letters, digits and underscores")
    return name


def check_document(body: Mapping[str, Any]) -> None:
    """Raise InvalidDocument naming the first field (key or value, at any depth) that no
    provider stores alike (NUL, lone surrogate, NaN, infinity) or nests past STORAGE_MAX_DEPTH."""
    if _plainly_fine(body):
        return
    found = _first_problem(body, STORAGE_MAX_DEPTH)
    if found is not None:
        path, problem = found
        raise InvalidDocument(f"{_render(path)}: {problem}")


def check_keys(**keys: str) -> None:
    """Raise InvalidDocument naming the first key (a partition, an id) no provider stores alike."""
    for name, key in keys.items():
        if problem := _unstorable(key):
            raise InvalidDocument(f"document {name}: {problem}")


def check_filter_values(where: Mapping[str, JsonScalar] | None) -> None:
    """Raise ValueError naming the first filter whose value no provider can match alike."""
    for name, value in (where or {}).items():
        if isinstance(value, str) and (problem := _unstorable(value)):
            raise ValueError(f"filter {_render([name])}: {problem}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"filter {_render([name])}: {_NOT_FINITE}")


def _unstorable(text: str) -> str | None:
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "NUL character"
    return f"lone surrogate U+{ord(match.group()):04X}"


FieldPath = list[str | int]


def _plainly_fine(body: Mapping[str, Any]) -> bool:
    """True if the body certainly passes; False sends it to the exact walk, which names the
    field. Every write runs this, so it searches all strings at once."""
    if type(body) is not dict:
        return False
    strings: list[str] = []
    stack: list[tuple[Any, int]] = [(body, STORAGE_MAX_DEPTH)]
    while stack:
        container, room = stack.pop()
        if room == 0:
            return False
        if type(container) is dict:
            strings.extend(container)
            values = container.values()
        else:
            values = container
        for value in values:
            kind = type(value)
            if kind is str:
                strings.append(value)
            elif kind is dict or kind is list:
                stack.append((value, room - 1))
            elif kind not in _PLAIN_SCALARS or (kind is float and not math.isfinite(value)):
                return False
    try:
        return _UNSTORABLE.search("".join(strings)) is None
    except TypeError:  # a key that is not a string
        return False


def _first_problem(container: Any, room: int) -> tuple[FieldPath, str] | None:
    """The path to the first unstorable key or value and what is wrong; `room`: levels left."""
    if room == 0:
        return [], f"nested deeper than {STORAGE_MAX_DEPTH} levels"
    pairs = container.items() if isinstance(container, dict) else enumerate(container)
    for key, value in pairs:
        if isinstance(key, str) and (problem := _unstorable(key)):
            return [key], f"{problem} in a field name"
        if isinstance(value, str):
            if problem := _unstorable(value):
                return [key], problem
        elif isinstance(value, float) and not math.isfinite(value):
            return [key], _NOT_FINITE
        elif isinstance(value, dict | list | tuple):
            found = _first_problem(value, room - 1)
            if found is not None:
                found[0].insert(0, key)
                return found
    return None


def _render(path: FieldPath) -> str:
    """`data.a.b[3]`; names other than plain words are quoted as JSON strings (ASCII)."""
    parts: list[str] = []
    for key in path:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _PLAIN_KEY.fullmatch(key):
            parts.append(f".{key}" if parts else key)
        else:
            parts.append(f"[{json.dumps(key)}]")
    rendered = "".join(parts) or "body"
    if len(rendered) > _MAX_PATH:
        rendered = f"{rendered[: _MAX_PATH // 2]}…{rendered[-_MAX_PATH // 2 :]}"
    return rendered


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

    async def query_all(
        self,
        collection: str,
        *,
        where: Mapping[str, JsonScalar] | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
    ) -> list[Document]:
        """Up to `limit` documents of every partition, filtered and ordered as `query` does;
        for maintenance sweeps, never for answering a user."""

    async def purge(self, collection: str, *, before: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` documents of `collection`, of every partition, whose last
        write was before `before`; how many (the retention sweep)."""


@dataclass(frozen=True)
class After:
    """Where a keyset page starts: after document `id`, whose order value is `value`."""

    id: str
    value: Any = None


def _fingerprint(
    collection: str,
    partition: str,
    where: Mapping[str, JsonScalar] | None,
    order_by: str | None,
    descending: bool,
) -> str:
    query = [collection, partition, sorted((where or {}).items()), order_by, descending]
    return hashlib.sha256(json.dumps(query).encode()).hexdigest()[:16]


def encode_position(after: After, fingerprint: str, *, ordered: bool) -> str:
    """An opaque continuation token: the query's fingerprint and where its next page starts."""
    position: dict[str, Any] = {"q": fingerprint, "id": after.id}
    if ordered:
        position["v"] = after.value
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def decode_position(token: str, fingerprint: str, *, ordered: bool) -> After:
    """The position in `token`; ValueError for anything `encode_position` cannot have made
    for this query."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()), parse_constant=_no_constant)
    except (ValueError, RecursionError):  # binascii and Unicode errors are ValueErrors
        raise ValueError("invalid continuation token") from None
    if not isinstance(decoded, dict) or decoded.get("q") != fingerprint:
        raise ValueError("invalid continuation token: it belongs to another query")
    expected = {"q", "id", "v"} if ordered else {"q", "id"}
    doc_id, value = decoded.get("id"), decoded.get("v")
    if decoded.keys() != expected or not isinstance(doc_id, str) or _unstorable(doc_id):
        raise ValueError("invalid continuation token")
    try:
        check_document({"v": value})
    except InvalidDocument:
        raise ValueError("invalid continuation token") from None
    return After(doc_id, value)


class KeysetPaging(ABC):
    """`query` and `query_all` for providers paging by keyset, over their `_select`."""

    @abstractmethod
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
        """Up to `limit + 1` documents, of one partition or (None) all, that come after
        `after` (from the first if None) in the order (order value, id), both one way."""

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
        check_filter_values(where)
        fingerprint = _fingerprint(collection, partition, where, order_by, descending)
        ordered = order_by is not None
        after = (
            decode_position(continuation, fingerprint, ordered=ordered) if continuation else None
        )
        rows = await self._select(
            collection,
            partition,
            where=where,
            order_by=order_by,
            descending=descending,
            limit=limit,
            after=after,
        )
        if len(rows) <= limit:
            return Page(rows, None)
        last = rows[limit - 1]
        position = After(last.id, last.body.get(order_by) if order_by is not None else None)
        return Page(rows[:limit], encode_position(position, fingerprint, ordered=ordered))

    async def query_all(
        self,
        collection: str,
        *,
        where: Mapping[str, JsonScalar] | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
    ) -> list[Document]:
        rows = await self._select(
            collection,
            None,
            where=where,
            order_by=order_by,
            descending=descending,
            limit=limit,
            after=None,
        )
        return rows[:limit]
