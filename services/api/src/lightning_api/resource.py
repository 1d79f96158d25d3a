"""What every per-user resource shares: error declarations, paging, lookups, etags, updates.
Routes touch only the caller's partition: another user's record is a 404, like a missing one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Query, Response, status
from pydantic import BaseModel
from pydantic_core import to_json

from lightning_api.models import ErrorDetail
from lightning_core.storage.base import (
    Document,
    JsonScalar,
    NotFound,
    PreconditionFailed,
    Storage,
)
from lightning_core.storage.base import Page as StoredPage

Responses = dict[int | str, dict[str, Any]]

# Declared per route so the schema lists every status a client can get (schemathesis checks).
UNAUTHORIZED: Responses = {
    401: {"model": ErrorDetail, "description": "Azure mode: no acceptable bearer token"}
}
BAD_BODY: Responses = {
    400: {"model": ErrorDetail, "description": "The body is not JSON"},
    413: {"model": ErrorDetail, "description": "The body is over LIGHTNING_MAX_REQUEST_BYTES"},
    415: {"model": ErrorDetail, "description": "The body is not sent as application/json"},
}
NOT_FOUND: Responses = {404: {"model": ErrorDetail, "description": "No such record of yours"}}
BAD_CONTINUATION: Responses = {
    400: {"model": ErrorDetail, "description": "The continuation token is not one we issued"}
}
CONTENDED: Responses = {
    409: {"model": ErrorDetail, "description": "The record kept changing under us; try again"}
}
STALE: Responses = {
    412: {"model": ErrorDetail, "description": "If-Match does not name the current ETag"}
}

Limit = Annotated[int, Query(ge=1, le=500, description="Most items in one page")]
Continuation = Annotated[
    str | None, Query(description="The `continuation` of the previous page, as given")
]

M = TypeVar("M", bound=BaseModel)

UPDATE_ATTEMPTS = 3

#: A page holds fewer items than asked for when they would encode to more bytes than this.
MAX_PAGE_BYTES = 4 * 1024 * 1024


class Page(BaseModel, Generic[M]):
    items: list[M]
    continuation: str | None


async def list_page(
    storage: Storage,
    collection: str,
    user: str,
    model: type[M],
    *,
    where: Mapping[str, JsonScalar] | None,
    limit: int,
    continuation: str | None,
    order_by: str = "created_at",
) -> Page[M]:
    """One page of the caller's records, newest first; 400 for a forged continuation. At
    most `limit` items, fewer (at least one) when they would pass MAX_PAGE_BYTES."""

    async def read(count: int) -> StoredPage:
        return await storage.query(
            collection,
            user,
            where=where or None,
            order_by=order_by,
            descending=True,
            limit=count,
            continuation=continuation,
        )

    try:
        page = await read(limit)
        fitting = fitting_items([document.body for document in page.items])
        if fitting < len(page.items):
            page = await read(fitting)
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
    return Page[model](  # type: ignore[valid-type]
        items=[model.model_validate(doc.body) for doc in page.items],
        continuation=page.continuation,
    )


def fitting_items(items: Sequence[object]) -> int:
    """How many of `items`, from the first, encode to at most MAX_PAGE_BYTES (at least one)."""
    total = 0
    for count, item in enumerate(items):
        total += len(to_json(item))
        if total > MAX_PAGE_BYTES:
            return max(count, 1)
    return len(items)


async def get_or_404(storage: Storage, collection: str, user: str, doc_id: str) -> Document:
    try:
        return await storage.get(collection, user, doc_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {collection} record {doc_id}") from None


def with_etag(response: Response, document: Document) -> Document:
    """Expose the storage etag as an HTTP entity tag (quoted, as RFC 9110 spells it)."""
    response.headers["ETag"] = f'"{document.etag}"'
    return document


def unquote_etag(value: str) -> str:
    """The storage etag inside an If-Match value; clients may send it quoted, weak or bare."""
    return value.strip().removeprefix("W/").strip('"')


async def modify(
    storage: Storage,
    collection: str,
    user: str,
    doc_id: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> Document:
    """Apply `change` to the current body and write it only if nobody wrote in between,
    trying UPDATE_ATTEMPTS times (then 409). `change` may raise HTTPException to refuse, or
    return the body unchanged to skip the write."""
    for _ in range(UPDATE_ATTEMPTS):
        document = await get_or_404(storage, collection, user, doc_id)
        body = change(document.body)
        if body == document.body:
            return document
        with contextlib.suppress(PreconditionFailed, NotFound):  # re-read: 404 if deleted
            return await storage.replace(collection, user, doc_id, body, if_match=document.etag)
    raise HTTPException(status.HTTP_409_CONFLICT, f"{collection} record {doc_id} is busy")
