"""Request again the long tasks a dead processor left behind.

A wait or webhook attempt runs off the delivery path (`lightning_processor.background`),
after its request was acknowledged: a process that dies then leaves the task `running`
(mid-attempt) or `pending` (waiting for a slot) with no request left on the bus. A sweep
finds such tasks not updated for longer than any attempt lasts and publishes a fresh
request for each; the runner claims a task with a conditional write, so a task another
runner still holds is run once.
"""

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
    """A request of its own per sweep (the ledger would skip a repeated id); the runner's
    claim keeps several of them from running the task twice."""
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
    """Sweep now and every `every` seconds until `stop` is set; a failed sweep is logged and
    tried again at the next round."""
    sweep = functools.partial(request_stalled_tasks, storage, bus, older_than=older_than)
    await run_every(every, stop, {"requesting stalled long tasks again": sweep})
