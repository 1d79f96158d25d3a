"""POST /api/events: a client's event, or a CloudEvent, or a batch of CloudEvents; the
route reads its own body, whose shape its media type decides."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from lightning_api.admission import Admitted
from lightning_api.cloudevents import BATCH, CLOUDEVENT, JSON, MEDIA_TYPES, read_submission
from lightning_api.dependencies import ContextDep, CurrentUser
from lightning_api.door import DoorRoute, media_type, read_json, unsupported
from lightning_api.ingest import accept
from lightning_api.models import CloudEventIn, ErrorDetail, EventIn
from lightning_api.resource import BAD_BODY, UNAUTHORIZED, Responses
from lightning_api.stream_watchers import activity
from lightning_core.records import EventRecord
from lightning_core.telemetry import current_traceparent

SUBMIT_DESCRIPTION = """\
Accept events: store each as `received`, then publish them to the bus.

The body is one of
- `application/json`: an event (`EventIn`); the API assigns its id and time;
- `application/cloudevents+json`: a CloudEvents 1.0 event in structured mode. The record's
  `event.id` is derived from the caller, `source` and `id`: sending the same `source` and
  `id` again answers the record already kept (200) instead of storing it twice, and
  publishes it again only if that record is `failed`;
- `application/cloudevents-batch+json`: a JSON array of such events, at most
  LIGHTNING_MAX_BATCH_EVENTS. A batch is all or nothing: if any event is refused, the
  answer is 422 naming each problem by its index (`loc: ["body", 3, "data"]`) and none is
  stored. The answer lists the records in the order sent.

While the processor's backlog is past LIGHTNING_MAX_BACKLOG the answer is 503 with
`Retry-After` and nothing is stored. If the bus does not take the events within
LIGHTNING_PUBLISH_TIMEOUT_SECONDS, their records are marked `failed` with the reason and
the answer is 503 (send them again); if the processor got them after all, they stay
processed and the answer is 202.
"""


RESPONSES: Responses = {
    **UNAUTHORIZED,
    **BAD_BODY,
    200: {"model": EventRecord, "description": "A CloudEvent sent again: the kept record"},
    415: {"model": ErrorDetail, "description": f"The body is not sent as {MEDIA_TYPES}"},
    422: {"description": "Validation Error; a batch's problems named by index"},
    503: {
        "model": ErrorDetail,
        "description": "The processor's backlog is past LIGHTNING_MAX_BACKLOG "
        "(Retry-After; nothing stored), or the bus did not take the events (their "
        "records are failed)",
    },
}


async def submit_event(
    user: CurrentUser, context: ContextDep, request: Request, response: Response
) -> EventRecord | list[EventRecord]:
    sent = media_type(request)
    if sent not in MEDIA_TYPES:
        raise unsupported(sent, *MEDIA_TYPES)
    submission = read_submission(
        sent,
        await read_json(request),
        user=user,
        traceparent=current_traceparent(),
        max_events=context.settings.max_batch_events,
    )
    accepted = await accept(context, submission.events, batch=submission.batch)
    activity(request).notify(user)  # the user's open streams look now, and often
    if submission.batch:
        return [item.record for item in accepted]
    [single] = accepted
    if not single.new:
        response.status_code = status.HTTP_200_OK
    return single.record


def router(max_events: int) -> APIRouter:
    """The route, its three bodies documented (FastAPI sees none: the route reads its
    own) with a batch of at most `max_events`."""
    event = CloudEventIn.model_json_schema()
    bodies: dict[str, Any] = {
        JSON: {"schema": EventIn.model_json_schema()},
        CLOUDEVENT: {"schema": event},
        BATCH: {"schema": {"type": "array", "items": event, "maxItems": max_events}},
    }
    events = APIRouter(route_class=DoorRoute)
    events.add_api_route(
        "/api/events",
        submit_event,
        methods=["POST"],
        status_code=status.HTTP_202_ACCEPTED,
        tags=["events"],
        description=SUBMIT_DESCRIPTION,
        dependencies=[Admitted],
        responses=RESPONSES,
        openapi_extra={"requestBody": {"required": True, "content": bodies}},
    )
    return events
