"""The request-scoped things routes need, as Annotated aliases (`CurrentUser`, `StorageDep`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from lightning_core.bus.base import EventBus
from lightning_core.config import Mode
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Storage


def _context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


def _storage(request: Request) -> Storage:
    return _context(request).storage


def _bus(request: Request) -> EventBus:
    return _context(request).bus


def _current_user(request: Request) -> str:
    """The local dev identity; azure mode refuses it and accepts only Entra ID tokens.

    Token validation is not built yet, so azure mode fails closed: every request is 401.
    """
    settings = _context(request).settings
    if settings.mode is Mode.AZURE:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "azure mode accepts Entra ID bearer tokens only; the dev identity is refused",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return settings.dev_user


StorageDep = Annotated[Storage, Depends(_storage)]
BusDep = Annotated[EventBus, Depends(_bus)]
ContextDep = Annotated[ServiceContext, Depends(_context)]
CurrentUser = Annotated[str, Depends(_current_user)]
