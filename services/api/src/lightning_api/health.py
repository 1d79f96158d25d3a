"""The root's links, the health probes (/healthz, /readyz) and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from lightning_api.admission import admission
from lightning_api.dependencies import ContextDep
from lightning_api.door import DoorRoute
from lightning_core.metrics import CONTENT_TYPE, exposition

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
    """Storage and bus are reachable; 503 names the one that is not. Also `backlog` (events
    waiting for the processor, or why unknown) and `max_backlog`, past which POST /api/events
    and POST /api/tasks answer 503; a big backlog does not make this 503."""
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
    """Prometheus metrics of this process, with the backlog as admission last read it."""
    await admission(request).backlog.reading()
    return Response(exposition(), media_type=CONTENT_TYPE)
