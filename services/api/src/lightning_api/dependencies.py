"""The request-scoped things routes need, as Annotated aliases (`CurrentUser`, `StorageDep`).

They are `async def` although they do no I/O: FastAPI runs a plain `def` dependency in
its thread pool, a thread hop per dependency per request (a quarter of the API's time
under load, measured with py-spy).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lightning_api.auth import TokenValidator, Unauthorized
from lightning_core.bus.base import EventBus
from lightning_core.config import Mode
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Storage


def _app_context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


async def _context(request: Request) -> ServiceContext:
    return _app_context(request)


_bearer = HTTPBearer(auto_error=False, description="Entra ID access token (azure mode)")


async def _storage(request: Request) -> Storage:
    return _app_context(request).storage


async def _bus(request: Request) -> EventBus:
    return _app_context(request).bus


async def _stop(request: Request) -> asyncio.Event:
    """Set when the service is stopping: long-lived responses (the event stream) end then."""
    stop: asyncio.Event = request.app.state.stop
    return stop


async def _current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Azure mode: the user an Entra ID access token names. Elsewhere: the dev identity."""
    settings = _app_context(request).settings
    if settings.mode is not Mode.AZURE:
        return settings.dev_user
    validator: TokenValidator = request.app.state.token_validator
    try:
        if credentials is None:
            raise Unauthorized("a bearer token is required (the dev identity is refused)")
        return await validator.user(credentials.credentials)
    except Unauthorized as error:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(error), headers={"WWW-Authenticate": "Bearer"}
        ) from None


StorageDep = Annotated[Storage, Depends(_storage)]
BusDep = Annotated[EventBus, Depends(_bus)]
ContextDep = Annotated[ServiceContext, Depends(_context)]
CurrentUser = Annotated[str, Depends(_current_user)]
StopDep = Annotated[asyncio.Event, Depends(_stop)]
