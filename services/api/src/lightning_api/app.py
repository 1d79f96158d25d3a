"""The FastAPI application, built around the runtime's connected providers."""

from __future__ import annotations

from fastapi import FastAPI

from lightning_api.routes import router
from lightning_core.service import ServiceContext


def create_app(context: ServiceContext) -> FastAPI:
    app = FastAPI(
        title="Lightning OS API",
        version="0.1.0",
        summary="Submit events and follow their processing.",
    )
    app.state.context = context
    app.include_router(router)
    return app
