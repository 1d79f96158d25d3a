"""The FastAPI application, built around the runtime's connected providers."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.exceptions import HTTPException
from starlette.routing import Match

from lightning_api import (
    dead_letters,
    events,
    health,
    heartbeats,
    instructions,
    notifications,
    stream,
    submit,
    tasks,
)
from lightning_api.admission import Admission, Backlog
from lightning_api.auth import TokenValidator, http_jwks
from lightning_api.stream_watchers import Activity
from lightning_core.body_limit import BodyLimit
from lightning_core.config import ConfigError, Mode, Settings, entra_problems
from lightning_core.metrics import RequestMetrics
from lightning_core.service import ServiceContext
from lightning_core.storage.base import InvalidDocument

#: Where /docs and /redoc load their assets from: under /api/, which an ingress routes here.
DOCS_ASSETS = "/api/docs-assets"


def entra_validator(settings: Settings) -> TokenValidator | None:
    """The azure-mode token validator (ConfigError naming what is missing); None in modes
    that use the dev identity."""
    if settings.mode is not Mode.AZURE:
        return None
    problems = entra_problems(settings)
    if problems or not (settings.token_issuer and settings.token_keys_url):
        raise ConfigError(problems)
    return TokenValidator(
        issuer=settings.token_issuer,
        audience=str(settings.entra_audience),
        version=settings.entra_token_version,
        required_scope=settings.entra_required_scope,
        fetch_jwks=http_jwks(settings.token_keys_url),
    )


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def method_not_allowed(request: Request, error: Exception) -> JSONResponse:
    """405 with `Allow` naming every method the path serves (Starlette names only those of
    the one route it matched)."""
    methods = {
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    }
    detail = error.detail if isinstance(error, HTTPException) else "Method Not Allowed"
    return JSONResponse(
        {"detail": detail}, status_code=405, headers={"Allow": ", ".join(sorted(methods))}
    )


async def invalid_document(_request: Request, error: Exception) -> JSONResponse:
    """422 for a body storage refuses that passed the door's own checks."""
    detail = [{"type": "value_error", "loc": ["body"], "msg": str(error)}]
    return JSONResponse({"detail": detail}, status_code=422)


def create_app(
    context: ServiceContext,
    validator: TokenValidator | None = None,
    *,
    stop: asyncio.Event | None = None,
) -> FastAPI:
    """The API over connected providers; `stop` (the runtime's) ends open event streams,
    which uvicorn would otherwise wait for before it exits."""
    app = FastAPIOffline(
        title="Lightning OS API",
        version="0.1.0",
        summary="Submit events and follow their processing.",
        static_url=DOCS_ASSETS,
    )
    app.state.context = context
    app.state.token_validator = validator or entra_validator(context.settings)
    app.state.stop = stop or asyncio.Event()
    app.state.activity = Activity()
    app.state.admission = Admission(Backlog(context.bus), context.settings.max_backlog)
    for resource in (
        stream,
        health,
        events,
        instructions,
        tasks,
        notifications,
        dead_letters,
        heartbeats,
    ):
        app.include_router(resource.router)
    app.include_router(submit.router(context.settings.max_batch_events))
    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(InvalidDocument, invalid_document)
    app.add_middleware(
        BodyLimit,
        max_bytes=context.settings.max_request_bytes,
        setting="LIGHTNING_MAX_REQUEST_BYTES",
    )
    app.add_middleware(RequestMetrics, service="api")
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="healthz,readyz,metrics",
        exclude_spans=["send", "receive"],  # not a span per SSE message or body chunk
    )
    return app
