"""The Service Bus provider beyond the shared contract, and the fake it is tested against.

- The fake cannot drift from the SDK: every method and property it offers exists on the
  real class with a compatible signature.
- The fake behaves like the service where the bus depends on it (delivery counts, abandon,
  lock expiry, automatic dead-lettering, rules): pinned here against the fake, and against a
  real namespace too when LIGHTNING_TEST_SERVICEBUS_CONNECTION is set (see
  lightning_core/testing/backends/servicebus.py for how to run that).
- The bus's own choices: with a connection string it provisions exactly the declared
  topology; with a managed identity (no administration client) it verifies it with
  data-plane calls and names whatever is missing or refused in one line; replay reaches
  only its group, lost locks and outages are ridden out, undecodable messages are
  dead-lettered at once, settings pick the right clients.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch, ServiceBusReceivedMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver, ServiceBusSender
from azure.servicebus.aio.management import ServiceBusAdministrationClient
from azure.servicebus.exceptions import (
    MessageLockLostError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
)

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.servicebus import (
    Clients,
    ServiceBusBus,
    connection_string_clients,
    entity_missing,
    managed_identity_clients,
)
from lightning_core.config import ConfigError, Settings, load_settings
from lightning_core.events import CloudEvent
from lightning_core.providers import build_bus
from lightning_core.testing.backends.servicebus import (
    LIVE_CONNECTION,
    delete_live_topic,
    fake_clients,
    unique_namespace,
)
from lightning_core.testing.servicebus_fake import (
    DATA_PLANE_CLAIMS,
    LISTEN,
    SEND,
    FakeAdministrationClient,
    FakeNamespace,
    FakeReceivedMessage,
    FakeReceiver,
    FakeSender,
    FakeServiceBusClient,
    RecordingBatch,
)
from lightning_core.topology import CONSUMER_GROUPS, bus_topology

# -- the fake against the SDK's types ----------------------------------------------------

DOUBLES: list[tuple[type, type]] = [
    (FakeServiceBusClient, ServiceBusClient),
    (FakeSender, ServiceBusSender),
    (FakeReceiver, ServiceBusReceiver),
    (FakeAdministrationClient, ServiceBusAdministrationClient),
    (FakeReceivedMessage, ServiceBusReceivedMessage),
    (RecordingBatch, ServiceBusMessageBatch),
]


def public_members(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") or name in ("__aenter__", "__aexit__")
    }


def signature_problems(fake: Callable[..., Any], real: Callable[..., Any]) -> list[str]:
    """Why a call that is valid for one of the two might not be valid for the other."""
    fake_params = list(inspect.signature(fake).parameters.values())
    real_params = list(inspect.signature(real).parameters.values())
    real_by_name = {p.name: p for p in real_params}
    problems = []
    if inspect.iscoroutinefunction(fake) != inspect.iscoroutinefunction(real):
        problems.append("one is a coroutine function, the other is not")
    positional = [p.name for p in fake_params if p.kind is p.POSITIONAL_OR_KEYWORD]
    real_positional = [p.name for p in real_params if p.kind is p.POSITIONAL_OR_KEYWORD]
    if positional != real_positional[: len(positional)]:
        problems.append(f"positional parameters {positional} vs {real_positional}")
    for param in fake_params:
        if param.kind is param.VAR_POSITIONAL:
            continue
        if param.kind is param.VAR_KEYWORD:
            if not any(p.kind is p.VAR_KEYWORD for p in real_params):
                problems.append("the fake takes **kwargs, the SDK does not")
            continue
        match = real_by_name.get(param.name)
        if match is None:
            problems.append(f"the SDK has no parameter {param.name!r}")
        elif (param.default is param.empty) != (match.default is match.empty):
            problems.append(f"{param.name!r} is optional in one and required in the other")
    fake_names = {p.name for p in fake_params}
    swallows = any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in fake_params)
    for param in real_params:
        required = param.default is param.empty and param.kind not in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        )
        if required and param.name not in fake_names and not swallows:
            problems.append(f"the fake lacks the required parameter {param.name!r}")
    return problems


@pytest.mark.parametrize(("fake", "real"), DOUBLES, ids=lambda cls: cls.__name__)
def test_the_fake_offers_only_what_the_sdk_has_with_its_signatures(fake: type, real: type) -> None:
    problems = []
    for name, member in public_members(fake).items():
        real_member = inspect.getattr_static(real, name, None)
        if real_member is None:
            problems.append(f"{name}: not on {real.__name__}")
        elif isinstance(member, property):
            if not isinstance(real_member, property):
                problems.append(f"{name}: a property here, not on {real.__name__}")
        elif callable(member):
            problems.extend(
                f"{name}: {problem}" for problem in signature_problems(member, real_member)
            )
        else:
            problems.append(f"{name}: plain class attribute, not modelled")
    assert problems == []


# -- the fake's behaviour, pinned (and compared with the service when one is given) -------

NAMESPACES = ["fake", *(["live"] if LIVE_CONNECTION else [])]


@pytest.fixture(params=NAMESPACES)
async def service(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Clients, str]]:
    """The SDK surface (fake or live) and a fresh topic on it, deleted afterwards."""
    if request.param == "fake":
        async with fake_clients(FakeNamespace())() as clients:
            assert clients.admin is not None
            await clients.admin.create_topic("topic")
            yield clients, "topic"
        return
    topic = f"{unique_namespace()}-events"
    async with connection_string_clients(LIVE_CONNECTION) as clients:
        assert clients.admin is not None
        await clients.admin.create_topic(topic)
        try:
            yield clients, topic
        finally:
            await delete_live_topic(topic)


async def test_service_semantics_the_bus_relies_on(service: tuple[Clients, str]) -> None:
    clients, topic = service
    client, admin = clients.data, clients.admin
    assert admin is not None
    await admin.create_subscription(topic, "early", max_delivery_count=2)
    async with client.get_topic_sender(topic) as sender:
        await sender.send_messages(ServiceBusMessage(b"one", message_id="1"))
        await admin.create_subscription(topic, "late")
        await sender.send_messages(ServiceBusMessage(b"two", message_id="2"))
    async with client.get_subscription_receiver(topic, "late") as late:
        received = await late.receive_messages(10, max_wait_time=5)
        assert [m.message_id for m in received] == ["2"]  # nothing from before it existed
        await late.complete_message(received[0])
    async with client.get_subscription_receiver(topic, "early") as early:
        first = await early.receive_messages(1, max_wait_time=5)
        assert [(m.message_id, m.delivery_count) for m in first] == [("1", 0)]
        assert b"".join(first[0].body) == b"one"
        await early.abandon_message(first[0])
        again = await early.receive_messages(1, max_wait_time=5)
        assert [(m.message_id, m.delivery_count) for m in again] == [("1", 1)]
        await early.abandon_message(again[0])  # the second failed delivery: max is 2
        rest = await early.receive_messages(10, max_wait_time=5)
        assert [m.message_id for m in rest] == ["2"]
        await early.dead_letter_message(rest[0], reason="bad", error_description="why")
    async with client.get_subscription_receiver(topic, "early", sub_queue="deadletter") as dlq:
        letters = await dlq.peek_messages(10)
    assert [(m.message_id, m.dead_letter_reason) for m in letters] == [
        ("1", "MaxDeliveryCountExceeded"),
        ("2", "bad"),
    ]
    assert letters[1].dead_letter_error_description == "why"
    assert (letters[1].application_properties or {})[b"DeadLetterReason"] == b"bad"


async def test_missing_entities_fail_at_the_first_data_plane_call(
    service: tuple[Clients, str],
) -> None:
    """What verifying relies on: a link to a missing entity fails, naming it as missing."""
    clients, topic = service
    client = clients.data
    refusals = (MessagingEntityNotFoundError, ServiceBusAuthenticationError)
    async with client.get_topic_sender(f"{topic}-missing") as sender:
        with pytest.raises(refusals) as no_topic:
            await sender.create_message_batch()
    async with client.get_subscription_receiver(topic, "missing") as receiver:
        with pytest.raises(refusals) as no_subscription:
            await receiver.peek_messages(1)
    assert entity_missing(no_topic.value)
    assert entity_missing(no_subscription.value)


async def test_an_expired_lock_is_a_failed_delivery() -> None:
    async with FakeNamespace().clients() as (client, admin):
        await admin.create_topic("topic")
        await admin.create_subscription("topic", "s", lock_duration=timedelta(seconds=0.05))
        async with client.get_topic_sender("topic") as sender:
            await sender.send_messages(ServiceBusMessage(b"x"))
        async with client.get_subscription_receiver("topic", "s") as receiver:
            [stale] = await receiver.receive_messages(1, max_wait_time=1)
            [fresh] = await receiver.receive_messages(1, max_wait_time=1)  # after the expiry
            assert fresh.delivery_count == 1
            with pytest.raises(MessageLockLostError):
                await receiver.complete_message(stale)
            await receiver.complete_message(fresh)


async def test_the_fake_refuses_what_the_credential_holds_no_claim_for() -> None:
    """As the service refuses a data-plane identity: management 401, links unauthorized."""
    namespace = FakeNamespace()
    await FakeAdministrationClient(namespace).create_topic("topic")
    await FakeAdministrationClient(namespace).create_subscription("topic", "s")
    with pytest.raises(ClientAuthenticationError, match="'Manage' claim"):
        await FakeAdministrationClient(namespace, DATA_PLANE_CLAIMS).get_topic("topic")
    listener = FakeServiceBusClient(namespace, frozenset({LISTEN}))
    with pytest.raises(ServiceBusAuthorizationError, match="'Send' claim"):
        await listener.get_topic_sender("topic").create_message_batch()
    assert await listener.get_subscription_receiver("topic", "s").peek_messages(1) == []
    sender = FakeServiceBusClient(namespace, frozenset({SEND}))
    with pytest.raises(ServiceBusAuthorizationError, match="'Listen' claim"):
        await sender.get_subscription_receiver("topic", "s").peek_messages(1)
    await sender.get_topic_sender("topic").create_message_batch()


# -- the topology: provisioned with a connection string, verified with a managed identity --


def provisioned_shape(namespace: FakeNamespace, topic: str) -> dict[str, Any]:
    """Each subscription of `topic`: lock duration, max delivery count, rule filters."""
    return {
        name: (
            subscription.lock_duration,
            subscription.max_delivery_count,
            {rule_name: rule.sql_expression for rule_name, rule in subscription.rules.items()},
        )
        for name, subscription in namespace.topics[topic].subscriptions.items()
    }


def declared_shape(bus_namespace: str, max_attempts: int, groups: tuple[str, ...]) -> Any:
    topology = bus_topology(bus_namespace, max_attempts, groups)
    return {
        s.name: (s.lock_duration, s.max_delivery_count, {s.rule_name: s.rule_filter})
        for s in topology.subscriptions
    }


async def test_a_connection_string_provisions_exactly_the_declared_topology(
    namespace: FakeNamespace,
) -> None:
    retry = RetryPolicy(max_attempts=12)  # above the service default: max delivery follows it
    name = unique_namespace()
    async with ServiceBusBus(fake_clients(namespace), name, retry) as bus:
        assert bus.topic == bus_topology(name, 12).topic
        assert provisioned_shape(namespace, bus.topic) == declared_shape(name, 12, CONSUMER_GROUPS)
        await bus.open_group("contract-group")  # not declared: provisioned the same way
        assert provisioned_shape(namespace, bus.topic) == declared_shape(
            name, 12, (*CONSUMER_GROUPS, "contract-group")
        )
        await bus.ping()


async def test_a_connection_string_without_manage_rights_fails_in_one_line(
    namespace: FakeNamespace,
) -> None:
    bus = ServiceBusBus(fake_clients(namespace, DATA_PLANE_CLAIMS), unique_namespace())
    with pytest.raises(ConfigError, match="may not manage entities") as failure:
        await bus.connect()
    assert "Manage rights" in str(failure.value)
    assert "\n" not in str(failure.value)


def managed_identity_bus(
    namespace: FakeNamespace,
    name: str,
    claims: frozenset[str] = DATA_PLANE_CLAIMS,
    groups: tuple[str, ...] = CONSUMER_GROUPS,
) -> ServiceBusBus:
    clients = fake_clients(namespace, claims, managed_identity=True)
    return ServiceBusBus(clients, name, RetryPolicy(max_attempts=3), groups=groups)


async def test_a_managed_identity_verifies_a_provisioned_namespace_and_uses_it(
    namespace: FakeNamespace,
) -> None:
    name = unique_namespace()
    async with ServiceBusBus(fake_clients(namespace), name) as provisioner:
        await provisioner.open_group("extra")
    before = provisioned_shape(namespace, provisioner.topic)
    async with managed_identity_bus(namespace, name) as bus:
        await bus.ping()
        await bus.open_group("extra")
        event = make_event(1)
        await bus.publish(event)
        assert [e.id for e in await consume_until(bus, CONSUMER_GROUPS[0], 1)] == [event.id]
    assert provisioned_shape(namespace, bus.topic) == before


@pytest.mark.parametrize("refuse_at_token", [False, True], ids=["at-link", "at-token"])
async def test_a_managed_identity_names_every_missing_entity_in_one_line(
    namespace: FakeNamespace, refuse_at_token: bool
) -> None:
    namespace.refuse_at_token = refuse_at_token
    name = unique_namespace()
    with pytest.raises(ConfigError) as nothing:
        await managed_identity_bus(namespace, name, groups=("a", "b")).connect()
    message = str(nothing.value)
    for entity in (f"topic '{name}-events'", "subscription 'a'", "subscription 'b'"):
        assert entity in message
    assert "`invoke deploy --stack NAME`" in message
    assert "SERVICE_BUS_CONNECTION_STRING with Manage rights" in message
    assert "\n" not in message

    async with ServiceBusBus(fake_clients(namespace), name, groups=("a",)):
        pass  # provisions the topic and "a" only
    with pytest.raises(ConfigError) as one:
        await managed_identity_bus(namespace, name, groups=("a", "b")).connect()
    assert "subscription 'b'" in str(one.value)
    assert "subscription 'a'" not in str(one.value)

    async with managed_identity_bus(namespace, name, groups=("a",)) as bus:
        with pytest.raises(ConfigError, match="subscription 'undeclared'"):
            await bus.open_group("undeclared")
        assert await bus.dead_letters("undeclared") == []
    assert set(namespace.topics[f"{name}-events"].subscriptions) == {"a"}


@pytest.mark.parametrize("refuse_at_token", [False, True], ids=["at-link", "at-token"])
@pytest.mark.parametrize(
    ("claims", "role"),
    [
        (frozenset({LISTEN}), "Azure Service Bus Data Sender"),
        (frozenset({SEND}), "Azure Service Bus Data Receiver"),
    ],
)
async def test_refused_rights_name_the_role_needed(
    namespace: FakeNamespace, claims: frozenset[str], role: str, refuse_at_token: bool
) -> None:
    name = unique_namespace()
    async with ServiceBusBus(fake_clients(namespace), name):
        pass
    namespace.refuse_at_token = refuse_at_token
    with pytest.raises(ConfigError, match=f"give it the {role} role") as failure:
        await managed_identity_bus(namespace, name, claims).connect()
    assert "\n" not in str(failure.value)


async def test_the_managed_identity_factory_builds_no_administration_client() -> None:
    """No network: the SDK connects lazily, on a link's first operation."""
    async with managed_identity_clients("lightning-prod") as clients:
        assert isinstance(clients.data, ServiceBusClient)
        assert clients.data.fully_qualified_namespace == "lightning-prod.servicebus.windows.net"
        assert clients.admin is None


# -- the bus's own choices -----------------------------------------------------------------


def make_event(n: int) -> CloudEvent:
    return CloudEvent(source="test", type="test.happened", data={"n": n}, user="alice")


async def consume_until(
    bus: ServiceBusBus, group: str, count: int, handler: Callable[[CloudEvent], Any] | None = None
) -> list[CloudEvent]:
    """Run a consumer of `group` until it has seen `count` events (5 s at most)."""
    seen: list[CloudEvent] = []
    stop = asyncio.Event()

    async def record(event: CloudEvent) -> None:
        seen.append(event)
        if handler is not None:
            await handler(event)
        if len(seen) >= count:
            stop.set()

    await asyncio.wait_for(bus.consume(group, record, stop=stop), 5)
    return seen


@pytest.fixture
def namespace() -> FakeNamespace:
    return FakeNamespace()


@pytest.fixture
async def bus(namespace: FakeNamespace, fast_retry: RetryPolicy) -> AsyncIterator[ServiceBusBus]:
    async with ServiceBusBus(fake_clients(namespace), unique_namespace(), fast_retry) as bus:
        yield bus


async def open_groups(bus: ServiceBusBus, *groups: str) -> None:
    for group in groups:
        await bus._open_group(group)


async def test_replay_reaches_only_the_group_it_is_for(bus: ServiceBusBus) -> None:
    await open_groups(bus, "a", "b")
    event = make_event(1)
    await bus.publish(event)

    async def fail(_event: CloudEvent) -> None:
        raise RuntimeError("no")

    stop = asyncio.Event()
    failing = asyncio.create_task(bus.consume("a", fail, stop=stop))
    async with asyncio.timeout(5):
        while not await bus.dead_letters("a"):
            await asyncio.sleep(0.01)
    stop.set()
    await failing
    assert [e.id for e in await consume_until(bus, "b", 1)] == [event.id]

    await bus.replay("a", event.id)
    assert [e.id for e in await consume_until(bus, "a", 1)] == [event.id]
    assert await bus.dead_letters("a") == []
    await bus.publish(make_event(2))  # "b" sees the next event, not the replay
    assert [e.data["n"] for e in await consume_until(bus, "b", 1)] == [2]


async def test_dead_letters_keep_reason_attempts_and_order(bus: ServiceBusBus) -> None:
    await open_groups(bus, "g")
    events = [make_event(n) for n in range(3)]
    await bus.publish_batch(events)

    async def fail(event: CloudEvent) -> None:
        raise ValueError(f"bad {event.data['n']}")

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume("g", fail, stop=stop))
    async with asyncio.timeout(5):
        while len(await bus.dead_letters("g")) < 3:
            await asyncio.sleep(0.01)
    stop.set()
    await task
    letters = await bus.dead_letters("g")
    assert [(d.event, d.reason, d.attempts) for d in letters] == [
        (e, f"ValueError: bad {e.data['n']}", bus.retry.max_attempts) for e in events
    ]
    assert await bus.dead_letters("never-opened") == []
    with pytest.raises(KeyError):
        await bus.replay("never-opened", events[0].id)


async def test_a_lost_lock_is_logged_and_the_event_comes_again(
    namespace: FakeNamespace, bus: ServiceBusBus, caplog: pytest.LogCaptureFixture
) -> None:
    # A subscription provisioned elsewhere with a short lock: the bus keeps its settings.
    await FakeAdministrationClient(namespace).create_subscription(
        bus.topic, "g", lock_duration=timedelta(seconds=0.05)
    )
    await bus.publish(make_event(1))
    first_call = True

    async def slow_once(_event: CloudEvent) -> None:
        nonlocal first_call
        if first_call:
            first_call = False
            await asyncio.sleep(0.2)  # outlives the lock

    with caplog.at_level(logging.WARNING, "lightning_core.bus.servicebus"):
        seen = await consume_until(bus, "g", 2, slow_once)
    assert [e.id for e in seen] == [seen[0].id] * 2
    assert "lock expired" in caplog.text


async def test_outages_are_ridden_out(namespace: FakeNamespace, bus: ServiceBusBus) -> None:
    bus.reconnect_delay = bus.reconnect_max_delay = 0.01
    await open_groups(bus, "g")
    namespace.outage = True
    publishing = asyncio.create_task(bus.publish_batch([make_event(n) for n in range(5)]))
    consuming = asyncio.create_task(consume_until(bus, "g", 5))
    await asyncio.sleep(0.1)
    assert not publishing.done()
    namespace.outage = False
    await publishing
    assert [e.data["n"] for e in await consuming] == list(range(5))


async def test_a_message_that_is_no_cloudevent_is_dead_lettered_at_once(
    namespace: FakeNamespace, bus: ServiceBusBus
) -> None:
    await open_groups(bus, "g")
    async with FakeServiceBusClient(namespace).get_topic_sender(bus.topic) as sender:
        await sender.send_messages(ServiceBusMessage(b"{not json", message_id="junk"))
    await bus.publish(make_event(1))
    assert [e.data["n"] for e in await consume_until(bus, "g", 1)] == [1]
    receiver = FakeServiceBusClient(namespace).get_subscription_receiver(
        bus.topic, "g", sub_queue="deadletter"
    )
    [junk] = await receiver.peek_messages(10)
    assert junk.message_id == "junk"
    assert (junk.dead_letter_reason or "").startswith("not a CloudEvent")
    assert await bus.dead_letters("g") == []  # not an event: shown only by the portal


async def test_batches_split_at_the_service_size_limit(bus: ServiceBusBus) -> None:
    await open_groups(bus, "g")
    big = [
        CloudEvent(source="t", type="big", data={"pad": "x" * 60_000, "n": n}, user="u")
        for n in range(10)
    ]
    await bus.publish_batch(big)  # ~600 KB: three or more service batches of <= 256 KB
    assert [e.data["n"] for e in await consume_until(bus, "g", 10)] == list(range(10))


async def test_group_names_must_fit_a_subscription_name(bus: ServiceBusBus) -> None:
    with pytest.raises(ValueError, match="cannot name a Service Bus subscription"):
        await bus._open_group("it's")


def servicebus_settings(**values: str) -> Settings:
    return load_settings(
        LIGHTNING_MODE="embedded",
        LIGHTNING_EVENT_BUS_PROVIDER="servicebus",
        LIGHTNING_BUS_NAMESPACE="prod",
        LIGHTNING_BUS_MAX_ATTEMPTS="7",
        **values,
    )


@pytest.mark.parametrize(
    ("setting", "value", "factory"),
    [
        (
            "SERVICE_BUS_CONNECTION_STRING",
            "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=s",
            "connection_string_clients",
        ),
        ("SERVICE_BUS_NAMESPACE", "lightning-prod", "managed_identity_clients"),
    ],
)
def test_settings_choose_the_clients_topic_and_retries(
    setting: str, value: str, factory: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    bus = build_bus(servicebus_settings(**{setting: value}))
    assert isinstance(bus, ServiceBusBus)
    assert bus.topic == "prod-events"
    assert bus.retry.max_attempts == 7
    clients = cast(Any, bus._clients)
    assert (clients.func.__name__, clients.args) == (factory, (value,))
