"""The dead-letters resource: the caller's events the processor gave up on, listed (the
continuation is an offset, newest first) and replayed."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from lightning_api.dependencies import BusDep, CurrentUser
from lightning_api.door import DoorRoute
from lightning_api.resource import (
    BAD_CONTINUATION,
    NOT_FOUND,
    UNAUTHORIZED,
    Continuation,
    Limit,
    Page,
    fitting_items,
)
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.storage.base import decode_offset, encode_offset
from lightning_core.wire import DeadLetterOut

router = APIRouter(
    prefix="/api/dead-letters", tags=["dead letters"], responses=UNAUTHORIZED, route_class=DoorRoute
)


@router.get("", responses=BAD_CONTINUATION)
async def list_dead_letters(
    user: CurrentUser, bus: BusDep, limit: Limit = 100, continuation: Continuation = None
) -> Page[DeadLetterOut]:
    """The caller's dead letters, newest failure first."""
    try:
        offset = decode_offset(continuation) if continuation else 0
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
    letters = [
        DeadLetterOut(
            event=letter.event,
            reason=letter.reason,
            attempts=letter.attempts,
            failed_at=letter.failed_at,
        )
        for letter in await bus.dead_letters(PROCESSOR_GROUP)
        if letter.event.user == user
    ]
    letters.sort(key=lambda letter: letter.failed_at, reverse=True)
    page = letters[offset : offset + limit]
    page = page[: fitting_items(page)]
    end = offset + len(page)
    return Page[DeadLetterOut](
        items=page, continuation=encode_offset(end) if end < len(letters) else None
    )


@router.post("/{event_id}/replay", status_code=status.HTTP_202_ACCEPTED, responses=NOT_FOUND)
async def replay_dead_letter(event_id: str, user: CurrentUser, bus: BusDep) -> None:
    """Deliver the event to the processor again (202: it is processed later)."""
    letters = await bus.dead_letters(PROCESSOR_GROUP)
    if not any(letter.event.id == event_id and letter.event.user == user for letter in letters):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {event_id}")
    try:
        await bus.replay(PROCESSOR_GROUP, event_id)
    except KeyError:  # replayed by someone else since we listed
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {event_id}") from None
