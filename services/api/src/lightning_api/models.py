"""Request and response bodies of the events API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from lightning_core.records import EventRecord


class EventIn(BaseModel):
    """What a client submits; the API fills in id, time, source default and owner."""

    type: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    source: str = Field(default="api", min_length=1, max_length=256)
    subject: str | None = Field(default=None, max_length=256)
    data: dict[str, Any] = Field(default_factory=dict)
    correlationid: str | None = Field(default=None, max_length=128)


class EventPage(BaseModel):
    items: list[EventRecord]
    continuation: str | None


class ErrorDetail(BaseModel):
    """What an error response carries (FastAPI's HTTPException body)."""

    detail: str
