"""What the infrastructure must provide, declared once: collections, bus topology, services.
The providers verify or create exactly this, and infra/ deploys it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from lightning_core.domain import INSTRUCTIONS, NOTIFICATIONS, PROCESSOR_GROUP, TASKS
from lightning_core.heartbeats import COLLECTION as HEARTBEATS
from lightning_core.idempotency import LEDGER
from lightning_core.records import EVENTS

#: Every stored document is `{"id", "partition", "body", ...}`: the partition is the user.
PARTITION_KEY_PATH = "/partition"
#: Where a body field lives in a stored document (Cosmos DB index paths).
BODY_PATH = "/body/{field}"
ID_PATH = "/id"


@dataclass(frozen=True)
class KeyIndex:
    """A SQL index: the partition (if `per_partition`), the `equal` fields, `order`, then id."""

    collection: str
    per_partition: bool
    equal: tuple[str, ...]
    order: str

    @property
    def name(self) -> str:
        """A readable name, unique per definition and within PostgreSQL's 63 characters."""
        fields = "_".join([*(("p",) if self.per_partition else ()), *self.equal, self.order])
        digest = hashlib.sha256(repr(self).encode()).hexdigest()[:8]
        return f"documents_{self.collection}_{fields}"[:50] + f"_{digest}"


@dataclass(frozen=True)
class Collection:
    """A collection: the fields its queries filter and order by, the (filter, ordering) pairs
    `query_all` sweeps with, and whether documents expire (LIGHTNING_RETENTION_DAYS)."""

    name: str
    filters: tuple[str, ...] = ()
    orderings: tuple[str, ...] = ()
    sweeps: tuple[tuple[str, str], ...] = ()
    expires: bool = False

    def composite_indexes(self) -> list[list[tuple[str, str]]]:
        """The Cosmos DB composite indexes `[(path, order), ...]` its ordered queries need."""
        return [
            [(BODY_PATH.format(field=field), "descending"), (ID_PATH, "descending")]
            for field in self.orderings
        ]

    def key_indexes(self) -> list[KeyIndex]:
        """The SQL indexes its queries need: per partition, each ordering alone and after each
        filter; across partitions, each sweep."""
        per_partition = [
            KeyIndex(self.name, True, equal, order)
            for order in self.orderings
            for equal in [(), *((field,) for field in self.filters)]
        ]
        sweeps = [KeyIndex(self.name, False, (field,), order) for field, order in self.sweeps]
        return [*per_partition, *sweeps]


COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        EVENTS,
        filters=("status",),
        orderings=("received_at", "processed_at"),
        sweeps=(("status", "received_at"),),
        expires=True,
    ),
    Collection(INSTRUCTIONS, filters=("enabled",), orderings=("created_at",)),
    Collection(TASKS, filters=("status",), orderings=("created_at",)),
    Collection(NOTIFICATIONS, filters=("read",), orderings=("created_at",)),
    Collection(LEDGER, expires=True),
    Collection(HEARTBEATS, orderings=("seen_at",)),
)


def collection(name: str) -> Collection:
    """The declared collection `name`; KeyError names the declared ones."""
    for declared in COLLECTIONS:
        if declared.name == name:
            return declared
    raise KeyError(f"collection {name!r} is not declared in lightning_core.topology")


#: Consumer groups: each is a Service Bus subscription (a queue on RabbitMQ, a group on Redis).
CONSUMER_GROUPS: tuple[str, ...] = (PROCESSOR_GROUP,)
#: A replayed dead letter carries this application property naming the group it is for.
REPLAY_PROPERTY = "replay_to"
REPLAY_RULE = "lightning-replay"
#: Service Bus's longest lock: a batch of events must be handled within it.
LOCK_DURATION = timedelta(minutes=5)
#: Service Bus's default max delivery count: the floor of the declared one.
SERVICE_MAX_DELIVERY_COUNT = 10


def topic_name(namespace: str) -> str:
    """The topic a bus namespace's events go to (also the Functions trigger's binding)."""
    return f"{namespace}-events"


def replay_filter(group: str) -> str:
    """The subscription rule: ordinary events reach every group, a replay only its own."""
    return f"{REPLAY_PROPERTY} IS NULL OR {REPLAY_PROPERTY} = '{group}'"


@dataclass(frozen=True)
class Subscription:
    name: str
    rule_name: str
    rule_filter: str
    max_delivery_count: int
    lock_duration: timedelta


@dataclass(frozen=True)
class BusTopology:
    topic: str
    subscriptions: tuple[Subscription, ...]

    def subscription(self, group: str) -> Subscription:
        for declared in self.subscriptions:
            if declared.name == group:
                return declared
        raise KeyError(f"consumer group {group!r} is not declared in lightning_core.topology")


def bus_topology(
    namespace: str, max_attempts: int, groups: tuple[str, ...] = CONSUMER_GROUPS
) -> BusTopology:
    """The topic and subscriptions for a bus namespace whose retry policy makes
    `max_attempts`; max delivery stays above it, since abandoning at shutdown counts too."""
    return BusTopology(
        topic=topic_name(namespace),
        subscriptions=tuple(
            Subscription(
                name=group,
                rule_name=REPLAY_RULE,
                rule_filter=replay_filter(group),
                max_delivery_count=max(SERVICE_MAX_DELIVERY_COUNT, max_attempts),
                lock_duration=LOCK_DURATION,
            )
            for group in groups
        ),
    )


class BusRight(StrEnum):
    SEND = "send"
    RECEIVE = "receive"


@dataclass(frozen=True)
class ServiceNeeds:
    """The providers a service uses, and so its settings, its image's SDKs and its rights."""

    storage: bool
    bus: frozenset[BusRight]


_SEND_AND_RECEIVE = frozenset({BusRight.SEND, BusRight.RECEIVE})

#: By `SERVICE_TYPE` name.
SERVICES: dict[str, ServiceNeeds] = {
    "api": ServiceNeeds(storage=True, bus=_SEND_AND_RECEIVE),
    "event-processor": ServiceNeeds(storage=True, bus=_SEND_AND_RECEIVE),
    "ui": ServiceNeeds(storage=False, bus=frozenset()),
}


def service_needs(names: Iterable[str]) -> ServiceNeeds:
    """What the named services need together; an undeclared name needs nothing."""
    declared = [SERVICES[name] for name in names if name in SERVICES]
    return ServiceNeeds(
        storage=any(needs.storage for needs in declared),
        bus=frozenset().union(*(needs.bus for needs in declared)),
    )
