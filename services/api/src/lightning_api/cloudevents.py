"""The bodies POST /api/events takes (`EventIn`, a `CloudEventIn` or a batch of them, by
media type), read into the events to accept."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from lightning_api.door import invalid
from lightning_api.models import CloudEventIn, EventIn
from lightning_core.events import CloudEvent

JSON = "application/json"
CLOUDEVENT = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MEDIA_TYPES = (JSON, CLOUDEVENT, BATCH)

#: The namespace of the ids derived from a caller's CloudEvents (`client_event_id`).
CLIENT_IDS = uuid.UUID("6bffda1f-8741-4739-8560-519c0f2bf3b6")

T = TypeVar("T")

_EVENT = TypeAdapter(EventIn)
_CLOUDEVENT = TypeAdapter(CloudEventIn)
_BATCH = TypeAdapter(list[CloudEventIn])


@dataclass(frozen=True)
class Submission:
    """What a request submits: its events in order; `batch` when it is answered as a list."""

    events: list[CloudEvent]
    batch: bool = False


def client_event_id(user: str, source: str, client_id: str) -> str:
    """The stored id of a caller's CloudEvent: the same for the same `source` and `id`
    (CloudEvents' rule for one event sent twice), and never another caller's."""
    return str(uuid.uuid5(CLIENT_IDS, json.dumps([user, source, client_id])))


def read_submission(
    media_type: str, value: Any, *, user: str, traceparent: str | None, max_events: int
) -> Submission:
    """The events in `value`, a body sent as `media_type` (one of MEDIA_TYPES), owned by
    `user`; RequestValidationError or a 422 HTTPException (a batch's item by index)."""
    if media_type == JSON:
        body = _validate(_EVENT, value)
        return Submission([CloudEvent(user=user, traceparent=traceparent, **body.model_dump())])
    if media_type == CLOUDEVENT:
        return Submission([_event(_validate(_CLOUDEVENT, value), user, traceparent)])
    if isinstance(value, list) and len(value) > max_events:
        raise invalid(
            f"a batch holds at most {max_events} events (LIGHTNING_MAX_BATCH_EVENTS); "
            f"this one has {len(value)}"
        )
    bodies = _validate(_BATCH, value)
    return Submission([_event(body, user, traceparent) for body in bodies], batch=True)


def _event(body: CloudEventIn, user: str, traceparent: str | None) -> CloudEvent:
    fields = body.model_dump(exclude={"specversion", "id"}, exclude_none=True)
    event_id = client_event_id(user, body.source, body.id)
    return CloudEvent(id=event_id, user=user, traceparent=traceparent, **fields)


def _validate(adapter: TypeAdapter[T], value: Any) -> T:
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        errors = [
            {**problem, "loc": ("body", *problem["loc"])}
            for problem in error.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from None
