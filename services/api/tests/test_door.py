"""Nothing a client sends reaches storage, the bus or a 5xx unchecked: the door's answers."""

import base64
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest

from lightning_api import resource
from lightning_api.app import create_app
from lightning_api.auth import TokenValidator
from lightning_core.config import Mode
from lightning_core.events import MAX_DATA_BYTES, MAX_DATA_DEPTH, MAX_EVENT_BYTES, CloudEvent
from lightning_core.records import EVENTS
from lightning_core.service import ServiceContext
from lightning_core.storage.base import InvalidDocument
from lightning_core.testing.entra_fake import EntraTokens

JSON = {"content-type": "application/json"}
JSON_CHARSET = "application/json; charset=utf-8"
INSTRUCTION = {"name": "n", "event_type": "door.opened", "action": {"kind": "notify", "title": "t"}}


@pytest.fixture
async def client(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


async def nothing_stored(context: ServiceContext) -> bool:
    return (await context.storage.query(EVENTS, context.settings.dev_user)).items == []


def nested(depth: int) -> dict[str, Any]:
    """`{"a": {"a": ... {}}}`, `depth` objects deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def messages(response: httpx.Response) -> str:
    return json.dumps(response.json()["detail"])


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/events", {"type": "a.b"}),
        ("/api/tasks", {"kind": "wait"}),
        ("/api/instructions", INSTRUCTION),
    ],
)
async def test_a_body_not_sent_as_json_is_415_naming_json(
    client: httpx.AsyncClient, content_type: str | None, path: str, body: dict[str, Any]
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(path, content=json.dumps(body), headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


async def test_json_with_a_charset_or_a_json_suffix_is_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/events", content=b'{"type": "a.b"}', headers={"content-type": JSON_CHARSET}
    )
    assert response.status_code == 202
    response = await client.post(
        "/api/tasks",
        content=b'{"kind": "wait"}',
        headers={"content-type": "application/vnd.example+json"},
    )
    assert response.status_code == 202


async def test_events_take_only_their_three_json_types(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    response = await client.post(
        "/api/events",
        content=b'{"type": "a.b"}',
        headers={"content-type": "application/vnd.example+json"},
    )
    assert response.status_code == 415
    for media_type in (
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    ):
        assert media_type in response.json()["detail"]
    assert await nothing_stored(context)


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/api/events", {"type": "a.b", "bogus": 1}, ["body", "bogus"]),
        ("/api/tasks", {"kind": "wait", "bogus": 1}, ["body", "wait", "bogus"]),
        ("/api/instructions", {**INSTRUCTION, "bogus": 1}, ["body", "bogus"]),
    ],
)
async def test_unknown_fields_are_422_naming_them(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], loc: list[str]
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers_are_422(
    client: httpx.AsyncClient, context: ServiceContext, constant: str
) -> None:
    body = f'{{"type": "a.b", "data": {{"x": [1, {constant}]}}}}'
    response = await client.post("/api/events", content=body, headers=JSON)
    assert response.status_code == 422
    assert constant in messages(response)
    assert await nothing_stored(context)


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        ('{"type": "a.b", "data": {"x": "\\u0000"}}', "data.x", "NUL"),
        ('{"type": "a.b", "data": {"x": ["ok", "\\ud800"]}}', "data.x[1]", "surrogate"),
        ('{"type": "a.b", "data": {"\\udfff": 1}}', "data", "surrogate"),
        ('{"type": "a.b", "subject": "s\\u0000"}', "subject", "NUL"),
    ],
)
async def test_nul_and_lone_surrogates_are_422_naming_the_field(
    client: httpx.AsyncClient, context: ServiceContext, body: str, where: str, what: str
) -> None:
    response = await client.post("/api/events", content=body, headers=JSON)
    assert response.status_code == 422
    assert where in messages(response)
    assert what in messages(response)
    assert await nothing_stored(context)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/tasks", '{"kind": "notify", "params": {"title": "\\ud800"}}'),
        (
            "/api/instructions",
            '{"name": "\\u0000", "event_type": "a", "action": {"kind": "notify", "title": "t"}}',
        ),
    ],
)
async def test_every_body_is_checked_for_unstorable_strings(
    client: httpx.AsyncClient, path: str, body: str
) -> None:
    response = await client.post(path, content=body, headers=JSON)
    assert response.status_code == 422


@pytest.mark.parametrize("depth", [MAX_DATA_DEPTH + 1, 100, 254, 1000, 5000])
async def test_data_nested_too_deep_is_422_whatever_the_depth(
    client: httpx.AsyncClient, context: ServiceContext, depth: int
) -> None:
    body = '{"type": "a.b", "data": ' + '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1) + "}"
    response = await client.post("/api/events", content=body, headers=JSON)
    assert response.status_code == 422
    assert "deep" in messages(response)
    assert await nothing_stored(context)


async def test_the_largest_and_deepest_accepted_event_round_trips(
    client: httpx.AsyncClient,
) -> None:
    """What the door accepts, every bus carries and the processor decodes."""
    deep = nested(MAX_DATA_DEPTH - 1)  # under `data`, itself a level
    padding = MAX_DATA_BYTES - len(json.dumps({"deep": deep, "pad": ""}, separators=(",", ":")))
    data = {"deep": deep, "pad": "x" * padding}
    body = {
        "type": "t" * 256,
        "source": "s" * 256,
        "subject": "\u00e9" * 256,
        "correlationid": "c" * 128,
        "data": data,
    }
    response = await client.post("/api/events", json=body)
    assert response.status_code == 202, response.text[:300]
    event = CloudEvent.model_validate(response.json()["event"])
    encoded = event.to_json()
    assert len(encoded) <= MAX_EVENT_BYTES < 256 * 1024
    assert CloudEvent.from_json(encoded) == event

    over = {**body, "data": {**data, "pad": "x" * (padding + 1)}}
    refused = await client.post("/api/events", json=over)
    assert refused.status_code == 422
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", "data"]]


@pytest.mark.parametrize("event_type", ["lightning.task.requested", "Lightning.Notification.x"])
async def test_internal_event_types_are_refused(
    client: httpx.AsyncClient, context: ServiceContext, event_type: str
) -> None:
    response = await client.post("/api/events", json={"type": event_type})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "type"]]
    assert await nothing_stored(context)


@pytest.mark.parametrize(
    "path",
    ["/api/events", "/api/instructions", "/api/tasks", "/api/notifications", "/api/dead-letters"],
)
async def test_a_continuation_past_any_offset_is_400(client: httpx.AsyncClient, path: str) -> None:
    token = base64.urlsafe_b64encode(str(2**63).encode()).decode()
    response = await client.get(path, params={"continuation": token})
    assert response.status_code == 400
    assert "continuation" in response.json()["detail"]


async def test_a_page_stops_short_of_its_byte_bound(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resource, "MAX_PAGE_BYTES", 50_000)
    for n in range(6):
        response = await client.post(
            "/api/events", json={"type": "a.b", "data": {"pad": f"{n}" * 20_000}}
        )
        assert response.status_code == 202
    first = (await client.get("/api/events", params={"limit": 500})).json()
    assert len(first["items"]) == 2  # a third would pass 50,000 bytes
    rest = (await client.get("/api/events", params={"continuation": first["continuation"]})).json()
    assert len(rest["items"]) == 2
    pads = [item["event"]["data"]["pad"][0] for item in first["items"] + rest["items"]]
    assert pads == ["5", "4", "3", "2"]


async def test_instructions_per_user_are_capped(context: ServiceContext) -> None:
    capped = ServiceContext(
        context.settings.model_copy(update={"max_instructions_per_user": 2}),
        context.storage,
        context.bus,
    )
    transport = httpx.ASGITransport(app=create_app(capped))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        for _ in range(2):
            assert (await http.post("/api/instructions", json=INSTRUCTION)).status_code == 201
        refused = await http.post("/api/instructions", json=INSTRUCTION)
        assert refused.status_code == 409
        assert "LIGHTNING_MAX_INSTRUCTIONS_PER_USER" in refused.json()["detail"]
        assert len((await http.get("/api/instructions")).json()["items"]) == 2


async def test_a_body_over_the_request_limit_is_413(client: httpx.AsyncClient) -> None:
    body = {"type": "a.b", "data": {"pad": "x" * (1024 * 1024)}}
    response = await client.post("/api/events", json=body)
    assert response.status_code == 413
    assert "LIGHTNING_MAX_REQUEST_BYTES" in response.json()["detail"]


async def test_an_unauthenticated_body_is_never_read(context: ServiceContext) -> None:
    """Azure mode: no token, 401, and the app did not take a byte of the body."""
    tokens = EntraTokens(tenant="t", audience="a")

    async def jwks() -> dict[str, Any]:
        return tokens.keys()

    azure = ServiceContext(
        context.settings.model_copy(update={"mode": Mode.AZURE}), context.storage, context.bus
    )
    app = create_app(azure, TokenValidator(issuer=tokens.issuer, audience="a", fetch_jwks=jwks))
    reads = 0
    body = json.dumps({"type": "a.b", "data": {"pad": "x" * 500_000}}).encode()

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/events",
        "raw_path": b"/api/events",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"api"), (b"content-type", b"application/json")],
        "server": ("api", 80),
        "client": ("127.0.0.1", 1),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 401
    assert reads == 0


async def test_the_root_links_to_what_the_api_serves(client: httpx.AsyncClient) -> None:
    links = (await client.get("/")).json()
    assert set(links) == {"docs", "redoc", "openapi", "healthz", "readyz", "events"}
    for name in ("docs", "redoc", "openapi", "healthz", "readyz"):
        assert (await client.get(links[name])).status_code == 200, name


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_load_their_assets_from_the_api_itself(
    client: httpx.AsyncClient, page: str
) -> None:
    html = (await client.get(page)).text
    urls = [
        part.split('"')[0].split("'")[0]
        for marker in ('src="', 'href="', "url: '")
        for part in html.split(marker)[1:]
    ]
    assets = [url for url in urls if url.endswith((".js", ".css"))]
    assert assets, html
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
    for url in assets:
        response = await client.get(url)
        assert response.status_code == 200, url
        kind = "javascript" if url.endswith(".js") else "css"
        assert kind in response.headers["content-type"], url


async def test_a_body_storage_refuses_is_422_not_500(
    client: httpx.AsyncClient, context: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind the door's own checks: storage's InvalidDocument still answers 422."""

    async def refuse(*_args: object, **_kwargs: object) -> None:
        raise InvalidDocument("data.x: NUL character")

    monkeypatch.setattr(context.storage, "create", refuse)
    response = await client.post("/api/events", json={"type": "a.b"})
    assert response.status_code == 422
    assert "data.x: NUL character" in messages(response)
