"""The one event envelope: CloudEvents 1.0 with the extensions Lightning OS needs.

Every bus carries exactly this shape in exactly this JSON encoding (`to_json`/`from_json`),
so an event published by the API on Redis reads the same as one delivered by Service Bus.
Extension attribute names follow the CloudEvents rule (lower-case letters and digits only).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lightning_core.ids import new_id


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
