"""The processor as an Azure Functions app: what `function_app.py` needs, testable alone."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from pydantic import ValidationError

from lightning_core.config import ConfigError, Settings, load_settings
from lightning_core.events import CloudEvent
from lightning_core.heartbeats import INTERVAL, Heart
from lightning_core.providers import build_bus, build_storage
from lightning_core.republish import purge_expired, republish_stale
from lightning_core.topology import topic_name
from lightning_processor.handler import CONSUMER_GROUP, Processor

log = logging.getLogger(__name__)

#: The app-setting prefix the host reads the trigger's Service Bus connection from.
CONNECTION = "SERVICE_BUS"


class NotACloudEvent(ValueError):
    """The message body is not a CloudEvent: no redelivery can change that."""


def _summary(error: ValidationError) -> str:
    """Pydantic's message spans lines; a log line and a failure reason should not."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
        for problem in error.errors()
    )


class EventFunction:
    """What every invocation runs; `NotACloudEvent`, before storage is touched, for a bad body."""

    def __init__(self, settings: Settings, processor: Processor) -> None:
        self.settings = settings
        self.processor = processor
        self.topic = topic_name(settings.bus_namespace)
        self.subscription = CONSUMER_GROUP
        # No loop of its own to beat in: invocations beat, at most every INTERVAL.
        self._heart = Heart(processor.context.storage, CONSUMER_GROUP)
        self._next_beat: float | None = None

    async def __call__(self, body: bytes, message_id: str) -> None:
        try:
            event = CloudEvent.from_json(body)
        except ValidationError as error:
            reason = f"message {message_id} is not a CloudEvent: {_summary(error)}"
            log.error("%s; the host abandons it until Service Bus dead-letters it", reason)
            raise NotACloudEvent(reason) from None
        await self.processor.connect()
        await self.processor.handle(event)
        if self._next_beat is None:
            await self._heart.forget_gone()
        if self._next_beat is None or time.monotonic() >= self._next_beat:
            self._next_beat = time.monotonic() + INTERVAL
            await self._heart.try_beat()

    async def sweep(self) -> int:
        """Republish events left `received` too long, purge expired ones; how many republished."""
        await self.processor.connect()
        context = self.processor.context
        count = await republish_stale(
            context.storage,
            context.bus,
            older_than=timedelta(seconds=self.settings.republish_after_seconds),
        )
        if count:
            log.info("republished %d events still received", count)
        await purge_expired(context.storage, retention=timedelta(days=self.settings.retention_days))
        return count


def load() -> EventFunction:
    """Read the settings, build (not connect) the providers; bad settings: one line, raise."""
    try:
        settings = load_settings()
        processor = Processor.from_settings(build_storage(settings), build_bus(settings), settings)
    except ConfigError as error:
        log.critical("%s", error)
        raise
    return EventFunction(settings, processor)
