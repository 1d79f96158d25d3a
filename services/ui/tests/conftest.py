"""The UI's tests: the shared fixtures, a headless Chromium, and UI clients in process.

The UI's in-process tests put the real API app behind its API client, so they need
lightning-api installed (the UI's code never imports it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from lightning_api.app import create_app as create_api
from lightning_core.service import ServiceContext
from lightning_ui.api_client import ApiClient
from lightning_ui.app import create_app as create_ui

pytest_plugins = ["lightning_core.testing.fixtures", "lightning_core.testing.browser"]


def ui_client_over(api: ApiClient) -> httpx.AsyncClient:
    """A client of the UI app (in process) whose calls to the API go through `api`."""
    app = create_ui(api)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")


@pytest.fixture
def ui_client() -> Callable[[ApiClient], httpx.AsyncClient]:
    """`ui_client(api)`: `ui_client_over`, for tests (which cannot import a conftest)."""
    return ui_client_over


@pytest.fixture
async def ui_api(context: ServiceContext) -> AsyncIterator[ApiClient]:
    """The UI's API client over the embedded API app (in process, dev identity)."""
    client = ApiClient("http://api", transport=httpx.ASGITransport(app=create_api(context)))
    yield client
    await client.aclose()
