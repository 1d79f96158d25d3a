"""The UI: server-rendered pages over the API, every route it serves listed in ROUTES."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from lightning_core.body_limit import BodyLimit
from lightning_core.config import Settings
from lightning_ui import pages
from lightning_ui.actions import button, create_instruction, instruction_form, replace_instruction
from lightning_ui.api_client import ApiClient
from lightning_ui.auth import (
    CrossSiteRequest,
    Gate,
    cross_site_request,
    entra_unavailable,
    sign_in_required,
)
from lightning_ui.headers import SecurityHeaders, content_security_policy
from lightning_ui.pages import page, partial, templates
from lightning_ui.relay import stream
from lightning_ui.signin import EntraUnavailable, SignInRequired

STATIC = Path(__file__).parent / "static"
_LIMIT = Settings.model_fields["max_request_bytes"]
MAX_REQUEST_BYTES: int = _LIMIT.default
MAX_REQUEST_BYTES_SETTING = str(_LIMIT.alias)


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def favicon(_request: Request) -> Response:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


#: Every route of the UI but the sign-in ones (`Gate.routes`, azure mode only).
ROUTES: list[BaseRoute] = [
    Route("/", page("index.html", pages.dashboard)),
    Route("/instructions", page("instructions.html", pages.instructions)),
    Route("/tasks", page("tasks.html", pages.tasks)),
    Route("/notifications", page("notifications.html", pages.notifications)),
    Route("/dead-letters", page("dead_letters.html", pages.dead_letters)),
    Route("/partials/dashboard", partial("_dashboard.html", pages.health_and_counts)),
    Route("/partials/events", partial("_events.html", pages.events)),
    Route("/partials/instructions", partial("_instructions.html", pages.instructions)),
    Route("/partials/tasks", partial("_tasks.html", pages.tasks)),
    Route("/partials/notifications", partial("_notifications.html", pages.notifications)),
    Route("/partials/dead-letters", partial("_dead_letters.html", pages.dead_letters)),
    Route("/instructions", create_instruction, methods=["POST"]),
    Route("/instructions/{id}", replace_instruction, methods=["POST"]),
    Route("/instructions/{id}/form", instruction_form),
    Route("/instructions/{id}/enable", button(ApiClient.enable_instruction), methods=["POST"]),
    Route("/instructions/{id}/disable", button(ApiClient.disable_instruction), methods=["POST"]),
    Route("/instructions/{id}/delete", button(ApiClient.delete_instruction), methods=["POST"]),
    Route("/tasks/{id}/cancel", button(ApiClient.cancel_task), methods=["POST"]),
    Route("/notifications/{id}/read", button(ApiClient.mark_read), methods=["POST"]),
    Route("/dead-letters/{id}/replay", button(ApiClient.replay), methods=["POST"]),
    Route("/stream", stream),
    Route("/healthz", healthz),
    Route("/favicon.ico", favicon),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


def create_app(
    api: ApiClient,
    *,
    stop: asyncio.Event | None = None,
    gate: Gate | None = None,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> Starlette:
    """The UI over an API client; `stop` (the runtime's) ends the open `/stream`s; `gate`
    signs users in (azure mode), without one every request uses the API's dev identity;
    a request body over `max_request_bytes` is answered 413 before anything reads it."""
    callers = gate or Gate(api, sign_in=None)
    policy = content_security_policy(callers.form_targets())
    app = Starlette(
        routes=[*ROUTES, *callers.routes()],
        middleware=[
            Middleware(SecurityHeaders, policy=policy),
            Middleware(BodyLimit, max_bytes=max_request_bytes, setting=MAX_REQUEST_BYTES_SETTING),
            *callers.middleware(),
        ],
        exception_handlers={
            SignInRequired: sign_in_required,
            EntraUnavailable: entra_unavailable,
            CrossSiteRequest: cross_site_request,
            ClientDisconnect: _client_gone,
            404: _http_error,
            405: _http_error,
        },
    )
    app.state.gate = callers  # lightning_ui.auth.caller_of
    app.state.stop = stop or asyncio.Event()  # lightning_ui.relay.stream
    return app


async def _client_gone(_request: Request, _error: Exception) -> Response:
    """The client went while its body was read (or BodyLimit cut it off): no one to answer."""
    return Response(status_code=400)


#: What a browser is told for an HTTP error status: page title and explanation.
_HTTP_ERRORS = {
    404: ("Not found", "There is no page at this address."),
    405: ("Not allowed", "This address does not answer a {method}."),
}


async def _http_error(request: Request, error: Exception) -> Response:
    """404 and 405: a page in the UI's style for a browser, JSON `{"error": ...}` otherwise."""
    problem = cast(HTTPException, error)  # Starlette sends only these to status handlers
    title, text = _HTTP_ERRORS[problem.status_code]
    message = text.format(method=request.method)
    if "text/html" not in request.headers.get("accept", ""):
        error_text = f"{title.lower()}: {request.method} {request.url.path}"
        return JSONResponse({"error": error_text}, problem.status_code, problem.headers)
    html = templates.get_template("error.html").render(
        title=title, message=message, path=request.url.path, caller=None
    )
    return HTMLResponse(html, problem.status_code, problem.headers)
