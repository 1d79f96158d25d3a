"""GET /api/events: the caller's event records (POST is `lightning_api.submit`, the live
stream `lightning_api.stream`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lightning_api.dependencies import CurrentUser, StorageDep
from lightning_api.door import DoorRoute
from lightning_api.resource import BAD_CONTINUATION, UNAUTHORIZED, Page, list_page
from lightning_core.records import EVENTS, EventRecord, EventStatus

router = APIRouter(
    prefix="/api/events", tags=["events"], responses=UNAUTHORIZED, route_class=DoorRoute
)


@router.get("", responses=BAD_CONTINUATION)
async def list_events(
    user: CurrentUser,
    storage: StorageDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status_filter: Annotated[EventStatus | None, Query(alias="status")] = None,
    continuation: str | None = None,
) -> Page[EventRecord]:
    """The caller's events, newest first."""
    where = {"status": status_filter.value} if status_filter else None
    return await list_page(
        storage,
        EVENTS,
        user,
        EventRecord,
        where=where,
        limit=limit,
        continuation=continuation,
        order_by="received_at",
    )
