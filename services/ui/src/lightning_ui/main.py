"""The `ui` service entry point the runtime starts."""

from __future__ import annotations

import asyncio

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

from lightning_core.config import Mode
from lightning_core.http import serve_asgi
from lightning_core.service import ServiceContext
from lightning_ui.api_client import ApiClient
from lightning_ui.app import create_app
from lightning_ui.auth import Gate
from lightning_ui.signin import entra_sign_in


async def service(context: ServiceContext, stop: asyncio.Event) -> None:
    settings = context.settings
    # Azure mode signs users in with Entra ID (ConfigError, one line, if it cannot).
    sign_in = entra_sign_in(settings) if settings.mode is Mode.AZURE else None
    api = ApiClient(settings.api_url)
    try:
        gate = Gate(api, sign_in, settings.ui_public_url)
        app = create_app(api, stop=stop, gate=gate, max_request_bytes=settings.max_request_bytes)
        traced = OpenTelemetryMiddleware(app)  # a server span per request
        await serve_asgi(traced, settings.host, settings.ui_port, stop, settings=settings)
    finally:
        await api.aclose()
        if sign_in is not None:
            await sign_in.aclose()
