"""HTTP routes: the root's links, health probes and the events resource."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from lightning_api.admission import admission
from lightning_api.dependencies import ContextDep, CurrentUser, StorageDep
from lightning_api.door import DoorRoute
from lightning_api.pace import Activity
from lightning_api.resource import BAD_CONTINUATION, UNAUTHORIZED, Page, list_page
from lightning_core.metrics import CONTENT_TYPE, exposition
from lightning_core.records import EVENTS, EventRecord, EventStatus

log = logging.getLogger(__name__)

router = APIRouter(route_class=DoorRoute)


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
    responses={503: {"model": dict[str, str | int], "description": "Storage or bus unreachable"}},
)
async def readyz(context: ContextDep, request: Request, response: Response) -> dict[str, str | int]:
    """Storage and bus are reachable; 503 names the one that is not.

    Also `backlog`, the events waiting for the processor (why not, when unknown), and
    `max_backlog`, past which POST /api/events and POST /api/tasks answer 503; a big
    backlog does not make this 503 (ready is not idle).
    """
    checks: dict[str, str | int] = {}
    for name, provider in (("storage", context.storage), ("bus", context.bus)):
        try:
            await provider.ping()
            checks[name] = "ok"
        except Exception as error:  # any failure at all means: not ready
            checks[name] = f"unavailable: {type(error).__name__}: {error}"
    if any(value != "ok" for value in checks.values()):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    reading = await admission(request).backlog.reading()
    checks["backlog"] = reading.depth if reading.depth is not None else str(reading.problem)
    checks["max_backlog"] = context.settings.max_backlog
    return checks


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process (`lightning_core.metrics`), the processor
    group's backlog as admission last read it (at most `ttl` old)."""
    await admission(request).backlog.reading()
    return Response(exposition(), media_type=CONTENT_TYPE)


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


def activity(request: Request) -> Activity:
    """This app's event-stream watchers (`create_app` makes them): POSTs wake their user's."""
    woken: Activity = request.app.state.activity
    return woken
