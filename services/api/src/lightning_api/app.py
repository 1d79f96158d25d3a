"""The FastAPI application, built around the runtime's connected providers."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from lightning_api.auth import TokenValidator, http_jwks
from lightning_api.routes import router
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
        fetch_jwks=http_jwks(settings.token_keys_url),
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
    app.include_router(router)
    return app
