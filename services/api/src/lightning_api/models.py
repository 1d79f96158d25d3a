"""Request and response bodies the API adds to the domain records of lightning-core."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from lightning_core.domain import TaskSpec
from lightning_core.events import CloudEvent


class EventIn(BaseModel):
    """What a client submits; the API fills in id, time, source default and owner."""

    type: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    source: str = Field(default="api", min_length=1, max_length=256)
    subject: str | None = Field(default=None, max_length=256)
    data: dict[str, Any] = Field(default_factory=dict)
    correlationid: str | None = Field(default=None, max_length=128)


class ErrorDetail(BaseModel):
    """What an error response carries (FastAPI's HTTPException body)."""

    detail: str


class TaskIn(TaskSpec):
    """A task request: the spec, and optionally the correlation id of what it belongs to."""

    correlationid: str | None = Field(default=None, min_length=1, max_length=128)


class DeadLetterOut(BaseModel):
    """An event the processor gave up on, with the last error, for the caller to replay."""

    event: CloudEvent
    reason: str
    attempts: int
    failed_at: datetime


class InstanceOut(BaseModel):
    """One running instance of a service, by its last heartbeat."""

    instance: str
    started_at: datetime
    seen_at: datetime
    alive: bool  # beat within the last lightning_core.heartbeats.STALE_AFTER


class ServiceOut(BaseModel):
    """A service that beats (the event processor), with every instance seen lately."""

    service: str
    alive: int  # instances alive now; 0 means the service is down or scaled to zero
    instances: list[InstanceOut]
