"""Response bodies that are not domain records, shared by the API and its clients (the UI)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from lightning_core.events import CloudEvent


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
