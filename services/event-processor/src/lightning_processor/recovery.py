"""Request again the wait and webhook tasks a dead processor left `running` or `pending`."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import datetime, timedelta

from pydantic import ValidationError

from lightning_core.bus.base import EventBus
from lightning_core.domain import TASK_REQUESTED, TASKS, Task, TaskStatus
from lightning_core.domain import now as utc_now
from lightning_core.events import CloudEvent
from lightning_core.periodic import run_every
from lightning_core.storage.base import Storage
from lightning_processor.drivers.base import SOURCE, derived_id
from lightning_processor.drivers.budget import LEAF
from lightning_processor.drivers.tasks import LONG_KINDS

log = logging.getLogger(__name__)


async def request_stalled_tasks(
    storage: Storage,
    bus: EventBus,
    *,
    older_than: timedelta,
    limit: int = 100,
    now: datetime | None = None,
) -> int:
    """Publish a request for each wait or webhook task (at most `limit` per status, oldest
    first) left `running` or `pending` and not updated for `older_than`; how many."""
    now = now or utc_now()
    cutoff = now - older_than
    requests: list[CloudEvent] = []
    for status in (TaskStatus.RUNNING, TaskStatus.PENDING):
        documents = await storage.query_all(
            TASKS, where={"status": status.value}, order_by="created_at", limit=limit
        )
        for document in documents:
            try:
                task = Task.model_validate(document.body)
            except ValidationError as error:
                log.warning("task %s unreadable, not recovered: %s", document.id, error)
                continue
            if task.kind in LONG_KINDS and task.updated_at < cutoff:
                requests.append(_request(task, now))
    if requests:
        await bus.publish_batch(requests)
    return len(requests)


def _request(task: Task, swept_at: datetime) -> CloudEvent:
    """A fresh id per sweep (the ledger skips a repeated one); the runner's claim runs it once."""
    return CloudEvent(
        id=derived_id(task.id, "recovered", swept_at.isoformat()),
        source=SOURCE,
        type=TASK_REQUESTED,
        data={"task_id": task.id},
        user=task.user,
        correlationid=task.correlationid,
        hops=1,
        budget=LEAF,
    )


async def run_recovery(
    storage: Storage,
    bus: EventBus,
    *,
    every: float,
    older_than: timedelta,
    stop: asyncio.Event,
) -> None:
    """Sweep now and every `every` seconds until `stop`; a failed sweep is logged, not raised."""
    sweep = functools.partial(request_stalled_tasks, storage, bus, older_than=older_than)
    await run_every(every, stop, {"requesting stalled long tasks again": sweep})
