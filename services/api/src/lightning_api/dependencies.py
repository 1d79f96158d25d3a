"""The request-scoped things routes need, as Annotated aliases (`CurrentUser`, `StorageDep`);
`async def`, though they do no I/O, so FastAPI does not run them in its thread pool."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

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


async def authenticate(request: Request) -> str:
    """Azure mode: the user an Entra ID access token names (401 without one). Elsewhere: the
    dev identity. Remembered on the request, so the check runs once however often asked."""
    user: str | None = getattr(request.state, "user", None)
    if user is not None:
        return user
    settings = _app_context(request).settings
    if settings.mode is not Mode.AZURE:
        user = settings.dev_user
    else:
        user = await _token_user(request)
    request.state.user = user
    return user


async def _token_user(request: Request) -> str:
    validator: TokenValidator = request.app.state.token_validator
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    try:
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a bearer token is required (the dev identity is refused)")
        return await validator.user(token)
    except Unauthorized as error:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(error), headers={"WWW-Authenticate": "Bearer"}
        ) from None


async def current_user(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller (`authenticate`); `_credentials` only declares the bearer scheme in OpenAPI."""
    return await authenticate(request)


StorageDep = Annotated[Storage, Depends(_storage)]
BusDep = Annotated[EventBus, Depends(_bus)]
ContextDep = Annotated[ServiceContext, Depends(_context)]
CurrentUser = Annotated[str, Depends(current_user)]
StopDep = Annotated[asyncio.Event, Depends(_stop)]
