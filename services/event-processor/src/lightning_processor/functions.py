"""The event processor as an Azure Functions app: what `function_app.py` needs, testable alone.

The worker (`service.py`) and the Function run the same `Processor.handle(event)`; only the
delivery differs. Here the Functions host's Service Bus trigger receives from the topic the
Service Bus provider publishes to (`{LIGHTNING_BUS_NAMESPACE}-events`), on the processor's
subscription (its consumer group, `event-processor`), in peek-lock mode.

Settlement (host.json: `autoCompleteMessages: true`): the host completes a message when the
invocation returns and abandons it when the invocation raises; Service Bus then redelivers it
at once, and after the subscription's max delivery count (at least 10, as
`lightning_core.topology` declares it) moves it to the dead-letter subqueue with the reason
`MaxDeliveryCountExceeded`. Functions offers no retry policy for Service Bus triggers, so
those redeliveries are the retry budget, without backoff.

A message that is not a CloudEvent takes that same path, deliberately: the Python
`azure.functions.ServiceBusMessage` binding has no dead-letter call (settlement from Python
needs the pre-release `azurefunctions-extensions-bindings-servicebus`), and completing it
instead would drop it silently. So the body is decoded before storage is touched, every
delivery logs one error line naming the message id and what is wrong with the body, and the
invocation fails with `NotACloudEvent`; a few cheap redeliveries later the message sits in
the dead-letter subqueue, where the portal shows it (the bus's `dead_letters()` lists only
CloudEvents). The worker, which settles itself, dead-letters such a message at once with
the reason `not a CloudEvent: ...`.

A timer trigger (`republish_stale`, every minute) sweeps for orphans beside it, as the
worker does (lightning_core.republish): events still `received`
LIGHTNING_REPUBLISH_AFTER_SECONDS after the API accepted them are published again, and the
Service Bus trigger then processes them.

Settings, storage and the bus (which the drivers publish follow-up events to) are read and
built once per worker process, when the host imports
`function_app.py` to index it: the topic name in the trigger binding depends on them, and a
misconfigured app must not start receiving (it would burn every message's deliveries and
dead-letter good events). Bad settings are logged as one line and the import fails, so the
host indexes no function and the messages wait in the subscription. Storage and the bus
connect on the first invocation (their connect is idempotent) and are reused by every later
one. They are never closed: the host ends the worker process, which releases the
connections with it.

The host connects the trigger through the app setting `SERVICE_BUS` (a connection string)
or, with a managed identity, `SERVICE_BUS__fullyQualifiedNamespace` (the namespace host
name, the same value as SERVICE_BUS_NAMESPACE). The host never creates the subscription:
it must exist, with its replay rule, before events are published. The infrastructure
declares it (`lightning_core.topology.bus_topology`, deployed by infra/), and the Service
Bus provider verifies it when it connects, in the worker and here alike, failing with one
line naming what is missing (a connection string with Manage rights provisions it instead).

Deployment: the `azure` image runs the worker (`python -m lightning_core.runtime`) and has
no Functions host, so it cannot run this app. The Function is a Functions Python (v2 model)
code deployment, built by `invoke package-function`: its root holds `host.json` and
`function_app.py` (services/event-processor/, the latter re-exporting this app), and the
locked dependencies (lightning-processor with its `functions` extra) sit in
`.python_packages/lib/site-packages`. App settings are the ones `.env.azure` documents, plus
the trigger's connection above; infra sets them all by identity.

host.json (JSON has no comments, so its reasons are here): up to 16 concurrent invocations,
which share the worker's one event loop since the handler is async and waits on I/O; the
host renews each lock for up to 10 minutes, longer than the 5-minute `functionTimeout`, so a
lock never lapses while its invocation still runs (which would hand the event to a second
invocation); extension bundle 4.x carries the Service Bus extension 5.x these names need.
"""

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
    """What every invocation runs: decode the body, connect once, call `Processor.handle`."""

    def __init__(self, settings: Settings, processor: Processor) -> None:
        self.settings = settings
        self.processor = processor
        self.topic = topic_name(settings.bus_namespace)
        self.subscription = CONSUMER_GROUP
        # A Function has no loop of its own to beat in: invocations beat, at most every
        # INTERVAL, so an idle app shows as not seen (which, with no events, it is not).
        self._heart = Heart(processor.context.storage, CONSUMER_GROUP)
        self._next_beat: float | None = None  # None: this worker process has not beaten yet

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
        """Publish again the events still `received` after the republish bound (how many),
        and purge what is past the retention."""
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
