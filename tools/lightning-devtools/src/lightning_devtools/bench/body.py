"""The JSON body of POST /api/events, declared here so the benchmarks depend on no service."""

from __future__ import annotations

from typing import NotRequired

from typing_extensions import TypedDict  # pydantic validates typing's only from Python 3.12

from lightning_core.domain import EventType
from lightning_core.events import EventData

BATCH_TYPE = "application/cloudevents-batch+json"


class EventBody(TypedDict):
    """One event as a client submits it (the API's `EventIn`), validated with core's types."""

    type: EventType
    source: NotRequired[str]
    subject: NotRequired[str]
    data: NotRequired[EventData]
