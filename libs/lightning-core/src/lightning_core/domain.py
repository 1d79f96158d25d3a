"""The Lightning OS domain, shared by the API and the event processor: instructions react to
events, tasks run, notifications tell; every record belongs to one user (docs/processor.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from lightning_core.ids import new_id
from lightning_core.storage.base import JsonScalar

INSTRUCTIONS = "instructions"
TASKS = "tasks"
NOTIFICATIONS = "notifications"

#: The event processor's consumer group: its dead letters are the ones users see and replay.
PROCESSOR_GROUP = "event-processor"

INTERNAL_PREFIX = "lightning."
TASK_REQUESTED = "lightning.task.requested"
TASK_SUCCEEDED = "lightning.task.succeeded"
TASK_FAILED = "lightning.task.failed"
NOTIFICATION_REQUESTED = "lightning.notification.requested"

#: A chain of emitted events stops here, so instructions emitting each other's events end.
MAX_HOPS = 8

EventType = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]
TypePattern = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9*?\[][A-Za-z0-9._:/*?\[\]!-]*$")
]


def now() -> datetime:
    return datetime.now(UTC)


class TaskKind(StrEnum):
    NOTIFY = "notify"  # params: title, body
    WAIT = "wait"  # params: seconds (bounded)
    EMIT = "emit"  # params: type, data
    WEBHOOK = "webhook"  # params: url (must be allow-listed), payload


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_TASK_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _require_kind(schema: JsonDict) -> None:
    """Mark `kind` required in the JSON schema: validation needs it, though Python may omit it."""
    required = schema.get("required")
    schema["required"] = ["kind", *(required if isinstance(required, list) else [])]


class _Action(_Strict):
    model_config = ConfigDict(json_schema_extra=_require_kind)


class NotifyParams(_Strict):
    """What a notification says: a `notify` action's fields, a `notify` task's params."""

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=4000)


class EmitParams(_Strict):
    """The event to emit: an `emit` action's fields, an `emit` task's params."""

    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)


class WaitParams(_Strict):
    """A `wait` task's params (the task runner caps how long it waits)."""

    seconds: float = Field(default=0, ge=0, allow_inf_nan=False, strict=True)  # not `true`


class WebhookParams(_Strict):
    """A `webhook` task's params; the task runner calls only allow-listed origins."""

    url: str = Field(min_length=1, max_length=2048, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+")
    payload: Any = Field(default_factory=dict)


class RequestTask(_Action):
    """Request a task; `params` take the shape of `task`'s params model above."""

    kind: Literal["request_task"] = "request_task"
    task: TaskKind
    params: dict[str, Any] = Field(default_factory=dict)


class Notify(NotifyParams, _Action):
    kind: Literal["notify"] = "notify"


class Emit(EmitParams, _Action):
    kind: Literal["emit"] = "emit"


Action = Annotated[RequestTask | Notify | Emit, Field(discriminator="kind")]


class InstructionSpec(_Strict):
    """What a user writes: when an event matches, do the action."""

    name: str = Field(min_length=1, max_length=200)
    event_type: TypePattern
    data_filter: dict[str, JsonScalar] = Field(default_factory=dict)
    action: Action
    enabled: bool = Field(default=True, strict=True)  # JSON 0/1 is not a yes/no


class Instruction(InstructionSpec):
    id: str = Field(default_factory=new_id)
    user: str
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)


class TaskSpec(_Strict):
    kind: TaskKind
    params: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int = Field(default=3, ge=1, le=10)


class Task(TaskSpec):
    id: str = Field(default_factory=new_id)
    user: str
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    correlationid: str | None = None
    source_event_id: str | None = None
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)


class Notification(_Strict):
    id: str = Field(default_factory=new_id)
    user: str
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=4000)
    read: bool = False
    correlationid: str | None = None
    source_event_id: str | None = None
    created_at: datetime = Field(default_factory=now)
