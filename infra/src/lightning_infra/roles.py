"""Azure built-in role definitions the identities are granted, and which a service needs."""

from __future__ import annotations

from lightning_core.topology import BusRight, ServiceNeeds

ACR_PULL = "7f951dca-d0d3-4e9b-9f41-97a3c3e8ec9d"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
SERVICE_BUS_DATA_SENDER = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"
SERVICE_BUS_DATA_RECEIVER = "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
#: A Cosmos DB SQL (data-plane) role, not an Azure RBAC one: granted per account.
COSMOS_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"

BUS_ROLES: dict[BusRight, str] = {
    BusRight.SEND: SERVICE_BUS_DATA_SENDER,
    BusRight.RECEIVE: SERVICE_BUS_DATA_RECEIVER,
}


def bus_roles(needs: ServiceNeeds) -> list[str]:
    """The Service Bus data roles a service's bus rights need, in a stable order."""
    return sorted(BUS_ROLES[right] for right in needs.bus)


def role_definition_id(scope_id: str, role: str) -> str:
    """The ARM id of the built-in Azure role `role` in the subscription of the resource
    `scope_id` (so no lookup of the subscription is needed)."""
    subscription = "/".join(scope_id.split("/")[:3])
    return f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"
