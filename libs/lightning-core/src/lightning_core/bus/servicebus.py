"""Azure Service Bus event bus: one topic, a peek-lock subscription per consumer group. With
Manage rights it creates its topology, else verifies it (docs/core.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any, NamedTuple

from azure.core.exceptions import (
    ClientAuthenticationError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity.aio import DefaultAzureCredential
from azure.servicebus import (
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver, ServiceBusSender
from azure.servicebus.aio.management import ServiceBusAdministrationClient
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusServerBusyError,
)
from azure.servicebus.management import SqlRuleFilter
from pydantic import ValidationError
from typing_extensions import override

from lightning_core.bus.base import DEFAULT_CONCURRENCY, BusBase, DeadLetter, Delivery, RetryPolicy
from lightning_core.config import ConfigError
from lightning_core.events import CloudEvent
from lightning_core.topology import (
    CONSUMER_GROUPS,
    REPLAY_PROPERTY,
    Subscription,
    bus_topology,
)

log = logging.getLogger(__name__)


DEPLOY_FIX = (
    "deploy the infrastructure: `invoke deploy --stack NAME`, or use "
    "SERVICE_BUS_CONNECTION_STRING with Manage rights to create it"
)
EMULATOR_FIX = (
    "the emulator creates entities only from its Config.json: `invoke compose-up --mode "
    "azure` writes it from the same settings, then restart the emulator"
)


class Clients(NamedTuple):
    """The SDK clients a bus talks through; `admin` only where the credential may manage."""

    data: ServiceBusClient
    admin: ServiceBusAdministrationClient | None
    #: How to create entities this bus finds missing.
    missing_fix: str = DEPLOY_FIX


#: Opens the clients and closes them on exit.
ClientFactory = Callable[[], AbstractAsyncContextManager[Clients]]

CONTENT_TYPE = "application/cloudevents+json"
DEFAULT_RULE = "$Default"  # the service's catch-all rule on every new subscription
_NOT_FOUND = 404
MAX_REASON_LENGTH = 4000  # keeps a settlement far below the service's header size limit
# A subscription name: letters, digits, '.', '-', '_'; starts and ends alphanumeric; <= 50.
GROUP_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?$")
SENDER_ROLE = "Azure Service Bus Data Sender"
RECEIVER_ROLE = "Azure Service Bus Data Receiver"


class ServiceBusBus(BusBase):
    """The bus on the topology `bus_topology(namespace, retry.max_attempts, groups)`."""

    def __init__(
        self,
        clients: ClientFactory,
        namespace: str,
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
        concurrency: int = DEFAULT_CONCURRENCY,
        *,
        groups: tuple[str, ...] = CONSUMER_GROUPS,
    ) -> None:
        super().__init__(retry, batch_size, concurrency)
        self.namespace = namespace
        self.topology = bus_topology(namespace, self.retry.max_attempts, groups)
        self.topic = self.topology.topic
        self._clients = clients
        self._stack = AsyncExitStack()
        self._connected_clients: Clients | None = None
        self._sender: ServiceBusSender | None = None
        self._receivers: dict[str, ServiceBusReceiver] = {}
        # Async receivers are not safe for concurrent use (azure-sdk-for-python #21385).
        self._links: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.connection_errors += (
            ServiceBusConnectionError,
            ServiceBusCommunicationError,
            ServiceBusServerBusyError,
            OperationTimeoutError,
            ServiceRequestError,  # the administration client speaks HTTP
            ServiceResponseError,
        )

    async def _connect(self) -> None:
        self._stack = AsyncExitStack()
        try:
            clients = await self._stack.enter_async_context(self._clients())
            self._connected_clients = clients
            self._sender = clients.data.get_topic_sender(self.topic)
            if clients.admin is None:
                await self._verify_topology()
            else:
                await self._provision(clients.admin, self.topology.subscriptions)
        except BaseException:
            await self._close()
            raise

    async def _close(self) -> None:
        self._sender, self._connected_clients = None, None
        self._receivers.clear()
        await self._stack.aclose()

    def _connection(self) -> Clients:
        if self._connected_clients is None:
            raise RuntimeError("the Service Bus bus is not connected: call connect() first")
        return self._connected_clients

    async def backlog(self, _group: str) -> int | None:
        """None: message counts need Manage rights."""
        return None

    async def ping(self) -> None:
        """Open a sender link on the topic: a round trip needing only Send rights."""
        async with self._connection().data.get_topic_sender(self.topic) as sender:
            await sender.create_message_batch()

    def _subscription(self, group: str) -> Subscription:
        """The group's declared subscription, or one made by the same declaration."""
        if not GROUP_NAME.match(group):
            raise ValueError(
                f"consumer group {group!r} cannot name a Service Bus subscription: use 1-50 "
                "letters, digits, '.', '-' or '_', starting and ending with a letter or digit"
            )
        try:
            return self.topology.subscription(group)
        except KeyError:
            return bus_topology(self.namespace, self.retry.max_attempts, (group,)).subscriptions[0]

    async def _open_group(self, group: str) -> None:
        """Provision the group's subscription (idempotent), or verify it without Manage rights."""
        subscription = self._subscription(group)
        admin = self._connection().admin
        if admin is None:
            missing = await self._missing_subscriptions([subscription])
            if missing:
                raise _missing_entities(missing, self._connection().missing_fix)
        else:
            await self._provision(admin, [subscription])

    async def _provision(
        self, admin: ServiceBusAdministrationClient, subscriptions: Sequence[Subscription]
    ) -> None:
        try:
            try:
                await admin.get_topic(self.topic)
            except ResourceNotFoundError:
                with suppress(ResourceExistsError):  # another process created it first
                    await admin.create_topic(self.topic)
            for subscription in subscriptions:
                await self._provision_subscription(admin, subscription)
        except ClientAuthenticationError as error:
            raise ConfigError(
                [
                    "the SERVICE_BUS_CONNECTION_STRING key may not manage entities (Service "
                    f"Bus answered: {_one_line(error)}): use a key with Manage rights, or "
                    "SERVICE_BUS_NAMESPACE with a managed identity once the infrastructure "
                    "is deployed"
                ]
            ) from None

    async def _provision_subscription(
        self, admin: ServiceBusAdministrationClient, subscription: Subscription
    ) -> None:
        try:
            await admin.get_subscription(self.topic, subscription.name)
        except ResourceNotFoundError:
            with suppress(ResourceExistsError):
                await admin.create_subscription(
                    self.topic,
                    subscription.name,
                    lock_duration=subscription.lock_duration,
                    max_delivery_count=subscription.max_delivery_count,
                )
        rule_filter = SqlRuleFilter(subscription.rule_filter)
        with suppress(ResourceExistsError):
            await admin.create_rule(
                self.topic, subscription.name, subscription.rule_name, filter=rule_filter
            )
        with suppress(ResourceNotFoundError):
            await admin.delete_rule(self.topic, subscription.name, DEFAULT_RULE)

    async def _verify_topology(self) -> None:
        """Check the topic and every declared subscription with data-plane calls only."""
        if self._sender is None:
            raise RuntimeError("the Service Bus bus is not connected: call connect() first")
        subscriptions = self.topology.subscriptions
        if await _exists(SENDER_ROLE, f"topic {self.topic!r}", self._sender.create_message_batch):
            missing = await self._missing_subscriptions(subscriptions)
        else:
            missing = [f"topic {self.topic!r}"]
            missing += [f"its subscription {s.name!r}" for s in subscriptions]
        if missing:
            raise _missing_entities(missing, self._connection().missing_fix)

    async def _missing_subscriptions(self, subscriptions: Sequence[Subscription]) -> list[str]:
        missing: list[str] = []
        for subscription in subscriptions:
            entity = f"subscription {subscription.name!r} of topic {self.topic!r}"
            if not await _exists(
                RECEIVER_ROLE, entity, functools.partial(self._peek, subscription.name)
            ):
                missing.append(entity)
        return missing

    async def _peek(self, group: str) -> None:
        async with self._connection().data.get_subscription_receiver(
            self.topic, group, receive_mode=ServiceBusReceiveMode.PEEK_LOCK
        ) as receiver:
            await receiver.peek_messages(1)

    async def _publish(self, events: Sequence[CloudEvent]) -> None:
        """Send in as few service batches as the size limit allows."""
        if self._sender is None:
            raise RuntimeError("the Service Bus bus is not connected: call connect() first")
        sender = self._sender
        batch = await sender.create_message_batch()
        for event in events:
            message = _message(event)
            try:
                batch.add_message(message)
            except MessageSizeExceededError:
                if len(batch) == 0:
                    raise  # one event larger than a whole batch: the service would refuse it
                await sender.send_messages(batch)
                batch = await sender.create_message_batch()
                batch.add_message(message)
        if len(batch):
            await sender.send_messages(batch)

    def _receiver(self, group: str) -> ServiceBusReceiver:
        """The group's long-lived receiver: a message settles through the one that received it."""
        receiver = self._receivers.get(group)
        if receiver is None:
            receiver = self._connection().data.get_subscription_receiver(
                self.topic, group, receive_mode=ServiceBusReceiveMode.PEEK_LOCK
            )
            self._receivers[group] = receiver
        return receiver

    async def _receive(self, group: str, max_count: int, wait: float) -> list[Delivery]:
        receiver = self._receiver(group)
        async with self._links[group]:
            messages = await receiver.receive_messages(
                max_message_count=max_count, max_wait_time=wait
            )
            deliveries: list[Delivery] = []
            for message in messages:
                try:
                    event = CloudEvent.from_json(_body(message))
                except ValidationError as error:
                    await receiver.dead_letter_message(
                        message,
                        reason=f"not a CloudEvent: {error}"[:MAX_REASON_LENGTH],
                        error_description=_description(attempts=0),
                    )
                    continue
                deliveries.append(
                    Delivery(
                        event, (receiver, message), previous_attempts=message.delivery_count or 0
                    )
                )
            return deliveries

    @override
    async def _ack(self, group: str, deliveries: Sequence[Delivery]) -> None:
        async with self._links[group]:
            await _settle_each(deliveries, "complete", lambda r, m: r.complete_message(m))

    @override
    async def _release(self, group: str, deliveries: Sequence[Delivery]) -> None:
        async with self._links[group]:
            await _settle_each(deliveries, "abandon", lambda r, m: r.abandon_message(m))

    @override
    async def _dead_letter(
        self, group: str, delivery: Delivery, reason: str, attempts: int
    ) -> None:
        description = _description(attempts)
        async with self._links[group]:
            await _settle_each(
                [delivery],
                "dead-letter",
                lambda r, m: r.dead_letter_message(
                    m, reason=reason[:MAX_REASON_LENGTH], error_description=description
                ),
            )

    def _dead_letter_receiver(self, group: str) -> ServiceBusReceiver:
        return self._connection().data.get_subscription_receiver(
            self.topic,
            group,
            sub_queue=ServiceBusSubQueue.DEAD_LETTER,
            receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
        )

    async def _peek_dead_letters(self, group: str) -> list[ServiceBusReceivedMessage]:
        found: list[ServiceBusReceivedMessage] = []
        try:
            async with self._dead_letter_receiver(group) as receiver:
                sequence = 0
                while page := await receiver.peek_messages(
                    self.batch_size, sequence_number=sequence
                ):
                    found.extend(page)
                    sequence = (page[-1].sequence_number or 0) + 1
        except (MessagingEntityNotFoundError, ServiceBusAuthenticationError) as error:
            if not entity_missing(error):
                raise
            return []  # the group was never opened: it has no dead letters
        return found

    async def dead_letters(self, group: str) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        for message in await self._peek_dead_letters(group):
            try:
                event = CloudEvent.from_json(_body(message))
            except ValidationError:
                continue  # not ours to show: visible in the portal's dead-letter view
            attempts, failed_at = _parse_description(message)
            letters.append(
                DeadLetter(event, group, message.dead_letter_reason or "", attempts, failed_at)
            )
        return letters

    async def replay(self, group: str, event_id: str) -> None:
        if not any(m.message_id == event_id for m in await self._peek_dead_letters(group)):
            raise KeyError(f"no dead letter {event_id} in group {group}")
        held: list[ServiceBusReceivedMessage] = []
        async with self._dead_letter_receiver(group) as receiver:
            try:
                target = await _receive_matching(receiver, event_id, held, self.batch_size)
                if target is None:
                    raise KeyError(
                        f"dead letter {event_id} of group {group} is locked by another replay"
                    )
                if self._sender is None:
                    raise RuntimeError("the Service Bus bus is not connected: call connect() first")
                # Sent before completed: a failure in between replays it twice, never not.
                await self._sender.send_messages(_replay_message(target, group))
                await receiver.complete_message(target)
            finally:
                for message in held:
                    await receiver.abandon_message(message)


async def _receive_matching(
    receiver: ServiceBusReceiver,
    message_id: str,
    held: list[ServiceBusReceivedMessage],
    batch_size: int,
) -> ServiceBusReceivedMessage | None:
    """Lock dead letters until `message_id` turns up; the others stay locked in `held` (so
    the next receive moves past them) for the caller to abandon."""
    while batch := await receiver.receive_messages(max_message_count=batch_size, max_wait_time=5):
        target: ServiceBusReceivedMessage | None = None
        for message in batch:
            if target is None and message.message_id == message_id:
                target = message
            else:
                held.append(message)
        if target is not None:
            return target
    return None


async def _settle_each(
    deliveries: Sequence[Delivery],
    action: str,
    settle: Callable[[ServiceBusReceiver, ServiceBusReceivedMessage], Awaitable[None]],
) -> None:
    """Settle the deliveries concurrently, skipping settled ones; a lost lock is only logged."""

    async def one(delivery: Delivery) -> None:
        receiver, message = delivery.receipt
        try:
            await settle(receiver, message)
        except MessageAlreadySettled:
            pass
        except MessageLockLostError:
            log.warning(
                "could not %s event %s: its lock expired; the service delivers it again",
                action,
                delivery.event.id,
            )

    results = await asyncio.gather(*(one(d) for d in deliveries), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _message(event: CloudEvent) -> ServiceBusMessage:
    return ServiceBusMessage(
        event.to_json(), content_type=CONTENT_TYPE, message_id=event.id, subject=event.type
    )


def _replay_message(dead: ServiceBusReceivedMessage, group: str) -> ServiceBusMessage:
    return ServiceBusMessage(
        _body(dead),
        content_type=CONTENT_TYPE,
        message_id=dead.message_id,
        subject=dead.subject,
        application_properties={REPLAY_PROPERTY: group},
    )


def _body(message: ServiceBusReceivedMessage) -> bytes:
    body: Any = message.body  # a data body is an iterable of byte sections
    return body if isinstance(body, bytes) else b"".join(body)


def _description(attempts: int) -> str:
    return json.dumps({"attempts": attempts, "failed_at": datetime.now(UTC).isoformat()})


def _parse_description(message: ServiceBusReceivedMessage) -> tuple[int, datetime]:
    """Attempts and failure time as recorded, or the service's own for its dead letters."""
    try:
        recorded = json.loads(message.dead_letter_error_description or "")
        return int(recorded["attempts"]), datetime.fromisoformat(recorded["failed_at"])
    except (ValueError, KeyError, TypeError):
        return (message.delivery_count or 0), (message.enqueued_time_utc or datetime.now(UTC))


def entity_missing(error: BaseException) -> bool:
    """Whether a data-plane call failed because its topic or subscription does not exist
    (the SDK raises a token refused with 404 as an authentication error)."""
    if isinstance(error, MessagingEntityNotFoundError):
        return True
    return isinstance(error, ServiceBusAuthenticationError) and (
        getattr(error.inner_exception, "status_code", None) == _NOT_FOUND
    )


async def _exists(role: str, entity: str, check: Callable[[], Awaitable[object]]) -> bool:
    """Whether the data-plane call `check` finds `entity`; refused rights name the `role`."""
    try:
        await check()
    except (
        MessagingEntityNotFoundError,
        ServiceBusAuthenticationError,
        ServiceBusAuthorizationError,
    ) as error:
        if entity_missing(error):
            return False
        raise ConfigError(
            [
                f"Service Bus refused this identity access to {entity} "
                f"({_one_line(error.inner_exception or error)}): give it the {role} role on "
                "the namespace"
            ]
        ) from None
    return True


def _missing_entities(missing: Sequence[str], fix: str) -> ConfigError:
    return ConfigError(
        [
            f"the Service Bus namespace lacks {', '.join(missing)} (this identity has "
            f"data-plane rights only, so it may not create them): {fix}"
        ]
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def is_emulator(connection_string: str) -> bool:
    """Whether the connection string is the Service Bus emulator's (`UseDevelopmentEmulator`
    true, which the SDK reads to speak plain AMQP, without TLS)."""
    pairs = (part.partition("=") for part in connection_string.split(";"))
    return any(
        key.strip().lower() == "usedevelopmentemulator" and value.strip() == "true"
        for key, _, value in pairs
    )


@asynccontextmanager
async def connection_string_clients(connection_string: str) -> AsyncIterator[Clients]:
    """Both clients: the bus provisions its topology. The emulator's connection string gets
    the data-plane client only, so the bus verifies the topology its Config.json declares:
    the emulator's management API listens on another port than AMQP (5300, not 5672),
    which one connection string cannot name."""
    if is_emulator(connection_string):
        async with ServiceBusClient.from_connection_string(connection_string) as client:
            yield Clients(client, None, EMULATOR_FIX)
        return
    async with (
        ServiceBusClient.from_connection_string(connection_string) as client,
        ServiceBusAdministrationClient.from_connection_string(connection_string) as admin,
    ):
        yield Clients(client, admin)


@asynccontextmanager
async def managed_identity_clients(namespace: str) -> AsyncIterator[Clients]:
    """The data-plane client through DefaultAzureCredential; `namespace`: short or host name."""
    host = namespace if "." in namespace else f"{namespace}.servicebus.windows.net"
    async with DefaultAzureCredential() as credential, ServiceBusClient(host, credential) as client:
        yield Clients(client, None)
