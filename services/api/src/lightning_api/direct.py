"""`DirectRoute`: a route FastAPI documents like any other but serves on a short path.

FastAPI's request handler was a third of POST /api/events' CPU time (the ASGI app called
by 64 concurrent clients in one process: 204 µs per request with it, 130 µs with this):
per request it parses Content-Type with the `email` package and walks the dependency
graph afresh. A DirectRoute keeps the endpoint, its signature and so its OpenAPI
operation, and serves a well-formed request by decoding and validating the body as
FastAPI does (`json.loads`, then the route's own body field), calling the endpoint's
dependencies from a plan made once, and validating and encoding the reply with FastAPI's
`serialize_response`.

Anything else goes to FastAPI's own handler before the endpoint runs: a body that is not
JSON or does not validate (decoded, or validated, twice then: only failing requests pay
that), an app with dependency overrides. Errors therefore read exactly as on every other
route, and a test that overrides a dependency sees it used.

Only endpoints that fit are accepted, checked when the route is made: one JSON body (not
embedded, not a form), a response model, and dependencies that are `async` callables of
the request and of other such dependencies (no path, query, header or cookie parameters,
no Response, BackgroundTasks or websocket parameter, no `yield`, no `use_cache=False`, no
concurrency limit, no security scopes). A DirectRoute belongs on the app's
own router (`app.router.add_api_route`): FastAPI applies an included router's
dependencies and defaults per inclusion, out of the route's reach, so including one is
refused (when FastAPI first builds the included route: with the OpenAPI document or the
first request). FastAPI's telemetry hooks (off in this app) do not see the short path.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, params, status
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, serialize_response
from starlette.requests import ClientDisconnect

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class NotDirect(TypeError):
    """The endpoint needs something only FastAPI's own handler provides."""


@dataclass(frozen=True)
class _Call:
    """A callable with where each of its arguments comes from."""

    call: Callable[..., Awaitable[Any]]
    request_names: tuple[str, ...]  # parameters that get the Request
    # Dependencies in order, with the parameter each fills; None for those declared in
    # `dependencies=[...]`, which run for their effect (a check that raises) only.
    needs: tuple[tuple[str | None, _Call], ...]

    async def solve(self, request: Request, solved: dict[object, Any], **given: Any) -> Any:
        """Call it; each dependency is called once per request, as FastAPI does."""
        arguments = dict.fromkeys(self.request_names, request)
        for name, need in self.needs:
            if need.call not in solved:
                solved[need.call] = await need.solve(request, solved)
            if name is not None:
                arguments[name] = solved[need.call]
        return await self.call(**arguments, **given)


def _plan(dependant: Dependant, *, body: bool) -> _Call:
    where = getattr(dependant.call, "__qualname__", repr(dependant.call))
    unsupported = {
        "path parameters": dependant.path_params,
        "query parameters": dependant.query_params,
        "header parameters": dependant.header_params,
        "cookie parameters": dependant.cookie_params,
        "a websocket": dependant.websocket_param_name,
        "a Response parameter": dependant.response_param_name,
        "background tasks": dependant.background_tasks_param_name,
        "security scopes": dependant.security_scopes_param_name or dependant.own_oauth_scopes,
        "a concurrency limit": dependant.concurrency,
        "a body": None if body else dependant.body_params,
    }
    for what, present in unsupported.items():
        if present:
            raise NotDirect(f"{where} takes {what}")
    call = dependant.call
    if call is None or not (
        inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)
    ):
        raise NotDirect(f"{where} is not an async function (generators and sync ones need FastAPI)")
    if not dependant.use_cache:
        raise NotDirect(f"{where} is declared with use_cache=False")
    names = (dependant.request_param_name, dependant.http_connection_param_name)
    return _Call(
        call=call,
        request_names=tuple(name for name in names if name),
        needs=tuple((sub.name, _plan(sub, body=False)) for sub in dependant.dependencies),
    )


def is_json(content_type: str | None) -> bool:
    """The media types FastAPI decodes as JSON: application/json and application/*+json."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type.count("/") != 1:  # the `email` parser FastAPI uses reads it as text/plain
        return False
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class DirectRoute(APIRoute):
    """Use with `app.router.add_api_route(..., route_class_override=DirectRoute)`."""

    _handler: Handler | None = None

    def get_route_handler(self) -> Handler:
        if self._handler is not None:  # FastAPI builds it again for every inclusion
            raise NotDirect(
                f"{self.path}: add a direct route to the app, not to an included router"
            )
        fastapi_handler = super().get_route_handler()
        response_field = self.response_field
        if response_field is None or not isinstance(self.response_class, DefaultPlaceholder):
            raise NotDirect(f"{self.path}: a direct route answers with its response model")
        bodies, body_field = self.dependant.body_params, self.body_field
        info = bodies[0].field_info if len(bodies) == 1 else None
        if body_field is None or type(info) is not params.Body or info.embed:
            raise NotDirect(f"{self.path}: a direct route takes exactly one JSON body")
        endpoint = _plan(self.dependant, body=True)
        body_name = bodies[0].name
        status_code = self.status_code or status.HTTP_200_OK  # FastAPI's default too

        async def handle(request: Request) -> Response:
            overrides = getattr(self.dependency_overrides_provider, "dependency_overrides", None)
            if overrides or not is_json(request.headers.get("content-type")):
                return await fastapi_handler(request)
            try:
                decoded = json.loads(await request.body())  # as FastAPI decodes it
            except (ValueError, RecursionError, ClientDisconnect):  # FastAPI words the 4xx
                return await fastapi_handler(request)
            body, errors = body_field.validate(decoded, {}, loc=("body",))
            if errors:
                return await fastapi_handler(request)
            result = await endpoint.solve(request, {}, **{body_name: body})
            if isinstance(result, Response):
                return result
            content = await serialize_response(  # FastAPI's own: validate, then encode
                field=response_field,
                response_content=result,
                include=self.response_model_include,
                exclude=self.response_model_exclude,
                by_alias=self.response_model_by_alias,
                exclude_unset=self.response_model_exclude_unset,
                exclude_defaults=self.response_model_exclude_defaults,
                exclude_none=self.response_model_exclude_none,
                dump_json=True,
            )
            return Response(content, status_code=status_code, media_type="application/json")

        self._handler = handle
        return handle
