"""Request bodies the API accepts, and its error body (responses: lightning_core.wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from lightning_core.domain import (
    INTERNAL_PREFIX,
    Emit,
    EmitParams,
    EventType,
    InstructionSpec,
    Notify,
    NotifyParams,
    WaitParams,
    WebhookParams,
)
from lightning_core.events import EventData


def _not_internal(event_type: str) -> str:
    if event_type.lower().startswith(INTERNAL_PREFIX):
        raise ValueError(f"types starting with {INTERNAL_PREFIX!r} are Lightning OS's own")
    return event_type


#: An event type a client may name: any but the internal `lightning.*` ones (in any case).
ClientEventType = Annotated[EventType, AfterValidator(_not_internal)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_In):
    """What a client submits; the API fills in id, time, source default and owner."""

    type: ClientEventType
    source: str = Field(default="api", min_length=1, max_length=256)
    subject: str | None = Field(default=None, max_length=256)
    data: EventData = Field(default_factory=dict)
    correlationid: str | None = Field(default=None, max_length=128)


def _timestamp_text(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise ValueError("a timestamp is an RFC 3339 string")  # not a number of seconds
    return value


class CloudEventIn(_In):
    """A CloudEvents 1.0 event in the JSON format (structured mode), as a client may send it;
    the stored `id` derives from the caller, `source` and `id` (sent again: the kept record)."""

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=256)
    type: ClientEventType
    subject: str | None = Field(default=None, max_length=256)
    time: Annotated[AwareDatetime | None, BeforeValidator(_timestamp_text)] = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: EventData = Field(default_factory=dict)
    correlationid: str | None = Field(default=None, max_length=128)


class EmitParamsIn(EmitParams):
    """The event an emit task or action publishes: a client's type, data within the limits."""

    type: ClientEventType
    data: EventData = Field(default_factory=dict)


class EmitIn(EmitParamsIn, Emit):
    """An `emit` action as a client may write it."""


class _RequestTaskIn(_In):
    kind: Literal["request_task"]


class RequestNotifyIn(_RequestTaskIn):
    task: Literal["notify"]
    params: NotifyParams


class RequestWaitIn(_RequestTaskIn):
    task: Literal["wait"]
    params: WaitParams = Field(default_factory=WaitParams)


class RequestEmitIn(_RequestTaskIn):
    task: Literal["emit"]
    params: EmitParamsIn


class RequestWebhookIn(_RequestTaskIn):
    task: Literal["webhook"]
    params: WebhookParams


#: A `request_task` action as a client may write it: params checked for the task's kind.
RequestTaskIn = Annotated[
    RequestNotifyIn | RequestWaitIn | RequestEmitIn | RequestWebhookIn,
    Field(discriminator="task"),
]


def _kind(action: Any) -> Any:
    return action.get("kind") if isinstance(action, dict) else getattr(action, "kind", None)


# A callable discriminator: OpenAPI cannot map one tag (`request_task`) to a union.
ActionIn = Annotated[
    Annotated[RequestTaskIn, Tag("request_task")]
    | Annotated[Notify, Tag("notify")]
    | Annotated[EmitIn, Tag("emit")],
    Discriminator(_kind),
]


class InstructionIn(InstructionSpec):
    """An instruction as a client may write it: an action that can run as written."""

    action: ActionIn  # type: ignore[assignment]  # each task kind's params typed


class _TaskIn(_In):
    """A task request: the spec, and optionally the correlation id of what it belongs to."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    correlationid: str | None = Field(default=None, min_length=1, max_length=128)


class NotifyTaskIn(_TaskIn):
    kind: Literal["notify"]
    params: NotifyParams


class WaitTaskIn(_TaskIn):
    kind: Literal["wait"]
    params: WaitParams = Field(default_factory=WaitParams)


class EmitTaskIn(_TaskIn):
    kind: Literal["emit"]
    params: EmitParamsIn


class WebhookTaskIn(_TaskIn):
    kind: Literal["webhook"]
    params: WebhookParams


#: A task request, its params checked for its kind.
TaskIn = Annotated[
    NotifyTaskIn | WaitTaskIn | EmitTaskIn | WebhookTaskIn, Field(discriminator="kind")
]


class ErrorDetail(BaseModel):
    """What an error response carries (FastAPI's HTTPException body)."""

    detail: str
