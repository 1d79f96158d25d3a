"""The container registry the images are pushed to; pulled only by the apps' identities."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import containerregistry


@dataclass(frozen=True)
class RegistryArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    registry_name: str
    sku: str


class Registry(pulumi.ComponentResource):
    """An Azure Container Registry without its admin user: `id`, `login_server`."""

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:Registry", name, None, opts)
        registry = containerregistry.Registry(
            name,
            registry_name=args.registry_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=containerregistry.SkuArgs(name=args.sku),
            admin_user_enabled=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.id: pulumi.Output[str] = registry.id
        self.login_server: pulumi.Output[str] = registry.login_server
        self.register_outputs({})
