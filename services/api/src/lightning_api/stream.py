"""GET /api/events/stream: the caller's changes as Server-Sent Events, fed by their watcher."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from lightning_api.dependencies import ContextDep, CurrentUser, StopDep, StorageDep
from lightning_api.door import DoorRoute
from lightning_api.event_changes import Change, EventChanges, Position
from lightning_api.models import ErrorDetail
from lightning_api.resource import UNAUTHORIZED
from lightning_api.stream_watchers import Feed, TooManyStreams, activity, first_of
from lightning_core.records import EventStatus

router = APIRouter(route_class=DoorRoute)

RECONNECT_MS = 1000  # how soon an EventSource reconnects after the stream ends
RETRY_AFTER_SECONDS = 10  # when one more stream may be worth trying after a 429


async def _feed(
    user: CurrentUser, storage: StorageDep, context: ContextDep, request: Request
) -> AsyncIterator[Feed]:
    """The caller's feed for as long as the response runs; 429 past the per-user cap."""
    limit = context.settings.max_streams_per_user
    async with contextlib.AsyncExitStack() as held:
        try:
            feed = await held.enter_async_context(activity(request).feed(storage, user, limit))
        except TooManyStreams as error:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"{error} (LIGHTNING_MAX_STREAMS_PER_USER): close one, then retry",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        yield feed


FeedDep = Annotated[Feed, Depends(_feed)]


@router.get(
    "/api/events/stream",
    response_class=EventSourceResponse,
    tags=["events"],
    responses={
        **UNAUTHORIZED,
        429: {"model": ErrorDetail, "description": "The caller has too many streams open"},
    },
)
async def stream_events(
    user: CurrentUser,
    storage: StorageDep,
    stop: StopDep,
    feed: FeedDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The `id` of the last message a previous stream delivered "
            "(EventSource sends it when it reconnects): this stream starts after it.",
        ),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The caller's new events and status changes, as Server-Sent Events.

    The first message, `ready`, says the stream is watching; its data `{"resumed": true}`
    answers a `Last-Event-ID` it continues from (the missed changes follow). With
    `{"resumed": false}` a client that wants the full picture lists `/api/events` after it
    and applies the later messages on top. Each later message is named after the record's
    status, carries the EventRecord as JSON and an `id` to resume after. A comment line
    keeps idle connections open every 15 s. The stream ends when the client goes or the
    service stops; EventSource reconnects after `retry` ms. A user has at most
    LIGHTNING_MAX_STREAMS_PER_USER streams open per replica (429 past it).
    """
    await feed.started()
    after = Position.parse(last_event_id)
    missed = None if after is None else await EventChanges(storage, user).resume(after)
    floor = after if missed is not None else None  # what the client has seen, if resumed
    yield ServerSentEvent(
        event="ready",
        data={"resumed": floor is not None},
        id=str(floor or feed.joined),
        retry=RECONNECT_MS,
    )
    changes = [Change.of(record) for record in missed or []]
    replayed = {(change.record.event.id, change.record.status) for change in changes}
    while True:
        for change in changes:
            yield ServerSentEvent(
                event=change.record.status.value, raw_data=change.data, id=change.id
            )
        await first_of([stop, feed.changed])
        if stop.is_set() or feed.closed:
            return
        changes = feed.take()
        if floor is not None:
            changes = [change for change in changes if _news(change, floor, replayed)]


def _news(change: Change, after: Position, replayed: set[tuple[str, EventStatus]]) -> bool:
    """Whether a resumed stream still has to report `change`: after the client's position,
    and not reported by the replay already."""
    record = change.record
    return Position.of(record) > after and (record.event.id, record.status) not in replayed
