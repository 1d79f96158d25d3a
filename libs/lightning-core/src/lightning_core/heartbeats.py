"""Which services are alive, by their own word: each running instance of a service writes
a heartbeat document every `INTERVAL`, and readers call it alive while its last beat is
younger than `STALE_AFTER`.

Beats go through the storage contract, so they work in every mode with nothing more to
run or expose: an event processor on Container Apps or Functions has no address the API
could probe, but it shares the API's storage. A beat that cannot be written is logged
and tried again at the next interval (the API's readiness check reports the storage).
Instances that stopped leave their last beat; readers ignore beats older than
`FORGET_AFTER`, and each instance deletes such beats of its service when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from lightning_core.domain import now
from lightning_core.storage.base import Storage, StorageError

log = logging.getLogger(__name__)

COLLECTION = "heartbeats"
PARTITION = "_services"  # one partition for all: a handful of documents, read together
INTERVAL = 10.0  # seconds between beats
STALE_AFTER = timedelta(seconds=3 * INTERVAL)
FORGET_AFTER = timedelta(hours=1)


def instance_name() -> str:
    """This process: host (the container or VM) and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Beat:
    service: str
    instance: str
    started_at: datetime
    seen_at: datetime

    def alive(self, at: datetime) -> bool:
        return at - self.seen_at <= STALE_AFTER


class Heart:
    """The beats of one service instance."""

    def __init__(self, storage: Storage, service: str, instance: str | None = None) -> None:
        self._storage = storage
        self.service = service
        self.instance = instance or instance_name()
        self._started_at = now()

    async def beat(self) -> None:
        seen_at = now()
        await self._storage.upsert(
            COLLECTION,
            PARTITION,
            f"{self.service}@{self.instance}",  # the same as _doc_id of its beats
            {
                "service": self.service,
                "instance": self.instance,
                # One fixed width, so that the strings sort as the times do.
                "started_at": self._started_at.isoformat(timespec="microseconds"),
                "seen_at": seen_at.isoformat(timespec="microseconds"),
            },
        )

    async def try_beat(self) -> None:
        """Beat; if storage refuses, say so in the log and carry on (the work matters more)."""
        try:
            await self.beat()
        except (StorageError, OSError) as error:
            log.warning("heartbeat of %s not written: %s", self.service, error)

    async def beat_until(self, stop: asyncio.Event, interval: float = INTERVAL) -> None:
        """Beat now and every `interval` until `stop` is set; forget long-gone instances."""
        await self._forget_gone()
        while not stop.is_set():
            await self.try_beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _forget_gone(self) -> None:
        try:
            for beat in await recent(self._storage, forget_after=None):
                if beat.service == self.service and now() - beat.seen_at > FORGET_AFTER:
                    await self._storage.delete(COLLECTION, PARTITION, _doc_id(beat))
        except (StorageError, OSError) as error:
            log.warning("old heartbeats of %s not removed: %s", self.service, error)


async def recent(
    storage: Storage, *, forget_after: timedelta | None = FORGET_AFTER, limit: int = 200
) -> list[Beat]:
    """The newest beat of each instance seen within `forget_after`, newest first."""
    page = await storage.query(
        COLLECTION, PARTITION, order_by="seen_at", descending=True, limit=limit
    )
    beats = [
        Beat(
            service=str(doc.body["service"]),
            instance=str(doc.body["instance"]),
            started_at=datetime.fromisoformat(doc.body["started_at"]),
            seen_at=datetime.fromisoformat(doc.body["seen_at"]),
        )
        for doc in page.items
    ]
    if forget_after is None:
        return beats
    at = now()
    return [beat for beat in beats if at - beat.seen_at <= forget_after]


def _doc_id(beat: Beat) -> str:
    return f"{beat.service}@{beat.instance}"
