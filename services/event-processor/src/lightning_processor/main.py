"""The `event-processor` worker: a bus consumer with a heartbeat and orphan sweeps beside it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from lightning_core import metrics
from lightning_core.heartbeats import Heart
from lightning_core.republish import run_republisher
from lightning_core.service import ServiceContext
from lightning_processor.background import LongTasks
from lightning_processor.handler import CONSUMER_GROUP, Processor
from lightning_processor.recovery import run_recovery

#: Sweeps per republish bound: an orphan is published again at most a quarter late.
SWEEPS_PER_BOUND = 4


async def service(context: ServiceContext, stop: asyncio.Event) -> None:
    """Consume until `stop`, then let running long attempts finish and hand back waiting ones."""
    settings = context.settings
    long_tasks = LongTasks(settings.long_task_concurrency)
    processor = Processor.from_settings(context.storage, context.bus, settings, long_tasks)
    if settings.metrics_port is not None:  # no HTTP server of its own to serve /metrics on
        metrics.serve(settings.metrics_port, settings.host)
    stopped_consuming = asyncio.Event()
    every = settings.republish_after_seconds / SWEEPS_PER_BOUND
    older_than = timedelta(seconds=settings.republish_after_seconds)
    async with asyncio.TaskGroup() as group:
        group.create_task(Heart(context.storage, CONSUMER_GROUP).beat_until(stopped_consuming))
        group.create_task(
            run_republisher(
                context.storage,
                context.bus,
                every=every,
                older_than=older_than,
                stop=stop,
                retention=timedelta(days=settings.retention_days),
            )
        )
        group.create_task(
            run_recovery(
                context.storage,
                context.bus,
                every=every,
                older_than=older_than,
                stop=stop,
            )
        )
        try:
            await context.bus.consume(CONSUMER_GROUP, processor.handle, stop=stop)
            await long_tasks.stop()
        finally:
            stopped_consuming.set()
