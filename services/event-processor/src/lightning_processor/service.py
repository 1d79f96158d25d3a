"""The `event-processor` service entry point: a long-running bus consumer.

Drivers run inside the handler and start no background tasks, so the bus loop's own stop
on SIGTERM (finish the event in flight; on the memory bus, its backlog too) is all a
graceful shutdown needs. Beside it, the worker
writes a heartbeat (lightning_core.heartbeats), which the API reports and the UI's
dashboard shows: the only sign of life a worker without an HTTP port can give.
"""

from __future__ import annotations

import asyncio

from lightning_core.heartbeats import Heart
from lightning_core.service import ServiceContext
from lightning_processor.drivers import builtin_registry
from lightning_processor.handler import CONSUMER_GROUP, Processor


async def service(context: ServiceContext, stop: asyncio.Event) -> None:
    processor = Processor(
        context.storage,
        context.bus,
        builtin_registry(webhook_origins=context.settings.webhook_origins),
    )
    stopped_consuming = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(Heart(context.storage, CONSUMER_GROUP).beat_until(stopped_consuming))
        try:
            await context.bus.consume(CONSUMER_GROUP, processor.handle, stop=stop)
        finally:
            stopped_consuming.set()
