"""The event processor as an Azure Function App: Flex Consumption, Python 3.11, identities only.

The app runs the zip `invoke package-function` builds, uploaded as `released-package.zip` (the
blob OneDeploy itself writes) into the plan's deployment container, which every Flex instance
loads when it starts; the package's SHA-256 is an app setting, so a new package restarts the
app, which loads it and syncs its trigger (docs/azure-facts.md says why Flex and its sources).

Every connection authenticates as the processor's user-assigned identity: the host's storage
(`AzureWebJobsStorage__*`), the trigger's namespace (`SERVICE_BUS__*`, the connection name in
lightning_processor.functions), the deployment container and Key Vault references. The app
settings (the Application Insights connection string among them) are held as a Pulumi secret.
The storage account keeps shared-key access on only because pulumi-azure-native uploads a
`storage.Blob` with the account key (pulumi-azure-native#2015).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pulumi
from pulumi_azure_native import authorization, storage, web

from lightning_infra.errors import DeployError
from lightning_infra.roles import (
    STORAGE_BLOB_DATA_OWNER,
    STORAGE_TABLE_DATA_CONTRIBUTOR,
    role_definition_id,
)

#: The task that builds the package this component deploys.
PACKAGE_TASK = "invoke package-function"
#: The Python the package is built for (its `.python_packages` hold 3.11 wheels).
PYTHON_VERSION = "3.11"
PLAN_SKU = web.SkuDescriptionArgs(name="FC1", tier="FlexConsumption")
INSTANCE_MEMORY_MB = 2048
MAXIMUM_INSTANCE_COUNT = 40
DEPLOYMENT_CONTAINER = "app-package"
PACKAGE_BLOB = "released-package.zip"
#: The app setting whose change restarts the app onto a new package.
PACKAGE_DIGEST_SETTING = "FUNCTION_PACKAGE_SHA256"
#: The trigger's connection name (`lightning_processor.functions.CONNECTION`).
TRIGGER_CONNECTION = "SERVICE_BUS"
HOST_STORAGE_CONNECTION = "AzureWebJobsStorage"
#: What the Functions host needs on its storage account: blobs (keys, leases, the package) and
#: tables (diagnostic events). The Service Bus trigger uses no queue.
HOST_STORAGE_ROLES: Mapping[str, str] = {
    "storage-blob-data-owner": STORAGE_BLOB_DATA_OWNER,
    "storage-table-data-contributor": STORAGE_TABLE_DATA_CONTRIBUTOR,
}


@dataclass(frozen=True)
class ProcessorFunctionArgs:
    """Where the app runs, as whom, what it runs and the settings the processor reads.

    `secret_settings` maps a setting name to a Key Vault secret URI, resolved by the identity;
    `app_insights_connection_string` is the value or `key_vault_reference(uri)`;
    `service_bus_host` is `<namespace>.servicebus.windows.net`.
    """

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    identity_id: pulumi.Input[str]
    identity_client_id: pulumi.Input[str]
    identity_principal_id: pulumi.Input[str]
    package_path: str
    app_settings: Mapping[str, pulumi.Input[str]]
    secret_settings: Mapping[str, pulumi.Input[str]]
    app_insights_connection_string: pulumi.Input[str]
    service_bus_host: pulumi.Input[str]


def package_digest(package_path: str) -> str:
    """SHA-256 of the package; a missing one stops the program, naming the task that builds it."""
    package = Path(package_path)
    if not package.is_file():
        raise DeployError(
            f"the Function package {package} does not exist: "
            f"build it with `{PACKAGE_TASK}`, then deploy again"
        )
    return hashlib.sha256(package.read_bytes()).hexdigest()


def key_vault_reference(secret_uri: pulumi.Input[str]) -> pulumi.Output[str]:
    """The app-setting value App Service resolves to the secret at `secret_uri`."""
    return pulumi.Output.concat("@Microsoft.KeyVault(SecretUri=", secret_uri, ")")


def identity_connection(prefix: str, client_id: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The settings that make the connection `prefix` authenticate as a user-assigned identity."""
    return {f"{prefix}__credential": "managedidentity", f"{prefix}__clientId": client_id}


def merge_settings(*groups: Mapping[str, pulumi.Input[str]]) -> dict[str, pulumi.Input[str]]:
    """One dict of app settings; a name set twice stops the program, naming it."""
    merged: dict[str, pulumi.Input[str]] = {}
    for group in groups:
        for setting, value in group.items():
            if setting in merged:
                raise DeployError(f"the Function app setting {setting} is set twice")
            merged[setting] = value
    return merged


class ProcessorFunction(pulumi.ComponentResource):
    """A Flex Consumption plan, its storage account and the processor's Function App on it."""

    function_app_name: pulumi.Output[str]
    default_host_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ProcessorFunctionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        digest = package_digest(args.package_path)
        super().__init__("lightning:infra:ProcessorFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # Storage account names are 3-24 lowercase letters and digits; autonaming adds 8.
        account = storage.StorageAccount(
            re.sub("[^a-z0-9]", "", f"{name}host".lower())[:16],
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            allow_blob_public_access=False,
            default_to_o_auth_authentication=True,
            opts=child,
        )
        container = storage.BlobContainer(
            f"{name}-deployment",
            container_name=DEPLOYMENT_CONTAINER,
            account_name=account.name,
            resource_group_name=args.resource_group_name,
            public_access=storage.PublicAccess.NONE,
            opts=child,
        )
        package = storage.Blob(
            f"{name}-package",
            blob_name=PACKAGE_BLOB,
            account_name=account.name,
            container_name=container.name,
            resource_group_name=args.resource_group_name,
            type=storage.BlobType.BLOCK,
            content_type="application/zip",
            source=pulumi.FileAsset(args.package_path),
            opts=child,
        )
        host_roles = [
            authorization.RoleAssignment(
                f"{name}-{role}",
                principal_id=args.identity_principal_id,
                principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                role_definition_id=account.id.apply(partial(role_definition_id, role=guid)),
                scope=account.id,
                opts=child,
            )
            for role, guid in HOST_STORAGE_ROLES.items()
        ]
        plan = web.AppServicePlan(
            f"{name}-plan",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="functionapp",
            reserved=True,  # Linux
            sku=PLAN_SKU,
            opts=child,
        )

        settings = merge_settings(
            args.app_settings,
            {setting: key_vault_reference(uri) for setting, uri in args.secret_settings.items()},
            {f"{HOST_STORAGE_CONNECTION}__accountName": account.name},
            identity_connection(HOST_STORAGE_CONNECTION, args.identity_client_id),
            {f"{TRIGGER_CONNECTION}__fullyQualifiedNamespace": args.service_bus_host},
            identity_connection(TRIGGER_CONNECTION, args.identity_client_id),
            {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": pulumi.Output.secret(
                    args.app_insights_connection_string
                ),
                PACKAGE_DIGEST_SETTING: digest,
            },
        )
        app = web.WebApp(
            f"{name}-app",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="functionapp,linux",
            server_farm_id=plan.id,
            https_only=True,
            identity=web.ManagedServiceIdentityArgs(
                type=web.ManagedServiceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[args.identity_id],
            ),
            key_vault_reference_identity=args.identity_id,
            site_config=web.SiteConfigArgs(
                app_settings=[
                    web.NameValuePairArgs(name=setting, value=value)
                    for setting, value in settings.items()
                ],
                min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                ftps_state=web.FtpsState.DISABLED,
            ),
            function_app_config=web.FunctionAppConfigArgs(
                deployment=web.FunctionsDeploymentArgs(
                    storage=web.FunctionsDeploymentStorageArgs(
                        type=web.FunctionsDeploymentStorageType.BLOB_CONTAINER,
                        value=pulumi.Output.concat(account.primary_endpoints.blob, container.name),
                        authentication=web.FunctionsDeploymentStorageAuthenticationArgs(
                            type=web.AuthenticationType.USER_ASSIGNED_IDENTITY,
                            user_assigned_identity_resource_id=args.identity_id,
                        ),
                    )
                ),
                runtime=web.FunctionsRuntimeArgs(
                    name=web.RuntimeName.PYTHON, version=PYTHON_VERSION
                ),
                scale_and_concurrency=web.FunctionsScaleAndConcurrencyArgs(
                    instance_memory_mb=INSTANCE_MEMORY_MB,
                    maximum_instance_count=MAXIMUM_INSTANCE_COUNT,
                ),
            ),
            # The first start must find the package and be able to read it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[package, *host_roles]),
        )
        # No publishing user name and password: deployments go through Azure RBAC.
        web.WebAppFtpAllowed(
            f"{name}-ftp-basic-auth",
            name=app.name,
            resource_group_name=args.resource_group_name,
            allow=False,
            opts=child,
        )
        web.WebAppScmAllowed(
            f"{name}-scm-basic-auth",
            name=app.name,
            resource_group_name=args.resource_group_name,
            allow=False,
            opts=child,
        )

        self.function_app_name = app.name
        self.default_host_name = app.default_host_name
        self.register_outputs(
            {"function_app_name": app.name, "default_host_name": app.default_host_name}
        )
