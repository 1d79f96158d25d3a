"""`DoorRoute`: what every API route checks before FastAPI reads, parses or validates a body."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, NoReturn

from fastapi import HTTPException, Request, Response, status
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from lightning_api.dependencies import authenticate, current_user
from lightning_core.storage.base import InvalidDocument, check_document

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

JSON_TYPE = "application/json"


class DoorRoute(APIRoute):
    """An APIRoute that authenticates the caller before FastAPI reads the body; a route with
    a declared body then answers 415 unless it is JSON (`application/json` or `+json`) and
    parses it with `parse_json`."""

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        needs_user = any(dependant.call is current_user for dependant in _walk(self.dependant))
        takes_body = self.body_field is not None

        async def door(request: Request) -> Response:
            if needs_user:
                await authenticate(request)
            if takes_body:
                _check_content_type(request)
                request = _JsonRequest(request.scope, request.receive)
            return await handle(request)

        return door


class _JsonRequest(Request):
    async def json(self) -> Any:
        return parse_json(await self.body())


def parse_json(raw: bytes) -> Any:
    """The JSON value in `raw`; HTTPException 422 for NaN or Infinity, nesting too deep, or
    what `check_document` refuses (a batch's item named by index); json.JSONDecodeError
    when malformed."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        _refuse("the body nests too deep to parse")
    if isinstance(value, dict):
        _check_document(value, ("body",))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                _check_document(item, ("body", index))
    return value


def _check_document(value: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    try:
        check_document(value)
    except InvalidDocument as error:
        raise invalid(str(error), loc) from None


async def read_json(request: Request) -> Any:
    """The request's JSON body (`parse_json`) for a route that reads its own, answered as
    FastAPI answers a route's body: 422 when missing or malformed, 400 when not UTF-8."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return parse_json(raw)
    except json.JSONDecodeError as error:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", error.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": error.msg},
                }
            ]
        ) from None
    except UnicodeDecodeError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "There was an error parsing the body"
        ) from None


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower-case ('' when there is none)."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def invalid(message: str, loc: tuple[str | int, ...] = ("body",)) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors."""
    detail = [{"type": "value_error", "loc": list(loc), "msg": message}]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def _refuse(message: str) -> NoReturn:
    raise invalid(message)


def _refuse_constant(name: str) -> NoReturn:
    _refuse(f"{name} is not a JSON number")


def _check_content_type(request: Request) -> None:
    sent = media_type(request)
    if sent != JSON_TYPE and not (sent.startswith("application/") and sent.endswith("+json")):
        raise unsupported(sent, JSON_TYPE)


def unsupported(sent: str, *accepted: str) -> HTTPException:
    """415 naming the media types accepted instead of `sent`."""
    return HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        f"send the body as {' or '.join(accepted)} (Content-Type: {sent or 'none'})",
    )


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for child in dependant.dependencies:
        yield from _walk(child)
