"""The whole program under Pulumi mocks, run once per processorMode and shared by the policy
tests (no CLI, plugins or credentials: see ENVIRONMENT.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from lightning_core.topology import SERVICES
from lightning_infra.program import define

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"
GROUP = f"{SUBSCRIPTION}/resourceGroups/lightning"
TENANT_ID = "72f988bf-0000-0000-0000-000000000000"
REGISTRY = "lightningtest.azurecr.io"
STACK_TYPE = "pulumi:pulumi:Stack$"
#: Every secret value the mocks hand out carries this, so a leak shows wherever it lands.
SECRET_MARK = "SECRET-VALUE"
#: Stack settings that differ from the defaults, so a value the program hard-codes shows.
BUS_NAMESPACE = "orders"
BUS_MAX_ATTEMPTS = 12
RETENTION_DAYS = 9
PROCESSOR_REPLICAS = (1, 7)


@dataclass
class Resource:
    typ: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Deployment:
    """What one program run declared and exported, with the images it was given."""

    resources: list[Resource]
    exports: dict[str, Any]
    images: dict[str, str]
    config: dict[str, str] = field(default_factory=dict)
    urns: list[str] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.typ == typ]

    def one(self, typ: str) -> Resource:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, the program declared {len(found)}"
        return found[0]

    def one_named(self, typ: str, name: str) -> Resource:
        found = [resource for resource in self.of_type(typ) if resource.name == name]
        assert len(found) == 1, f"expected one {typ} named {name}, found {len(found)}"
        return found[0]

    def by_id(self, resource_id: str) -> Resource:
        (found,) = [resource for resource in self.resources if resource.id == resource_id]
        return found


def reveal(value: Any) -> Any:
    """`value` with every secret the engine wrapped (`{sig: secret, "value": ...}`) unwrapped."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return reveal(value["value"])
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


#: The input naming a resource, where it is not `<type>Name` (Subscription: subscriptionName).
NAME_INPUTS = {
    "SqlResourceSqlContainer": "containerName",
    "SqlResourceSqlDatabase": "databaseName",
    "BlobContainer": "containerName",
}


def _name(typ: str, name: str, inputs: dict[str, Any]) -> str:
    """The name Azure gives the resource: the one the program set, else an autoname."""
    kind = typ.rsplit(":", 1)[-1]
    explicit = inputs.get(NAME_INPUTS.get(kind, f"{kind[0].lower()}{kind[1:]}Name"))
    return explicit if isinstance(explicit, str) else f"{name}-autonamed"


def _ingress_fqdn(named: str, inputs: dict[str, Any]) -> dict[str, Any]:
    configuration = inputs["configuration"]
    if not configuration.get("ingress"):
        return {}
    fqdn = f"{named}.westeurope.azurecontainerapps.io"
    return {"configuration": configuration | {"ingress": configuration["ingress"] | {"fqdn": fqdn}}}


def _secret_uri(named: str, inputs: dict[str, Any]) -> dict[str, Any]:
    uri = f"https://vault.vault.azure.net/secrets/{named}"
    return {"properties": inputs["properties"] | {"secretUri": uri}}


Computed = Callable[[str, dict[str, Any]], dict[str, Any]]
#: By resource type: the outputs Azure (or Entra, or the random provider) computes, given the
#: resource's name and inputs.
COMPUTED: dict[str, Computed] = {
    "azure-native:managedidentity:UserAssignedIdentity": lambda named, _: {
        "clientId": f"{named}-client-id",
        "principalId": f"{named}-principal-id",
    },
    "azure-native:containerregistry:Registry": lambda named, _: {
        "loginServer": f"{named}.azurecr.io"
    },
    "azure-native:cosmosdb:DatabaseAccount": lambda named, _: {
        "documentEndpoint": f"https://{named}.documents.azure.com:443/"
    },
    "azure-native:operationalinsights:Workspace": lambda named, _: {
        "customerId": f"{named}-customer-id"
    },
    "azure-native:applicationinsights:Component": lambda _named, _: {
        "connectionString": f"InstrumentationKey={SECRET_MARK}-insights"
    },
    "azure-native:keyvault:Secret": _secret_uri,
    "azure-native:app:ContainerApp": _ingress_fqdn,
    "azure-native:cdn:AFDEndpoint": lambda named, _: {"hostName": f"{named}.z01.azurefd.net"},
    "azure-native:storage:StorageAccount": lambda named, _: {
        "primaryEndpoints": {"blob": f"https://{named}.blob.core.windows.net/"}
    },
    "azure-native:web:WebApp": lambda named, _: {"defaultHostName": f"{named}.azurewebsites.net"},
    "azuread:index/application:Application": lambda named, _: {
        "clientId": f"{named}-client-id",
        "objectId": f"{named}-object-id",
    },
    "azuread:index/servicePrincipal:ServicePrincipal": lambda named, _: {
        "objectId": f"{named}-sp-object-id"
    },
    "azuread:index/applicationPassword:ApplicationPassword": lambda _named, _: {
        "value": f"{SECRET_MARK}-ui-password"
    },
    "random:index/randomUuid:RandomUuid": lambda named, _: {"result": f"{named}-uuid"},
    "random:index/randomBytes:RandomBytes": lambda _named, _: {
        "base64": f"{SECRET_MARK}-session-key"
    },
}


def _outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The resource's inputs with what the service adds to them."""
    named = _name(typ, name, inputs)
    outputs = inputs | {"name": named}
    if typ in COMPUTED:
        outputs |= COMPUTED[typ](named, inputs)
    identity = inputs.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        # Inputs list the identities; the resource's output maps each to its details.
        identities: dict[str, Any] = {key: {} for key in identity["userAssignedIdentities"]}
        outputs["identity"] = identity | {"userAssignedIdentities": identities}
    return outputs


class StackMocks(pulumi.runtime.Mocks):
    """Records every resource with ARM-shaped ids and answers the program's invokes."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = reveal(dict(args.inputs))
        outputs = _outputs(args.typ, args.name, inputs)
        resource_id = f"{GROUP}/providers/{args.typ.replace(':', '/')}/{args.name}"
        if args.typ == "azuread:index/application:Application":
            resource_id = f"/applications/{outputs['objectId']}"
        if args.custom is not False:  # components have no inputs worth checking
            self.resources.append(Resource(args.typ, args.name, resource_id, inputs, outputs))
        return resource_id, outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        answers: dict[str, dict[str, Any]] = {
            "azuread:index/getClientConfig:getClientConfig": {
                "tenantId": TENANT_ID,
                "clientId": "deployer-client-id",
                "objectId": "deployer-object-id",
            },
            "azure-native:operationalinsights:getSharedKeys": {
                "primarySharedKey": f"{SECRET_MARK}-workspace-key"
            },
        }
        return answers.get(args.token, {}), []


def write_images(directory: Path, registry: str = REGISTRY) -> dict[str, str]:
    """An images.json as `invoke push` writes it, in `directory`; returns its images."""
    images = {
        service: f"{registry}/lightning-{service}@sha256:{str(index) * 64}"
        for index, service in enumerate(SERVICES, start=1)
    }
    document = {"registry": registry, "tag": "abc123", "images": images}
    (directory / "images.json").write_text(json.dumps(document), encoding="utf-8")
    return images


def local_files(directory: Path) -> dict[str, str]:
    """Settings pointing the program at an images.json and a Function package in `directory`."""
    package = directory / "processor-function.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    return {
        "lightning-os:imagesFile": str(directory / "images.json"),
        "lightning-os:functionPackage": str(package),
    }


def stack_config(directory: Path, mode: str) -> dict[str, str]:
    return local_files(directory) | {
        "lightning-os:processorMode": mode,
        "lightning-os:registryName": REGISTRY.split(".", maxsplit=1)[0],
        "lightning-os:busNamespace": BUS_NAMESPACE,
        "lightning-os:busMaxAttempts": str(BUS_MAX_ATTEMPTS),
        "lightning-os:retentionDays": str(RETENTION_DAYS),
        "lightning-os:processorMinReplicas": str(PROCESSOR_REPLICAS[0]),
        "lightning-os:processorMaxReplicas": str(PROCESSOR_REPLICAS[1]),
        "lightning-os:deployPrincipalId": "deployer-object-id",
    }


#: pulumi.runtime.test, typed: runs `fn` and waits for every registration and its result.
run_until_resolved: Callable[[Callable[[], pulumi.Output[None]]], Callable[[], None]] = (
    pulumi.runtime.test
)


def run_program(
    config: dict[str, str], monkeypatch: pytest.MonkeyPatch, *, registry_only: bool = False
) -> Deployment:
    """Run the program under mocks until every resource and export is resolved."""
    loop = asyncio.new_event_loop()  # Pulumi's runtime uses the thread's current loop
    asyncio.set_event_loop(loop)
    mocks = StackMocks()
    pulumi.runtime.set_mocks(mocks, project="lightning-os", stack="test", preview=False)
    pulumi.runtime.set_all_config(config)
    exported: dict[str, pulumi.Output[Any]] = {}
    resolved: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", exported.__setitem__)

    def program() -> pulumi.Output[None]:
        define(registry_only=registry_only)
        return pulumi.Output.all(**exported).apply(resolved.update)

    try:
        run_until_resolved(program)()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    monitor = pulumi.runtime.settings.get_monitor()
    assert isinstance(monitor, pulumi.runtime.mocks.MockMonitor)
    # The mocks qualify top-level types with the root Stack's; the engine leaves it out.
    urns = [urn.replace(STACK_TYPE, "") for urn in monitor.get_registered_resources()]
    return Deployment(mocks.resources, resolved, {}, config, sorted(urns))


@pytest.fixture(scope="session")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Deployment]:
    """`deploy(mode)`: the program's run for that processorMode, run once per session."""
    runs: dict[str, Deployment] = {}

    def run(mode: str) -> Deployment:
        if mode not in runs:
            directory = tmp_path_factory.mktemp(f"stack-{mode}")
            images = write_images(directory)
            with pytest.MonkeyPatch.context() as monkeypatch:
                runs[mode] = run_program(stack_config(directory, mode), monkeypatch)
            runs[mode].images = images
        return runs[mode]

    return run
