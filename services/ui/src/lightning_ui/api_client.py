"""The UI reads and changes everything through the API, as any other client would."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from pydantic import BaseModel, ValidationError

from lightning_core.domain import Instruction, Notification, Task, TaskStatus
from lightning_core.records import EventRecord, EventStatus
from lightning_core.wire import DeadLetterOut, ServiceOut
from lightning_ui import sse

# The API sends a heartbeat every 15 s: a stream silent for twice that is dead.
STREAM_TIMEOUT = httpx.Timeout(5.0, read=30.0)
STATUSES = frozenset(EventStatus)
COUNT_LIMIT = 500  # counts are one page long; more shows as "500+"
Model = TypeVar("Model", bound=BaseModel)


class ApiUnavailable(Exception):
    """The API did not answer or answered with an error; the page says so instead of failing."""


class ApiRejected(Exception):
    """The API refused a request (4xx): `detail` is its body's `detail`, str or list."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class Change:
    """One message of the API's event stream: `ready`, `heartbeat`, or a record's status."""

    kind: str
    record: EventRecord | None = None


@dataclass(frozen=True)
class Count:
    value: int
    more: bool = False

    def __str__(self) -> str:
        return f"{self.value}+" if self.more else str(self.value)


@dataclass(frozen=True)
class Readiness:
    """The API's /readyz: `checks` per dependency, or why it did not answer; `backlog` (or
    why unknown; None if not told) and `max_backlog`, past which the API refuses events."""

    ok: bool
    checks: dict[str, str] = field(default_factory=dict)
    backlog: int | str | None = None
    max_backlog: int | None = None

    @property
    def backlogged(self) -> bool:
        """The backlog is past the bound: the API answers new events 503."""
        return (
            isinstance(self.backlog, int)
            and self.max_backlog is not None
            and self.backlog > self.max_backlog
        )


@dataclass(frozen=True)
class Counts:
    events: Count
    tasks: dict[TaskStatus, Count]
    unread_notifications: Count
    dead_letters: Count


class ApiClient:
    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=5.0, transport=transport)
        HTTPXClientInstrumentor.instrument_client(self._client)  # calls carry traceparent
        self.base_url = base_url
        self._headers: dict[str, str] = {}

    def for_token(self, access_token: str) -> ApiClient:
        """This client calling as the user `access_token` names (same connections)."""
        user = copy.copy(self)
        user._headers = {"Authorization": f"Bearer {access_token}"}
        return user

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The API's answer; ApiRejected on 4xx, ApiUnavailable on no answer or 5xx."""
        try:
            response = await self._client.request(
                method, path, params=params, json=json, headers={**self._headers, **(headers or {})}
            )
        except httpx.HTTPError as error:
            raise ApiUnavailable(f"API at {self.base_url} failed: {error}") from None
        if 400 <= response.status_code < 500:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiRejected(response.status_code, detail)
        if response.is_error:
            raise ApiUnavailable(
                f"API at {self.base_url} failed: {method} {path} answered {response.status_code}"
            )
        return response

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
    ) -> Any:
        response = await self._send(method, path, params=params, json=json)
        return response.json() if response.content else None

    def _read(self, model: type[Model], body: Any) -> Model:
        """`body` as `model`; ApiUnavailable when it does not fit (an API of another version)."""
        try:
            return model.model_validate(body)
        except ValidationError as error:
            raise ApiUnavailable(
                f"API at {self.base_url} answered a {model.__name__} this UI cannot read: "
                f"{_first_problem(error)}"
            ) from None

    async def recent_events(self, limit: int = 50) -> list[EventRecord]:
        body = await self._call("GET", "/api/events", params={"limit": limit})
        return [self._read(EventRecord, item) for item in body["items"]]

    async def readiness(self) -> Readiness:
        try:
            response = await self._client.get("/readyz")
            checks = response.json()
        except (httpx.HTTPError, ValueError) as error:
            return Readiness(False, {"api": f"unreachable: {error}"})
        backlog, max_backlog = checks.pop("backlog", None), checks.pop("max_backlog", None)
        return Readiness(
            response.status_code == 200,
            {str(k): str(v) for k, v in checks.items()},
            backlog=backlog if isinstance(backlog, int | str) else None,
            max_backlog=max_backlog if isinstance(max_backlog, int) else None,
        )

    async def _count(self, path: str, params: dict[str, str | int] | None = None) -> Count:
        body = await self._call("GET", path, params={**(params or {}), "limit": COUNT_LIMIT})
        return Count(len(body["items"]), more=body["continuation"] is not None)

    async def counts(self) -> Counts:
        statuses = list(TaskStatus)
        (events, unread, letters), tasks = await asyncio.gather(
            asyncio.gather(
                self._count("/api/events"),
                self._count("/api/notifications", {"read": "false"}),
                self._count("/api/dead-letters"),
            ),
            asyncio.gather(*(self._count("/api/tasks", {"status": s.value}) for s in statuses)),
        )
        return Counts(
            events=events,
            tasks=dict(zip(statuses, tasks, strict=True)),
            unread_notifications=unread,
            dead_letters=letters,
        )

    async def services(self) -> dict[str, ServiceOut]:
        """Background services by name, from their heartbeats."""
        body = await self._call("GET", "/api/services")
        states = [self._read(ServiceOut, item) for item in body]
        return {state.service: state for state in states}

    async def instructions(self) -> list[Instruction]:
        body = await self._call("GET", "/api/instructions", params={"limit": 200})
        return [self._read(Instruction, item) for item in body["items"]]

    async def create_instruction(self, spec: dict[str, Any]) -> Instruction:
        return self._read(Instruction, await self._call("POST", "/api/instructions", json=spec))

    async def instruction(self, instruction_id: str) -> tuple[Instruction, str]:
        """One instruction and its ETag, which replacing it requires."""
        response = await self._send("GET", f"/api/instructions/{instruction_id}")
        return self._read(Instruction, response.json()), response.headers["ETag"]

    async def replace_instruction(
        self, instruction_id: str, spec: dict[str, Any], etag: str
    ) -> Instruction:
        """Replace it only if it is still the version `etag` names (else ApiRejected 412)."""
        response = await self._send(
            "PUT", f"/api/instructions/{instruction_id}", json=spec, headers={"If-Match": etag}
        )
        return self._read(Instruction, response.json())

    async def enable_instruction(self, instruction_id: str) -> None:
        await self._call("POST", f"/api/instructions/{instruction_id}/enable")

    async def disable_instruction(self, instruction_id: str) -> None:
        await self._call("POST", f"/api/instructions/{instruction_id}/disable")

    async def delete_instruction(self, instruction_id: str) -> None:
        await self._call("DELETE", f"/api/instructions/{instruction_id}")

    async def tasks(self) -> list[Task]:
        body = await self._call("GET", "/api/tasks", params={"limit": 100})
        return [self._read(Task, item) for item in body["items"]]

    async def cancel_task(self, task_id: str) -> None:
        await self._call("POST", f"/api/tasks/{task_id}/cancel")

    async def notifications(self) -> list[Notification]:
        body = await self._call("GET", "/api/notifications", params={"limit": 100})
        return [self._read(Notification, item) for item in body["items"]]

    async def mark_read(self, notification_id: str) -> None:
        await self._call("POST", f"/api/notifications/{notification_id}/read")

    async def dead_letters(self) -> list[DeadLetterOut]:
        body = await self._call("GET", "/api/dead-letters", params={"limit": 100})
        return [self._read(DeadLetterOut, item) for item in body["items"]]

    async def replay(self, event_id: str) -> None:
        await self._call("POST", f"/api/dead-letters/{event_id}/replay")

    async def changes(self) -> AsyncGenerator[Change]:
        """The API's `/api/events/stream`, message by message, until it ends."""
        try:
            async with self._client.stream(
                "GET", "/api/events/stream", timeout=STREAM_TIMEOUT, headers=self._headers
            ) as response:
                response.raise_for_status()
                async for message in sse.messages(response.aiter_text()):
                    yield self._change(message)
        except httpx.HTTPError as error:
            raise ApiUnavailable(f"API stream at {self.base_url} failed: {error}") from None

    def _change(self, message: sse.Message) -> Change:
        """A stream message as a Change (one it does not know: a heartbeat); ApiUnavailable
        when a status message's record is unreadable."""
        if message.event == "ready":
            return Change("ready")
        if message.event not in STATUSES:
            return Change("heartbeat")
        try:
            return Change(message.event, EventRecord.model_validate_json(message.data))
        except ValidationError as error:
            raise ApiUnavailable(
                f"API stream at {self.base_url} sent an unreadable {message.event!r} record: "
                f"{_first_problem(error)}"
            ) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def _first_problem(error: ValidationError) -> str:
    """Where and what the first validation problem is, in one line."""
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else problem["msg"]
