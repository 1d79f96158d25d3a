"""`invoke deploy` / `destroy` against fake pulumi, az and uv executables (no Pulumi CLI or
Azure here): the checks come first and each fails in one line, the infra group is
installed into Pulumi's environment, and Pulumi runs the right command from the root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightning_core.testing.commands import write_executable
from lightning_devtools import azure
from lightning_devtools import deploy as deploy_module
from lightning_devtools.deploy import (
    REGISTRY_ONLY,
    deploy,
    destroy,
    infra_environment,
    stack_outputs,
)
from lightning_devtools.errors import ToolError

PROJECT = """\
name: lightning-os
runtime:
  name: python
  options:
    toolchain: uv
    virtualenv: ../.venv
main: src/lightning_infra/
"""

# Each fake logs `name|cwd|arguments|environment it was given` to $FAKE_LOG.
FAKE_PULUMI = r"""#!/bin/sh
given="UV_NO_SYNC=$UV_NO_SYNC uv=$(command -v uv) kv=$AZURE_KEYVAULT_AUTH_VIA_CLI"
printf 'pulumi|%s|%s|%s\n' "$PWD" "$*" "$given" >> "$FAKE_LOG"
case "$1" in
version) echo v3.272.0; exit 0 ;;
stack) [ -n "$FAKE_PULUMI_OUTPUTS" ] && { printf '%s\n' "$FAKE_PULUMI_OUTPUTS"; exit 0; }
  echo "error: no stack named 'production' found" >&2; exit 255 ;;
esac
exit "${FAKE_PULUMI_EXIT:-0}"
"""
FAKE_AZ = r"""#!/bin/sh
printf 'az|%s|%s|\n' "$PWD" "$*" >> "$FAKE_LOG"
[ -n "$FAKE_AZ_USER" ] && { echo "$FAKE_AZ_USER"; exit 0; }
echo "ERROR: Please run 'az login' to setup account." >&2
exit 1
"""
FAKE_UV = r"""#!/bin/sh
printf 'uv|%s|%s|UV_PROJECT_ENVIRONMENT=%s\n' "$PWD" "$*" "$UV_PROJECT_ENVIRONMENT" >> "$FAKE_LOG"
exit "${FAKE_UV_EXIT:-0}"
"""
UP = "up --yes --stack production --cwd infra --non-interactive"
INSTALL = "sync --locked --inexact --no-default-groups --group infra"


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH = a directory with fake pulumi and az (tests delete what they need missing)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    write_executable(directory / "pulumi", FAKE_PULUMI)
    write_executable(directory / "az", FAKE_AZ)
    uv = tmp_path / "uv-home" / "uv"  # beside the interpreter, as in a uv-managed .venv
    uv.parent.mkdir()
    write_executable(uv, FAKE_UV)
    monkeypatch.setattr("lightning_devtools.deploy.find_tool", lambda _name: str(uv))
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_AZ_USER", "dev@contoso.example")
    for name in (
        *("ARM_USE_OIDC", "ARM_CLIENT_SECRET", *azure.ARM_IDENTITY),
        *("UV_NO_SYNC", "AZURE_KEYVAULT_AUTH_VIA_CLI"),
    ):
        monkeypatch.delenv(name, raising=False)
    for name in ("FAKE_PULUMI_EXIT", "FAKE_PULUMI_OUTPUTS", "FAKE_UV_EXIT"):
        monkeypatch.delenv(name, raising=False)
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A repository with the infra project, a production stack and pushed images."""
    repo = tmp_path / "repo"
    (repo / "infra").mkdir(parents=True)
    (repo / "infra" / "Pulumi.yaml").write_text(PROJECT)
    (repo / "infra" / "Pulumi.production.yaml").write_text(
        "config:\n  azure-native:location: westeurope\n"
    )
    (repo / "dist").mkdir()
    (repo / "dist" / "images.json").write_text(json.dumps({"registry": "r", "images": {}}))
    return repo


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def ran(tmp_path: Path, tool: str) -> list[str]:
    """The arguments of each call of `tool`, probes (`pulumi version`, `az account`) left out."""
    return [
        line.split("|")[2]
        for line in calls(tmp_path)
        if line.startswith(f"{tool}|")
        and line.split("|")[2].split()[0] not in ("version", "account")
    ]


@pytest.mark.usefixtures("bin_dir")
def test_deploy_installs_the_infra_group_then_runs_pulumi_up_from_the_root(
    root: Path, tmp_path: Path
) -> None:
    deploy("production", preview=False, root=root)
    uv = tmp_path / "uv-home" / "uv"
    installs = [line for line in calls(tmp_path) if line.startswith("uv|")]
    assert installs == [f"uv|{root}|{INSTALL}|UV_PROJECT_ENVIRONMENT={root / '.venv'}"]
    ups = [line for line in calls(tmp_path) if line.startswith("pulumi|") and "|up " in line]
    # Pulumi's uv toolchain finds this uv on PATH and does not sync a second time; an
    # azurekeyvault:// secrets provider uses the az login.
    assert ups == [f"pulumi|{root}|{UP}|UV_NO_SYNC=1 uv={uv} kv=true"]
    assert calls(tmp_path).index(installs[0]) < calls(tmp_path).index(ups[0])


@pytest.mark.usefixtures("bin_dir")
def test_preview_changes_nothing(root: Path, tmp_path: Path) -> None:
    deploy("production", preview=True, root=root)
    assert ran(tmp_path, "pulumi") == ["preview --stack production --cwd infra --non-interactive"]


@pytest.mark.usefixtures("bin_dir")
def test_destroy_needs_no_images(root: Path, tmp_path: Path) -> None:
    (root / "dist" / "images.json").unlink()
    destroy("production", root=root)
    assert ran(tmp_path, "pulumi") == [
        "destroy --yes --stack production --cwd infra --non-interactive"
    ]


def test_without_pulumi_nothing_runs(bin_dir: Path, root: Path, tmp_path: Path) -> None:
    (bin_dir / "pulumi").unlink()
    with pytest.raises(ToolError) as caught:
        deploy("production", preview=False, root=root)
    assert caught.value.what == "Pulumi CLI is not available (`pulumi` not found on PATH)"
    assert "https://www.pulumi.com/docs/iac/download-install/" in caught.value.fix
    assert ran(tmp_path, "uv") == []


@pytest.mark.usefixtures("bin_dir")
def test_not_logged_in_to_azure_says_az_login(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_AZ_USER")
    with pytest.raises(ToolError) as caught:
        destroy("production", root=root)
    assert caught.value.what == (
        "Not logged in to Azure (ERROR: Please run 'az login' to setup account.)"
    )
    assert caught.value.fix.startswith("run `az login`")
    assert ran(tmp_path, "uv") == []
    assert ran(tmp_path, "pulumi") == []


def test_no_azure_cli_and_no_service_principal(bin_dir: Path, root: Path) -> None:
    (bin_dir / "az").unlink()
    with pytest.raises(ToolError, match=r"no Azure CLI on PATH and no ARM_\* service principal"):
        deploy("production", preview=True, root=root)


def test_an_oidc_service_principal_needs_no_azure_cli(
    bin_dir: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (bin_dir / "az").unlink()
    monkeypatch.setenv("ARM_USE_OIDC", "true")
    monkeypatch.setenv("ARM_CLIENT_ID", "11111111-1111-1111-1111-111111111111")
    monkeypatch.setenv("ARM_TENANT_ID", "22222222-2222-2222-2222-222222222222")
    with pytest.raises(ToolError) as caught:
        deploy("production", preview=True, root=root)
    assert caught.value.what == (
        "Azure login is incomplete (ARM_* service principal without ARM_SUBSCRIPTION_ID)"
    )
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "33333333-3333-3333-3333-333333333333")
    deploy("production", preview=True, root=root)
    assert ran(tmp_path, "pulumi") == ["preview --stack production --cwd infra --non-interactive"]
    assert azure.azure_login().detail == (
        "service principal 11111111-1111-1111-1111-111111111111 (OIDC, ARM_*)"
    )


@pytest.mark.usefixtures("bin_dir")
def test_missing_images_say_push_first(root: Path, tmp_path: Path) -> None:
    (root / "dist" / "images.json").unlink()
    with pytest.raises(ToolError) as caught:
        deploy("production", preview=False, root=root)
    assert caught.value.what == (
        f"no pushed images to deploy: {root / 'dist' / 'images.json'} does not exist"
    )
    assert "invoke push --mode azure" in caught.value.fix
    assert "invoke deploy --stack production --registry-only" in caught.value.fix
    assert ran(tmp_path, "uv") == []


@pytest.mark.usefixtures("bin_dir")
def test_the_first_deploy_targets_only_the_registry_and_needs_no_images(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "dist" / "images.json").unlink()
    (root / "infra" / "Pulumi.production.yaml").write_text("config:\n  lightning-os:name: acme\n")
    environments: list[dict[str, str]] = []
    real_run = deploy_module.run

    def recording_run(command: list[str], *, root: Path, env: dict[str, str], fix: str) -> None:
        environments.append(dict(env))
        real_run(command, root=root, env=env, fix=fix)

    monkeypatch.setattr(deploy_module, "run", recording_run)
    deploy("production", preview=False, root=root, registry_only=True)
    prefix = "urn:pulumi:production::lightning-os::"
    # The URNs of what infra's program declares with the flag (infra/tests/test_images.py).
    assert ran(tmp_path, "pulumi") == [
        "up --yes"
        f" --target {prefix}azure-native:resources:ResourceGroup::acme"
        f" --target {prefix}lightning:infra:Registry::registry"
        f" --target {prefix}lightning:infra:Registry"
        "$azure-native:containerregistry:Registry::registry"
        " --stack production --cwd infra --non-interactive"
    ]
    assert environments[-1][REGISTRY_ONLY] == "1"  # the program declares only those


@pytest.mark.usefixtures("bin_dir")
def test_the_images_file_is_the_one_the_stack_reads(root: Path) -> None:
    stack_file = root / "infra" / "Pulumi.production.yaml"
    stack_file.write_text("config:\n  lightning-os:imagesFile: ../elsewhere/images.json\n")
    with pytest.raises(ToolError, match=r"elsewhere/images\.json does not exist"):
        deploy("production", preview=True, root=root)
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "images.json").write_text("{}")
    deploy("production", preview=True, root=root)


@pytest.mark.usefixtures("bin_dir")
def test_an_unknown_stack_names_the_stack_files_there_are(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ToolError) as caught:
        deploy("staging", preview=False, root=root)
    assert caught.value.what == "stack 'staging' has no settings file infra/Pulumi.staging.yaml"
    assert "Pulumi.production.yaml" in caught.value.fix
    assert "pulumi stack init staging --cwd infra" in caught.value.fix
    assert ran(tmp_path, "uv") == []


@pytest.mark.usefixtures("bin_dir")
def test_a_failed_install_stops_before_pulumi(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UV_EXIT", "2")
    with pytest.raises(ToolError, match=rf"`uv {INSTALL}` failed \(exit 2\)"):
        deploy("production", preview=False, root=root)
    assert ran(tmp_path, "pulumi") == []


@pytest.mark.usefixtures("bin_dir")
def test_a_failed_pulumi_up_is_one_line(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PULUMI_EXIT", "255")
    with pytest.raises(ToolError) as caught:
        deploy("production", preview=False, root=root)
    assert caught.value.what == f"`pulumi {UP}` failed (exit 255)"
    assert "pulumi stack init production --cwd infra" in caught.value.fix


@pytest.mark.usefixtures("bin_dir")
def test_stack_outputs(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ToolError) as caught:
        stack_outputs("production", root=root)
    assert caught.value.what == (
        "cannot read the outputs of stack 'production' (error: no stack named 'production' found)"
    )
    monkeypatch.setenv("FAKE_PULUMI_OUTPUTS", '{"frontDoorUrl": "https://x.azurefd.net"}')
    assert stack_outputs("production", root=root) == {"frontDoorUrl": "https://x.azurefd.net"}


def test_pulumi_environment_is_the_one_pulumi_yaml_names(root: Path) -> None:
    assert infra_environment(root) == root / ".venv"
    (root / "infra" / "Pulumi.yaml").write_text("name: lightning-os\nruntime: python\n")
    assert infra_environment(root) == root / ".venv"  # uv's default: next to uv.lock
    (root / "infra" / "Pulumi.yaml").write_text(
        "name: p\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n"
    )
    assert infra_environment(root) == root / "infra" / "venv"
