"""The Service Bus emulator's connection string: the bus gets the data-plane client only and
verifies the topology the emulator's Config.json declares (its management API listens on
another port than AMQP); every other connection string still provisions."""

from __future__ import annotations

import pytest

from lightning_core.bus import servicebus
from lightning_core.bus.servicebus import ServiceBusBus, connection_string_clients, is_emulator
from lightning_core.config import ConfigError
from lightning_core.testing.servicebus_fake import (
    FakeAdministrationClient,
    FakeNamespace,
    FakeServiceBusClient,
)

EMULATOR = (
    "Endpoint=sb://servicebus;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
)
NAMESPACE = (
    "Endpoint=sb://lightning.servicebus.windows.net/;SharedAccessKeyName=manage;"
    "SharedAccessKey=a2V5"
)


@pytest.mark.parametrize(
    ("connection_string", "emulator"),
    [
        (EMULATOR, True),
        (EMULATOR.replace("UseDevelopmentEmulator", "usedevelopmentemulator"), True),
        (EMULATOR.replace("=true", "=false"), False),
        (NAMESPACE, False),
        (NAMESPACE + ";EntityPath=UseDevelopmentEmulator=true", False),
    ],
)
def test_the_emulator_is_recognised_as_the_sdk_recognises_it(
    connection_string: str, emulator: bool
) -> None:
    assert is_emulator(connection_string) is emulator


class Opened:
    """Stands in for an SDK client class: records the connection strings it was opened with."""

    def __init__(self, make: type[FakeServiceBusClient] | type[FakeAdministrationClient]) -> None:
        self.make = make
        self.namespace = FakeNamespace()
        self.opened: list[str] = []
        self.made: list[object] = []

    def from_connection_string(
        self, connection_string: str
    ) -> FakeServiceBusClient | FakeAdministrationClient:
        self.opened.append(connection_string)
        client = self.make(self.namespace)
        self.made.append(client)
        return client


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> tuple[Opened, Opened]:
    data, admin = Opened(FakeServiceBusClient), Opened(FakeAdministrationClient)
    monkeypatch.setattr(servicebus, "ServiceBusClient", data)
    monkeypatch.setattr(servicebus, "ServiceBusAdministrationClient", admin)
    return data, admin


async def test_the_emulator_gets_the_data_plane_client_only(
    opened: tuple[Opened, Opened],
) -> None:
    data, admin = opened
    async with connection_string_clients(EMULATOR) as clients:
        assert clients.data is data.made[0]
        assert clients.admin is None
    assert (data.opened, admin.opened) == ([EMULATOR], [])


async def test_a_namespace_gets_both_clients(opened: tuple[Opened, Opened]) -> None:
    data, admin = opened
    async with connection_string_clients(NAMESPACE) as clients:
        assert (clients.data, clients.admin) == (data.made[0], admin.made[0])
    assert (data.opened, admin.opened) == ([NAMESPACE], [NAMESPACE])


@pytest.mark.usefixtures("opened")
async def test_an_emulator_missing_the_topology_says_to_write_its_config() -> None:
    bus = ServiceBusBus(lambda: connection_string_clients(EMULATOR), "lightning")
    with pytest.raises(ConfigError) as missing:
        await bus.connect()
    message = str(missing.value)
    assert "topic 'lightning-events'" in message
    assert "`invoke compose-up --mode azure` writes it" in message
    assert "invoke deploy" not in message
