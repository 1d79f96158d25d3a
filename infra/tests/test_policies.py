"""Policies the deployment must keep, checked on the program's run for each processorMode."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from lightning_core.config import Settings, TokenVersion, entra_token_issuer
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.topology import (
    COLLECTIONS,
    PARTITION_KEY_PATH,
    SERVICES,
    BusRight,
    bus_topology,
)
from lightning_infra.bus import iso_duration
from lightning_infra.frontdoor import ORIGIN_RESPONSE_TIMEOUT_SECONDS
from lightning_infra.function import HOST_STORAGE_ROLES

from .conftest import (
    BUS_MAX_ATTEMPTS,
    BUS_NAMESPACE,
    PROCESSOR_REPLICAS,
    RETENTION_DAYS,
    SECRET_MARK,
    TENANT_ID,
    Deployment,
    Resource,
)

MODES = ("worker", "function", "both")
CONTAINER_APP = "azure-native:app:ContainerApp"
FUNCTION_APP = "azure-native:web:WebApp"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
COSMOS_ROLE_ASSIGNMENT = "azure-native:cosmosdb:SqlResourceSqlRoleAssignment"
#: Settings whose value is a credential by its name: never a plain value.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|CONNECTION_STRING|_KEY$|TOKEN$")
KEY_MARKERS = ("AccountKey=", "SharedAccessKey=", "SharedAccessSignature=")
DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
#: The shared platform resources every mode declares exactly once.
PLATFORM = (
    "azure-native:resources:ResourceGroup",
    "azure-native:operationalinsights:Workspace",
    "azure-native:applicationinsights:Component",
    "azure-native:containerregistry:Registry",
    "azure-native:cosmosdb:DatabaseAccount",
    "azure-native:servicebus:Namespace",
    "azure-native:keyvault:Vault",
    "azure-native:app:ManagedEnvironment",
    "azure-native:cdn:Profile",
    "azure-native:cdn:AFDEndpoint",
)

Deploy = Callable[[str], Deployment]

# Azure's built-in role ids, written out here so that a wrong one in the program shows.
ACR_PULL = "7f951dca-d0d3-4e9b-9f41-97a3c3e8ec9d"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
COSMOS_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"
BUS_ROLES = {
    BusRight.SEND: "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",  # Azure Service Bus Data Sender
    BusRight.RECEIVE: "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",  # Azure Service Bus Data Receiver
}


def container_apps(deployment: Deployment) -> dict[str, Resource]:
    """Container Apps by the service their SERVICE_TYPE names."""
    return {env(app)["SERVICE_TYPE"]["value"]: app for app in deployment.of_type(CONTAINER_APP)}


def env(app: Resource) -> dict[str, dict[str, Any]]:
    (container,) = app.inputs["template"]["containers"]
    return {variable["name"]: variable for variable in container["env"]}


def plain_env(app: Resource) -> dict[str, str]:
    return {name: entry["value"] for name, entry in env(app).items() if "value" in entry}


def function_settings(deployment: Deployment) -> dict[str, str]:
    app = deployment.one(FUNCTION_APP)
    return {pair["name"]: pair["value"] for pair in app.inputs["siteConfig"]["appSettings"]}


def identity_of(deployment: Deployment, service: str) -> Resource:
    return deployment.one_named(
        "azure-native:managedidentity:UserAssignedIdentity", f"{service}-identity"
    )


@pytest.mark.parametrize("mode", MODES)
def test_each_processor_mode_declares_its_resource_set(deploy: Deploy, mode: str) -> None:
    deployment = deploy(mode)
    for typ in PLATFORM:
        deployment.one(typ)
    expected_apps = {"api", "ui"} | ({"event-processor"} if mode != "function" else set())
    assert set(container_apps(deployment)) == expected_apps, f"Container Apps for {mode}"
    function_apps = deployment.of_type(FUNCTION_APP)
    assert len(function_apps) == (mode != "worker"), f"Function Apps for {mode}"
    for service in SERVICES:
        identity_of(deployment, service)


@pytest.mark.parametrize("mode", MODES)
def test_no_registry_has_its_admin_user(deploy: Deploy, mode: str) -> None:
    for registry in deploy(mode).of_type("azure-native:containerregistry:Registry"):
        assert registry.inputs.get("adminUserEnabled") is False, f"{registry.name}: admin user on"


@pytest.mark.parametrize("mode", MODES)
def test_no_secret_is_a_plain_app_setting(deploy: Deploy, mode: str) -> None:
    deployment = deploy(mode)
    for service, app in container_apps(deployment).items():
        secrets = {secret["name"] for secret in app.inputs["configuration"].get("secrets", [])}
        for name, entry in env(app).items():
            if "secretRef" in entry:
                assert "value" not in entry, f"{service}: {name} has a value and a secretRef"
                assert entry["secretRef"] in secrets, f"{service}: {name} refers to no secret"
                continue
            assert not SECRET_NAME.search(name), f"{service}: {name} is plain, not a secretRef"
            assert SECRET_MARK not in entry["value"], f"{service}: {name} carries a secret"
    if mode != "worker":
        for name, value in function_settings(deployment).items():
            assert not any(marker in value for marker in KEY_MARKERS), f"function: {name}"
            if SECRET_NAME.search(name):
                assert value.startswith("@Microsoft.KeyVault("), f"function: {name} is plain"
            assert SECRET_MARK not in value, f"function: {name} carries a secret"


@pytest.mark.parametrize("mode", MODES)
def test_secrets_live_in_a_key_vault_read_through_azure_rbac(deploy: Deploy, mode: str) -> None:
    vault = deploy(mode).one("azure-native:keyvault:Vault")
    assert vault.inputs["properties"]["enableRbacAuthorization"] is True, "vault access policies"
    assert vault.inputs["properties"]["enablePurgeProtection"] is True, "purge protection off"


@pytest.mark.parametrize("mode", MODES)
def test_no_secret_is_exported(deploy: Deploy, mode: str) -> None:
    for name, value in deploy(mode).exports.items():
        assert SECRET_MARK not in str(value), f"the stack output {name} carries a secret"


@pytest.mark.parametrize("mode", MODES)
def test_every_app_runs_its_pushed_image_by_digest_in_azure_mode(deploy: Deploy, mode: str) -> None:
    deployment = deploy(mode)
    for service, app in container_apps(deployment).items():
        assert app.name == service, f"the Container App {app.name} has SERVICE_TYPE={service}"
        (container,) = app.inputs["template"]["containers"]
        assert container["image"] == deployment.images[service], f"{service}: wrong image"
        assert DIGEST.match(container["image"]), f"{service}: image not by digest"
        assert plain_env(app)["LIGHTNING_MODE"] == "azure", f"{service}: not in azure mode"
        identity = identity_of(deployment, service)
        (registry,) = app.inputs["configuration"]["registries"]
        assert registry == {"server": container["image"].split("/")[0], "identity": identity.id}, (
            f"{service}: pulls without its own identity"
        )
        assert plain_env(app)["AZURE_CLIENT_ID"] == identity.outputs["clientId"], (
            f"{service}: AZURE_CLIENT_ID is not its identity's"
        )
    if mode != "worker":
        settings = function_settings(deployment)
        assert settings["LIGHTNING_MODE"] == "azure", "function: not in azure mode"
        assert settings["SERVICE_TYPE"] == "event-processor", "function: wrong SERVICE_TYPE"


@pytest.mark.parametrize("mode", MODES)
def test_settings_are_exactly_what_each_service_needs(deploy: Deploy, mode: str) -> None:
    deployment = deploy(mode)
    for service, app in container_apps(deployment).items():
        needs = SERVICES[service]
        names = set(env(app))
        assert ("COSMOS_ENDPOINT" in names) == needs.storage, f"{service}: storage settings"
        assert ("SERVICE_BUS_NAMESPACE" in names) == bool(needs.bus), f"{service}: bus settings"
        if needs.bus:
            settings = Settings.model_validate(plain_env(app))
            assert settings.bus_namespace == BUS_NAMESPACE, f"{service}: bus namespace"
            assert settings.bus_max_attempts == BUS_MAX_ATTEMPTS, f"{service}: max attempts"
        if needs.storage:
            settings = Settings.model_validate(plain_env(app))
            assert settings.retention_days == RETENTION_DAYS, f"{service}: retention"


def granted_roles(deployment: Deployment, principal_id: str) -> set[tuple[str, str]]:
    """(role GUID, type of the resource it is scoped to) of every grant to a principal."""
    grants = set()
    for assignment in deployment.of_type(ROLE_ASSIGNMENT):
        if assignment.inputs["principalId"] == principal_id:
            role = assignment.inputs["roleDefinitionId"].rsplit("/", 1)[-1]
            grants.add((role, deployment.by_id(assignment.inputs["scope"]).typ))
    for assignment in deployment.of_type(COSMOS_ROLE_ASSIGNMENT):
        if assignment.inputs["principalId"] == principal_id:
            role = assignment.inputs["roleDefinitionId"].rsplit("/", 1)[-1]
            grants.add((role, deployment.by_id(assignment.inputs["scope"]).typ))
    return grants


@pytest.mark.parametrize("mode", MODES)
def test_each_identity_holds_exactly_the_roles_its_service_needs(deploy: Deploy, mode: str) -> None:
    deployment = deploy(mode)
    for service, needs in SERVICES.items():
        expected = {(ACR_PULL, "azure-native:containerregistry:Registry")}
        expected |= {(BUS_ROLES[right], "azure-native:servicebus:Namespace") for right in needs.bus}
        if needs.storage:
            expected.add((COSMOS_DATA_CONTRIBUTOR, "azure-native:cosmosdb:DatabaseAccount"))
        if service == "ui" or (service == "event-processor" and mode != "worker"):
            expected.add((KEY_VAULT_SECRETS_USER, "azure-native:keyvault:Vault"))
        if service == "event-processor" and mode != "worker":
            expected |= {
                (role, "azure-native:storage:StorageAccount")
                for role in HOST_STORAGE_ROLES.values()
            }
        principal = identity_of(deployment, service).outputs["principalId"]
        assert granted_roles(deployment, principal) == expected, f"{service}-identity's roles"


@pytest.mark.parametrize("mode", MODES)
def test_ingress_and_front_door_are_https_only(deploy: Deploy, mode: str) -> None:
    deployment = deploy(mode)
    for service, app in container_apps(deployment).items():
        ingress = app.inputs["configuration"].get("ingress")
        if service == "event-processor":
            assert ingress is None, "the processor worker has ingress"
            continue
        assert ingress["allowInsecure"] is False, f"{service}: insecure ingress allowed"
        assert ingress["transport"] == "auto", f"{service}: ingress transport"
    profile = deployment.one("azure-native:cdn:Profile")
    assert profile.inputs["sku"]["name"] == "Standard_AzureFrontDoor", "Front Door tier"
    assert profile.inputs["originResponseTimeoutSeconds"] > 15, "cuts idle SSE streams"
    assert profile.inputs["originResponseTimeoutSeconds"] == ORIGIN_RESPONSE_TIMEOUT_SECONDS
    for route in deployment.of_type("azure-native:cdn:Route"):
        assert route.inputs["forwardingProtocol"] == "HttpsOnly", f"route {route.name}"
        assert route.inputs["httpsRedirect"] == "Enabled", f"route {route.name}: no redirect"
        assert "cacheConfiguration" not in route.inputs, f"route {route.name} caches"


@pytest.mark.parametrize("mode", MODES)
def test_front_door_routes_the_api_paths_to_the_api_and_the_rest_to_the_ui(
    deploy: Deploy, mode: str
) -> None:
    deployment = deploy(mode)
    hosts = {
        service: app.outputs["configuration"]["ingress"]["fqdn"]
        for service, app in container_apps(deployment).items()
        if service != "event-processor"
    }
    routed: dict[str, str] = {}
    for route in deployment.of_type("azure-native:cdn:Route"):
        group = deployment.by_id(route.inputs["originGroup"]["id"])
        (origin,) = [
            origin
            for origin in deployment.of_type("azure-native:cdn:AFDOrigin")
            if origin.inputs["originGroupName"] == group.outputs["name"]
        ]
        for pattern in route.inputs["patternsToMatch"]:
            routed[pattern] = origin.inputs["hostName"]
    assert routed == {
        "/api/*": hosts["api"],
        "/docs": hosts["api"],
        "/docs/oauth2-redirect": hosts["api"],
        "/redoc": hosts["api"],
        "/openapi.json": hosts["api"],
        "/*": hosts["ui"],
    }, "Front Door routes"


@pytest.mark.parametrize("mode", MODES)
def test_cosmos_containers_equal_the_declared_collections(deploy: Deploy, mode: str) -> None:
    declared = {
        collection.name: (
            [PARTITION_KEY_PATH],
            [
                [{"path": path, "order": order} for path, order in index]
                for index in collection.composite_indexes()
            ],
            RETENTION_DAYS * 86_400 if collection.expires else None,
        )
        for collection in COLLECTIONS
    }
    deployment = deploy(mode)
    account = deployment.one("azure-native:cosmosdb:DatabaseAccount").inputs
    assert account["disableLocalAuth"] is True, "Cosmos DB keys are usable"
    assert account["capabilities"] == [{"name": "EnableServerless"}], "Cosmos DB not serverless"
    deployed = {}
    for container in deployment.of_type("azure-native:cosmosdb:SqlResourceSqlContainer"):
        resource = container.inputs["resource"]
        deployed[resource["id"]] = (
            resource["partitionKey"]["paths"],
            resource["indexingPolicy"].get("compositeIndexes", []),
            resource.get("defaultTtl"),
        )
    assert deployed == declared, "Cosmos containers, partition keys, composite indexes, TTLs"


@pytest.mark.parametrize("mode", MODES)
def test_bus_topology_equals_the_declared_one(deploy: Deploy, mode: str) -> None:
    deployment = deploy(mode)
    topology = bus_topology(BUS_NAMESPACE, BUS_MAX_ATTEMPTS)
    (topic,) = deployment.of_type("azure-native:servicebus:Topic")
    assert topic.inputs["topicName"] == topology.topic, "topic"
    assert deployment.one("azure-native:servicebus:Namespace").inputs["disableLocalAuth"] is True
    deployed = {
        subscription.inputs["subscriptionName"]: (
            subscription.inputs["maxDeliveryCount"],
            subscription.inputs["lockDuration"],
        )
        for subscription in deployment.of_type("azure-native:servicebus:Subscription")
    }
    declared = {
        subscription.name: (
            subscription.max_delivery_count,
            iso_duration(subscription.lock_duration),
        )
        for subscription in topology.subscriptions
    }
    assert deployed == declared, "subscriptions, max delivery and lock duration"
    rules = {
        (
            rule.inputs["subscriptionName"],
            rule.inputs["ruleName"],
            rule.inputs["sqlFilter"]["sqlExpression"],
        )
        for rule in deployment.of_type("azure-native:servicebus:Rule")
    }
    assert rules == {
        (subscription.name, subscription.rule_name, subscription.rule_filter)
        for subscription in topology.subscriptions
    }, "subscription rules"
    # Azure's own $Default rule is adopted and narrowed to the same filter: no catch-all.
    default_rules = {
        (rule.inputs["subscriptionName"], rule.inputs["sqlFilter"]["sqlExpression"])
        for rule in deployment.of_type("azure-native:servicebus:DefaultRule")
    }
    assert default_rules == {
        (subscription.name, subscription.rule_filter) for subscription in topology.subscriptions
    }, "$Default rules"


def test_iso_duration_is_what_arm_takes() -> None:
    assert iso_duration(timedelta(minutes=5)) == "PT5M"
    assert iso_duration(timedelta(hours=1, seconds=30)) == "PT1H30S"
    assert iso_duration(timedelta(0)) == "PT0S"


@pytest.mark.parametrize("mode", ["worker", "both"])
def test_the_worker_scales_on_its_subscription_as_its_identity(deploy: Deploy, mode: str) -> None:
    deployment = deploy(mode)
    worker = container_apps(deployment)["event-processor"]
    scale = worker.inputs["template"]["scale"]
    assert (scale["minReplicas"], scale["maxReplicas"]) == PROCESSOR_REPLICAS, "worker replicas"
    (rule,) = scale["rules"]
    custom = rule["custom"]
    topology = bus_topology(BUS_NAMESPACE, BUS_MAX_ATTEMPTS)
    assert custom["type"] == "azure-servicebus", "worker scale rule type"
    assert custom["identity"] == identity_of(deployment, "event-processor").id, "KEDA identity"
    assert "auth" not in custom, "KEDA authenticates with a secret"
    metadata = custom["metadata"]
    assert metadata["topicName"] == topology.topic, "scale rule topic"
    assert metadata["subscriptionName"] == topology.subscription(PROCESSOR_GROUP).name
    namespace = deployment.one("azure-native:servicebus:Namespace")
    assert metadata["namespace"] == namespace.outputs["name"], "scale rule namespace"


def test_the_api_accepts_exactly_the_tokens_its_registration_issues(deploy: Deploy) -> None:
    deployment = deploy("worker")
    registration = deployment.one_named("azuread:index/application:Application", "entra-api")
    version = TokenVersion(registration.inputs["api"]["requestedAccessTokenVersion"])
    (identifier_uri,) = registration.inputs["identifierUris"]
    issued_audience = (
        registration.outputs["clientId"] if version is TokenVersion.V2 else identifier_uri
    )
    scopes = {
        scope["value"]: scope for scope in registration.inputs["api"]["oauth2PermissionScopes"]
    }

    api = Settings.model_validate(plain_env(container_apps(deployment)["api"]))
    assert api.entra_audience == issued_audience, "the API's ENTRA_AUDIENCE"
    assert api.token_issuer == entra_token_issuer(TENANT_ID, version), "the API's issuer"
    assert api.entra_required_scope in scopes, "the scope the API requires is not exposed"

    ui = Settings.model_validate(plain_env(container_apps(deployment)["ui"]))
    assert ui.api_scope == f"{identifier_uri}/{api.entra_required_scope}", "the UI's scope"
    ui_registration = deployment.one_named("azuread:index/application:Application", "entra-ui")
    assert ui_registration.inputs["web"]["redirectUris"] == [f"{ui.ui_public_url}/auth/callback"]
    (access,) = ui_registration.inputs["requiredResourceAccesses"]
    assert access["resourceAppId"] == registration.outputs["clientId"], "UI permission target"
    assert access["resourceAccesses"] == [
        {"id": scopes[api.entra_required_scope]["id"], "type": "Scope"}
    ], "the UI's permission on the API scope"
    pre_authorized = deployment.one(
        "azuread:index/applicationPreAuthorized:ApplicationPreAuthorized"
    )
    assert pre_authorized.inputs == {
        "applicationId": registration.id,
        "authorizedClientId": ui_registration.outputs["clientId"],
        "permissionIds": [scopes[api.entra_required_scope]["id"]],
    }, "the UI is not pre-authorized for the API scope"
    assert ui.ui_public_url == deployment.exports["frontDoorUrl"], "UI public URL"
    assert ui.api_url == deployment.exports["apiUrl"], "the UI's API URL"
