"""Is this machine ready to deploy to Azure? The Pulumi CLI and an Azure login: the Azure
CLI's, or a service principal in the ARM_* variables the Pulumi Azure providers read."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from lightning_devtools.docker import Probe, run_quietly
from lightning_devtools.errors import ToolError

INSTALL_PULUMI = (
    "install the Pulumi CLI: https://www.pulumi.com/docs/iac/download-install/ "
    "(`curl -fsSL https://get.pulumi.com | sh`, then put ~/.pulumi/bin on PATH)"
)
INSTALL_AZ = "install the Azure CLI: https://aka.ms/installazurecli"
ARM_IDENTITY = ("ARM_CLIENT_ID", "ARM_TENANT_ID", "ARM_SUBSCRIPTION_ID")
LOGIN_FIX = (
    "run `az login` (and `az account set --subscription <id>`), or set "
    f"{', '.join(ARM_IDENTITY)} with ARM_USE_OIDC=true (as CI does) or ARM_CLIENT_SECRET"
)
AZ_TIMEOUT = 30.0  # `az` is a Python program: a cold start alone can take seconds


def pulumi_cli() -> Probe:
    return run_quietly(["pulumi", "version"])


def azure_login(env: Mapping[str, str] | None = None) -> Probe:
    """A service principal in ARM_* wins (that is what the providers use), else `az login`."""
    env = os.environ if env is None else env
    federated = env.get("ARM_USE_OIDC", "").lower() == "true"
    if federated or env.get("ARM_CLIENT_SECRET"):
        missing = [name for name in ARM_IDENTITY if not env.get(name)]
        if missing:
            return Probe(ok=False, detail=f"ARM_* service principal without {', '.join(missing)}")
        how = "OIDC" if federated else "client secret"
        return Probe(ok=True, detail=f"service principal {env['ARM_CLIENT_ID']} ({how}, ARM_*)")
    probe = run_quietly(
        ["az", "account", "show", "--query", "user.name", "--output", "tsv"], timeout=AZ_TIMEOUT
    )
    if probe.ok:
        return Probe(ok=True, detail=f"az login as {probe.detail}")
    return probe


def require_pulumi() -> None:
    probe = pulumi_cli()
    if not probe.ok:
        raise ToolError(f"Pulumi CLI is not available ({probe.detail})", INSTALL_PULUMI)


def require_azure_login() -> None:
    probe = azure_login()
    if probe.ok:
        return
    if probe.detail.startswith("ARM_*"):
        raise ToolError(f"Azure login is incomplete ({probe.detail})", LOGIN_FIX)
    if shutil.which("az") is None:
        raise ToolError(
            "Not logged in to Azure (no Azure CLI on PATH and no ARM_* service principal)",
            f"{INSTALL_AZ}, then {LOGIN_FIX}",
        )
    raise ToolError(f"Not logged in to Azure ({probe.detail})", LOGIN_FIX)
