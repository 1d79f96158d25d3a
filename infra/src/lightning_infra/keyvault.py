"""Key Vault (RBAC) holding the secrets Container Apps reference, readable by named identities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import pulumi
from pulumi_azure_native import authorization, keyvault

from lightning_infra.roles import KEY_VAULT_SECRETS_USER, role_definition_id


@dataclass(frozen=True)
class SecretVaultArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    purge_protection: bool
    #: Key Vault secret name -> its (secret) value.
    secrets: Mapping[str, pulumi.Input[str]]
    #: Principal ids granted Key Vault Secrets User on the vault.
    readers: Sequence[pulumi.Input[str]]


class SecretVault(pulumi.ComponentResource):
    """`secret_uris`: secret name -> its versionless URI, so a new version is picked up."""

    def __init__(
        self, name: str, args: SecretVaultArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:SecretVault", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vault = keyvault.Vault(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=args.tenant_id,
                sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                # ARM accepts only true or nothing: purge protection cannot be switched off.
                enable_purge_protection=True if args.purge_protection else None,
            ),
            opts=child,
        )
        self.secret_uris: dict[str, pulumi.Output[str]] = {}
        for secret_name, value in args.secrets.items():
            secret = keyvault.Secret(
                f"{name}-{secret_name}",
                resource_group_name=args.resource_group_name,
                vault_name=vault.name,
                secret_name=secret_name,
                properties=keyvault.SecretPropertiesArgs(value=pulumi.Output.secret(value)),
                opts=child,
            )
            self.secret_uris[secret_name] = secret.properties.secret_uri
        for index, principal_id in enumerate(args.readers):
            authorization.RoleAssignment(
                f"{name}-reader-{index}",
                principal_id=principal_id,
                principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                role_definition_id=vault.id.apply(
                    partial(role_definition_id, role=KEY_VAULT_SECRETS_USER)
                ),
                scope=vault.id,
                opts=child,
            )
        self.register_outputs({})
