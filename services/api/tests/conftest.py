"""The API's tests: the shared fixtures, and API clients acting as a user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from lightning_api.app import create_app
from lightning_core.service import ServiceContext

pytest_plugins = ["lightning_core.testing.fixtures"]


def api_client_as(context: ServiceContext, user: str) -> httpx.AsyncClient:
    """An embedded-mode API client whose dev identity is `user` (one app per user, shared
    stores): how the tests show one user never sees another's records."""
    settings = context.settings.model_copy(update={"dev_user": user})
    app = create_app(ServiceContext(settings, context.storage, context.bus))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.fixture
def client_as() -> Callable[[ServiceContext, str], httpx.AsyncClient]:
    """`client_as(context, user)`: `api_client_as`, for tests (which cannot import a conftest)."""
    return api_client_as


@pytest.fixture
async def alice(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client_as(context, "alice") as client:
        yield client


@pytest.fixture
async def bob(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client_as(context, "bob") as client:
        yield client
