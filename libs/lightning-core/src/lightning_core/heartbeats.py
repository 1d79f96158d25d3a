"""Which services are alive, by their own word: each instance upserts a beat every
`INTERVAL`, and counts as alive while its last beat is younger than `STALE_AFTER`.
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
from lightning_core.storage.base import Document, Storage

log = logging.getLogger(__name__)

COLLECTION = "heartbeats"
PARTITION = "_services"  # a handful of documents, read together
INTERVAL = 10.0  # seconds
STALE_AFTER = timedelta(seconds=3 * INTERVAL)
FORGET_AFTER = timedelta(hours=1)
FORGET_BATCH = 200  # old beats removed per start


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
        self._doc_id = f"{service}@{self.instance}"

    async def beat(self) -> None:
        seen_at = now()
        await self._storage.upsert(
            COLLECTION,
            PARTITION,
            self._doc_id,
            {
                "service": self.service,
                "instance": self.instance,
                # One fixed width, so the strings sort as the times do.
                "started_at": self._started_at.isoformat(timespec="microseconds"),
                "seen_at": seen_at.isoformat(timespec="microseconds"),
            },
        )

    async def try_beat(self) -> None:
        """Beat; a failure is only logged: a heartbeat must never take its service down."""
        try:
            await self.beat()
        except Exception as error:  # any provider's error, throttling included
            log.warning("heartbeat of %s not written: %s", self.service, error)

    async def beat_until(self, stop: asyncio.Event, interval: float = INTERVAL) -> None:
        """Forget long-gone instances, beat every `interval` until `stop`, then delete the beat."""
        await self.forget_gone()
        while not stop.is_set():
            await self.try_beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        try:
            await self._storage.delete(COLLECTION, PARTITION, self._doc_id)
        except Exception as error:  # any provider's error; the beat ages out by itself
            log.warning("heartbeat of %s not removed at stop: %s", self.service, error)

    async def forget_gone(self) -> None:
        """Delete this service's beats older than FORGET_AFTER, oldest first."""
        try:
            page = await self._storage.query(
                COLLECTION, PARTITION, order_by="seen_at", limit=FORGET_BATCH
            )
            for beat in _beats(page.items):
                if beat.service == self.service and now() - beat.seen_at > FORGET_AFTER:
                    await self._storage.delete(COLLECTION, PARTITION, _doc_id(beat))
        except Exception as error:  # any provider's error; tried again at the next start
            log.warning("old heartbeats of %s not removed: %s", self.service, error)


async def recent(
    storage: Storage, *, forget_after: timedelta | None = FORGET_AFTER, limit: int = 200
) -> list[Beat]:
    """The newest beat of each instance seen within `forget_after`, newest first."""
    page = await storage.query(
        COLLECTION, PARTITION, order_by="seen_at", descending=True, limit=limit
    )
    beats = _beats(page.items)
    if forget_after is None:
        return beats
    at = now()
    return [beat for beat in beats if at - beat.seen_at <= forget_after]


def _beats(documents: list[Document]) -> list[Beat]:
    """The beats the documents hold; one that cannot be read is skipped and logged."""
    beats = []
    for doc in documents:
        try:
            beats.append(
                Beat(
                    service=str(doc.body["service"]),
                    instance=str(doc.body["instance"]),
                    started_at=datetime.fromisoformat(doc.body["started_at"]),
                    seen_at=datetime.fromisoformat(doc.body["seen_at"]),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            log.warning("heartbeat %s unreadable, skipped: %r", doc.id, error)
    return beats


def _doc_id(beat: Beat) -> str:
    return f"{beat.service}@{beat.instance}"
