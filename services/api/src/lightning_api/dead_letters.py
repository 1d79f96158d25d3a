"""The dead-letters resource: events the processor gave up on, listed and replayed per user.

The bus keeps dead letters per consumer group, not per user, so the routes filter by the
event's owner; another user's dead letter is a 404 like a missing one.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from lightning_api.dependencies import BusDep, CurrentUser
from lightning_api.models import DeadLetterOut
from lightning_api.resource import NOT_FOUND, UNAUTHORIZED
from lightning_core.domain import PROCESSOR_GROUP

router = APIRouter(prefix="/api/dead-letters", tags=["dead letters"], responses=UNAUTHORIZED)


@router.get("")
async def list_dead_letters(user: CurrentUser, bus: BusDep) -> list[DeadLetterOut]:
    """The caller's dead letters, newest failure first."""
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
    return sorted(letters, key=lambda letter: letter.failed_at, reverse=True)


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
