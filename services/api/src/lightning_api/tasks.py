"""The tasks resource: request a task (queued for the task runner), follow it, cancel it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from lightning_api.admission import Admitted
from lightning_api.dependencies import ContextDep, CurrentUser, StorageDep
from lightning_api.door import DoorRoute
from lightning_api.models import ErrorDetail, TaskIn
from lightning_api.publishing import publish_within
from lightning_api.resource import (
    BAD_BODY,
    BAD_CONTINUATION,
    NOT_FOUND,
    UNAUTHORIZED,
    Continuation,
    Limit,
    Page,
    get_or_404,
    list_page,
    modify,
)
from lightning_core.domain import (
    FINAL_TASK_STATUSES,
    TASK_REQUESTED,
    TASKS,
    Task,
    TaskStatus,
    now,
)
from lightning_core.events import CloudEvent
from lightning_core.ids import new_id
from lightning_core.storage.base import Document, PreconditionFailed, Storage
from lightning_core.telemetry import current_traceparent

router = APIRouter(
    prefix="/api/tasks", tags=["tasks"], responses=UNAUTHORIZED, route_class=DoorRoute
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Admitted],
    responses={
        **BAD_BODY,
        503: {
            "model": ErrorDetail,
            "description": "The processor's backlog is past LIGHTNING_MAX_BACKLOG "
            "(Retry-After; nothing stored), or the bus refused it (the task is failed)",
        },
    },
)
async def request_task(body: TaskIn, user: CurrentUser, context: ContextDep) -> Task:
    """Store the task `pending` and ask the task runner for it (202: it runs later); if the
    bus does not take the request, the task is marked `failed` ("not queued: ...") and the
    answer is 503."""
    storage = context.storage
    correlationid = body.correlationid or new_id()
    task = Task.model_validate({**body.model_dump(), "user": user, "correlationid": correlationid})
    document = await storage.create(TASKS, user, task.id, task.model_dump(mode="json"))
    event = CloudEvent(
        source="api",
        type=TASK_REQUESTED,
        subject=f"tasks/{task.id}",
        data={"task_id": task.id},
        user=user,
        correlationid=correlationid,
        traceparent=current_traceparent(),
    )
    problem = await publish_within(context.bus, event, context.settings.publish_timeout_seconds)
    if problem is not None:
        reason = f"not queued: {problem}"
        if await _fail_unqueued(storage, document, reason):
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"task {task.id} {reason}")
    return task


async def _fail_unqueued(storage: Storage, document: Document, reason: str) -> bool:
    """Mark the task failed; False if the runner already changed it (the event got through)."""
    task = Task.model_validate(document.body)
    failed = task.model_copy(
        update={"status": TaskStatus.FAILED, "error": reason, "updated_at": now()}
    )
    try:
        await storage.replace(
            TASKS, task.user, task.id, failed.model_dump(mode="json"), if_match=document.etag
        )
    except PreconditionFailed:
        return False
    return True


@router.get("", responses=BAD_CONTINUATION)
async def list_tasks(
    user: CurrentUser,
    storage: StorageDep,
    limit: Limit = 50,
    status_filter: Annotated[TaskStatus | None, Query(alias="status")] = None,
    continuation: Continuation = None,
) -> Page[Task]:
    """The caller's tasks, newest first, optionally only those in one status."""
    where = {"status": status_filter.value} if status_filter else None
    return await list_page(
        storage, TASKS, user, Task, where=where, limit=limit, continuation=continuation
    )


@router.get("/{task_id}", responses=NOT_FOUND)
async def get_task(task_id: str, user: CurrentUser, storage: StorageDep) -> Task:
    return Task.model_validate((await get_or_404(storage, TASKS, user, task_id)).body)


@router.post(
    "/{task_id}/cancel",
    responses={
        **NOT_FOUND,
        409: {
            "model": ErrorDetail,
            "description": "The task already finished (or kept changing: retry)",
        },
    },
)
async def cancel_task(task_id: str, user: CurrentUser, storage: StorageDep) -> Task:
    """Cancel a pending or running task; the runner leaves cancelled tasks alone."""

    def change(body: dict[str, Any]) -> dict[str, Any]:
        task = Task.model_validate(body)
        if task.status in FINAL_TASK_STATUSES:
            raise HTTPException(status.HTTP_409_CONFLICT, f"task {task_id} is {task.status}")
        cancelled = task.model_copy(update={"status": TaskStatus.CANCELLED, "updated_at": now()})
        return cancelled.model_dump(mode="json")

    return Task.model_validate((await modify(storage, TASKS, user, task_id, change)).body)
