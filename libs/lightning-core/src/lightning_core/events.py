"""The one event envelope every bus carries: CloudEvents 1.0 with Lightning OS's extensions,
and the `EventData` limits producers taking data from users hold it to.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import to_json

from lightning_core.ids import new_id

#: How deep `data` may nest (`{}` is 1 deep, `{"a": []}` 2); far below the JSON decoders' limits.
MAX_DATA_DEPTH = 32
#: The most bytes an encoded envelope takes: a Service Bus Standard message holds 256 KiB.
MAX_EVENT_BYTES = 200 * 1024
#: The most bytes `data` encodes to; the rest of the envelope, as the API bounds it, fits.
MAX_DATA_BYTES = MAX_EVENT_BYTES - 8 * 1024


def depth(value: Any) -> int:
    """How many levels of objects and arrays `value` nests (0 for a scalar)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_data(data: dict[str, Any]) -> dict[str, Any]:
    """`data` unchanged if it is within MAX_DATA_DEPTH and MAX_DATA_BYTES; else ValueError
    saying which limit it passes."""
    levels = depth(data)
    if levels > MAX_DATA_DEPTH:
        raise ValueError(f"nested {levels} levels deep; at most {MAX_DATA_DEPTH} are accepted")
    size = len(to_json(data))
    if size > MAX_DATA_BYTES:
        raise ValueError(f"encodes to {size} bytes; at most {MAX_DATA_BYTES} are accepted")
    return data


#: Event data as producers taking it from users must hold it.
EventData = Annotated[dict[str, Any], AfterValidator(check_data)]


def _now() -> datetime:
    return datetime.now(UTC)


class CloudEvent(BaseModel):
    """CloudEvents 1.0 (structured mode) plus `user`, `correlationid`, `traceparent`, `hops`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_id, min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1, max_length=256)
    specversion: Literal["1.0"] = "1.0"
    time: datetime = Field(default_factory=_now)
    subject: str | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    user: str = Field(min_length=1, description="Owner of the event (the partition key)")
    correlationid: str | None = Field(
        default=None, description="Shared by an event and every follow-up it causes"
    )
    traceparent: str | None = Field(default=None, description="W3C trace context")
    hops: int = Field(
        default=0, ge=0, description="Follow-ups between this event and the one a user sent"
    )
    budget: int | None = Field(
        default=None,
        ge=0,
        description="Follow-ups this event and all it causes may still publish; None on a "
        "user's event (the processor starts it at LIGHTNING_MAX_FOLLOW_UPS_PER_EVENT)",
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        return cls.model_validate_json(raw)
