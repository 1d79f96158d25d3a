"""The `ui` service entry point the runtime starts."""

from __future__ import annotations

import asyncio

from lightning_core.http import serve_asgi
from lightning_core.service import ServiceContext
from lightning_ui.api_client import ApiClient
from lightning_ui.app import create_app


async def service(context: ServiceContext, stop: asyncio.Event) -> None:
    settings = context.settings
    api = ApiClient(settings.api_url)
    try:
        await serve_asgi(create_app(api, stop=stop), settings.host, settings.ui_port, stop)
    finally:
        await api.aclose()
