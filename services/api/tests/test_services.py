"""GET /api/services: background services from their heartbeats, for any signed-in user."""

from datetime import timedelta

import httpx

from lightning_core.domain import now
from lightning_core.heartbeats import COLLECTION, PARTITION, STALE_AFTER, Heart
from lightning_core.service import ServiceContext


async def test_services_list_their_instances_and_how_many_are_alive(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, context: ServiceContext
) -> None:
    assert (await alice.get("/api/services")).json() == []
    storage = context.storage
    await Heart(storage, "event-processor", "host-a:1").beat()
    await Heart(storage, "event-processor", "host-b:7").beat()
    stale = await storage.get(COLLECTION, PARTITION, "event-processor@host-b:7")
    long_ago = (now() - STALE_AFTER - timedelta(seconds=5)).isoformat(timespec="microseconds")
    await storage.upsert(COLLECTION, PARTITION, stale.id, {**stale.body, "seen_at": long_ago})

    answer = await alice.get("/api/services")
    assert answer.status_code == 200
    [processor] = answer.json()
    assert processor["service"] == "event-processor"
    assert processor["alive"] == 1
    assert [(i["instance"], i["alive"]) for i in processor["instances"]] == [
        ("host-a:1", True),
        ("host-b:7", False),
    ]
    assert (await bob.get("/api/services")).json() == answer.json()  # not per user
