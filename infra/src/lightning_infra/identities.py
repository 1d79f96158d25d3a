"""One user-assigned identity per service, holding AcrPull and exactly the data roles its
lightning_core.topology needs declare."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, cosmosdb, managedidentity

from lightning_core.topology import ServiceNeeds
from lightning_infra.roles import ACR_PULL, COSMOS_DATA_CONTRIBUTOR, bus_roles, role_definition_id


@dataclass(frozen=True)
class ServiceIdentityArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    needs: ServiceNeeds
    registry_id: pulumi.Input[str]
    cosmos_account_id: pulumi.Input[str]
    cosmos_account_name: pulumi.Input[str]
    bus_namespace_id: pulumi.Input[str]


class ServiceIdentity(pulumi.ComponentResource):
    """`id`, `client_id` (AZURE_CLIENT_ID: DefaultAzureCredential picks it), `principal_id`."""

    def __init__(
        self, name: str, args: ServiceIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:ServiceIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=args.resource_group_name,
            location=args.location,
            opts=child,
        )
        grants = {ACR_PULL: args.registry_id} | {
            role: args.bus_namespace_id for role in bus_roles(args.needs)
        }
        for role, scope in grants.items():
            authorization.RoleAssignment(
                f"{name}-{role}",
                principal_id=identity.principal_id,
                principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                role_definition_id=pulumi.Output.from_input(scope).apply(
                    partial(role_definition_id, role=role)
                ),
                scope=scope,
                opts=child,
            )
        if args.needs.storage:
            # Its id must be a GUID, fixed for the life of the assignment.
            assignment_id = random.RandomUuid(f"{name}-cosmos-assignment-id", opts=child)
            cosmosdb.SqlResourceSqlRoleAssignment(
                f"{name}-cosmos-data-contributor",
                role_assignment_id=assignment_id.result,
                resource_group_name=args.resource_group_name,
                account_name=args.cosmos_account_name,
                principal_id=identity.principal_id,
                role_definition_id=pulumi.Output.concat(
                    args.cosmos_account_id, "/sqlRoleDefinitions/", COSMOS_DATA_CONTRIBUTOR
                ),
                scope=args.cosmos_account_id,
                opts=child,
            )
        self.id: pulumi.Output[str] = identity.id
        self.client_id: pulumi.Output[str] = identity.client_id
        self.principal_id: pulumi.Output[str] = identity.principal_id
        self.register_outputs({})
