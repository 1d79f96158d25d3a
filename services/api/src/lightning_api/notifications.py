"""The notifications resource: what the notifier stored for the caller, read or unread."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lightning_api.dependencies import CurrentUser, StorageDep
from lightning_api.door import DoorRoute
from lightning_api.resource import (
    BAD_CONTINUATION,
    CONTENDED,
    NOT_FOUND,
    UNAUTHORIZED,
    Continuation,
    Limit,
    Page,
    list_page,
    modify,
)
from lightning_core.domain import NOTIFICATIONS, Notification

router = APIRouter(
    prefix="/api/notifications",
    tags=["notifications"],
    responses=UNAUTHORIZED,
    route_class=DoorRoute,
)


@router.get("", responses=BAD_CONTINUATION)
async def list_notifications(
    user: CurrentUser,
    storage: StorageDep,
    read: bool | None = None,
    limit: Limit = 50,
    continuation: Continuation = None,
) -> Page[Notification]:
    """The caller's notifications, newest first; `read=false` for the unread ones."""
    where = {"read": read} if read is not None else None
    return await list_page(
        storage,
        NOTIFICATIONS,
        user,
        Notification,
        where=where,
        limit=limit,
        continuation=continuation,
    )


@router.post("/{notification_id}/read", responses={**NOT_FOUND, **CONTENDED})
async def mark_read(notification_id: str, user: CurrentUser, storage: StorageDep) -> Notification:
    """Mark it read (again is fine: the answer is the same)."""

    def change(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "read": True}

    document = await modify(storage, NOTIFICATIONS, user, notification_id, change)
    return Notification.model_validate(document.body)
