"""Azure Service Bus: the in-memory namespace of servicebus_fake, and a real namespace when
LIGHTNING_TEST_SERVICEBUS_CONNECTION holds its connection string.

No emulator runs here without Docker, so `bus_servicebus` runs the contract against the fake
at the SDK boundary, connected as a connection string connects: the bus provisions the
topology that `lightning_core.topology.bus_topology` declares. (`fake_clients` can also
connect as a managed identity does, for the tests of the verifying path.)
`bus_servicebus_live` is listed only when the variable is set (so CI, which has no
namespace, never lists a test it would have to skip); then the whole bus contract, and the
fake-versus-service checks in test_servicebus.py, also run against the real service:

    export LIGHTNING_TEST_SERVICEBUS_CONNECTION='Endpoint=sb://NAME.servicebus.windows.net/;\
    SharedAccessKeyName=...;SharedAccessKey=...'   # one line: the namespace's connection string
    .venv/bin/pytest libs/lightning-core/tests -k servicebus -p no:cacheprovider

The key needs Manage rights (the bus provisions its topic and subscriptions) on a Standard
or Premium namespace (Basic has no topics). Each test uses its own topic `t-<hex>-events`,
deleted afterwards with its subscriptions.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.aio.management import ServiceBusAdministrationClient

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.servicebus import (
    ClientFactory,
    Clients,
    ServiceBusBus,
    connection_string_clients,
)
from lightning_core.testing.servicebus_fake import ALL_CLAIMS, FakeNamespace

LIVE_ENV = "LIGHTNING_TEST_SERVICEBUS_CONNECTION"
LIVE_CONNECTION = os.environ.get(LIVE_ENV, "")

BUSES = ["bus_servicebus", *(["bus_servicebus_live"] if LIVE_CONNECTION else [])]


def unique_namespace() -> str:
    """A bus namespace of this test's own, so runs sharing a Service Bus namespace never meet."""
    return f"t-{uuid.uuid4().hex[:12]}"


def fake_clients(
    namespace: FakeNamespace, claims: frozenset[str] = ALL_CLAIMS, *, managed_identity: bool = False
) -> ClientFactory:
    """The bus's client factory on the fake namespace's clients (test_servicebus.py checks
    that they have the SDK's methods and signatures), acting with `claims`: both clients as
    `connection_string_clients` yields them, or with `managed_identity` the data-plane client
    only, as `managed_identity_clients` does."""

    @asynccontextmanager
    async def clients() -> AsyncIterator[Clients]:
        async with namespace.clients(claims) as (client, admin):
            yield Clients(
                cast(ServiceBusClient, client),
                None if managed_identity else cast(ServiceBusAdministrationClient, admin),
            )

    return clients


@pytest.fixture
def servicebus_namespace() -> FakeNamespace:
    return FakeNamespace()


@pytest.fixture
async def bus_servicebus(
    fast_retry: RetryPolicy, servicebus_namespace: FakeNamespace
) -> AsyncIterator[ServiceBusBus]:
    bus = ServiceBusBus(fake_clients(servicebus_namespace), unique_namespace(), fast_retry)
    async with bus:
        yield bus


async def delete_live_topic(topic: str) -> None:
    async with ServiceBusAdministrationClient.from_connection_string(LIVE_CONNECTION) as admin:
        with contextlib.suppress(ResourceNotFoundError):
            await admin.delete_topic(topic)


@pytest.fixture
async def bus_servicebus_live(fast_retry: RetryPolicy) -> AsyncIterator[ServiceBusBus]:
    clients = functools.partial(connection_string_clients, LIVE_CONNECTION)
    bus = ServiceBusBus(clients, unique_namespace(), fast_retry)
    try:
        async with bus:
            yield bus
    finally:
        await delete_live_topic(bus.topic)
