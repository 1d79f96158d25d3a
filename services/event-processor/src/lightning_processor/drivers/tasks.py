"""The task runner: moves a requested task pending -> running -> succeeded | failed, retrying
it up to its own `max_attempts` by fresh requests (a failing task never becomes a dead letter)."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Collection
from typing import Any

import httpx

from lightning_core.domain import (
    FINAL_TASK_STATUSES,
    INTERNAL_PREFIX,
    NOTIFICATION_REQUESTED,
    TASK_FAILED,
    TASK_REQUESTED,
    TASK_SUCCEEDED,
    TASKS,
    Emit,
    Notify,
    Task,
    TaskKind,
    TaskStatus,
    now,
)
from lightning_core.events import CloudEvent
from lightning_core.storage.base import Document, NotFound, PreconditionFailed
from lightning_processor.background import LongTasks
from lightning_processor.drivers.base import DriverContext, derived_id, follow_up
from lightning_processor.drivers.budget import LEAF, allot

log = logging.getLogger(__name__)


class TaskError(Exception):
    """The task's parameters cannot work (a retry would fail the same way, but it is cheap)."""


DEFAULT_PORTS = {"http": 80, "https": 443}
#: Task kinds whose attempts may take seconds: run off the delivery path when possible.
LONG_KINDS = frozenset({TaskKind.WAIT, TaskKind.WEBHOOK})


def parse_url(url: str) -> httpx.URL:
    """`url` as the webhook client reads it, so the origin checked is the one called."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as error:
        raise TaskError(f"not an http(s) URL: {url!r} ({error})") from None
    if parsed.scheme not in DEFAULT_PORTS or not parsed.raw_host:
        raise TaskError(f"not an http(s) URL: {url!r}")
    return parsed


def origin(url: str | httpx.URL) -> str:
    """Normalised `scheme://host:port` (IDNA lower-case host, IPv6 bracketed, port always set)."""
    parsed = parse_url(url) if isinstance(url, str) else url
    host = parsed.raw_host.decode("ascii").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parsed.scheme}://{host}:{parsed.port or DEFAULT_PORTS[parsed.scheme]}"


class TaskRunner:
    name = "tasks"
    patterns = (TASK_REQUESTED,)
    ledger = True  # a finished request must not run an attempt its retry also runs

    def __init__(
        self,
        *,
        webhook_origins: Collection[str] = (),
        max_wait: float = 10.0,
        webhook_deadline: float = 10.0,
        webhook_max_response_bytes: int = 64 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
        long_tasks: LongTasks | None = None,
    ) -> None:
        """`webhook_origins`: where webhooks may POST (empty: nowhere); `max_wait` and
        `webhook_deadline` in seconds; long attempts run in `long_tasks` if given."""
        self.webhook_origins = frozenset(origin(url) for url in webhook_origins)
        self.max_wait = max_wait
        self.webhook_deadline = webhook_deadline
        self.webhook_max_response_bytes = webhook_max_response_bytes
        self.transport = transport
        self.long_tasks = long_tasks

    async def handle(self, event: CloudEvent, context: DriverContext) -> None:
        task_id = str(event.data.get("task_id", ""))
        try:
            document = await context.storage.get(TASKS, event.user, task_id)
        except NotFound:
            log.warning("task %r of event %s does not exist (deleted?)", task_id, event.id)
            return
        task = Task.model_validate(document.body)
        if task.status in FINAL_TASK_STATUSES:
            log.info("task %s is %s: not run", task.id, task.status)
            return
        if task.kind in LONG_KINDS and self.long_tasks is not None:
            self.long_tasks.start(
                functools.partial(self._detached, task, document.etag, event, context),
                functools.partial(self._request_again, task, event, context, "handed-back"),
            )
            return
        await self._attempt(task, document.etag, event, context)

    async def _detached(
        self, task: Task, etag: str, event: CloudEvent, context: DriverContext
    ) -> None:
        """An attempt no delivery retries: a task changed meanwhile (cancelled, claimed) wins."""
        try:
            await self._attempt(task, etag, event, context)
        except PreconditionFailed:
            log.info("task %s changed while its attempt was due: left as it is", task.id)

    async def _attempt(
        self, task: Task, etag: str, event: CloudEvent, context: DriverContext
    ) -> None:
        task.status, task.attempts = TaskStatus.RUNNING, task.attempts + 1
        document = await self._save(context, task, etag)
        try:
            result = await self._run(task, event, context)
        except Exception as error:  # any failure of the task's work counts as an attempt
            await self._failed(task, event, context, document, f"{type(error).__name__}: {error}")
        else:
            task.status, task.result, task.error = TaskStatus.SUCCEEDED, result, None
            await self._save(context, task, document.etag)
            await context.bus.publish(
                follow_up(
                    event, TASK_SUCCEEDED, {"task_id": task.id, "result": result}, budget=LEAF
                )
            )

    async def _request_again(
        self, task: Task, event: CloudEvent, context: DriverContext, why: str
    ) -> None:
        """Publish the task's request again under a fresh id (the ledger skips the old one)."""
        again = event.model_copy(
            update={"id": derived_id(task.id, why, str(task.attempts)), "time": now()}
        )
        await context.bus.publish(again)

    async def _failed(
        self,
        task: Task,
        event: CloudEvent,
        context: DriverContext,
        document: Document,
        error: str,
    ) -> None:
        task.error = error
        if task.attempts < task.max_attempts:
            log.warning("task %s attempt %d failed (%s): retrying", task.id, task.attempts, error)
            task.status = TaskStatus.PENDING
            await self._save(context, task, document.etag)
            await self._request_again(task, event, context, "attempt")
            return
        log.warning("task %s failed after %d attempts: %s", task.id, task.attempts, error)
        task.status = TaskStatus.FAILED
        await self._save(context, task, document.etag)
        await context.bus.publish(
            follow_up(event, TASK_FAILED, {"task_id": task.id, "error": error}, budget=LEAF)
        )

    async def _save(self, context: DriverContext, task: Task, etag: str) -> Document:
        task.updated_at = now()
        return await context.storage.replace(
            TASKS, task.user, task.id, task.model_dump(mode="json"), if_match=etag
        )

    async def _run(self, task: Task, event: CloudEvent, context: DriverContext) -> dict[str, Any]:
        match task.kind:
            case TaskKind.NOTIFY:
                notify = Notify.model_validate(task.params)
                request = follow_up(
                    event,
                    NOTIFICATION_REQUESTED,
                    {"title": notify.title, "body": notify.body},
                    task.id,
                    budget=LEAF,
                )
                await context.bus.publish(request)
                return {"notification_event_id": request.id}
            case TaskKind.WAIT:
                requested = float(task.params.get("seconds", 0))
                if math.isnan(requested):  # min/max would pass NaN through to sleep
                    raise TaskError("wait seconds is NaN")
                seconds = min(max(requested, 0.0), self.max_wait)
                await asyncio.sleep(seconds)
                return {"waited": seconds}
            case TaskKind.EMIT:
                emit = Emit.model_validate(task.params)
                if emit.type.startswith(INTERNAL_PREFIX):
                    raise TaskError(f"a task may not emit internal {emit.type}")
                budget = allot(event, 1, context.max_follow_ups)
                emitted = follow_up(event, emit.type, emit.data, task.id, budget=budget)
                await context.bus.publish(emitted)
                return {"event_id": emitted.id}
            case TaskKind.WEBHOOK:
                return await self._webhook(task)

    async def _webhook(self, task: Task) -> dict[str, Any]:
        url = parse_url(str(task.params.get("url", "")))
        target = origin(url)
        if target not in self.webhook_origins:
            raise TaskError(f"webhook origin {target} is not allow-listed")
        try:
            async with asyncio.timeout(self.webhook_deadline):
                return await self._post(url, task.params.get("payload", {}))
        except TimeoutError:
            raise TaskError(
                f"webhook {target} did not answer in full within {self.webhook_deadline:g} s "
                "(LIGHTNING_WEBHOOK_DEADLINE_SECONDS)"
            ) from None

    async def _post(self, url: httpx.URL, payload: Any) -> dict[str, Any]:
        """POST `payload`; a non-2xx status raises; at most the byte cap of the reply is read."""
        cap = self.webhook_max_response_bytes
        # No redirects (httpx's default): one could leave the allow-list.
        async with (
            httpx.AsyncClient(timeout=self.webhook_deadline, transport=self.transport) as client,
            client.stream("POST", url, json=payload) as response,
        ):
            response.raise_for_status()
            received = 0
            # Raw bytes, as sent: decoding a compressed body could grow it past the cap.
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received > cap:
                    break
        return {
            "status_code": response.status_code,
            "body_bytes": min(received, cap),
            "body_truncated": received > cap,
        }
