"""`invoke deploy` / `destroy`: the Pulumi program in infra/, run by the Pulumi CLI.

Cheap checks come first (Pulumi CLI, Azure login, the stack's file, the pushed images); only
then is the infra group installed, into the environment Pulumi.yaml names.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lightning_devtools import azure
from lightning_devtools.cli import find_tool
from lightning_devtools.docker import first_line
from lightning_devtools.errors import ToolError

INFRA = Path("infra")
PROJECT_FILE = INFRA / "Pulumi.yaml"
IMAGES_CONFIG = "imagesFile"  # infra's stack setting; relative to infra/
DEFAULT_IMAGES = "../dist/images.json"
INSTALL_INFRA = ("sync", "--locked", "--inexact", "--no-default-groups", "--group", "infra")
REGISTRY_ONLY = "LIGHTNING_INFRA_REGISTRY_ONLY"  # infra's program reads it (__main__.py)
STACK_INIT_HINT = "a stack new to the state backend needs `pulumi stack init {stack} --cwd infra`"


@dataclass(frozen=True)
class Stack:
    """A Pulumi stack of the program in `root`/infra."""

    name: str
    root: Path

    @property
    def infra(self) -> Path:
        return self.root / INFRA

    @property
    def file(self) -> Path:
        return self.infra / f"Pulumi.{self.name}.yaml"


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ToolError(f"cannot read {path}: {first_line(str(error))}", f"fix {path}") from None
    return loaded if isinstance(loaded, dict) else {}


def infra_environment(root: Path) -> Path:
    """The virtualenv Pulumi runs the program in: Pulumi.yaml's, else uv's default."""
    runtime = read_yaml(root / PROJECT_FILE).get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    virtualenv = options.get("virtualenv") if isinstance(options, dict) else None
    return (root / INFRA / str(virtualenv)).resolve() if virtualenv else root / ".venv"


def require_stack_file(stack: Stack) -> None:
    if stack.file.is_file():
        return
    known = sorted(path.name for path in stack.infra.glob("Pulumi.*.yaml"))
    raise ToolError(
        f"stack {stack.name!r} has no settings file {stack.file.relative_to(stack.root)}",
        f"create it from {' or '.join(known) or 'the config keys in infra/Pulumi.yaml'}; "
        + STACK_INIT_HINT.format(stack=stack.name),
    )


def project_name(stack: Stack) -> str:
    return str(read_yaml(stack.root / PROJECT_FILE).get("name", ""))


def stack_setting(stack: Stack, key: str) -> str | None:
    """One of the stack's own settings (Pulumi.<stack>.yaml), None if it does not set it."""
    config = read_yaml(stack.file).get("config")
    value = config.get(f"{project_name(stack)}:{key}") if isinstance(config, dict) else None
    return None if value is None else str(value)


def images_file(stack: Stack) -> Path:
    """Where the stack reads the pushed images from (its `imagesFile` setting)."""
    return (stack.infra / (stack_setting(stack, IMAGES_CONFIG) or DEFAULT_IMAGES)).resolve()


def registry_targets(stack: Stack) -> list[str]:
    """The URNs of what infra declares with LIGHTNING_INFRA_REGISTRY_ONLY: the resource
    group (named by the stack's `name`, default lightning-<stack>) and the registry."""
    prefix = f"urn:pulumi:{stack.name}::{project_name(stack)}::"
    group = stack_setting(stack, "name") or f"lightning-{stack.name}"
    return [
        f"{prefix}azure-native:resources:ResourceGroup::{group}",
        f"{prefix}lightning:infra:Registry::registry",
        f"{prefix}lightning:infra:Registry$azure-native:containerregistry:Registry::registry",
    ]


def require_images(stack: Stack) -> None:
    path = images_file(stack)
    if not path.is_file():
        raise ToolError(
            f"no pushed images to deploy: {path} does not exist",
            "run `invoke push --mode azure --registry <acr>.azurecr.io --tag <tag>` first "
            "(it records each image's digest there); a new stack has no registry to push to "
            f"yet: `invoke deploy --stack {stack.name} --registry-only` creates it",
        )


def require_uv() -> str:
    uv = find_tool("uv")
    if uv is None:
        raise ToolError("uv is not installed", "`pip install uv` or https://docs.astral.sh/uv/")
    return uv


def install_infra(root: Path) -> None:
    """Install the infra group from uv.lock, adding to (never pruning) Pulumi's environment."""
    environment = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(infra_environment(root))}
    run(
        [require_uv(), *INSTALL_INFRA],
        root=root,
        env=environment,
        fix="read uv's output above (it needs the package index, or a warm uv cache)",
    )


def pulumi_environment(*, program: bool) -> dict[str, str]:
    """The environment of a pulumi call: Key Vault secrets through the az login unless set
    otherwise; to run the `program`, uv on PATH and no second sync."""
    environment = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    environment.setdefault("AZURE_KEYVAULT_AUTH_VIA_CLI", "true")
    if program:
        uv_directory = str(Path(require_uv()).parent)
        environment["PATH"] = os.pathsep.join([uv_directory, os.environ.get("PATH", "")])
        environment["UV_NO_SYNC"] = "1"
    return environment


def pulumi_command(words: Sequence[str], stack: Stack) -> list[str]:
    return ["pulumi", *words, "--stack", stack.name, "--cwd", str(INFRA), "--non-interactive"]


def run(command: Sequence[str], *, root: Path, env: Mapping[str, str], fix: str) -> None:
    """Run a command from `root`, its output straight to the terminal; ToolError if it fails."""
    shown = shlex.join([Path(command[0]).name, *command[1:]])
    print(f"$ {shown}", file=sys.stderr, flush=True)
    argv = [shutil.which(command[0], path=env.get("PATH")) or command[0], *command[1:]]
    done = subprocess.run(argv, cwd=root, env=env, check=False)  # noqa: S603 - argv built here
    if done.returncode:
        raise ToolError(f"`{shown}` failed (exit {done.returncode})", fix)


def prepare(stack: Stack) -> None:
    """The checks deploy and destroy share, cheapest first."""
    azure.require_pulumi()
    azure.require_azure_login()
    require_stack_file(stack)


def deploy(stack_name: str, *, preview: bool, root: Path, registry_only: bool = False) -> None:
    """`pulumi preview` (preview) or `pulumi up --yes` of the stack, after every check.
    `registry_only` targets only the resource group and registry (a stack's first deploy)."""
    stack = Stack(stack_name, root)
    prepare(stack)
    words = ["preview"] if preview else ["up", "--yes"]
    environment = pulumi_environment(program=True)
    if registry_only:
        words += [argument for urn in registry_targets(stack) for argument in ("--target", urn)]
        environment[REGISTRY_ONLY] = "1"
    else:
        require_images(stack)
    install_infra(root)
    run(
        pulumi_command(words, stack),
        root=root,
        env=environment,
        fix=f"read Pulumi's output above; {STACK_INIT_HINT.format(stack=stack.name)} once",
    )


def destroy(stack_name: str, *, root: Path) -> None:
    """`pulumi destroy --yes` of the stack: deletes every resource it created."""
    stack = Stack(stack_name, root)
    prepare(stack)
    install_infra(root)
    run(
        pulumi_command(["destroy", "--yes"], stack),
        root=root,
        env=pulumi_environment(program=True),
        fix="read Pulumi's output above",
    )


def stack_outputs(stack_name: str, *, root: Path) -> dict[str, Any]:
    """The stack's outputs (`pulumi stack output --json`); secret ones stay masked."""
    azure.require_pulumi()
    stack = Stack(stack_name, root)
    command = pulumi_command(["stack", "output", "--json"], stack)
    command[0] = shutil.which("pulumi") or "pulumi"
    done = subprocess.run(  # noqa: S603 - argv built here
        command,
        cwd=root,
        env=pulumi_environment(program=False),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise ToolError(
            f"cannot read the outputs of stack {stack_name!r} ({first_line(done.stderr)})",
            "log in to the state backend (`pulumi login azblob://...` or PULUMI_BACKEND_URL) "
            f"and deploy it first: `invoke deploy --stack {stack_name}`",
        )
    try:
        outputs = json.loads(done.stdout)
    except ValueError:
        outputs = None
    if not isinstance(outputs, dict):
        raise ToolError(
            f"`pulumi stack output --json` printed no JSON object for stack {stack_name!r}",
            "run it by hand to see what it prints",
        )
    return outputs
