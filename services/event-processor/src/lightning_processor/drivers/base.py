"""What a driver is, how events reach drivers, and how drivers shape their follow-up events."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

from lightning_core.bus.base import EventBus, Handler
from lightning_core.domain import INTERNAL_PREFIX
from lightning_core.events import CloudEvent
from lightning_core.idempotency import idempotent
from lightning_core.storage.base import Storage
from lightning_core.telemetry import current_traceparent

#: The `source` of every event the processor publishes.
SOURCE = "lightning/processor"

_FOLLOW_UP_IDS = uuid.UUID("6f1c2a4e-3b0d-5c8e-9a7f-1d2e3f405162")


def derived_id(*parts: str) -> str:
    """A stable id for what a driver creates from `parts`, so a re-run creates the same ids."""
    return str(uuid.uuid5(_FOLLOW_UP_IDS, "\x1f".join(parts)))


def follow_up(
    cause: CloudEvent, type_: str, data: dict[str, Any], *key: str, budget: int
) -> CloudEvent:
    """A follow-up of `cause`: its user and correlation, one more hop, a derived id, `budget`."""
    return CloudEvent(
        id=derived_id(cause.id, type_, *key),
        source=SOURCE,
        type=type_,
        data=data,
        user=cause.user,
        correlationid=cause.correlationid or cause.id,
        traceparent=current_traceparent() or cause.traceparent,
        hops=cause.hops + 1,
        budget=budget,
    )


@dataclass(frozen=True)
class DriverContext:
    """The store, the bus for follow-ups, and the follow-ups one user's event may cause."""

    storage: Storage
    bus: EventBus
    max_follow_ups: int


class Driver(Protocol):
    @property
    def name(self) -> str:
        """Unique in a registry; names the driver's ledger group, so renaming re-runs events."""

    @property
    def patterns(self) -> tuple[str, ...]:
        """fnmatch patterns of the event types the driver handles."""

    @property
    def ledger(self) -> bool:
        """Whether to run through the idempotency ledger (the effect is not idempotent itself)."""

    async def handle(self, event: CloudEvent, context: DriverContext) -> None: ...


def matches(pattern: str, event_type: str) -> bool:
    """fnmatch, except that an internal type matches only a pattern naming its prefix."""
    if event_type.startswith(INTERNAL_PREFIX) and not pattern.startswith(INTERNAL_PREFIX):
        return False
    return fnmatchcase(event_type, pattern)


def ledger_group(driver: Driver) -> str:
    return f"event-processor:{driver.name}"


class Registry:
    """Routes each event to every driver with a matching pattern, in registration order."""

    def __init__(self, drivers: Iterable[Driver]) -> None:
        self.drivers = list(drivers)
        names = [driver.name for driver in self.drivers]
        if len(set(names)) != len(names):
            raise ValueError(f"driver names must be unique (they name ledger groups): {names}")

    def routes(self, event_type: str) -> list[Driver]:
        return [
            driver
            for driver in self.drivers
            if any(matches(pattern, event_type) for pattern in driver.patterns)
        ]

    async def dispatch(self, event: CloudEvent, context: DriverContext) -> None:
        """Run the matching drivers in order, ledger ones once; the first failure propagates."""
        for driver in self.routes(event.type):
            handle: Handler = functools.partial(driver.handle, context=context)
            if driver.ledger:
                handle = idempotent(context.storage, ledger_group(driver), handle)
            await handle(event)
