"""Redis Streams event bus: one stream of events, a consumer group per group name, dead
letters and replays in streams per group (docs/core.md).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import KeyT, StreamIdT

from lightning_core.bus.base import DEFAULT_CONCURRENCY, BusBase, DeadLetter, Delivery, RetryPolicy
from lightning_core.events import CloudEvent

log = logging.getLogger(__name__)

# Idle time of released entries: beyond any claim_idle, so they are claimable at once.
RELEASED_IDLE_MS = 24 * 3600 * 1000

Entry = tuple[bytes, dict[bytes, bytes] | None]  # fields are None for a trimmed entry

# Move a dead letter to the group's replay stream only if it is still there (atomic).
REPLAY_SCRIPT = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'event', ARGV[2])
return 1
"""


def _group_lost(error: ResponseError) -> bool:
    """Whether the reply means the group or its stream is gone (NOGROUP, or UNBLOCKED)."""
    return str(error).startswith(("NOGROUP", "UNBLOCKED"))


async def _execute(pipe: Pipeline) -> list[Any]:
    """Run the pipeline and raise its first error reply as the server sent it (redis-py's
    own raise rewrites the message, hiding NOGROUP from `_group_lost`)."""
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


class RedisBus(BusBase):
    """Streams bus; `claim_idle`: how long a dead consumer's entries wait before another
    takes them. It must exceed how long a live consumer holds an entry before handling it,
    or they run twice (docs/core.md)."""

    def __init__(
        self,
        url: str,
        namespace: str = "lightning",
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
        concurrency: int = DEFAULT_CONCURRENCY,
        *,
        claim_idle: float = 30.0,
        max_len: int = 1_000_000,
    ) -> None:
        super().__init__(retry, batch_size, concurrency)
        self.url = url
        self.namespace = namespace
        self.claim_idle = claim_idle
        self.claim_interval = min(claim_idle, 1.0)
        self.max_len = max_len
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.connection_errors += (RedisConnectionError, RedisTimeoutError)
        self._stream = f"{namespace}:events"
        self._client: Redis | None = None
        self._next_claim: dict[str, float] = {}
        # Received and not settled: idle on the server but not abandoned, so never claimed here.
        self._held: defaultdict[str, set[tuple[str, bytes]]] = defaultdict(set)

    @property
    def _redis(self) -> Redis:
        if self._client is None:
            # A connection error, so a consume loop outliving `close` idles instead of crashing.
            raise RedisConnectionError("the Redis bus is closed: call connect() first")
        return self._client

    async def delete_namespace(self) -> None:
        """Delete every key under this namespace, dead letters included (tests, benchmarks)."""
        keys = [key async for key in self._redis.scan_iter(match=f"{self.namespace}:*")]
        if keys:
            await self._redis.delete(*keys)

    def _replay_key(self, group: str) -> str:
        return f"{self.namespace}:replay:{group}"

    def _dead_key(self, group: str) -> str:
        return f"{self.namespace}:dead:{group}"

    async def _connect(self) -> None:
        # No client-side retries: the delivery loop owns reconnecting and its backoff.
        self._client = Redis.from_url(self.url, retry=Retry(NoBackoff(), 0))

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self._stream, {"event": event.to_json()}, maxlen=self.max_len)
        await pipe.execute()

    async def _open_group(self, group: str) -> None:
        for key in (self._stream, self._replay_key(group)):
            try:
                await self._redis.xgroup_create(key, group, id="0", mkstream=True)
            except ResponseError as error:
                if not str(error).startswith("BUSYGROUP"):
                    raise
        self._next_claim[group] = 0.0
        self._held[group] = set()

    async def _receive(self, group: str, max_count: int, wait: float) -> list[Delivery]:
        streams: dict[KeyT, StreamIdT] = {self._stream: ">", self._replay_key(group): ">"}
        try:
            if time.monotonic() >= self._next_claim.get(group, 0.0):
                claimed = await self._claim(group, max_count)
                if claimed:
                    return claimed
            # COUNT applies per stream: a batch may carry replayed letters on top of max_count.
            reply = cast(
                list[tuple[bytes, list[Entry]]] | None,
                await self._redis.xreadgroup(
                    group, self.consumer, streams, count=max_count, block=max(1, int(wait * 1000))
                ),
            )
        except ResponseError as error:
            if not _group_lost(error):
                raise
            log.warning("%s: the server lost the group (%s); recreating it at id 0", group, error)
            await self._open_group(group)
            return []
        entries = [
            (key.decode(), entry) for key, key_entries in reply or [] for entry in key_entries
        ]
        return await self._deliveries(group, entries, {})

    async def _claim(self, group: str, max_count: int) -> list[Delivery]:
        """Take over entries other (dead) consumers left pending longer than `claim_idle`."""
        idle = int(self.claim_idle * 1000)
        keys = [self._stream, self._replay_key(group)]
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.xpending_range(key, group, "-", "+", max_count, idle=idle)
        pending: list[list[dict[str, Any]]] = await _execute(pipe)
        full = any(len(items) == max_count for items in pending)
        self._next_claim[group] = time.monotonic() + (0.0 if full else self.claim_interval)
        held = self._held[group]
        stale = [
            (key, kept)
            for key, items in zip(keys, pending, strict=True)
            if (kept := [item for item in items if (key, item["message_id"]) not in held])
        ]
        if not stale:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key, items in stale:
            pipe.xclaim(key, group, self.consumer, idle, [item["message_id"] for item in items])
        claimed: list[list[Entry]] = await _execute(pipe)
        counts = {
            (key, item["message_id"]): int(item["times_delivered"])
            for key, items in stale
            for item in items
        }
        entries = [
            (key, entry)
            for (key, _), key_entries in zip(stale, claimed, strict=True)
            for entry in key_entries
        ]
        if entries:
            log.info("%s: %s claimed %d abandoned entries", group, self.consumer, len(entries))
        return await self._deliveries(group, entries, counts)

    async def _deliveries(
        self,
        group: str,
        entries: list[tuple[str, Entry]],
        counts: dict[tuple[str, bytes], int],
    ) -> list[Delivery]:
        """Decode entries; one that is not an event (written by something else) is dropped."""
        deliveries: list[Delivery] = []
        for key, (entry_id, fields) in entries:
            try:
                event = CloudEvent.from_json((fields or {})[b"event"])
            except (KeyError, ValidationError) as error:
                log.error("%s: dropping %s %s, not an event: %s", group, key, entry_id, error)
                await self._settle(group, {key: [entry_id]})
                continue
            previous = counts.get((key, entry_id), 0)
            deliveries.append(Delivery(event, (key, entry_id), previous))
            self._held[group].add((key, entry_id))
        return deliveries

    async def _settle(self, group: str, ids: dict[str, list[bytes]]) -> None:
        """Acknowledge entries; replayed ones are also deleted (only this group reads them)."""
        pipe = self._redis.pipeline(transaction=False)
        for key, entry_ids in ids.items():
            self._held[group].difference_update((key, entry_id) for entry_id in entry_ids)
            pipe.xack(key, group, *entry_ids)
            if key != self._stream:
                pipe.xdel(key, *entry_ids)
        await pipe.execute()

    async def _ack(self, group: str, deliveries: Sequence[Delivery]) -> None:
        ids: dict[str, list[bytes]] = defaultdict(list)
        for delivery in deliveries:
            key, entry_id = delivery.receipt
            ids[key].append(entry_id)
        await self._settle(group, ids)

    async def _release(self, group: str, deliveries: Sequence[Delivery]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for delivery in deliveries:
            key, entry_id = delivery.receipt
            self._held[group].discard((key, entry_id))
            pipe.xclaim(
                key,
                group,
                self.consumer,
                0,
                [entry_id],
                idle=RELEASED_IDLE_MS,
                retrycount=delivery.previous_attempts,
                justid=True,
            )
        try:
            await _execute(pipe)
        except ResponseError as error:
            if not _group_lost(error):
                raise
            # The entries went with the stream, or the group, recreated at id 0, redelivers them.

    async def _dead_letter(
        self, group: str, delivery: Delivery, reason: str, attempts: int
    ) -> None:
        key, entry_id = delivery.receipt
        self._held[group].discard((key, entry_id))
        pipe = self._redis.pipeline(transaction=True)  # the letter and the ack land together
        pipe.xadd(
            self._dead_key(group),
            {
                "id": delivery.event.id,
                "event": delivery.event.to_json(),
                "reason": reason,
                "attempts": attempts,
                "failed_at": datetime.now(UTC).isoformat(),
            },
        )
        pipe.xack(key, group, entry_id)
        if key != self._stream:
            pipe.xdel(key, entry_id)
        await pipe.execute()

    async def _letters(self, group: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        entries = await self._redis.xrange(self._dead_key(group))
        return cast(list[tuple[bytes, dict[bytes, bytes]]], entries or [])

    async def dead_letters(self, group: str) -> list[DeadLetter]:
        return [
            DeadLetter(
                event=CloudEvent.from_json(fields[b"event"]),
                group=group,
                reason=fields[b"reason"].decode(),
                attempts=int(fields[b"attempts"]),
                failed_at=datetime.fromisoformat(fields[b"failed_at"].decode()),
            )
            for _, fields in await self._letters(group)
        ]

    async def backlog(self, group: str) -> int | None:
        """The group's lag plus its pending entries; None when Redis cannot tell the lag."""
        try:
            groups = await self._redis.xinfo_groups(self._stream)
        except ResponseError as error:  # no stream yet
            if "no such key" in str(error).lower():
                return 0
            raise
        for info in groups:
            name = info["name"]
            if (name.decode() if isinstance(name, bytes) else name) == group:
                lag = info.get("lag")
                return None if lag is None else int(lag) + int(info["pending"])
        return 0

    async def replay(self, group: str, event_id: str) -> None:
        for entry_id, fields in await self._letters(group):
            if fields[b"id"].decode() == event_id:
                move = self._redis.register_script(REPLAY_SCRIPT)
                keys = [self._dead_key(group), self._replay_key(group)]
                if await move(keys=keys, args=[entry_id, fields[b"event"]]):
                    return
        raise KeyError(f"no dead letter {event_id} in group {group}")
