"""POST /api/events with CloudEvents: structured mode, batches (all or nothing, problems by
index, one publish), and the same event sent again answered, not stored twice."""

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from lightning_core.bus.memory import MemoryBus
from lightning_core.events import MAX_DATA_DEPTH, CloudEvent
from lightning_core.records import EVENTS
from lightning_core.service import ServiceContext

ClientAs = Callable[[ServiceContext, str], httpx.AsyncClient]  # the `client_as` fixture

CLOUDEVENT = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def cloudevent(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"e-{number}",
        "source": "/sensors/door",
        "type": "door.opened",
        "subject": "front",
        "data": {"n": number},
        **fields,
    }


class CountingBus(MemoryBus):
    """The memory bus, counting the calls the API makes to publish."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    async def publish(self, event: CloudEvent) -> None:
        self.calls.append(("publish", 1))
        await MemoryBus.publish_batch(self, [event])  # not counted as a batch too

    async def publish_batch(self, events: Sequence[CloudEvent]) -> None:
        self.calls.append(("publish_batch", len(events)))
        await super().publish_batch(events)


class RefusingBus(MemoryBus):
    async def _publish(self, _events: Sequence[CloudEvent]) -> None:
        raise RuntimeError("broker said no")


async def post(client: httpx.AsyncClient, body: Any, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/api/events", content=json.dumps(body), headers=headers)


async def stored(context: ServiceContext, user: str = "alice") -> list[dict[str, Any]]:
    return [document.body for document in (await context.storage.query(EVENTS, user)).items]


async def test_a_structured_cloudevent_is_accepted_with_its_attributes(
    alice: httpx.AsyncClient,
) -> None:
    response = await post(alice, cloudevent(1, time="2024-05-01T12:00:00Z"), CLOUDEVENT)
    assert response.status_code == 202
    event = response.json()["event"]
    assert (event["type"], event["source"], event["subject"], event["data"]) == (
        "door.opened",
        "/sensors/door",
        "front",
        {"n": 1},
    )
    assert event["time"].startswith("2024-05-01T12:00:00")
    assert event["user"] == "alice"


async def test_the_same_cloudevent_sent_again_answers_the_kept_record(
    context: ServiceContext,
    client_as: ClientAs,
) -> None:
    async with CountingBus() as bus, client_as(context_with(context, bus), "alice") as alice:
        first = await post(alice, cloudevent(1), CLOUDEVENT)
        again = await post(alice, cloudevent(1, data={"n": 2}), CLOUDEVENT)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    assert len(await stored(context)) == 1
    assert bus.calls == [("publish", 1)]


async def test_the_same_client_id_of_two_users_or_sources_is_two_events(
    context: ServiceContext, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    ids = {
        (await post(alice, cloudevent(1), CLOUDEVENT)).json()["event"]["id"],
        (await post(alice, cloudevent(1, source="/other"), CLOUDEVENT)).json()["event"]["id"],
        (await post(bob, cloudevent(1), CLOUDEVENT)).json()["event"]["id"],
    }
    assert len(ids) == 3
    assert len(await stored(context, "alice")) == 2


async def test_a_failed_cloudevent_sent_again_is_published_again(
    context: ServiceContext, client_as: ClientAs
) -> None:
    async with RefusingBus() as refusing, client_as(context_with(context, refusing), "alice") as a:
        assert (await post(a, cloudevent(1), CLOUDEVENT)).status_code == 503
    async with CountingBus() as bus, client_as(context_with(context, bus), "alice") as alice:
        response = await post(alice, cloudevent(1), CLOUDEVENT)
    assert response.status_code == 202
    assert response.json()["status"] == "received"
    assert bus.calls == [("publish", 1)]


async def test_a_batch_is_stored_in_order_and_published_once(
    context: ServiceContext, client_as: ClientAs
) -> None:
    async with CountingBus() as bus, client_as(context_with(context, bus), "alice") as alice:
        response = await post(alice, [cloudevent(n) for n in range(100)], BATCH)
    assert response.status_code == 202
    assert [record["event"]["data"]["n"] for record in response.json()] == list(range(100))
    assert len(await stored(context)) == 100
    assert bus.calls == [("publish_batch", 100)]


async def test_a_batch_sent_again_publishes_only_what_is_new(
    context: ServiceContext, client_as: ClientAs
) -> None:
    async with CountingBus() as bus, client_as(context_with(context, bus), "alice") as alice:
        await post(alice, [cloudevent(1), cloudevent(2)], BATCH)
        response = await post(alice, [cloudevent(2), cloudevent(3), cloudevent(3)], BATCH)
    assert response.status_code == 202
    assert [record["event"]["data"]["n"] for record in response.json()] == [2, 3, 3]
    assert len(await stored(context)) == 3
    assert bus.calls == [("publish_batch", 2), ("publish_batch", 1)]


async def test_a_batch_with_a_bad_event_is_422_by_index_and_stores_nothing(
    context: ServiceContext, alice: httpx.AsyncClient
) -> None:
    deep: dict[str, Any] = {}
    for _ in range(MAX_DATA_DEPTH):
        deep = {"a": deep}
    batch = [
        cloudevent(0),
        cloudevent(1, type="lightning.task.requested"),
        cloudevent(2),
        cloudevent(3, data=deep),
        cloudevent(4, bogus=1),
        {"id": "5", "source": "s", "type": "a.b"},
    ]
    response = await post(alice, batch, BATCH)
    assert response.status_code == 422
    locs = [problem["loc"] for problem in response.json()["detail"]]
    assert locs == [
        ["body", 1, "type"],
        ["body", 3, "data"],
        ["body", 4, "bogus"],
        ["body", 5, "specversion"],
    ]
    assert await stored(context) == []


async def test_a_nul_character_in_a_batch_is_named_by_index(
    context: ServiceContext, alice: httpx.AsyncClient
) -> None:
    response = await post(alice, [cloudevent(0), cloudevent(1, subject="a\x00b")], BATCH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 1]
    assert await stored(context) == []


async def test_a_batch_past_the_bound_is_422(context: ServiceContext, client_as: ClientAs) -> None:
    settings = context.settings.model_copy(update={"max_batch_events": 3})
    async with client_as(ServiceContext(settings, context.storage, context.bus), "alice") as a:
        response = await post(a, [cloudevent(n) for n in range(4)], BATCH)
    assert response.status_code == 422
    assert "LIGHTNING_MAX_BATCH_EVENTS" in response.text
    assert await stored(context) == []


async def test_a_batch_the_bus_refuses_is_503_with_every_record_failed(
    context: ServiceContext,
    client_as: ClientAs,
) -> None:
    async with RefusingBus() as refusing, client_as(context_with(context, refusing), "alice") as a:
        response = await post(a, [cloudevent(n) for n in range(3)], BATCH)
    assert response.status_code == 503
    assert "3 events" in response.json()["detail"]
    records = await stored(context)
    assert [record["status"] for record in records] == ["failed"] * 3


async def test_bodies_that_are_not_events_are_refused_as_fastapi_would(
    alice: httpx.AsyncClient,
) -> None:
    assert (await alice.post("/api/events", content=b"", headers=BATCH)).status_code == 422
    malformed = await alice.post("/api/events", content=b"[{", headers=BATCH)
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["type"] == "json_invalid"
    assert (await alice.post("/api/events", content=b"\xff", headers=BATCH)).status_code == 400
    assert (await post(alice, {"not": "a list"}, BATCH)).status_code == 422
    assert (await post(alice, [cloudevent(1)], CLOUDEVENT)).status_code == 422


async def test_the_schema_documents_the_three_bodies(alice: httpx.AsyncClient) -> None:
    schema = (await alice.get("/openapi.json")).json()
    body = schema["paths"]["/api/events"]["post"]["requestBody"]["content"]
    assert set(body) == {
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    }
    assert body["application/cloudevents-batch+json"]["schema"]["maxItems"] == 100


def context_with(context: ServiceContext, bus: MemoryBus) -> ServiceContext:
    return ServiceContext(context.settings, context.storage, bus)
