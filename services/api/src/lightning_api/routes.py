"""HTTP routes: the root's links, health probes and the events resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from lightning_api.changes import EventChanges, Position
from lightning_api.dependencies import ContextDep, CurrentUser, StopDep, StorageDep
from lightning_api.door import DoorRoute
from lightning_api.models import ErrorDetail, EventIn
from lightning_api.pace import Activity, Pace, first_of
from lightning_api.publishing import publish_within
from lightning_api.resource import BAD_BODY, BAD_CONTINUATION, UNAUTHORIZED, Page, list_page
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.events import CloudEvent
from lightning_core.metrics import BACKLOG, CONTENT_TYPE, exposition
from lightning_core.records import EVENTS, EventRecord, EventStatus, mark_failed, record_received
from lightning_core.telemetry import current_traceparent

log = logging.getLogger(__name__)

router = APIRouter(route_class=DoorRoute)

RECONNECT_MS = 1000  # how soon an EventSource reconnects after the stream ends


@router.get("/", tags=["health"])
async def root() -> dict[str, str]:
    """Where to go from here: the API's documentation, schema, probes and events."""
    return {
        "docs": "/docs",
        "redoc": "/redoc",
        "openapi": "/openapi.json",
        "healthz": "/healthz",
        "readyz": "/readyz",
        "events": "/api/events",
    }


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["health"],
    responses={503: {"model": dict[str, str], "description": "Storage or bus unreachable"}},
)
async def readyz(context: ContextDep, response: Response) -> dict[str, str]:
    """Storage and bus are reachable; 503 names the one that is not."""
    checks: dict[str, str] = {}
    for name, provider in (("storage", context.storage), ("bus", context.bus)):
        try:
            await provider.ping()
            checks[name] = "ok"
        except Exception as error:  # any failure at all means: not ready
            checks[name] = f"unavailable: {type(error).__name__}: {error}"
    if any(value != "ok" for value in checks.values()):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return checks


@router.get("/metrics", include_in_schema=False)
async def metrics(context: ContextDep) -> Response:
    """Prometheus metrics of this process (`lightning_core.metrics`), with the processor
    group's backlog read now; an unreachable bus leaves the backlog at its last value."""
    try:
        backlog = await context.bus.backlog(PROCESSOR_GROUP)
    except Exception as error:  # the rest of the metrics matter most when the bus is down
        log.warning("backlog unknown: %s: %s", type(error).__name__, error)
    else:
        if backlog is not None:
            BACKLOG.labels(PROCESSOR_GROUP).set(backlog)
    return Response(exposition(), media_type=CONTENT_TYPE)


@router.post(
    "/api/events",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["events"],
    responses={
        **UNAUTHORIZED,
        **BAD_BODY,
        503: {"model": ErrorDetail, "description": "The bus did not take it; the record is failed"},
    },
)
async def submit_event(
    body: EventIn, user: CurrentUser, context: ContextDep, request: Request
) -> EventRecord:
    """Accept an event: store it as `received`, then publish it to the bus.

    If the bus does not take it within LIGHTNING_PUBLISH_TIMEOUT_SECONDS, the record is
    marked `failed` with the reason and the answer is 503 (send it again); if the processor
    got it after all, it stays processed and the answer is 202.
    """
    event = CloudEvent(user=user, traceparent=current_traceparent(), **body.model_dump())
    record = await record_received(context.storage, event)
    reason = await publish_within(context.bus, event, context.settings.publish_timeout_seconds)
    failed = reason is not None and await mark_failed(
        context.storage, event, f"not published: {reason}"
    )
    activity(request).notify(user)  # the user's open streams look now, and often
    if failed:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"event {event.id} not published: {reason}; it is recorded as failed, send it again",
        )
    return record


@router.get(
    "/api/events",
    tags=["events"],
    responses={**UNAUTHORIZED, **BAD_CONTINUATION},
)
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


@router.get(
    "/api/events/stream",
    response_class=EventSourceResponse,
    tags=["events"],
    responses=UNAUTHORIZED,
)
async def stream_events(
    user: CurrentUser,
    storage: StorageDep,
    stop: StopDep,
    request: Request,
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

    The first message, `ready`, says the stream is watching. Its data `{"resumed": true}`
    answers a `Last-Event-ID` this stream continues from: the changes missed since then
    follow. With `{"resumed": false}` (no such header, or one naming no position it can
    replay from) a client that wants the full picture lists `/api/events` after it and
    applies the later messages on top. Each later message is named after the record's
    status (`received`, `processed`), carries the EventRecord as JSON and an `id` to
    resume after. A comment line keeps idle connections open every 15 s, below proxies'
    idle timeouts (Front Door's origin response timeout: 60 s by default). The stream
    ends when the client goes or the service stops; EventSource clients reconnect after
    `retry` ms. How changes are found (polling storage, not the bus) and resumed is
    explained in `lightning_api.changes`.
    """
    changes, pace = EventChanges(storage, user), Pace()
    start, records = await changes.start(Position.parse(last_event_id))
    yield ServerSentEvent(
        event="ready", data={"resumed": records is not None}, id=str(start), retry=RECONNECT_MS
    )
    records = records or []
    with activity(request).watch(user) as woken:
        while True:
            for record in records:
                yield ServerSentEvent(
                    event=record.status.value, data=record, id=str(Position.of(record))
                )
            await first_of([stop, woken], pace.interval())
            if stop.is_set():
                return
            if woken.is_set():
                woken.clear()
                pace.saw_activity()
            records = await changes.poll()
            if records:
                pace.saw_activity()


def activity(request: Request) -> Activity:
    """This app's wake-ups for streams (`create_app` makes one)."""
    woken: Activity = request.app.state.activity
    return woken
