"""The FastAPI application, built around the runtime's connected providers."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from lightning_api import dead_letters, instructions, notifications, services, tasks
from lightning_api.auth import TokenValidator, http_jwks
from lightning_api.pace import Activity
from lightning_api.routes import add_routes
from lightning_core.config import ConfigError, Mode, Settings, entra_problems
from lightning_core.service import ServiceContext


def entra_validator(settings: Settings) -> TokenValidator | None:
    """The azure-mode token validator; None in modes that use the dev identity.

    Raises ConfigError naming what is missing, so an API in azure mode never starts
    without a way to authenticate anyone (the runtime prints it as one line).
    """
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
    """405 with `Allow` naming every method the path serves.

    Starlette matches one method's route per path and lists only that route's methods,
    so `DELETE /api/events` would answer `Allow: POST` although GET works too.
    """
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


def create_app(
    context: ServiceContext,
    validator: TokenValidator | None = None,
    *,
    stop: asyncio.Event | None = None,
) -> FastAPI:
    """The API over connected providers; `stop` (the runtime's) ends open event streams.

    uvicorn waits for running responses before it exits, so a stream that ignored `stop`
    would hold the whole process up for as long as a browser tab stays open.
    """
    app = FastAPI(
        title="Lightning OS API",
        version="0.1.0",
        summary="Submit events and follow their processing.",
    )
    app.state.context = context
    app.state.token_validator = validator or entra_validator(context.settings)
    app.state.stop = stop or asyncio.Event()
    app.state.activity = Activity()  # POSTs wake their user's event streams
    add_routes(app)
    for resource in (instructions, tasks, notifications, dead_letters, services):
        app.include_router(resource.router)
    app.add_exception_handler(405, method_not_allowed)
    return app
