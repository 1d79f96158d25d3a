"""The UI's pages, rendered on the server: each whole, and its live part as a partial
(`/partials/<page>`) that `static/poll.js` fetches again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from lightning_core.domain import PROCESSOR_GROUP, TaskKind, TaskStatus, now
from lightning_core.wire import ServiceOut
from lightning_ui.api_client import ApiClient, ApiRejected, ApiUnavailable
from lightning_ui.auth import caller_of
from lightning_ui.forms import FIELDS

Values = dict[str, Any]
#: What a page shows, read from the API as the caller.
Load = Callable[[ApiClient], Awaitable[Values]]
Endpoint = Callable[[Request], Awaitable[HTMLResponse]]

templates = Environment(
    loader=PackageLoader("lightning_ui", "templates"), autoescape=select_autoescape()
)
templates.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M:%S")
templates.filters["ago"] = lambda value: f"{max(0, round((now() - value).total_seconds()))} s ago"
templates.globals.update(task_kinds=list(TaskKind), task_statuses=list(TaskStatus))
#: The background services the dashboard expects a heartbeat from.
templates.globals["background_services"] = [PROCESSOR_GROUP]
#: The navigation bar: each page's path and link label, in menu order.
templates.globals["navigation"] = [
    ("/", "Dashboard"),
    ("/instructions", "Instructions"),
    ("/tasks", "Tasks"),
    ("/notifications", "Notifications"),
    ("/dead-letters", "Dead letters"),
]


def page(template: str, load: Load) -> Endpoint:
    """A whole page: `template` over what `load` reads, its navigation link marked current."""

    async def endpoint(request: Request) -> HTMLResponse:
        return await _render(request, template, load, current=request.url.path)

    return endpoint


def partial(template: str, load: Load) -> Endpoint:
    """A page's live part: `template` over what `load` reads."""

    async def endpoint(request: Request) -> HTMLResponse:
        return await _render(request, template, load)

    return endpoint


async def _render(request: Request, template: str, load: Load, **extra: Any) -> HTMLResponse:
    """The page, or 503 with the page saying what the API did not answer."""
    caller = await caller_of(request)
    try:
        values, error = await load(caller.api), None
    except ApiUnavailable as problem:
        values, error = {}, str(problem)
    html = templates.get_template(template).render(
        **values, **extra, error=error, fields=FIELDS, caller=caller
    )
    return HTMLResponse(html, status_code=503 if error else 200)


async def health_and_counts(api: ApiClient) -> Values:
    readiness, services, counts = await asyncio.gather(
        api.readiness(), _services_if_known(api), api.counts()
    )
    return {"readiness": readiness, "services": services, "counts": counts}


async def dashboard(api: ApiClient) -> Values:
    health, recent = await asyncio.gather(health_and_counts(api), api.recent_events())
    return {**health, "events": recent}


async def events(api: ApiClient) -> Values:
    return {"events": await api.recent_events()}


async def instructions(api: ApiClient) -> Values:
    return {"instructions": await api.instructions()}


async def tasks(api: ApiClient) -> Values:
    return {"tasks": await api.tasks()}


async def notifications(api: ApiClient) -> Values:
    return {"notifications": await api.notifications()}


async def dead_letters(api: ApiClient) -> Values:
    return {"dead_letters": await api.dead_letters()}


async def _services_if_known(api: ApiClient) -> dict[str, ServiceOut] | None:
    """The heartbeats, or None when the API cannot say: the rest of the dashboard still shows."""
    try:
        return await api.services()
    except (ApiRejected, ApiUnavailable):
        return None
