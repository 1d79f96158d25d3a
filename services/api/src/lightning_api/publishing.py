"""Publishing a request's events with a bounded wait (LIGHTNING_PUBLISH_TIMEOUT_SECONDS)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from lightning_core.bus.base import EventBus
from lightning_core.events import CloudEvent


async def publish_within(bus: EventBus, event: CloudEvent, seconds: float) -> str | None:
    """None once the bus took `event`; otherwise why it did not within `seconds`."""
    return await _within(bus.publish(event), seconds)


async def publish_batch_within(
    bus: EventBus, events: Sequence[CloudEvent], seconds: float
) -> str | None:
    """None once the bus took `events` (one `publish_batch`); otherwise why it did not
    within `seconds` (some of them may have been taken)."""
    return await _within(bus.publish_batch(events), seconds)


async def _within(publish: Awaitable[None], seconds: float) -> str | None:
    try:
        async with asyncio.timeout(seconds):
            await publish
    except TimeoutError:
        return f"the bus did not take it within {seconds:g} s (LIGHTNING_PUBLISH_TIMEOUT_SECONDS)"
    except Exception as error:  # any publish failure at all means: not taken
        return f"{type(error).__name__}: {error}"
    return None
