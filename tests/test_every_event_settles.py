"""Every event the API accepts (202) ends `processed` or among the dead letters, on each bus.

The real API app and the real processor worker run in this process over SQLite storage
and each bus the provider backends offer here (memory, Redis, RabbitMQ, the Service Bus
fake). In go ordinary events, events whose tasks fail, a fan-out that passes the follow-up
bound, events at the size and depth limits, and hostile requests the API must refuse with
a 4xx; one more event is stored `received` and never published, as by an API that died in
between, and the worker's orphan sweep must publish it again. Then no event may be left
`received`: every record is processed, or its event is a dead letter with a reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lightning_api.app import create_app
from lightning_core.bus.base import EventBus
from lightning_core.config import Settings
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.events import MAX_DATA_BYTES, MAX_DATA_DEPTH, CloudEvent
from lightning_core.records import record_received
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.backends import listed
from lightning_core.testing.machine import free_port
from lightning_processor.main import service

SETTLE_WITHIN = 60.0  # seconds for every accepted event to end processed or dead
REPUBLISH_AFTER = 1.0  # seconds: the orphan sweep's bound, short for the test
FAN_WIDTH = 3


@pytest.fixture(params=listed("BUSES"))
def any_bus(request: pytest.FixtureRequest) -> EventBus:
    bus: EventBus = request.getfixturevalue(request.param)
    return bus


def nested(levels: int) -> dict[str, Any]:
    """`data` nesting `levels` deep, `data` itself being the first level."""
    data: dict[str, Any] = {}
    for _ in range(levels - 1):
        data = {"a": data}
    return data


def largest_data() -> dict[str, Any]:
    """`data` that encodes to exactly MAX_DATA_BYTES."""
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    return {"blob": "x" * (MAX_DATA_BYTES - overhead)}


def instructions(webhook_origin: str) -> list[dict[str, Any]]:
    return [
        # The README's walkthrough: a notify task for every door.opened.
        {
            "name": "door",
            "event_type": "door.opened",
            "action": {"kind": "request_task", "task": "notify", "params": {"title": "Door"}},
        },
        # Tasks failing every attempt: a webhook to an allow-listed origin nobody listens on.
        {
            "name": "hook",
            "event_type": "order.paid",
            "action": {
                "kind": "request_task",
                "task": "webhook",
                "params": {"url": f"{webhook_origin}/in"},
            },
        },
        # Three instructions matching what each emits: 9,841 events unbounded.
        *(
            {"name": f"fan {n}", "event_type": "fan.*", "action": {"kind": "emit", "type": "fan.x"}}
            for n in range(FAN_WIDTH)
        ),
    ]


ACCEPTED: list[dict[str, Any]] = [
    {"type": "door.opened", "subject": "front", "data": {"by": "alice"}},
    {"type": "door.opened", "data": {}},
    {"type": "order.paid", "data": {"order": 1}},
    {"type": "fan.start"},
    {"type": "no.instruction.matches", "data": {"n": 1}},
    {"type": "limits.depth", "data": nested(MAX_DATA_DEPTH)},
    {"type": "limits.size", "data": largest_data()},
]

HOSTILE: list[tuple[str, bytes]] = [
    ("not JSON", b"{"),
    ("not an object", b"[]"),
    ("a type with a path in it", json.dumps({"type": "../../etc/passwd"}).encode()),
    ("a type too long", json.dumps({"type": "t" * 300}).encode()),
    ("data too deep", json.dumps({"type": "x", "data": nested(MAX_DATA_DEPTH + 1)}).encode()),
    (
        "data nested past any decoder",
        b'{"type": "x", "data": ' + b'{"a": ' * 5000 + b"{}" + b"}" * 5001,
    ),
    ("data too large", json.dumps({"type": "x", "data": {"b": "x" * MAX_DATA_BYTES}}).encode()),
    (
        "a body past the request limit",
        json.dumps({"type": "x", "data": {"b": "x" * 2**21}}).encode(),
    ),
    ("a NUL character", b'{"type": "x", "data": {"k": "a\\u0000b"}}'),
    ("a lone surrogate", b'{"type": "x", "data": {"k": "\\ud800"}}'),
    ("data not an object", json.dumps({"type": "x", "data": [1, 2]}).encode()),
]


@dataclass(frozen=True)
class System:
    client: httpx.AsyncClient  # the API's, as the dev user
    context: ServiceContext
    webhook_origin: str  # allow-listed; nothing listens there


@pytest.fixture
async def system(
    settings: Settings, storage: SqliteStorage, any_bus: EventBus
) -> AsyncIterator[System]:
    """The API over the bus, with the processor worker consuming beside it."""
    origin = f"http://127.0.0.1:{free_port()}"
    settings = settings.model_copy(
        update={
            "republish_after_seconds": REPUBLISH_AFTER,
            "webhook_allowed_origins": origin,
            "webhook_deadline_seconds": 1.0,
        }
    )
    context = ServiceContext(settings, storage, any_bus)
    await any_bus.open_group(PROCESSOR_GROUP)  # before anything is published
    stop = asyncio.Event()
    worker = asyncio.create_task(service(context, stop))
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield System(client, context, origin)
    stop.set()
    await asyncio.wait_for(worker, 60)


async def every_page(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "500"}
    while True:
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["items"])
        if not page.get("continuation"):
            return found
        params["continuation"] = page["continuation"]


async def unsettled(client: httpx.AsyncClient, ids: set[str]) -> tuple[list[str], dict[str, str]]:
    """Events neither processed nor dead letters (those of `ids` and every record), and
    the reason of each dead letter by event id."""
    dead = {
        letter["event"]["id"]: letter["reason"]
        for letter in await every_page(client, "/api/dead-letters")
    }
    records = {r["event"]["id"]: r["status"] for r in await every_page(client, "/api/events")}
    waiting = [
        event_id
        for event_id in ids | records.keys()
        if records.get(event_id) != "processed" and event_id not in dead
    ]
    return waiting, dead


async def test_every_accepted_event_ends_processed_or_dead(system: System) -> None:
    client, context = system.client, system.context
    for instruction in instructions(system.webhook_origin):
        response = await client.post("/api/instructions", json=instruction)
        assert response.status_code == 201, response.text

    accepted: set[str] = set()
    for body in ACCEPTED:
        response = await client.post("/api/events", json=body)
        assert response.status_code == 202, f"{body['type']}: {response.text[:300]}"
        accepted.add(response.json()["event"]["id"])
    for what, raw in HOSTILE:
        response = await client.post(
            "/api/events", content=raw, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, f"{what}: {response.status_code}"
    # An API that died between storing the record and publishing the event.
    orphan = CloudEvent(source="api", type="door.opened", user=context.settings.dev_user)
    await record_received(context.storage, orphan)
    accepted.add(orphan.id)

    deadline = asyncio.get_running_loop().time() + SETTLE_WITHIN
    while True:
        waiting, dead = await unsettled(client, accepted)
        if not waiting:
            break
        assert asyncio.get_running_loop().time() < deadline, (
            f"within {SETTLE_WITHIN:.0f} s, still neither processed nor dead: {waiting}"
        )
        await asyncio.sleep(0.2)

    # Every event the users sent was processed; only fan-out follow-ups past the bound died.
    records = {r["event"]["id"]: r for r in await every_page(client, "/api/events")}
    assert all(records[event_id]["status"] == "processed" for event_id in accepted)
    assert dead, "the fan-out passed the bound somewhere"
    assert all("fan-out bound" in reason for reason in dead.values()), dead
    fan = [r for r in records.values() if r["event"]["type"].startswith("fan.")]
    assert len(fan) + len(dead) - 1 <= context.settings.max_follow_ups_per_event
    # Tasks end after their events: wait and webhook attempts run off the delivery path.
    while True:
        tasks = await every_page(client, "/api/tasks")
        statuses = sorted(task["status"] for task in tasks)
        if not {"pending", "running"} & set(statuses):
            break
        assert asyncio.get_running_loop().time() < deadline, f"tasks still open: {tasks}"
        await asyncio.sleep(0.2)
    assert statuses == ["failed", "succeeded", "succeeded", "succeeded"], tasks
