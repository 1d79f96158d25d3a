"""The `event-processor` service entry point: a long-running bus consumer."""

from __future__ import annotations

import asyncio
import functools

from lightning_core.service import ServiceContext
from lightning_processor.handler import CONSUMER_GROUP, handle


async def service(context: ServiceContext, stop: asyncio.Event) -> None:
    await context.bus.consume(CONSUMER_GROUP, functools.partial(handle, context.storage), stop=stop)
