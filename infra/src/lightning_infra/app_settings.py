"""The environment each service gets, from resource outputs and lightning_core's needs.

Only plain, non-secret values: secrets reach the apps as Container Apps secrets or Key Vault
references, never here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from lightning_core.config import Mode
from lightning_core.topology import SERVICES


@dataclass(frozen=True)
class DataPlane:
    """Where the services' storage and bus are, as the settings name them."""

    cosmos_endpoint: pulumi.Input[str]
    cosmos_database: str
    #: `<namespace>.servicebus.windows.net`
    service_bus_host: pulumi.Input[str]
    #: The topic prefix and retry policy infra passed to bus_topology(): the same values.
    bus_namespace: str
    bus_max_attempts: int
    #: How long expiring documents are kept: the Cosmos DB containers' default TTL.
    retention_days: int


def service_settings(
    service: str, identity_client_id: pulumi.Input[str], data_plane: DataPlane
) -> dict[str, pulumi.Input[str]]:
    """Mode, service type, identity, and the storage and bus settings the service needs."""
    needs = SERVICES[service]
    settings: dict[str, pulumi.Input[str]] = {
        "LIGHTNING_MODE": Mode.AZURE.value,
        "SERVICE_TYPE": service,
        "AZURE_CLIENT_ID": identity_client_id,  # DefaultAzureCredential picks this identity
    }
    if needs.storage:
        settings["COSMOS_ENDPOINT"] = data_plane.cosmos_endpoint
        settings["COSMOS_DATABASE"] = data_plane.cosmos_database
        settings["LIGHTNING_RETENTION_DAYS"] = str(data_plane.retention_days)
    if needs.bus:
        settings["SERVICE_BUS_NAMESPACE"] = data_plane.service_bus_host
        settings["LIGHTNING_BUS_NAMESPACE"] = data_plane.bus_namespace
        settings["LIGHTNING_BUS_MAX_ATTEMPTS"] = str(data_plane.bus_max_attempts)
    return settings
