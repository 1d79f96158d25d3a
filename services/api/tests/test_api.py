import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from lightning_api.app import create_app
from lightning_api.auth import TokenValidator
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Mode
from lightning_core.events import CloudEvent
from lightning_core.service import ServiceContext


@pytest.fixture
async def client(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


async def test_health_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"storage": "ok", "bus": "ok", "backlog": 0, "max_backlog": 10_000}


async def test_readyz_is_503_and_names_the_unreachable_store(
    client: httpx.AsyncClient, context: ServiceContext
) -> None:
    await context.storage.close()
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["storage"].startswith("unavailable:")
    assert ready.json()["bus"] == "ok"


async def test_submitted_event_is_stored_and_published(
    client: httpx.AsyncClient, context: ServiceContext, bus: MemoryBus
) -> None:
    response = await client.post(
        "/api/events", json={"type": "order.created", "subject": "order/1", "data": {"n": 1}}
    )
    assert response.status_code == 202
    record = response.json()
    assert record["status"] == "received"
    assert record["event"]["user"] == context.settings.dev_user

    published: list[CloudEvent] = []
    consumer_stop = asyncio.Event()

    async def collect(event: CloudEvent) -> None:
        published.append(event)
        consumer_stop.set()

    await bus.consume("probe", collect, stop=consumer_stop)
    assert [event.id for event in published] == [record["event"]["id"]]

    listed = (await client.get("/api/events")).json()
    assert [item["event"]["id"] for item in listed["items"]] == [record["event"]["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, ["body", "type"]),
        ({"type": ""}, ["body", "type"]),
        ({"type": "has spaces"}, ["body", "type"]),
        ({"type": "ok", "data": [1, 2]}, ["body", "data"]),
    ],
)
async def test_bad_input_is_422_with_the_field_named(
    client: httpx.AsyncClient, body: dict[str, object], field: list[str]
) -> None:
    response = await client.post("/api/events", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [field]
    assert (await client.get("/api/events")).json()["items"] == []


async def test_listing_is_newest_first_filters_and_pages(client: httpx.AsyncClient) -> None:
    ids = [
        (await client.post("/api/events", json={"type": f"t.{n}"})).json()["event"]["id"]
        for n in range(5)
    ]
    first = (await client.get("/api/events", params={"limit": 2})).json()
    assert [item["event"]["id"] for item in first["items"]] == ids[::-1][:2]
    rest = (
        await client.get("/api/events", params={"limit": 10, "continuation": first["continuation"]})
    ).json()
    assert [item["event"]["id"] for item in rest["items"]] == ids[::-1][2:]
    processed = await client.get("/api/events", params={"status": "processed"})
    assert processed.json()["items"] == []
    assert (await client.get("/api/events", params={"status": "bogus"})).status_code == 422
    assert (await client.get("/api/events", params={"continuation": "x!"})).status_code == 400


async def test_azure_mode_refuses_the_dev_identity(context: ServiceContext) -> None:
    azure = ServiceContext(
        context.settings.model_copy(update={"mode": Mode.AZURE}), context.storage, context.bus
    )

    async def no_keys() -> dict[str, object]:
        return {"keys": []}

    validator = TokenValidator(issuer="https://issuer", audience="api://a", fetch_jwks=no_keys)
    transport = httpx.ASGITransport(app=create_app(azure, validator))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        response = await http.get("/api/events")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_method_not_allowed_names_every_method_of_the_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/api/events")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
