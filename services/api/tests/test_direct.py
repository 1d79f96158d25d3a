"""DirectRoute answers exactly as FastAPI's own handler would, and documents the same.

The same endpoint is served twice in one app, once by DirectRoute and once by a plain
APIRoute, and every request below goes to both: status, content type and body must match.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import (
    APIRouter,
    Body,
    Depends,
    FastAPI,
    HTTPException,
    Query,
    Request,
    Security,
    status,
)
from fastapi.exceptions import ResponseValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.types import Message

from lightning_api.direct import DirectRoute, NotDirect, is_json


class Order(BaseModel):
    item: str = Field(min_length=1, pattern=r"^[a-z]+$")
    quantity: int = Field(default=1, ge=1)
    notes: dict[str, Any] = Field(default_factory=dict)


class Accepted(BaseModel):
    order: Order
    by: str


async def _header_user(request: Request) -> str:
    user = request.headers.get("x-user")
    if not user:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "who are you?")
    return user


class Counter:
    """A dependency that counts its calls: FastAPI calls it once per request."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: Request) -> int:
        assert isinstance(request, Request)
        self.calls += 1
        return self.calls


counter = Counter()
User = Annotated[str, Depends(_header_user)]


async def _shouting_user(user: User, count: Annotated[int, Depends(counter)]) -> str:
    assert count > 0
    return user.upper()


async def _not_blocked(request: Request) -> None:
    """Declared in the route's `dependencies=[...]`: run for its check, passed to nobody."""
    if request.headers.get("x-block"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "blocked")


accepted_orders: list[Order] = []


async def accept(
    order: Order,
    user: User,
    shouted: Annotated[str, Depends(_shouting_user)],
    count: Annotated[int, Depends(counter)],
    request: Request,
) -> Any:
    assert isinstance(request, Request)
    assert count > 0
    accepted_orders.append(order)
    if order.item == "boom":
        raise HTTPException(status.HTTP_409_CONFLICT, "no booms")
    if order.item == "raw":
        return JSONResponse({"raw": True}, status_code=status.HTTP_201_CREATED)
    return Accepted(order=order, by=f"{user}/{shouted}")


def both_ways() -> FastAPI:
    app = FastAPI()
    for path, route_class in (("/direct", DirectRoute), ("/plain", None)):
        app.router.add_api_route(
            path,
            accept,
            methods=["POST"],
            status_code=status.HTTP_202_ACCEPTED,
            response_model=Accepted,
            dependencies=[Depends(_not_blocked)],
            route_class_override=route_class,
        )
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=both_ways())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


JSON = {"content-type": "application/json"}
ALICE = {"x-user": "alice"}
REQUESTS: dict[str, tuple[dict[str, str], bytes]] = {
    "valid": ({**JSON, **ALICE}, b'{"item": "tea", "quantity": 2, "notes": {"a": [1, null]}}'),
    "defaults": ({**JSON, **ALICE}, b'{"item": "tea"}'),
    "+json type with charset": (
        {"content-type": "application/vnd.order+json; charset=utf-8", **ALICE},
        b'{"item": "tea"}',
    ),
    "invalid field": ({**JSON, **ALICE}, b'{"item": "Tea!", "quantity": 0}'),
    "missing field": ({**JSON, **ALICE}, b'{"quantity": 3}'),
    "extra nesting": ({**JSON, **ALICE}, b'{"item": {"x": 1}}'),
    "not an object": ({**JSON, **ALICE}, b"[1, 2]"),
    "broken JSON": ({**JSON, **ALICE}, b'{"item": '),
    "empty body": ({**JSON, **ALICE}, b""),
    "text/plain": ({"content-type": "text/plain", **ALICE}, b'{"item": "tea"}'),
    "no content type": (ALICE, b'{"item": "tea"}'),
    "no user": (JSON, b'{"item": "tea"}'),
    "endpoint refuses": ({**JSON, **ALICE}, b'{"item": "boom"}'),
    "NaN in data": ({**JSON, **ALICE}, b'{"item": "tea", "notes": {"x": NaN}}'),
    "duplicate keys": ({**JSON, **ALICE}, b'{"item": "Bad!", "item": "tea"}'),
    "huge numbers": ({**JSON, **ALICE}, b'{"item": "tea", "notes": {"x": 1e400, "y": -0}}'),
    "an int too long": ({**JSON, **ALICE}, b'{"item": "tea", "quantity": 1' + b"0" * 4400 + b"}"),
    "UTF-8 BOM": ({**JSON, **ALICE}, b'\xef\xbb\xbf{"item": "tea"}'),
    "UTF-16": ({**JSON, **ALICE}, '{"item": "tea"}'.encode("utf-16")),
    "invalid UTF-8": ({**JSON, **ALICE}, b'{"item": "t\xffa"}'),
    "nested too deep": (
        {**JSON, **ALICE},
        b'{"item": "tea", "notes": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    ),
    "two slashes +json": ({"content-type": "application/x/+json", **ALICE}, b'{"item": "tea"}'),
    "a Response from the endpoint": ({**JSON, **ALICE}, b'{"item": "raw"}'),
    "a route dependency refuses": ({**JSON, **ALICE, "x-block": "1"}, b'{"item": "tea"}'),
}


@pytest.mark.parametrize("name", REQUESTS)
async def test_answers_as_fastapi_does(client: httpx.AsyncClient, name: str) -> None:
    headers, body = REQUESTS[name]
    accepted_orders.clear()
    direct = await client.post("/direct", headers=headers, content=body)
    by_direct = list(accepted_orders)
    plain = await client.post("/plain", headers=headers, content=body)
    assert direct.status_code == plain.status_code
    assert direct.headers == plain.headers
    assert direct.content == plain.content
    assert by_direct == accepted_orders[len(by_direct) :]  # the endpoint ran alike


@pytest.mark.parametrize(
    ("name", "by_fastapi"),
    [("valid", False), ("defaults", False), ("invalid field", True), ("text/plain", True)],
)
async def test_only_what_fails_the_short_path_reaches_fastapis_handler(
    monkeypatch: pytest.MonkeyPatch, name: str, by_fastapi: bool
) -> None:
    served: list[str] = []
    fastapi_handler = APIRoute.get_route_handler

    def counted(route: APIRoute) -> Any:
        handler = fastapi_handler(route)

        async def handle(request: Request) -> Any:
            served.append(request.url.path)
            return await handler(request)

        return handle

    monkeypatch.setattr(APIRoute, "get_route_handler", counted)
    transport = httpx.ASGITransport(app=both_ways())
    headers, body = REQUESTS[name]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await http.post("/direct", headers=headers, content=body)
    assert served == (["/direct"] if by_fastapi else [])


@pytest.mark.parametrize("path", ["/direct", "/plain"])
async def test_each_dependency_is_called_once_per_request(
    client: httpx.AsyncClient, path: str
) -> None:
    """`counter` is needed twice (by the endpoint and by `_shouting_user`): one call."""
    headers, body = REQUESTS["valid"]
    before = counter.calls
    accepted = (await client.post(path, headers=headers, content=body)).json()
    assert counter.calls == before + 1
    assert accepted["by"] == "alice/ALICE"


async def test_dependency_overrides_are_used() -> None:
    app = both_ways()
    app.dependency_overrides[_header_user] = lambda: "mallory"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/direct", json={"item": "tea"})
    assert response.status_code == 202
    assert response.json()["by"] == "mallory/MALLORY"


def test_documents_the_endpoint_as_fastapi_does() -> None:
    operations = both_ways().openapi()["paths"]
    direct, plain = operations["/direct"]["post"], operations["/plain"]["post"]
    for operation in (direct, plain):
        del operation["operationId"], operation["summary"]
    assert direct == plain


def never(*_arguments: object) -> Accepted:
    raise AssertionError("a refused route is never served")


def _sync_user(request: Request) -> str:
    return str(request.url)


def _generator_user() -> Any:
    yield "x"


async def _by_query(order: Order, page: Annotated[int, Query()] = 1) -> Accepted:
    return never(order, page)


async def _by_generator(order: Order, user: Annotated[str, Depends(_generator_user)]) -> Accepted:
    return never(order, user)


async def _by_sync(order: Order, user: Annotated[str, Depends(_sync_user)]) -> Accepted:
    return never(order, user)


async def _two_bodies(order: Order, other: Order) -> Accepted:
    return never(order, other)


async def _no_model(order: Order) -> dict[str, str]:
    never(order)
    return {}


async def _limited() -> str:
    return "x"


async def _scoped() -> str:
    return "x"


async def _by_limited(
    order: Order, user: Annotated[str, Depends(_limited, max_concurrency=1)]
) -> Accepted:
    return never(order, user)


async def _by_scoped(
    order: Order, user: Annotated[str, Security(_scoped, scopes=["a"])]
) -> Accepted:
    return never(order, user)


async def _embedded(order: Annotated[Order, Body(embed=True)]) -> Accepted:
    return never(order)


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        (_by_query, "query parameters"),
        (_by_generator, "not an async function"),
        (_by_sync, "not an async function"),
        (_two_bodies, "exactly one JSON body"),
        (_embedded, "exactly one JSON body"),
        (_by_limited, "concurrency limit"),  # FastAPI alone enforces these
        (_by_scoped, "security scopes"),
    ],
)
def test_endpoints_it_cannot_serve_are_refused_at_startup(endpoint: Any, reason: str) -> None:
    app = FastAPI()
    with pytest.raises(NotDirect, match=reason):
        app.router.add_api_route("/x", endpoint, methods=["POST"], route_class_override=DirectRoute)


def test_a_response_model_is_required() -> None:
    app = FastAPI()
    with pytest.raises(NotDirect, match="response model"):
        app.router.add_api_route(
            "/x",
            _no_model,
            methods=["POST"],
            route_class_override=DirectRoute,
            response_model=None,
        )


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/cloudevents+json", True),
        ("text/json", False),
        ("application/jsonx", False),
        ("multipart/form-data", False),
        (None, False),
    ],
)
def test_is_json(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected


async def _returns_the_wrong_shape(order: Order) -> Accepted:
    wrong: Any = {"order": order}  # no `by`: the response model refuses it
    return wrong  # type: ignore[no-any-return]


@pytest.mark.parametrize("route_class", [DirectRoute, APIRoute])
async def test_a_reply_that_breaks_the_response_model_is_an_error(route_class: Any) -> None:
    app = FastAPI()
    app.router.add_api_route(
        "/x", _returns_the_wrong_shape, methods=["POST"], route_class_override=route_class
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with pytest.raises(ResponseValidationError):
            await http.post("/x", json={"item": "tea"})


@pytest.mark.parametrize("path", ["/direct", "/plain"])
async def test_a_client_gone_before_its_body_arrived_gets_fastapis_400(path: str) -> None:
    app = both_ways()
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("test", 80),
        "headers": [(b"content-type", b"application/json"), (b"x-user", b"alice")],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == status.HTTP_400_BAD_REQUEST


def test_including_a_direct_route_is_refused() -> None:
    """An inclusion could add dependencies (auth) the short path would never call.

    FastAPI builds included routes lazily: the refusal comes with the OpenAPI document or
    the first request, whichever is first, and never as a silently served request."""
    router = APIRouter()
    router.add_api_route("/x", accept, methods=["POST"], route_class_override=DirectRoute)
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(NotDirect, match="not to an included router"):
        app.openapi()
