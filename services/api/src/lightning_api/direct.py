"""`DirectRoute`: a route FastAPI documents like any other but serves on a short path.

FastAPI's request handler was a third of POST /api/events' CPU time (the ASGI app called
by 64 concurrent clients in one process: 204 µs per request with it, 130 µs with this):
per request it parses Content-Type with the `email` package, walks the dependency graph,
decodes the body to a dict and validates that, then validates the returned model again
before encoding it. A
DirectRoute keeps the endpoint, its signature and so its OpenAPI operation, and serves
a well-formed request by validating the body from the raw bytes with pydantic's JSON
parser, calling the endpoint's dependencies from a plan made once, and encoding the
returned model once.

Anything else goes to FastAPI's own handler, before any work is done: a body that is not
JSON or does not validate, an app with dependency overrides. Errors therefore read
exactly as on every other route, and a test that overrides a dependency sees it used.

Only endpoints that fit are accepted, checked when the route is made: one JSON body
model, a response model, and dependencies that are `async` callables of the request and
of other such dependencies (no query, header or cookie parameters, no `yield`).
Dependencies given to `include_router(dependencies=...)` are not seen: FastAPI applies
those per inclusion, out of a route's reach. Declare them on the endpoint instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, status
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class NotDirect(TypeError):
    """The endpoint needs something only FastAPI's own handler provides."""


@dataclass(frozen=True)
class _Call:
    """A callable with where each of its arguments comes from."""

    call: Callable[..., Awaitable[Any]]
    request_names: tuple[str, ...]  # parameters that get the Request
    needs: tuple[tuple[str, _Call], ...]  # parameter name, the dependency that fills it

    async def solve(self, request: Request, solved: dict[object, Any], **given: Any) -> Any:
        """Call it; each dependency is called once per request, as FastAPI does."""
        arguments = dict.fromkeys(self.request_names, request)
        for name, need in self.needs:
            if need.call not in solved:
                solved[need.call] = await need.solve(request, solved)
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
        "security scopes": dependant.security_scopes_param_name,
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
        needs=tuple((str(sub.name), _plan(sub, body=False)) for sub in dependant.dependencies),
    )


def _body_model(dependant: Dependant) -> tuple[str, type[BaseModel]]:
    if len(dependant.body_params) != 1:
        raise NotDirect("a direct route takes exactly one body parameter")
    field = dependant.body_params[0]
    model = field.field_info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or field.field_info.metadata:
        raise NotDirect(f"the body {field.name} is not a plain pydantic model")
    return field.name, model


def is_json(content_type: str | None) -> bool:
    """The media types FastAPI decodes as JSON: application/json and application/*+json."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class DirectRoute(APIRoute):
    """Use with `router.add_api_route(..., route_class_override=DirectRoute)`."""

    def get_route_handler(self) -> Handler:
        fastapi_handler = super().get_route_handler()
        response_field = self.response_field
        if response_field is None or not isinstance(self.response_class, DefaultPlaceholder):
            raise NotDirect(f"{self.path}: a direct route answers with its response model")
        body_name, model = _body_model(self.dependant)
        endpoint = _plan(self.dependant, body=True)
        status_code = self.status_code or status.HTTP_200_OK  # FastAPI's default too

        async def handle(request: Request) -> Response:
            if request.app.dependency_overrides or not is_json(request.headers.get("content-type")):
                return await fastapi_handler(request)
            try:
                body = model.model_validate_json(await request.body())
            except ValidationError:
                return await fastapi_handler(request)  # FastAPI words the 422
            result = await endpoint.solve(request, {}, **{body_name: body})
            value, errors = response_field.validate(result, {}, loc=("response",))
            if errors:
                raise ResponseValidationError(errors, body=result)
            content = response_field.serialize_json(
                value,
                include=self.response_model_include,
                exclude=self.response_model_exclude,
                by_alias=self.response_model_by_alias,
                exclude_unset=self.response_model_exclude_unset,
                exclude_defaults=self.response_model_exclude_defaults,
                exclude_none=self.response_model_exclude_none,
            )
            return Response(content, status_code=status_code, media_type="application/json")

        return handle
