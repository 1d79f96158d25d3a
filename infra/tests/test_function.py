"""The processor's Function App component under Pulumi mocks (no CLI, plugins or credentials)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from lightning_infra.errors import DeployError
from lightning_infra.function import (
    HOST_STORAGE_ROLES,
    PACKAGE_BLOB,
    PACKAGE_DIGEST_SETTING,
    PACKAGE_TASK,
    ProcessorFunction,
    ProcessorFunctionArgs,
)

from .conftest import GROUP, SUBSCRIPTION, Resource, StackMocks, run_until_resolved

IDENTITY_ID = f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/event-processor"
CLIENT_ID = "11111111-1111-1111-1111-111111111111"
PRINCIPAL_ID = "22222222-2222-2222-2222-222222222222"
SECRET_URI = "https://lightning-kv.vault.azure.net/secrets/webhook-token"
SERVICE_BUS_HOST = "lightning-bus.servicebus.windows.net"
APP_INSIGHTS = "InstrumentationKey=33333333-3333-3333-3333-333333333333;IngestionEndpoint=https://x"
#: What a key-based connection string carries; no app setting may.
KEY_MARKERS = ("AccountKey=", "SharedAccessKey=", "SharedAccessSignature=")
#: The name the mocks give the storage account (autonamed, as Azure Native does)
ACCOUNT = "processorhost-autonamed"


class Mocks(StackMocks):
    """StackMocks that also keep each resource's inputs as the engine sent them, so a value
    Pulumi holds as a secret (which state encrypts) still shows as one."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.sent[args.name] = dict(args.inputs)
        return super().new_resource(args)

    def of_type(self, typ: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.typ == f"azure-native:{typ}"]

    def one(self, typ: str) -> dict[str, Any]:
        (resource,) = self.of_type(typ)
        return resource.inputs


@pytest.fixture(autouse=True)
def event_loop_for_pulumi() -> Iterator[None]:
    """Pulumi's runtime registers resources on the thread's current loop: a fresh one per
    test, then the one the session's program runs use (conftest `deploy`) is current again."""
    try:
        previous: asyncio.AbstractEventLoop | None = asyncio.get_event_loop()
    except RuntimeError:  # the session has none
        previous = None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    loop.close()
    asyncio.set_event_loop(previous)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    zipped = tmp_path / "event-processor-function.zip"
    zipped.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    return zipped


def deploy(package: Path) -> Mocks:
    """Declare the component under the mocks and wait until every resource is registered."""
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="lightning-os", stack="test", preview=False)

    @run_until_resolved
    def declare() -> pulumi.Output[None]:
        function = ProcessorFunction(
            "processor",
            ProcessorFunctionArgs(
                resource_group_name="lightning",
                location="westeurope",
                identity_id=IDENTITY_ID,
                identity_client_id=CLIENT_ID,
                identity_principal_id=PRINCIPAL_ID,
                package_path=str(package),
                app_settings={"LIGHTNING_MODE": "azure", "SERVICE_TYPE": "event-processor"},
                secret_settings={"LIGHTNING_WEBHOOK_TOKEN": SECRET_URI},
                app_insights_connection_string=APP_INSIGHTS,
                service_bus_host=SERVICE_BUS_HOST,
            ),
        )
        return function.default_host_name.apply(lambda _: None)

    declare()
    return mocks


@pytest.fixture
def mocks(package: Path) -> Mocks:
    return deploy(package)


def settings_are_secret(mocks: Mocks) -> bool:
    """Whether Pulumi holds the app's site config (its app settings) as a secret."""
    (app,) = mocks.of_type("web:WebApp")
    return bool(
        mocks.sent[app.name]["siteConfig"].get(rpc._special_sig_key) == rpc._special_secret_sig
    )


def app_settings(mocks: Mocks) -> dict[str, str]:
    pairs = mocks.one("web:WebApp")["siteConfig"]["appSettings"]
    return {pair["name"]: pair["value"] for pair in pairs}


def test_the_component_creates_storage_plan_package_roles_and_app(mocks: Mocks) -> None:
    created = sorted(resource.typ.removeprefix("azure-native:") for resource in mocks.resources)
    assert created == sorted(
        [
            "storage:StorageAccount",
            "storage:BlobContainer",
            "storage:Blob",
            *["authorization:RoleAssignment"] * len(HOST_STORAGE_ROLES),
            "web:AppServicePlan",
            "web:WebApp",
            "web:WebAppFtpAllowed",
            "web:WebAppScmAllowed",
        ]
    )


def test_the_plan_is_flex_consumption_on_linux(mocks: Mocks) -> None:
    plan = mocks.one("web:AppServicePlan")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}, "AppServicePlan sku"
    assert plan["reserved"] is True, "AppServicePlan must be Linux (reserved)"
    assert mocks.one("web:WebApp")["kind"] == "functionapp,linux", "WebApp kind"


def test_the_app_runs_python_3_11(mocks: Mocks) -> None:
    runtime = mocks.one("web:WebApp")["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "3.11"}, "WebApp functionAppConfig.runtime"


def test_host_storage_and_trigger_connect_as_the_identity(mocks: Mocks) -> None:
    settings = app_settings(mocks)
    account = mocks.one("storage:StorageAccount")
    expected = {
        "AzureWebJobsStorage__accountName": ACCOUNT,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "SERVICE_BUS__fullyQualifiedNamespace": SERVICE_BUS_HOST,
        "SERVICE_BUS__credential": "managedidentity",
        "SERVICE_BUS__clientId": CLIENT_ID,
    }
    assert {name: settings.get(name) for name in expected} == expected, "WebApp app settings"
    assert "AzureWebJobsStorage" not in settings, "a host storage connection string"
    assert "SERVICE_BUS" not in settings, "a Service Bus connection string"
    assert account["minimumTlsVersion"] == "TLS1_2", "StorageAccount minimum TLS"
    assert account["enableHttpsTrafficOnly"] is True, "StorageAccount HTTPS only"
    assert account["allowBlobPublicAccess"] is False, "StorageAccount public blobs"


def test_no_setting_carries_a_key_and_secrets_are_references(mocks: Mocks) -> None:
    settings = app_settings(mocks)
    for name, value in settings.items():
        assert not any(marker in value for marker in KEY_MARKERS), f"app setting {name} has a key"
    assert settings_are_secret(mocks), "the App Insights connection string must stay a secret"
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == APP_INSIGHTS
    assert settings["LIGHTNING_WEBHOOK_TOKEN"] == f"@Microsoft.KeyVault(SecretUri={SECRET_URI})"
    assert mocks.one("web:WebApp")["keyVaultReferenceIdentity"] == IDENTITY_ID, (
        "Key Vault references must resolve as the user-assigned identity"
    )
    assert settings["LIGHTNING_MODE"] == "azure", "the processor's own settings pass through"


def test_the_app_is_https_only_without_ftp_or_basic_auth(mocks: Mocks) -> None:
    app = mocks.one("web:WebApp")
    assert app["httpsOnly"] is True, "WebApp httpsOnly"
    config = app["siteConfig"]
    assert config["minTlsVersion"] == "1.2", "WebApp minTlsVersion"
    assert config["ftpsState"] == "Disabled", "WebApp ftpsState"
    for policy in ("web:WebAppFtpAllowed", "web:WebAppScmAllowed"):
        assert mocks.one(policy)["allow"] is False, f"{policy} allows basic auth"


def test_the_identity_holds_the_host_storage_roles_on_the_account(mocks: Mocks) -> None:
    (account,) = mocks.of_type("storage:StorageAccount")
    assignments = {
        (role["roleDefinitionId"], role["scope"], role["principalId"], role["principalType"])
        for role in (
            assignment.inputs for assignment in mocks.of_type("authorization:RoleAssignment")
        )
    }
    assert assignments == {
        (
            f"{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            account.id,
            PRINCIPAL_ID,
            "ServicePrincipal",
        )
        for guid in (
            "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
            "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        )
    }, "host storage role assignments"


def test_the_given_package_is_uploaded_where_the_app_loads_it(mocks: Mocks, package: Path) -> None:
    blob = mocks.one("storage:Blob")
    assert isinstance(blob["source"], pulumi.FileAsset), "Blob source"
    assert Path(blob["source"].path) == package, "Blob source is not the built package"
    assert blob["blobName"] == PACKAGE_BLOB == "released-package.zip", "Blob name"
    assert blob["containerName"] == mocks.one("storage:BlobContainer")["containerName"]
    storage = mocks.one("web:WebApp")["functionAppConfig"]["deployment"]["storage"]
    assert storage == {
        "type": "blobContainer",
        "value": f"https://{ACCOUNT}.blob.core.windows.net/{blob['containerName']}",
        "authentication": {
            "type": "UserAssignedIdentity",
            "userAssignedIdentityResourceId": IDENTITY_ID,
        },
    }, "WebApp deployment storage"
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    assert app_settings(mocks)[PACKAGE_DIGEST_SETTING] == digest, "a new package must restart"


def test_a_missing_package_stops_the_program_naming_the_task_that_builds_it(
    tmp_path: Path,
) -> None:
    with pytest.raises(DeployError, match=f"`{PACKAGE_TASK}`") as stopped:
        deploy(tmp_path / "missing.zip")
    assert "missing.zip does not exist" in str(stopped.value)
    assert PACKAGE_TASK == "invoke package-function"
