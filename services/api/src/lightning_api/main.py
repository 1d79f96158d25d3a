"""The `api` service entry point the runtime starts."""

from __future__ import annotations

import asyncio

from lightning_api.app import create_app
from lightning_core.http import serve_asgi
from lightning_core.service import ServiceContext


async def service(context: ServiceContext, stop: asyncio.Event) -> None:
    settings = context.settings
    app = create_app(context, stop=stop)
    await serve_asgi(app, settings.host, settings.api_port, stop, settings=settings)
