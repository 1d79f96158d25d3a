import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Settings
from lightning_core.domain import FINAL_TASK_STATUSES, TASK_REQUESTED, TASKS, Task, TaskStatus
from lightning_core.events import CloudEvent
from lightning_core.service import ServiceContext
from lightning_core.storage.base import Document, Storage
from lightning_core.storage.sqlite import SqliteStorage

ClientAs = Callable[[ServiceContext, str], httpx.AsyncClient]  # the `client_as` fixture

WAIT = {"kind": "wait", "params": {"seconds": 1}}


async def drain(bus: MemoryBus, group: str) -> list[CloudEvent]:
    """Everything published to `group` so far."""
    events: list[CloudEvent] = []
    stop = asyncio.Event()

    async def collect(event: CloudEvent) -> None:
        events.append(event)

    consuming = asyncio.create_task(bus.consume(group, collect, stop=stop))
    await asyncio.sleep(0.05)
    stop.set()
    await consuming
    return events


async def test_a_requested_task_is_stored_pending_and_announced(
    alice: httpx.AsyncClient, bus: MemoryBus
) -> None:
    await bus.open_group("probe")
    response = await alice.post("/api/tasks", json={**WAIT, "correlationid": "c-1"})
    assert response.status_code == 202
    task = response.json()
    assert task["status"] == "pending"
    assert task["user"] == "alice"
    assert task["correlationid"] == "c-1"

    [event] = await drain(bus, "probe")
    assert event.type == TASK_REQUESTED
    assert event.data == {"task_id": task["id"]}
    assert (event.user, event.correlationid) == ("alice", "c-1")
    assert (await alice.get(f"/api/tasks/{task['id']}")).json() == task


async def test_a_new_correlation_id_when_none_is_given(alice: httpx.AsyncClient) -> None:
    first = (await alice.post("/api/tasks", json=WAIT)).json()
    second = (await alice.post("/api/tasks", json=WAIT)).json()
    assert first["correlationid"]
    assert first["correlationid"] != second["correlationid"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "juggle"}, ["body"]),  # the message names `kind` and the kinds there are
        ({"kind": "wait", "max_attempts": 0}, ["body", "wait", "max_attempts"]),
        ({"kind": "wait", "params": []}, ["body", "wait", "params"]),
        ({"kind": "wait", "status": "succeeded"}, ["body", "wait", "status"]),
        ({"kind": "wait", "correlationid": ""}, ["body", "wait", "correlationid"]),
        ({"kind": "notify", "params": {}}, ["body", "notify", "params", "title"]),
        (
            {"kind": "notify", "params": {"title": "t", "colour": 1}},
            ["body", "notify", "params", "colour"],
        ),
        ({"kind": "wait", "params": {"seconds": True}}, ["body", "wait", "params", "seconds"]),
        ({"kind": "wait", "params": {"seconds": -1}}, ["body", "wait", "params", "seconds"]),
        ({"kind": "emit", "params": {}}, ["body", "emit", "params", "type"]),
        (
            {"kind": "emit", "params": {"type": "lightning.task.requested"}},
            ["body", "emit", "params", "type"],
        ),
        ({"kind": "webhook", "params": {"url": "ftp://x"}}, ["body", "webhook", "params", "url"]),
    ],
)
async def test_bad_requests_are_422_with_the_field_named_and_nothing_stored(
    alice: httpx.AsyncClient, body: dict[str, object], field: list[str]
) -> None:
    response = await alice.post("/api/tasks", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [field]
    assert (await alice.get("/api/tasks")).json()["items"] == []


async def set_status(storage: Storage, task_id: str, status: TaskStatus) -> None:
    """What the task runner does."""
    document = await storage.get(TASKS, "alice", task_id)
    task = Task.model_validate(document.body).model_copy(update={"status": status})
    await storage.replace(
        TASKS, "alice", task_id, task.model_dump(mode="json"), if_match=document.etag
    )


async def test_listing_filters_by_status_and_pages(
    alice: httpx.AsyncClient, storage: Storage
) -> None:
    ids = [(await alice.post("/api/tasks", json=WAIT)).json()["id"] for _ in range(4)]
    await set_status(storage, ids[0], TaskStatus.SUCCEEDED)
    first = (await alice.get("/api/tasks", params={"limit": 3})).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:3]
    rest = (await alice.get("/api/tasks", params={"continuation": first["continuation"]})).json()
    assert [item["id"] for item in rest["items"]] == [ids[0]]
    succeeded = (await alice.get("/api/tasks", params={"status": "succeeded"})).json()
    assert [item["id"] for item in succeeded["items"]] == [ids[0]]
    assert (await alice.get("/api/tasks", params={"status": "bogus"})).status_code == 422
    assert (await alice.get("/api/tasks", params={"continuation": "x!"})).status_code == 400


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.RUNNING])
async def test_unfinished_tasks_cancel(
    alice: httpx.AsyncClient, storage: Storage, status: TaskStatus
) -> None:
    task_id = (await alice.post("/api/tasks", json=WAIT)).json()["id"]
    await set_status(storage, task_id, status)
    cancelled = await alice.post(f"/api/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert (await alice.get(f"/api/tasks/{task_id}")).json()["status"] == "cancelled"


@pytest.mark.parametrize("status", sorted(FINAL_TASK_STATUSES))
async def test_finished_tasks_do_not_cancel(
    alice: httpx.AsyncClient, storage: Storage, status: TaskStatus
) -> None:
    task_id = (await alice.post("/api/tasks", json=WAIT)).json()["id"]
    await set_status(storage, task_id, status)
    refused = await alice.post(f"/api/tasks/{task_id}/cancel")
    assert refused.status_code == 409
    assert (await alice.get(f"/api/tasks/{task_id}")).json()["status"] == status


async def test_another_user_can_neither_see_nor_cancel_them(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    task = (await alice.post("/api/tasks", json=WAIT)).json()
    assert (await bob.get("/api/tasks")).json()["items"] == []
    assert (await bob.get(f"/api/tasks/{task['id']}")).status_code == 404
    assert (await bob.post(f"/api/tasks/{task['id']}/cancel")).status_code == 404
    assert (await alice.get(f"/api/tasks/{task['id']}")).json() == task


class RefusingBus(MemoryBus):
    """A broker that answers every publish with an error."""

    async def _publish(self, _events: Sequence[CloudEvent]) -> None:
        raise RuntimeError("broker said no")


class LateRunnerBus(MemoryBus):
    """A broker that delivers (the runner picks the task up) but then reports an error."""

    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self.storage = storage

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        for event in events:
            await set_status(self.storage, event.data["task_id"], TaskStatus.RUNNING)
        raise RuntimeError("lost the confirm")


async def test_a_task_that_could_not_be_queued_is_marked_failed(
    context: ServiceContext,
    client_as: ClientAs,
) -> None:
    async with RefusingBus() as refusing:
        broken = ServiceContext(context.settings, context.storage, refusing)
        async with client_as(broken, "alice") as alice:
            response = await alice.post("/api/tasks", json=WAIT)
            assert response.status_code == 503
            assert "not queued: RuntimeError: broker said no" in response.json()["detail"]
            [task] = (await alice.get("/api/tasks")).json()["items"]
    assert task["status"] == "failed"
    assert task["error"] == "not queued: RuntimeError: broker said no"


async def test_a_task_the_runner_got_despite_a_publish_error_is_accepted(
    context: ServiceContext,
    client_as: ClientAs,
) -> None:
    async with (
        LateRunnerBus(context.storage) as late,
        client_as(ServiceContext(context.settings, context.storage, late), "alice") as alice,
    ):
        response = await alice.post("/api/tasks", json=WAIT)
        assert response.status_code == 202
        stored = (await alice.get(f"/api/tasks/{response.json()['id']}")).json()
    assert stored["status"] == "running"
    assert stored["error"] is None


class RacingStorage(SqliteStorage):
    """The task runner writes `race` once, between the API's read and its conditional write."""

    race: TaskStatus | None = None

    async def replace(
        self,
        collection: str,
        partition: str,
        doc_id: str,
        body: dict[str, Any],
        *,
        if_match: str,
    ) -> Document:
        if self.race is not None:
            status, self.race = self.race, None
            await set_status(self, doc_id, status)
        return await super().replace(collection, partition, doc_id, body, if_match=if_match)


@pytest.mark.parametrize(
    ("runner_writes", "answer", "final"),
    [(TaskStatus.RUNNING, 200, "cancelled"), (TaskStatus.SUCCEEDED, 409, "succeeded")],
)
async def test_cancel_never_overwrites_what_the_runner_wrote_meanwhile(
    settings: Settings,
    runner_writes: TaskStatus,
    answer: int,
    final: str,
    client_as: ClientAs,
) -> None:
    async with (
        MemoryBus() as bus,
        RacingStorage(settings.sqlite_path) as storage,
        client_as(ServiceContext(settings, storage, bus), "alice") as alice,
    ):
        task_id = (await alice.post("/api/tasks", json=WAIT)).json()["id"]
        storage.race = runner_writes
        assert (await alice.post(f"/api/tasks/{task_id}/cancel")).status_code == answer
        assert (await alice.get(f"/api/tasks/{task_id}")).json()["status"] == final
