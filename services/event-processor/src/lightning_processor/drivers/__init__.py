"""The processor's drivers: what it does with each event, routed by event type pattern."""

from __future__ import annotations

from collections.abc import Collection

from lightning_processor.drivers.base import Driver, DriverContext, Registry
from lightning_processor.drivers.instructions import InstructionEngine
from lightning_processor.drivers.notifier import Notifier
from lightning_processor.drivers.tasks import TaskRunner

__all__ = [
    "Driver",
    "DriverContext",
    "InstructionEngine",
    "Notifier",
    "Registry",
    "TaskRunner",
    "builtin_registry",
]


def builtin_registry(*, webhook_origins: Collection[str] = ()) -> Registry:
    """The instruction engine, the task runner and the notifier."""
    return Registry([InstructionEngine(), TaskRunner(webhook_origins=webhook_origins), Notifier()])
