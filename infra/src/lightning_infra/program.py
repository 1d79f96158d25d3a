"""The Pulumi program: Lightning OS on Azure, composed from this package's components."""

from __future__ import annotations

import pulumi
import pulumi_azuread as azuread
import pulumi_random as random
from pulumi_azure_native import app, resources

from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.topology import SERVICES, bus_topology
from lightning_infra.app_environment import AppEnvironment, AppEnvironmentArgs
from lightning_infra.app_settings import DataPlane, service_settings
from lightning_infra.bus import Bus, BusArgs
from lightning_infra.cosmos import CosmosStore, CosmosStoreArgs
from lightning_infra.entra import ACCESS_TOKEN_VERSION, EntraApps, EntraAppsArgs
from lightning_infra.frontdoor import API_PATTERNS, UI_PATTERNS, FrontDoor, FrontDoorArgs
from lightning_infra.function import (
    ProcessorFunction,
    ProcessorFunctionArgs,
    key_vault_reference,
)
from lightning_infra.identities import ServiceIdentity, ServiceIdentityArgs
from lightning_infra.images import load_images, require_registry
from lightning_infra.keyvault import SecretVault, SecretVaultArgs
from lightning_infra.monitoring import Monitoring, MonitoringArgs
from lightning_infra.registry import Registry, RegistryArgs
from lightning_infra.service_app import (
    HttpIngress,
    ServiceApp,
    ServiceAppArgs,
    service_bus_scale_rule,
)
from lightning_infra.stack_config import Replicas, load_stack_config

API_PORT = 8000  # LIGHTNING_API_PORT in docker/api.Dockerfile
UI_PORT = 8080  # LIGHTNING_UI_PORT in docker/ui.Dockerfile
APP_INSIGHTS = "APPLICATIONINSIGHTS_CONNECTION_STRING"
APP_INSIGHTS_IN_VAULT = "appinsights-connection-string"
#: The UI's secret settings -> the Key Vault secrets holding them.
UI_VAULT_SECRETS = {
    "ENTRA_UI_CLIENT_SECRET": "ui-client-secret",
    "LIGHTNING_UI_SESSION_SECRET": "ui-session-secret",
}
#: Processor replicas KEDA adds per this many messages waiting in its subscription.
MESSAGES_PER_REPLICA = 20


#: Set by `invoke deploy --registry-only`, the first deploy of a stack: no image exists
#: before its registry does. That deploy also targets only the registry (`--target`), so a
#: stack that already runs loses nothing to the shorter program.
REGISTRY_ONLY = "LIGHTNING_INFRA_REGISTRY_ONLY"


def define(*, registry_only: bool = False) -> None:
    """Declare every resource of the stack and export its public addresses; with
    `registry_only`, only the resource group and the registry the images are pushed to."""
    stack = load_stack_config()
    group = resources.ResourceGroup(stack.name, location=stack.location)
    registry = Registry(
        "registry",
        RegistryArgs(
            resource_group_name=group.name,
            location=stack.location,
            registry_name=stack.registry_name,
            sku=stack.registry_sku,
        ),
    )
    pulumi.export("registryLoginServer", registry.login_server)
    if registry_only:
        return
    images = load_images(stack.images_file)
    registry_server = f"{stack.registry_name}.azurecr.io"
    require_registry(images, registry_server)
    topology = bus_topology(stack.bus_namespace, stack.bus_max_attempts)

    monitoring = Monitoring(
        "monitoring", MonitoringArgs(resource_group_name=group.name, location=stack.location)
    )
    cosmos = CosmosStore(
        "cosmos",
        CosmosStoreArgs(
            resource_group_name=group.name,
            location=stack.location,
            database_name=stack.cosmos_database,
            serverless=stack.cosmos_serverless,
            retention_days=stack.retention_days,
        ),
    )
    bus = Bus(
        "bus", BusArgs(resource_group_name=group.name, location=stack.location, topology=topology)
    )
    identities = {
        service: ServiceIdentity(
            service,
            ServiceIdentityArgs(
                resource_group_name=group.name,
                location=stack.location,
                needs=needs,
                registry_id=registry.id,
                cosmos_account_id=cosmos.account_id,
                cosmos_account_name=cosmos.account_name,
                bus_namespace_id=bus.namespace_id,
            ),
        )
        for service, needs in SERVICES.items()
    }

    front_door = FrontDoor("front-door", FrontDoorArgs(resource_group_name=group.name))
    entra = EntraApps(
        "entra",
        EntraAppsArgs(
            name=stack.name,
            ui_public_url=front_door.url,
            app_role_principal_id=stack.deploy_principal_id,
        ),
    )
    tenant_id = azuread.get_client_config_output().tenant_id
    processor = identities["event-processor"]
    # App Service has no secretRef: the Function reads its secrets as Key Vault references.
    function_secrets: dict[str, pulumi.Input[str]] = (
        {APP_INSIGHTS_IN_VAULT: monitoring.connection_string}
        if stack.processor_mode.function
        else {}
    )
    # Every UI replica encrypts sign-in sessions with this key, so any replica can read them.
    session_key = random.RandomBytes("ui-session-key", length=32)
    vault = SecretVault(
        "vault",
        SecretVaultArgs(
            resource_group_name=group.name,
            location=stack.location,
            tenant_id=tenant_id,
            purge_protection=stack.key_vault_purge_protection,
            secrets={
                UI_VAULT_SECRETS["ENTRA_UI_CLIENT_SECRET"]: entra.ui_client_secret,
                UI_VAULT_SECRETS["LIGHTNING_UI_SESSION_SECRET"]: session_key.base64,
            }
            | function_secrets,
            readers=[
                identities["ui"].principal_id,
                *([processor.principal_id] if function_secrets else []),
            ],
        ),
    )
    environment = AppEnvironment(
        "apps",
        AppEnvironmentArgs(
            resource_group_name=group.name,
            location=stack.location,
            workspace_customer_id=monitoring.workspace_customer_id,
            workspace_shared_key=monitoring.workspace_shared_key,
        ),
    )
    data_plane = DataPlane(
        cosmos_endpoint=cosmos.endpoint,
        cosmos_database=stack.cosmos_database,
        service_bus_host=bus.host,
        bus_namespace=stack.bus_namespace,
        bus_max_attempts=stack.bus_max_attempts,
        retention_days=stack.retention_days,
    )

    def service_app(
        service: str,
        replicas: Replicas,
        settings: dict[str, pulumi.Input[str]],
        *,
        ingress: HttpIngress | None = None,
        key_vault_secrets: dict[str, pulumi.Input[str]] | None = None,
        scale_rules: list[app.ScaleRuleArgs] | None = None,
    ) -> ServiceApp:
        identity = identities[service]
        return ServiceApp(
            service,
            ServiceAppArgs(
                resource_group_name=group.name,
                location=stack.location,
                environment_id=environment.id,
                image=images[service],
                registry_server=registry_server,
                identity_id=identity.id,
                replicas=replicas,
                settings=service_settings(service, identity.client_id, data_plane) | settings,
                secrets={APP_INSIGHTS: monitoring.connection_string},
                key_vault_secrets=key_vault_secrets or {},
                ingress=ingress,
                scale_rules=scale_rules or [],
            ),
            # An app pulls its image at once: its identity's AcrPull must exist by then.
            opts=pulumi.ResourceOptions(depends_on=[identity, vault]),
        )

    api = service_app(
        "api",
        stack.api_replicas,
        {
            "ENTRA_TENANT_ID": tenant_id,
            "ENTRA_TOKEN_VERSION": str(int(ACCESS_TOKEN_VERSION)),
            "ENTRA_AUDIENCE": entra.api_client_id,  # v2 tokens carry the client id as aud
        },
        ingress=HttpIngress(API_PORT, liveness_path="/healthz", readiness_path="/readyz"),
    )
    ui = service_app(
        "ui",
        stack.ui_replicas,
        {
            "ENTRA_TENANT_ID": tenant_id,
            "ENTRA_UI_CLIENT_ID": entra.ui_client_id,
            "ENTRA_API_SCOPE": entra.api_scope,
            "LIGHTNING_UI_PUBLIC_URL": front_door.url,
            "LIGHTNING_API_URL": api.url,
        },
        ingress=HttpIngress(UI_PORT, liveness_path="/healthz", readiness_path="/healthz"),
        key_vault_secrets={
            variable: vault.secret_uris[secret] for variable, secret in UI_VAULT_SECRETS.items()
        },
    )
    if stack.processor_mode.worker:
        service_app(
            "event-processor",
            stack.processor_replicas,
            {},
            scale_rules=[
                service_bus_scale_rule(
                    bus.namespace_name,
                    topology.topic,
                    topology.subscription(PROCESSOR_GROUP).name,
                    processor.id,
                    MESSAGES_PER_REPLICA,
                )
            ],
        )
    if stack.processor_mode.function:
        function = ProcessorFunction(
            "processor-function",
            ProcessorFunctionArgs(
                resource_group_name=group.name,
                location=stack.location,
                identity_id=processor.id,
                identity_client_id=processor.client_id,
                identity_principal_id=processor.principal_id,
                package_path=str(stack.function_package),
                app_settings=service_settings("event-processor", processor.client_id, data_plane),
                secret_settings={},
                app_insights_connection_string=key_vault_reference(
                    vault.secret_uris[APP_INSIGHTS_IN_VAULT]
                ),
                service_bus_host=bus.host,
            ),
            # Its settings are Key Vault references: its identity must be able to read them.
            opts=pulumi.ResourceOptions(depends_on=[processor, vault]),
        )
        pulumi.export("functionAppName", function.function_app_name)
    front_door.route("api", api.fqdn, "/healthz", API_PATTERNS)
    front_door.route("ui", ui.fqdn, "/healthz", UI_PATTERNS)

    pulumi.export("frontDoorUrl", front_door.url)
    pulumi.export("apiUrl", api.url)
    pulumi.export("uiUrl", ui.url)
    pulumi.export("resourceGroup", group.name)
    pulumi.export("apiClientId", entra.api_client_id)
    pulumi.export("apiIdentifierUri", entra.api_identifier_uri)
