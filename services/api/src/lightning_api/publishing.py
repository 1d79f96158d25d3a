"""Publishing a request's event with a bounded wait: a bus that is down costs a client
`LIGHTNING_PUBLISH_TIMEOUT_SECONDS`, not however long the provider would keep retrying."""

from __future__ import annotations

import asyncio

from lightning_core.bus.base import EventBus
from lightning_core.events import CloudEvent


async def publish_within(bus: EventBus, event: CloudEvent, seconds: float) -> str | None:
    """None once the bus took `event`; otherwise why it did not within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            await bus.publish(event)
    except TimeoutError:
        return f"the bus did not take it within {seconds:g} s (LIGHTNING_PUBLISH_TIMEOUT_SECONDS)"
    except Exception as error:  # any publish failure at all means: not taken
        return f"{type(error).__name__}: {error}"
    return None
