"""`DoorRoute`: what every API route checks before FastAPI reads, parses or validates a body.

In order: the caller (a route that depends on `CurrentUser` authenticates first, so an
unauthenticated request never has its body read: FastAPI reads it before it solves
dependencies); the content type (415 unless JSON); then the JSON itself, parsed here with
the rules every store and consumer can keep: no NaN or Infinity, no nesting past what the
parser or a store takes, no NUL character or lone surrogate in any key or string (422
naming the field). How many bytes a body may have is `lightning_core.body_limit`'s job,
in front of the whole app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, NoReturn

from fastapi import HTTPException, Request, Response, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lightning_api.dependencies import authenticate, current_user
from lightning_core.storage.base import InvalidDocument, check_document

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

JSON_TYPE = "application/json"


class DoorRoute(APIRoute):
    """An APIRoute that authenticates, checks the content type and parses JSON as above."""

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
    """The JSON value in `raw`, or HTTPException 422 saying what in it is refused.

    Malformed JSON raises json.JSONDecodeError, which FastAPI answers as for any route.
    """
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        _refuse("the body nests too deep to parse")
    if isinstance(value, dict):
        try:
            check_document(value)
        except InvalidDocument as error:
            _refuse(str(error))
    return value


def invalid(message: str, loc: tuple[str | int, ...] = ("body",)) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors."""
    detail = [{"type": "value_error", "loc": list(loc), "msg": message}]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def _refuse(message: str) -> NoReturn:
    raise invalid(message)


def _refuse_constant(name: str) -> NoReturn:
    _refuse(f"{name} is not a JSON number")


def _check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != JSON_TYPE and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the body as {JSON_TYPE} (Content-Type: {media_type or 'none'})",
        )


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for child in dependant.dependencies:
        yield from _walk(child)
