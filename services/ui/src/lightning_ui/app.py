"""Server-rendered pages: the recent events and their processing state, updated live."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lightning_ui.api_client import ApiClient, ApiUnavailable

STATIC = Path(__file__).parent / "static"
_templates = Environment(
    loader=PackageLoader("lightning_ui", "templates"), autoescape=select_autoescape()
)


def create_app(api: ApiClient) -> Starlette:
    async def render(template: str) -> HTMLResponse:
        try:
            events, error = await api.recent_events(), None
        except ApiUnavailable as problem:
            events, error = [], str(problem)
        html = _templates.get_template(template).render(events=events, error=error)
        return HTMLResponse(html, status_code=503 if error else 200)

    async def index(_request: Request) -> HTMLResponse:
        return await render("index.html")

    async def events_partial(_request: Request) -> HTMLResponse:
        return await render("_events.html")

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/partials/events", events_partial),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
