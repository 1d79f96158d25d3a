"""Issue 4's scenario end to end, over real HTTP, against the real runtime process.

One `python -m lightning_core.runtime` hosts the API and the event processor, as `invoke
dev` does, on each stack: embedded (SQLite + memory bus), local with PostgreSQL + Redis,
and local with PostgreSQL + RabbitMQ. An instruction reacts to `door.opened` events of
the front door by requesting a `notify` task; a matching and a non-matching event go in;
the task must succeed, exactly one notification must appear, the non-matching event must
cause nothing, and everything must carry the matching event's correlation id.

User isolation: the dev identity is one per process, so a second runtime (API only) runs
as another user on the same storage and bus. It must see none of the first user's
records, and in local modes its own matching event must not trigger the first user's
instruction (in embedded mode the memory bus is per process, so that half is skipped).

The shared servers are left as found: a scratch PostgreSQL database per test (on the
server DATABASE_URL names), a bus namespace per test, and that namespace's Redis keys or
RabbitMQ exchanges and queues deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from conftest import require, start_runtime
from lightning_core.bus.rabbitmq import RabbitMqBus
from lightning_core.bus.redis import RedisBus
from lightning_core.domain import PROCESSOR_GROUP
from provider_backends import postgres, rabbitmq, redis

DEADLINE = 30.0  # seconds for the whole chain: event -> instruction -> task -> notification
STOP_TIMEOUT = 30.0
TITLE = "Front door opened"
ALICE, BOB = "alice", "bob"

T = TypeVar("T")


@dataclass
class Stack:
    """The environment a runtime needs for one storage + bus combination."""

    name: str
    env: dict[str, str]
    shared_bus: bool  # True: a second process sees the same events (not the memory bus)
    cleanups: list[Callable[[], None]] = field(default_factory=list)


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _scratch_database(stack: Stack) -> None:
    """A database of this test's own on the shared server, dropped afterwards."""
    name = f"lightning_scenario_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(postgres.ADMIN_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        require(
            False,
            f"PostgreSQL at {postgres.ADMIN_URL} ({error})",
            f"start it: {postgres.START_SHARED}",
        )
    stack.cleanups.append(
        lambda: asyncio.run(
            _admin(postgres.ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )
    )
    stack.env["DATABASE_URL"] = postgres.database_url(postgres.ADMIN_URL, name)


async def _delete_redis_namespace(namespace: str) -> None:
    async with RedisBus(redis.REDIS_URL, namespace) as bus:
        await bus.delete_namespace()


async def _delete_rabbitmq_topology(namespace: str) -> None:
    """AMQP cannot list queues: declare the groups the runtime used (idempotent) on a bus of
    the same namespace, so that its delete_topology removes them and the exchanges."""
    async with RabbitMqBus(rabbitmq.RABBITMQ_URL, namespace) as bus:
        await bus.open_group(PROCESSOR_GROUP)
        await bus.delete_topology()


@pytest.fixture(params=["embedded", "postgres-redis", "postgres-rabbitmq"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    name: str = request.param
    env: dict[str, str] = {}
    if name == "embedded":
        env |= {"LIGHTNING_MODE": "embedded", "LIGHTNING_SQLITE_PATH": str(tmp_path / "db")}
        yield Stack(name, env, shared_bus=False)
        return
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    env |= {"LIGHTNING_MODE": "local", "LIGHTNING_BUS_NAMESPACE": namespace}
    current = Stack(name, env, shared_bus=True)
    try:
        _scratch_database(current)
        if name == "postgres-redis":
            reachable = asyncio.run(redis.reachable(redis.REDIS_URL))
            require(reachable, f"Redis at {redis.REDIS_URL}", f"start it: {redis.START_REDIS}")
            env |= {"LIGHTNING_EVENT_BUS_PROVIDER": "redis", "REDIS_URL": redis.REDIS_URL}
            current.cleanups.append(lambda: asyncio.run(_delete_redis_namespace(namespace)))
        else:
            reachable = asyncio.run(rabbitmq.reachable(rabbitmq.RABBITMQ_URL))
            require(
                reachable,
                f"RabbitMQ at {rabbitmq.RABBITMQ_URL}",
                "start it: rabbitmq-server -detached",
            )
            env |= {
                "LIGHTNING_EVENT_BUS_PROVIDER": "rabbitmq",
                "RABBITMQ_URL": rabbitmq.RABBITMQ_URL,
            }
            current.cleanups.append(lambda: asyncio.run(_delete_rabbitmq_topology(namespace)))
        yield current
    finally:
        # Runtimes are stopped by then (they are entered inside the test); newest first.
        for cleanup in reversed(current.cleanups):
            cleanup()


@contextlib.contextmanager
def runtime(stack: Stack, cwd: Path, *, user: str, services: str) -> Iterator[str]:
    """One runtime process hosting `services` as `user`; yields the API's URL."""
    env = {**stack.env, "LIGHTNING_DEV_USER": user}
    with start_runtime(env, cwd, services=services) as system:
        yield system.api_url


def eventually(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Poll `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def items(client: httpx.Client, path: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(path, params={"limit": "500", **params})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def post(client: httpx.Client, path: str, body: dict[str, Any], expected: int) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == expected, response.text
    answer: dict[str, Any] = response.json()
    return answer


def processed(client: httpx.Client, event_id: str) -> dict[str, Any] | None:
    for record in items(client, "/api/events"):
        if record["event"]["id"] == event_id and record["status"] == "processed":
            return record
    return None


def test_instruction_to_task_to_notification(stack: Stack, tmp_path: Path) -> None:
    started = time.monotonic()
    with (
        runtime(stack, tmp_path / ALICE, user=ALICE, services="api,event-processor") as alice_url,
        httpx.Client(base_url=alice_url, timeout=10.0) as alice,
    ):
        instruction = post(
            alice,
            "/api/instructions",
            {
                "name": "front door",
                "event_type": "door.opened",
                "data_filter": {"door": "front"},
                "action": {"kind": "request_task", "task": "notify", "params": {"title": TITLE}},
            },
            201,
        )
        matching = post(
            alice, "/api/events", {"type": "door.opened", "data": {"door": "front"}}, 202
        )["event"]
        other = post(alice, "/api/events", {"type": "door.opened", "data": {"door": "back"}}, 202)[
            "event"
        ]
        correlation = matching.get("correlationid") or matching["id"]

        task = eventually(
            lambda: next(
                (t for t in items(alice, "/api/tasks") if t["status"] == "succeeded"), None
            ),
            "the task reaches succeeded",
        )
        notification = eventually(
            lambda: next(iter(items(alice, "/api/notifications")), None),
            "a notification appears",
        )
        for event_id in (matching["id"], other["id"]):
            eventually(partial(processed, alice, event_id), f"event {event_id} processed")
        chain = time.monotonic() - started

        assert task["kind"] == "notify"
        assert task["params"]["title"] == TITLE
        assert task["user"] == ALICE
        assert task["correlationid"] == correlation
        assert task["source_event_id"] == matching["id"]
        assert notification["title"] == TITLE
        assert notification["correlationid"] == correlation
        assert notification["user"] == ALICE

        # Exactly one of each: the non-matching event caused nothing (it is processed, so
        # anything it would have caused was requested by now and listed below in time).
        time.sleep(1.0)
        assert [t["id"] for t in items(alice, "/api/tasks")] == [task["id"]]
        assert [n["id"] for n in items(alice, "/api/notifications")] == [notification["id"]]
        # Every event the chain left (follow-ups too, if they are listed) is the matching one's.
        events = {r["event"]["id"]: r["event"] for r in items(alice, "/api/events")}
        assert {matching["id"], other["id"]} <= events.keys()
        for event_id, event in events.items():
            if event_id != other["id"]:
                assert (event.get("correlationid") or event_id) == correlation, event

        # The second user: same storage and bus, another dev identity (another process).
        with (
            runtime(stack, tmp_path / BOB, user=BOB, services="api") as bob_url,
            httpx.Client(base_url=bob_url, timeout=10.0) as bob,
        ):
            for path in ("/api/instructions", "/api/tasks", "/api/notifications", "/api/events"):
                assert items(bob, path) == [], f"{BOB} sees {ALICE}'s {path}"
            assert bob.get(f"/api/instructions/{instruction['id']}").status_code == 404
            assert bob.get(f"/api/tasks/{task['id']}").status_code == 404
            assert bob.post(f"/api/notifications/{notification['id']}/read").status_code == 404
            if stack.shared_bus:
                # Bob's matching event reaches Alice's processor, not Alice's instruction.
                mine = post(
                    bob, "/api/events", {"type": "door.opened", "data": {"door": "front"}}, 202
                )["event"]
                eventually(lambda: processed(bob, mine["id"]), f"{BOB}'s event processed")
                assert items(bob, "/api/tasks") == []
                assert items(bob, "/api/notifications") == []
                assert [t["id"] for t in items(alice, "/api/tasks")] == [task["id"]]
    print(f"\n{stack.name}: chain {chain:.2f} s, test {time.monotonic() - started:.2f} s")
