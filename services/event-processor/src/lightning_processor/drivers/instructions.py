"""The instruction engine: runs the user's enabled instructions that match a user event."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

from lightning_core.domain import (
    INSTRUCTIONS,
    INTERNAL_PREFIX,
    MAX_HOPS,
    NOTIFICATION_REQUESTED,
    TASK_REQUESTED,
    TASKS,
    Emit,
    Instruction,
    Notify,
    RequestTask,
    Task,
)
from lightning_core.events import CloudEvent
from lightning_core.storage.base import Conflict, JsonScalar, Storage
from lightning_processor.drivers.base import DriverContext, derived_id, follow_up
from lightning_processor.drivers.budget import allot

log = logging.getLogger(__name__)

# Notification's own limits, which a rendered text must fit.
TITLE_LIMIT = 200
BODY_LIMIT = 4000

#: How long the engine uses a user's instructions once read (`RecentInstructions`).
INSTRUCTIONS_TTL = 1.0

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, data: Mapping[str, Any], limit: int) -> str:
    """`{field}` replaced by that top-level data field (unknown ones kept), cut to `limit`; a
    regex, as `str.format` would let a user's template reach attributes (`{x.__class__}`)."""
    rendered = _FIELD.sub(
        lambda match: str(data[match[1]]) if match[1] in data else match[0], template
    )
    return rendered[:limit]


def _equal(actual: Any, expected: JsonScalar) -> bool:
    """JSON equality: `true` is not `1` (Python's `True == 1` would say it is)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return bool(actual == expected)


def applies(instruction: Instruction, event: CloudEvent) -> bool:
    return fnmatchcase(event.type, instruction.event_type) and all(
        field in event.data and _equal(event.data[field], value)
        for field, value in instruction.data_filter.items()
    )


async def enabled_instructions(storage: Storage, user: str) -> AsyncIterator[Instruction]:
    continuation: str | None = None
    while True:
        page = await storage.query(
            INSTRUCTIONS, user, where={"enabled": True}, continuation=continuation
        )
        for document in page.items:
            yield Instruction.model_validate(document.body)
        if page.continuation is None:
            return
        continuation = page.continuation


class RecentInstructions:
    """Each user's enabled instructions, read again once `ttl` seconds old."""

    def __init__(self, ttl: float, max_users: int = 10_000) -> None:
        self.ttl = ttl
        self.max_users = max_users
        self._users: dict[str, tuple[float, list[Instruction]]] = {}

    async def of(self, storage: Storage, user: str) -> list[Instruction]:
        now = time.monotonic()
        cached = self._users.get(user)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = [instruction async for instruction in enabled_instructions(storage, user)]
        if len(self._users) >= self.max_users:
            self._users = {u: entry for u, entry in self._users.items() if entry[0] > now}
            if len(self._users) >= self.max_users:
                self._users.clear()
        self._users[user] = (now + self.ttl, found)
        return found


class InstructionEngine:
    name = "instructions"
    patterns = ("*",)
    ledger = False  # tasks and follow-ups carry derived ids

    def __init__(self, ttl: float = INSTRUCTIONS_TTL) -> None:
        self.instructions = RecentInstructions(ttl)

    async def handle(self, event: CloudEvent, context: DriverContext) -> None:
        """Store the tasks, then publish all follow-ups in one batch; none past `MAX_HOPS`, and
        `FanOutBound` before anything is stored when they exceed the event's budget."""
        if event.hops >= MAX_HOPS:
            log.warning("event %s is %d hops deep: no instruction runs", event.id, event.hops)
            return
        acting = [
            instruction
            for instruction in await self.instructions.of(context.storage, event.user)
            if applies(instruction, event) and _may_act(instruction)
        ]
        share = allot(event, len(acting), context.max_follow_ups)
        follow_ups = [await self._act(instruction, event, context, share) for instruction in acting]
        if follow_ups:
            await context.bus.publish_batch(follow_ups)

    async def _act(
        self, instruction: Instruction, event: CloudEvent, context: DriverContext, budget: int
    ) -> CloudEvent:
        action = instruction.action
        if isinstance(action, RequestTask):
            task = Task(
                id=derived_id(event.id, instruction.id, "task"),
                user=event.user,
                kind=action.task,
                params=action.params,
                correlationid=event.correlationid or event.id,
                source_event_id=event.id,
            )
            with contextlib.suppress(Conflict):  # stored by an earlier delivery: keep it
                await context.storage.create(
                    TASKS, event.user, task.id, task.model_dump(mode="json")
                )
            return follow_up(
                event, TASK_REQUESTED, {"task_id": task.id}, instruction.id, budget=budget
            )
        if isinstance(action, Notify):
            data = {
                # A title that renders empty (`{name}` with name "") keeps its template.
                "title": render(action.title, event.data, TITLE_LIMIT) or action.title,
                "body": render(action.body, event.data, BODY_LIMIT),
            }
            return follow_up(event, NOTIFICATION_REQUESTED, data, instruction.id, budget=budget)
        return follow_up(event, action.type, dict(action.data), instruction.id, budget=budget)


def _may_act(instruction: Instruction) -> bool:
    action = instruction.action
    if isinstance(action, Emit) and action.type.startswith(INTERNAL_PREFIX):
        log.warning("instruction %s may not emit internal %s", instruction.id, action.type)
        return False
    return True
