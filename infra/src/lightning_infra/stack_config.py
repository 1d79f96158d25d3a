"""The stack's settings (`Pulumi.<stack>.yaml`), read and checked once; Pulumi.yaml documents
every key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pulumi

from lightning_infra.errors import DeployError

#: Relative paths in the stack file are relative to infra/, where Pulumi.yaml lives.
INFRA_DIR = Path(__file__).resolve().parents[2]


class ProcessorMode(StrEnum):
    """Where the event processor runs: a KEDA-scaled worker app, a Function App, or both."""

    WORKER = "worker"
    FUNCTION = "function"
    BOTH = "both"

    @property
    def worker(self) -> bool:
        return self is not ProcessorMode.FUNCTION

    @property
    def function(self) -> bool:
        return self is not ProcessorMode.WORKER


@dataclass(frozen=True)
class Replicas:
    minimum: int
    maximum: int


@dataclass(frozen=True)
class StackConfig:
    name: str
    location: str
    processor_mode: ProcessorMode
    bus_namespace: str
    bus_max_attempts: int
    #: LIGHTNING_RETENTION_DAYS, and so the expiring Cosmos DB containers' default TTL.
    retention_days: int
    cosmos_database: str
    cosmos_serverless: bool
    registry_name: str
    registry_sku: str
    key_vault_purge_protection: bool
    images_file: Path
    function_package: Path
    api_replicas: Replicas
    ui_replicas: Replicas
    processor_replicas: Replicas
    deploy_principal_id: str | None


def _int(config: pulumi.Config, key: str, default: int) -> int:
    value = config.get_int(key)
    return default if value is None else value


def _replicas(config: pulumi.Config, service: str, minimum: int, maximum: int) -> Replicas:
    replicas = Replicas(
        _int(config, f"{service}MinReplicas", minimum),
        _int(config, f"{service}MaxReplicas", maximum),
    )
    if not 0 <= replicas.minimum <= replicas.maximum or replicas.maximum < 1:
        raise DeployError(
            f"{service}MinReplicas={replicas.minimum} / {service}MaxReplicas={replicas.maximum} "
            "is not a replica range: set 0 <= min <= max and max >= 1 in the stack file"
        )
    return replicas


def _choice(config: pulumi.Config, key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = config.get(key) or default
    if value not in allowed:
        raise DeployError(
            f"{key}={value!r} is not one of {', '.join(allowed)}: fix it in the stack file "
            f"(`pulumi config set {key} {default}`)"
        )
    return value


def load_stack_config() -> StackConfig:
    """The current stack's settings with their defaults; DeployError names a bad one."""
    config = pulumi.Config()
    mode = _choice(
        config, "processorMode", ProcessorMode.WORKER, tuple(mode.value for mode in ProcessorMode)
    )
    name = config.get("name") or f"lightning-{pulumi.get_stack()}"
    return StackConfig(
        name=name,
        location=config.get("location") or "westeurope",
        processor_mode=ProcessorMode(mode),
        bus_namespace=config.get("busNamespace") or "lightning",
        bus_max_attempts=_int(config, "busMaxAttempts", 5),
        retention_days=_int(config, "retentionDays", 30),
        cosmos_database=config.get("cosmosDatabase") or "lightning",
        cosmos_serverless=config.get_bool("cosmosServerless") is not False,
        registry_name=config.get("registryName") or re.sub(r"[^a-z0-9]", "", name.lower()),
        registry_sku=_choice(config, "registrySku", "Basic", ("Basic", "Standard")),
        key_vault_purge_protection=config.get_bool("keyVaultPurgeProtection") is not False,
        images_file=INFRA_DIR / (config.get("imagesFile") or "../dist/images.json"),
        function_package=INFRA_DIR
        / (config.get("functionPackage") or "../dist/event-processor-function.zip"),
        api_replicas=_replicas(config, "api", 1, 5),
        ui_replicas=_replicas(config, "ui", 1, 3),
        processor_replicas=_replicas(config, "processor", 0, 5),
        deploy_principal_id=config.get("deployPrincipalId"),
    )
