"""The processor's drivers: what it does with each event, routed by event type pattern."""

from __future__ import annotations

from lightning_core.config import Settings
from lightning_processor.background import LongTasks
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


def builtin_registry(settings: Settings, long_tasks: LongTasks | None = None) -> Registry:
    """The instruction engine, the task runner (long attempts in `long_tasks`) and the notifier."""
    runner = TaskRunner(
        long_tasks=long_tasks,
        webhook_origins=settings.webhook_origins,
        webhook_deadline=settings.webhook_deadline_seconds,
        webhook_max_response_bytes=settings.webhook_max_response_bytes,
    )
    return Registry([InstructionEngine(), runner, Notifier()])
