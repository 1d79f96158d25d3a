"""The event bus: the contract in `base`, one module per provider."""

from lightning_core.bus.base import DeadLetter, EventBus, Handler, RetryPolicy

__all__ = ["DeadLetter", "EventBus", "Handler", "RetryPolicy"]
