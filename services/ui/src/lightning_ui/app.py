"""Server-rendered pages over the API: dashboard, instructions, tasks, notifications and
dead letters.

Each page is rendered whole once and has a partial (`/partials/<page>`) with its live
part: `static/poll.js` fetches that again every second or so (and right after a button
changes something), and on the dashboard `/stream` relays the API's event stream as
Server-Sent Events carrying rendered table rows that `static/live.js` puts in place. The
browser has no templates of its own. Forms and buttons post JSON with fetch to the UI's
own endpoints, which forward to the API and answer with JSON (`errors` per form field).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lightning_core.body_limit import BodyLimit
from lightning_core.config import Settings
from lightning_core.domain import PROCESSOR_GROUP, Instruction, TaskKind, TaskStatus, now
from lightning_ui import sse
from lightning_ui.api_client import ApiClient, ApiRejected, ApiUnavailable, ServiceState
from lightning_ui.auth import (
    CrossSiteRequest,
    Gate,
    cross_site_request,
    entra_unavailable,
    sign_in_required,
)
from lightning_ui.forms import (
    FIELDS,
    FORM,
    FormErrors,
    field_errors,
    form_from_instruction,
    spec_from_form,
)
from lightning_ui.headers import SecurityHeaders, content_security_policy
from lightning_ui.signin import EntraUnavailable, SignInRequired

STATIC = Path(__file__).parent / "static"
RECONNECT_MS = 1000  # how soon the browser reconnects after the stream ends
_LIMIT = Settings.model_fields["max_request_bytes"]
MAX_REQUEST_BYTES: int = _LIMIT.default
MAX_REQUEST_BYTES_SETTING = str(_LIMIT.alias)
_templates = Environment(
    loader=PackageLoader("lightning_ui", "templates"), autoescape=select_autoescape()
)
_templates.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M:%S")
_templates.filters["ago"] = lambda value: f"{max(0, round((now() - value).total_seconds()))} s ago"
_templates.globals.update(task_kinds=list(TaskKind), task_statuses=list(TaskStatus))
#: The background services the dashboard expects a heartbeat from.
_templates.globals["background_services"] = [PROCESSOR_GROUP]
#: Navigation: path, page name (template `<name>.html`, partial `_<name>.html`), label.
PAGES = (
    ("/", "index", "Dashboard"),
    ("/instructions", "instructions", "Instructions"),
    ("/tasks", "tasks", "Tasks"),
    ("/notifications", "notifications", "Notifications"),
    ("/dead-letters", "dead_letters", "Dead letters"),
)
_templates.globals["pages"] = PAGES
T = TypeVar("T")


async def until(stop: asyncio.Event, items: AsyncGenerator[T]) -> AsyncIterator[T]:
    """`items` until they end or `stop` is set, then close them.

    uvicorn waits for open responses before it exits, and a relay is usually waiting
    on the API, so it has to give up on the API the moment the service stops.
    """
    stopping = asyncio.ensure_future(stop.wait())
    step: asyncio.Future[T] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(items))
            await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                return
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        stopping.cancel()
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait({step})  # the generator must be idle before it is closed
        await items.aclose()


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
    stopped = stop or asyncio.Event()
    callers = gate or Gate(api, sign_in=None)

    async def health_and_counts(api: ApiClient) -> dict[str, Any]:
        readiness, services, counts = await asyncio.gather(
            api.readiness(), _services_if_known(api), api.counts()
        )
        return {"readiness": readiness, "services": services, "counts": counts}

    async def dashboard(api: ApiClient) -> dict[str, Any]:
        health, events = await asyncio.gather(health_and_counts(api), api.recent_events())
        return {**health, "events": events}

    loaders: dict[str, Callable[[ApiClient], Awaitable[dict[str, Any]]]] = {
        "index": dashboard,
        "dashboard": health_and_counts,
        "events": lambda api: _named(events=api.recent_events()),
        "instructions": lambda api: _named(instructions=api.instructions()),
        "tasks": lambda api: _named(tasks=api.tasks()),
        "notifications": lambda api: _named(notifications=api.notifications()),
        "dead_letters": lambda api: _named(dead_letters=api.dead_letters()),
    }

    async def render(request: Request, template: str, loader: str, **extra: Any) -> HTMLResponse:
        caller = await callers.caller(request)
        try:
            values, error = await loaders[loader](caller.api), None
        except ApiUnavailable as problem:
            values, error = {}, str(problem)
        html = _templates.get_template(template).render(
            **values, **extra, error=error, fields=FIELDS, caller=caller
        )
        return HTMLResponse(html, status_code=503 if error else 200)

    def page(name: str, path: str) -> Route:
        async def endpoint(request: Request) -> HTMLResponse:
            return await render(request, f"{name}.html", name, current=path)

        return Route(path, endpoint)

    def partial(name: str) -> Route:
        async def endpoint(request: Request) -> HTMLResponse:
            return await render(request, f"_{name}.html", name)

        return Route(f"/partials/{name.replace('_', '-')}", endpoint)

    async def relay(api: ApiClient) -> AsyncIterator[str]:
        yield f"retry: {RECONNECT_MS}\n\n"
        row = _templates.get_template("_event_row.html")
        try:
            async for change in until(stopped, api.changes()):
                if change.record is not None:
                    yield sse.message("row", row.render(record=change.record))
                elif change.kind == "ready":
                    yield sse.message("ready", "{}")
                else:
                    yield ": ping\n\n"
        except ApiUnavailable as problem:
            yield sse.message("unavailable", str(problem))

    async def stream(request: Request) -> StreamingResponse:
        """Rows as the API reports changes; `ready` when a fresh rendering is due.

        Always 200 once signed in: an EventSource gives up for good on an error status,
        while a stream that ends (the API went away) is retried after RECONNECT_MS.
        """
        caller = await callers.caller(request)
        return StreamingResponse(
            relay(caller.api),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def favicon(_request: Request) -> Response:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    policy = content_security_policy(callers.form_targets())
    return Starlette(
        routes=[
            *(page(name, path) for path, name, _label in PAGES),
            *(partial(name) for name in loaders if name != "index"),
            *callers.routes(),
            *_instruction_routes(callers),
            *(_action(path, call, callers) for path, call in ACTIONS),
            Route("/stream", stream),
            Route("/healthz", healthz),
            Route("/favicon.ico", favicon),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
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


async def _client_gone(_request: Request, _error: Exception) -> Response:
    """The client went while its body was read (or BodyLimit cut it off): no one to answer."""
    return Response(status_code=400)


#: What a browser is told for an HTTP error status: page title and explanation.
_HTTP_ERRORS = {
    404: ("Not found", "There is no page at this address."),
    405: ("Not allowed", "This address does not answer a {method}."),
}


async def _http_error(request: Request, error: Exception) -> Response:
    """404 and 405: a page in the UI's style for a browser, JSON `{"error": ...}` for a
    script or a button's fetch."""
    problem = cast(HTTPException, error)  # Starlette sends only these to status handlers
    title, text = _HTTP_ERRORS[problem.status_code]
    message = text.format(method=request.method)
    if "text/html" not in request.headers.get("accept", ""):
        error_text = f"{title.lower()}: {request.method} {request.url.path}"
        return JSONResponse({"error": error_text}, problem.status_code, problem.headers)
    html = _templates.get_template("error.html").render(
        title=title, message=message, path=request.url.path, caller=None
    )
    return HTMLResponse(html, problem.status_code, problem.headers)


#: The buttons: path (with the record's id) and what it asks the API for.
ACTIONS: list[tuple[str, Callable[[ApiClient, str], Awaitable[None]]]] = [
    ("/instructions/{id}/enable", lambda api, i: api.set_instruction_enabled(i, enabled=True)),
    ("/instructions/{id}/disable", lambda api, i: api.set_instruction_enabled(i, enabled=False)),
    ("/instructions/{id}/delete", ApiClient.delete_instruction),
    ("/tasks/{id}/cancel", ApiClient.cancel_task),
    ("/notifications/{id}/read", ApiClient.mark_read),
    ("/dead-letters/{id}/replay", ApiClient.replay),
]


def _action(path: str, call: Callable[[ApiClient, str], Awaitable[None]], callers: Gate) -> Route:
    """A button's POST: forward to the API; JSON `{}` or `{"error": ...}` back."""

    async def endpoint(request: Request) -> JSONResponse:
        caller = await callers.caller(request)
        try:
            await call(caller.api, request.path_params["id"])
        except ApiRejected as rejected:
            return JSONResponse({"error": str(rejected.detail)}, rejected.status_code)
        except ApiUnavailable as problem:
            return JSONResponse({"error": str(problem)}, 503)
        return JSONResponse({})

    return Route(path, endpoint, methods=["POST"])


JSON = "application/json"
STALE_EDIT = (
    "this instruction was changed elsewhere since you opened it (another tab or a script): "
    "open it again to edit the current version"
)


def _instruction_routes(callers: Gate) -> list[Route]:
    """The instruction form, posted as JSON: `{id}` back, or `{errors: {field: message}}`."""

    async def read_form(request: Request) -> dict[str, Any]:
        # Only JSON: a cross-site HTML form can send text/plain that happens to parse.
        if request.headers.get("content-type", "").partition(";")[0].strip() != JSON:
            raise FormErrors({FORM: f"expected a {JSON} body"})
        form = await request.json()  # ValueError: not JSON at all
        if not isinstance(form, dict):
            raise FormErrors({FORM: "expected a JSON object"})
        return form

    async def save(
        request: Request,
        call: Callable[[ApiClient, dict[str, Any]], Awaitable[Instruction]],
        status_code: int,
    ) -> JSONResponse:
        caller = await callers.caller(request)
        try:
            form = await read_form(request)
            saved = await call(caller.api, form)
        except ValueError:
            return JSONResponse({"errors": {FORM: "expected a JSON object"}}, 400)
        except FormErrors as invalid:
            return JSONResponse({"errors": invalid.errors}, 422)
        except ApiRejected as rejected:
            errors = (
                {FORM: STALE_EDIT} if rejected.status_code == 412 else field_errors(rejected.detail)
            )
            return JSONResponse({"errors": errors}, rejected.status_code)
        except ApiUnavailable as problem:
            return JSONResponse({"errors": {FORM: str(problem)}}, 503)
        return JSONResponse({"id": saved.id}, status_code)

    async def create(request: Request) -> JSONResponse:
        return await save(
            request, lambda api, form: api.create_instruction(spec_from_form(form)), 201
        )

    async def replace(request: Request) -> JSONResponse:
        instruction_id = request.path_params["id"]
        return await save(
            request,
            lambda api, form: api.replace_instruction(
                instruction_id, spec_from_form(form), str(form.get("etag", ""))
            ),
            200,
        )

    async def edit(request: Request) -> JSONResponse:
        """The form's fields for one instruction, and the ETag its save must match."""
        caller = await callers.caller(request)
        try:
            instruction, etag = await caller.api.instruction(request.path_params["id"])
        except ApiRejected as rejected:
            return JSONResponse({"error": str(rejected.detail)}, rejected.status_code)
        except ApiUnavailable as problem:
            return JSONResponse({"error": str(problem)}, 503)
        return JSONResponse({"fields": form_from_instruction(instruction), "etag": etag})

    return [
        Route("/instructions", create, methods=["POST"]),
        Route("/instructions/{id}", replace, methods=["POST"]),
        Route("/instructions/{id}/form", edit),
    ]


async def _services_if_known(api: ApiClient) -> dict[str, ServiceState] | None:
    """The heartbeats, or None when the API cannot say (an older API during a rolling
    deploy, a store refusing the query): the rest of the dashboard still shows."""
    try:
        return await api.services()
    except (ApiRejected, ApiUnavailable):
        return None


async def _named(**values: Awaitable[Any]) -> dict[str, Any]:
    """Await each value; the template gets them by name."""
    return {name: await value for name, value in values.items()}
