"""An in-memory Azure Service Bus namespace behind exactly the SDK surface the bus uses.

No Service Bus emulator runs without Docker, so the adapter is tested against this double
at the SDK boundary: `FakeServiceBusClient`, `FakeSender`, `FakeReceiver` and
`FakeAdministrationClient` stand in for `azure.servicebus.aio.ServiceBusClient`,
`ServiceBusSender`, `ServiceBusReceiver` and `ServiceBusAdministrationClient`, and
`FakeReceivedMessage` for `ServiceBusReceivedMessage`. test_servicebus.py checks that every
method and property here exists on the real class with a compatible signature, so the
double cannot drift from the SDK; the live test runs the same suites against a real
namespace.

Behaviour kept from the real service (the parts the contract depends on):
- a topic copies each message into every subscription one of whose rules matches (one
  copy however many match); a new subscription has the catch-all `$Default` rule; messages
  sent before a subscription existed never reach it;
- peek-lock: a received message is locked for the subscription's lock duration; complete
  removes it, abandon or an expired lock makes it available again in its place with
  `delivery_count` + 1 (0 on the first delivery, as the AMQP header in this SDK reports);
  settling after the lock expired raises MessageLockLostError, settling twice
  MessageAlreadySettled, settling a peeked message ValueError;
- once a message has been delivered `max_delivery_count` times without being settled, the
  service moves it to the dead-letter subqueue with reason MaxDeliveryCountExceeded;
- `dead_letter_message` moves it there with `DeadLetterReason` / `DeadLetterErrorDescription`
  application properties; received application properties have bytes keys and bytes
  string values, as the SDK returns them;
- batches are the SDK's own `ServiceBusMessageBatch`, so size limits are real;
- rights: every client acts with the claims of its credential (`Manage`, `Send`, `Listen`,
  as a shared access policy grants them; an Entra identity with the Azure Service Bus Data
  Sender and Data Receiver roles holds `Send` and `Listen`); an administration client
  without `Manage` is refused with ClientAuthenticationError (401);
- a link (a sender's or receiver's first operation, create_message_batch included) to a
  missing entity, or without the claim it needs, is refused when it attaches: as
  MessagingEntityNotFoundError or ServiceBusAuthorizationError, or, with
  `FakeNamespace.refuse_at_token` set, where the service refuses the link's token instead
  (CBS put-token status 404 or 401), which the SDK raises as ServiceBusAuthenticationError
  wrapping its TokenAuthFailure.
SQL filters are evaluated only in the one shape the bus creates (`p IS NULL OR p = 'v'`);
creating any other raises ValueError, so a new use fails loudly instead of matching wrongly.
Setting `FakeNamespace.outage` makes every call fail as a lost connection does.
"""

# Methods take every parameter the SDK's do (so the signature check can hold them to it),
# including the ones an in-memory namespace has no use for.
# ruff: noqa: ARG002

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.servicebus import (
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus._pyamqp.error import TokenAuthFailure
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusConnectionError,
)
from azure.servicebus.management import SqlRuleFilter, TrueRuleFilter

DEFAULT_LOCK_DURATION = timedelta(minutes=1)  # the service's defaults
DEFAULT_MAX_DELIVERY_COUNT = 10
MAX_BATCH_BYTES = 256 * 1024  # the Standard tier's message (and batch) size limit
DEFAULT_RECEIVE_WAIT = 60.0  # what receive_messages waits when given no max_wait_time
MANAGE, SEND, LISTEN = "Manage", "Send", "Listen"
#: A namespace's RootManageSharedAccessKey: what a connection string usually carries.
ALL_CLAIMS = frozenset({MANAGE, SEND, LISTEN})
#: An Entra identity holding Azure Service Bus Data Sender and Data Receiver.
DATA_PLANE_CLAIMS = frozenset({SEND, LISTEN})
_REPLAY_FILTER = re.compile(r"^(\w+) IS NULL OR \1 = '([^']*)'$")


@dataclass
class _Stored:
    """One message in one subscription (or its dead-letter subqueue)."""

    body: bytes
    message_id: str | None
    content_type: str | None
    subject: str | None
    properties: dict[str, Any]
    sequence_number: int
    enqueued_time: datetime
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    lock_expires: float = 0.0  # time.monotonic() deadline while locked


class _Queue:
    """A subscription's main queue or its dead-letter subqueue, in sequence order."""

    def __init__(self) -> None:
        self.messages: dict[int, _Stored] = {}
        self.changed = asyncio.Condition()

    def next_lock_expiry(self) -> float | None:
        deadlines = [m.lock_expires for m in self.messages.values() if m.lock_token]
        return min(deadlines, default=None)


@dataclass
class _Subscription:
    lock_duration: timedelta
    max_delivery_count: int
    rules: dict[str, TrueRuleFilter | SqlRuleFilter] = field(
        default_factory=lambda: {"$Default": TrueRuleFilter()}
    )
    active: _Queue = field(default_factory=_Queue)
    dead: _Queue = field(default_factory=_Queue)

    def accepts(self, properties: dict[str, Any]) -> bool:
        return any(_matches(rule, properties) for rule in self.rules.values())


@dataclass
class _Topic:
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    sequence: Iterator[int] = field(default_factory=lambda: itertools.count(1))


def _matches(rule: TrueRuleFilter | SqlRuleFilter, properties: dict[str, Any]) -> bool:
    if isinstance(rule, TrueRuleFilter):
        return True
    match = _REPLAY_FILTER.match(rule.sql_expression or "")
    if match is None:  # create_rule refuses these; kept total for the type checker
        return False
    name, value = match.groups()
    return properties.get(name) is None or properties.get(name) == value


class FakeNamespace:
    """The service side: topics, subscriptions, messages. One per test."""

    def __init__(self) -> None:
        self.topics: dict[str, _Topic] = {}
        self.outage = False
        self.refuse_at_token = False

    def check_reachable(self) -> None:
        if self.outage:
            raise ServiceBusConnectionError(message="fake namespace: connection lost")

    def refusal(self, status: int, description: str) -> Exception:
        """What a link refused with this HTTP-like status raises (404 missing, 401 rights)."""
        if self.refuse_at_token:  # the SDK's own inner error, which it leaves untyped
            token = TokenAuthFailure(status, description.encode())  # type: ignore[no-untyped-call]
            return ServiceBusAuthenticationError(message=description, error=token)
        if status == 404:
            return MessagingEntityNotFoundError(message=description)
        return ServiceBusAuthorizationError(message=description)

    def missing(self, entity: str) -> Exception:
        return self.refusal(404, f"The messaging entity 'sb://fake/{entity}' could not be found.")

    def require(self, claims: frozenset[str], claim: str) -> None:
        """Refuse a link whose credential lacks `claim`."""
        if claim not in claims:
            raise self.refusal(
                401,
                f"Unauthorized access. '{claim}' claim(s) are required to perform this operation.",
            )

    def topic(self, name: str) -> _Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise self.missing(name)
        return topic

    def subscription(self, topic: str, name: str) -> _Subscription:
        subscription = self.topic(topic).subscriptions.get(name)
        if subscription is None:
            raise self.missing(f"{topic}/subscriptions/{name}")
        return subscription

    async def enqueue(self, topic_name: str, messages: list[ServiceBusMessage]) -> None:
        topic = self.topic(topic_name)
        for message in messages:
            properties = {str(k): v for k, v in (message.application_properties or {}).items()}
            sequence = next(topic.sequence)
            for subscription in topic.subscriptions.values():
                if subscription.accepts(properties):
                    subscription.active.messages[sequence] = _Stored(
                        body=b"".join(message.body),
                        message_id=message.message_id,
                        content_type=message.content_type,
                        subject=message.subject,
                        properties=dict(properties),
                        sequence_number=sequence,
                        enqueued_time=datetime.now(UTC),
                    )
        for subscription in topic.subscriptions.values():
            async with subscription.active.changed:
                subscription.active.changed.notify_all()

    @asynccontextmanager
    async def _opened(
        self, claims: frozenset[str]
    ) -> AsyncIterator[tuple[FakeServiceBusClient, FakeAdministrationClient]]:
        async with (
            FakeServiceBusClient(self, claims) as client,
            FakeAdministrationClient(self, claims) as admin,
        ):
            yield client, admin

    def clients(
        self, claims: frozenset[str] = ALL_CLAIMS
    ) -> AbstractAsyncContextManager[tuple[FakeServiceBusClient, FakeAdministrationClient]]:
        """Both clients acting with `claims`, closed on exit."""
        return self._opened(claims)


def _expire_locks(subscription: _Subscription, queue: _Queue) -> None:
    """An expired lock counts as a failed delivery, exactly like an abandon."""
    now = time.monotonic()
    for stored in list(queue.messages.values()):
        if stored.lock_token is not None and stored.lock_expires <= now:
            _unlock_after_failure(subscription, queue, stored)


def _unlock_after_failure(subscription: _Subscription, queue: _Queue, stored: _Stored) -> None:
    stored.lock_token = None
    stored.delivery_count += 1
    if queue is subscription.active and stored.delivery_count >= subscription.max_delivery_count:
        del queue.messages[stored.sequence_number]
        stored.properties["DeadLetterReason"] = "MaxDeliveryCountExceeded"
        stored.properties["DeadLetterErrorDescription"] = (
            f"Message could not be consumed after {subscription.max_delivery_count} "
            "delivery attempts."
        )
        subscription.dead.messages[stored.sequence_number] = stored


class FakeReceivedMessage:
    """What `receive_messages` / `peek_messages` return: a snapshot plus its lock token."""

    def __init__(self, stored: _Stored, receiver: FakeReceiver | None, lock_duration: float):
        self._stored = stored
        self._receiver = receiver  # None: peeked, cannot be settled
        self._lock_token = stored.lock_token if receiver else None
        self._delivery_count = stored.delivery_count
        self._locked_until = (
            datetime.now(UTC) + timedelta(seconds=lock_duration) if receiver else None
        )
        self._settled = False

    @property
    def body(self) -> Iterator[bytes]:
        return iter([self._stored.body])

    @property
    def message_id(self) -> str | None:
        return self._stored.message_id

    @property
    def content_type(self) -> str | None:
        return self._stored.content_type

    @property
    def subject(self) -> str | None:
        return self._stored.subject

    @property
    def application_properties(self) -> dict[str | bytes, Any] | None:
        if not self._stored.properties:
            return None
        return {
            k.encode(): v.encode() if isinstance(v, str) else v
            for k, v in self._stored.properties.items()
        }

    @property
    def delivery_count(self) -> int | None:
        return self._delivery_count

    @property
    def sequence_number(self) -> int | None:
        return self._stored.sequence_number

    @property
    def enqueued_time_utc(self) -> datetime | None:
        return self._stored.enqueued_time

    @property
    def locked_until_utc(self) -> datetime | None:
        return self._locked_until

    @property
    def lock_token(self) -> uuid.UUID | str | None:
        return self._lock_token

    @property
    def dead_letter_reason(self) -> str | None:
        reason = self._stored.properties.get("DeadLetterReason")
        return str(reason) if reason is not None else None

    @property
    def dead_letter_error_description(self) -> str | None:
        description = self._stored.properties.get("DeadLetterErrorDescription")
        return str(description) if description is not None else None


class FakeSender:
    def __init__(self, namespace: FakeNamespace, topic_name: str, claims: frozenset[str]) -> None:
        self._namespace = namespace
        self._topic = topic_name
        self._claims = claims
        self._open = True

    async def __aenter__(self) -> FakeSender:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._open = False

    async def create_message_batch(
        self, max_size_in_bytes: int | None = None
    ) -> ServiceBusMessageBatch:
        self._check()
        self._namespace.topic(self._topic)
        return RecordingBatch(max_size_in_bytes or MAX_BATCH_BYTES)

    async def send_messages(
        self,
        message: ServiceBusMessage | list[ServiceBusMessage] | ServiceBusMessageBatch,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        self._check()
        if isinstance(message, RecordingBatch):
            messages = list(message.messages)
        elif isinstance(message, ServiceBusMessageBatch):
            raise TypeError("fake namespace: make batches with create_message_batch")
        elif isinstance(message, ServiceBusMessage):
            messages = [message]
        else:
            messages = list(message)
        await self._namespace.enqueue(self._topic, messages)

    def _check(self) -> None:
        if not self._open:
            raise ValueError("The handler has already been shutdown.")
        self._namespace.check_reachable()
        self._namespace.require(self._claims, SEND)


class RecordingBatch(ServiceBusMessageBatch):
    """The SDK's batch (real size accounting) that also keeps what was added."""

    def __init__(self, max_size_in_bytes: int | None = None, **kwargs: Any) -> None:
        super().__init__(max_size_in_bytes, **kwargs)
        self.messages: list[ServiceBusMessage] = []

    def add_message(self, message: Any) -> None:
        super().add_message(message)
        self.messages.append(message)


class FakeReceiver:
    def __init__(
        self,
        namespace: FakeNamespace,
        topic_name: str,
        subscription_name: str,
        sub_queue: ServiceBusSubQueue | str | None,
        claims: frozenset[str],
    ) -> None:
        self._namespace = namespace
        self._claims = claims
        self._topic = topic_name
        self._name = subscription_name
        self._dead_letter = sub_queue is not None and (
            ServiceBusSubQueue(sub_queue) == ServiceBusSubQueue.DEAD_LETTER
        )
        self._open = True

    async def __aenter__(self) -> FakeReceiver:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._open = False

    def _entity(self) -> tuple[_Subscription, _Queue]:
        if not self._open:
            raise ValueError("The handler has already been shutdown.")
        self._namespace.check_reachable()
        self._namespace.require(self._claims, LISTEN)
        subscription = self._namespace.subscription(self._topic, self._name)
        return subscription, subscription.dead if self._dead_letter else subscription.active

    async def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None
    ) -> list[FakeReceivedMessage]:
        subscription, queue = self._entity()
        count = max_message_count or 1
        deadline = time.monotonic() + (
            DEFAULT_RECEIVE_WAIT if max_wait_time is None else max_wait_time
        )
        async with queue.changed:
            while True:
                _expire_locks(subscription, queue)
                free = [m for m in queue.messages.values() if m.lock_token is None][:count]
                if free:
                    break
                now = time.monotonic()
                if now >= deadline:
                    return []
                expiry = queue.next_lock_expiry()
                timeout = deadline - now if expiry is None else min(deadline, expiry) - now
                with suppress(TimeoutError):
                    await asyncio.wait_for(queue.changed.wait(), max(timeout, 0.0))
                subscription, queue = self._entity()
        seconds = subscription.lock_duration.total_seconds()
        for stored in free:
            stored.lock_token = uuid.uuid4()
            stored.lock_expires = time.monotonic() + seconds
        return [FakeReceivedMessage(stored, self, seconds) for stored in free]

    async def peek_messages(
        self,
        max_message_count: int = 1,
        *,
        sequence_number: int = 0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[FakeReceivedMessage]:
        _subscription, queue = self._entity()
        found = [m for m in queue.messages.values() if m.sequence_number >= sequence_number]
        return [FakeReceivedMessage(stored, None, 0) for stored in found[:max_message_count]]

    def _locked(self, message: FakeReceivedMessage) -> tuple[_Subscription, _Queue, _Stored]:
        if message._receiver is None:
            raise ValueError("Only messages received using receive methods can be settled.")
        if message._settled:
            raise MessageAlreadySettled(action="settle")
        subscription, queue = self._entity()
        _expire_locks(subscription, queue)
        stored = queue.messages.get(message._stored.sequence_number)
        if stored is None or stored.lock_token != message._lock_token:
            raise MessageLockLostError(message="The lock on the message lock has expired.")
        return subscription, queue, stored

    async def complete_message(self, message: FakeReceivedMessage) -> None:
        _subscription, queue, stored = self._locked(message)
        del queue.messages[stored.sequence_number]
        message._settled = True

    async def abandon_message(self, message: FakeReceivedMessage) -> None:
        subscription, queue, stored = self._locked(message)
        _unlock_after_failure(subscription, queue, stored)
        message._settled = True
        async with queue.changed:
            queue.changed.notify_all()

    async def dead_letter_message(
        self,
        message: FakeReceivedMessage,
        reason: str | None = None,
        error_description: str | None = None,
    ) -> None:
        subscription, queue, stored = self._locked(message)
        if queue is subscription.dead:
            raise ValueError("fake namespace: a dead letter cannot be dead-lettered again")
        del queue.messages[stored.sequence_number]
        stored.lock_token = None
        stored.properties["DeadLetterReason"] = reason or ""
        stored.properties["DeadLetterErrorDescription"] = error_description or ""
        subscription.dead.messages[stored.sequence_number] = stored
        message._settled = True


class FakeServiceBusClient:
    def __init__(self, namespace: FakeNamespace, claims: frozenset[str] = ALL_CLAIMS) -> None:
        self._namespace = namespace
        self._claims = claims
        self._handlers: list[FakeSender | FakeReceiver] = []

    async def __aenter__(self) -> FakeServiceBusClient:
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.close()

    async def close(self) -> None:
        for handler in self._handlers:
            await handler.close()
        self._handlers.clear()

    def get_topic_sender(self, topic_name: str, **kwargs: Any) -> FakeSender:
        sender = FakeSender(self._namespace, topic_name, self._claims)
        self._handlers.append(sender)
        return sender

    def get_subscription_receiver(
        self,
        topic_name: str,
        subscription_name: str,
        *,
        sub_queue: ServiceBusSubQueue | str | None = None,
        receive_mode: ServiceBusReceiveMode | str = ServiceBusReceiveMode.PEEK_LOCK,
        **kwargs: Any,
    ) -> FakeReceiver:
        if ServiceBusReceiveMode(receive_mode) != ServiceBusReceiveMode.PEEK_LOCK:
            raise ValueError("fake namespace: only PEEK_LOCK receivers are modelled")
        receiver = FakeReceiver(
            self._namespace, topic_name, subscription_name, sub_queue, self._claims
        )
        self._handlers.append(receiver)
        return receiver


class FakeAdministrationClient:
    """Entity management. Returns nothing useful: the bus never reads the properties."""

    def __init__(self, namespace: FakeNamespace, claims: frozenset[str] = ALL_CLAIMS) -> None:
        self._namespace = namespace
        self._claims = claims

    async def __aenter__(self) -> FakeAdministrationClient:
        return self

    async def __aexit__(self, *exc_details: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to release."""

    def _check(self) -> None:
        if self._namespace.outage:
            raise ServiceRequestError("fake namespace: connection lost")
        if MANAGE not in self._claims:
            raise ClientAuthenticationError(
                "Unauthorized: 'Manage' claim(s) are required to perform this operation."
            )

    def _topic(self, topic_name: str) -> _Topic:
        self._check()
        topic = self._namespace.topics.get(topic_name)
        if topic is None:
            raise ResourceNotFoundError(f"Topic '{topic_name}' does not exist")
        return topic

    def _subscription(self, topic_name: str, subscription_name: str) -> _Subscription:
        subscription = self._topic(topic_name).subscriptions.get(subscription_name)
        if subscription is None:
            raise ResourceNotFoundError(f"Subscription '{subscription_name}' does not exist")
        return subscription

    async def get_topic(self, topic_name: str, **kwargs: Any) -> None:
        self._topic(topic_name)

    async def create_topic(self, topic_name: str, **kwargs: Any) -> None:
        self._check()
        if topic_name in self._namespace.topics:
            raise ResourceExistsError(f"Topic '{topic_name}' already exists")
        self._namespace.topics[topic_name] = _Topic()

    async def delete_topic(self, topic_name: str, **kwargs: Any) -> None:
        self._topic(topic_name)
        del self._namespace.topics[topic_name]

    async def get_subscription(
        self, topic_name: str, subscription_name: str, **kwargs: Any
    ) -> None:
        self._subscription(topic_name, subscription_name)

    async def create_subscription(
        self,
        topic_name: str,
        subscription_name: str,
        *,
        lock_duration: timedelta | str | None = None,
        max_delivery_count: int | None = None,
        **kwargs: Any,
    ) -> None:
        topic = self._topic(topic_name)
        if subscription_name in topic.subscriptions:
            raise ResourceExistsError(f"Subscription '{subscription_name}' already exists")
        if isinstance(lock_duration, str):
            raise ValueError("fake namespace: pass lock_duration as a timedelta")
        topic.subscriptions[subscription_name] = _Subscription(
            lock_duration=lock_duration or DEFAULT_LOCK_DURATION,
            max_delivery_count=max_delivery_count or DEFAULT_MAX_DELIVERY_COUNT,
        )

    async def create_rule(
        self,
        topic_name: str,
        subscription_name: str,
        rule_name: str,
        *,
        filter: TrueRuleFilter | SqlRuleFilter | None = None,  # the SDK's name
        **kwargs: Any,
    ) -> None:
        subscription = self._subscription(topic_name, subscription_name)
        if rule_name in subscription.rules:
            raise ResourceExistsError(f"Rule '{rule_name}' already exists")
        filter = filter or TrueRuleFilter()
        if not isinstance(filter, TrueRuleFilter) and not _REPLAY_FILTER.match(
            filter.sql_expression or ""
        ):
            raise ValueError(
                f"fake namespace evaluates only filters like \"p IS NULL OR p = 'v'\", "
                f"not {filter.sql_expression!r}"
            )
        subscription.rules[rule_name] = filter

    async def delete_rule(
        self, topic_name: str, subscription_name: str, rule_name: str, **kwargs: Any
    ) -> None:
        subscription = self._subscription(topic_name, subscription_name)
        if subscription.rules.pop(rule_name, None) is None:
            raise ResourceNotFoundError(f"Rule '{rule_name}' does not exist")
