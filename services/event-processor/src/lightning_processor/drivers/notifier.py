"""The notifier: stores the notification a `lightning.notification.requested` event asks for."""

from __future__ import annotations

import contextlib
import logging

from lightning_core.domain import NOTIFICATION_REQUESTED, NOTIFICATIONS, Notification
from lightning_core.events import CloudEvent
from lightning_core.storage.base import Conflict
from lightning_processor.drivers.base import DriverContext, derived_id

log = logging.getLogger(__name__)


class Notifier:
    name = "notifier"
    patterns = (NOTIFICATION_REQUESTED,)
    ledger = False  # the notification's id is derived from the event's

    async def handle(self, event: CloudEvent, context: DriverContext) -> None:
        """Create, never upsert: a redelivery must not reset what the user did since (read it)."""
        notification = Notification(
            id=derived_id(event.id, "notification"),
            user=event.user,
            title=event.data.get("title", ""),
            body=event.data.get("body", ""),
            correlationid=event.correlationid,
            source_event_id=event.id,
        )
        with contextlib.suppress(Conflict):
            await context.storage.create(
                NOTIFICATIONS, event.user, notification.id, notification.model_dump(mode="json")
            )
        log.debug("notification %s for %s", notification.id, event.user)
