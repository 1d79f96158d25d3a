"""`invoke build` / `invoke push`: run one bake group through python-on-whales."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_on_whales import docker
from python_on_whales.exceptions import DockerException
from rich.console import Console
from rich.table import Table

from lightning_devtools import docker as preflight
from lightning_devtools import images
from lightning_devtools.bake import BakePlan, load_plan
from lightning_devtools.errors import ToolError

MODES = ("local", "azure")  # `--mode` values; each is a bake group of the same name
BAKE_FILE = Path("docker/docker-bake.hcl")  # relative: bake runs from the repository root
CA_ID = "ca"  # build secret id; the Dockerfiles mount it at /run/secrets/ca.crt


@dataclass(frozen=True)
class BuildRequest:
    """What the developer asked for on the command line."""

    mode: str
    push: bool = False
    load: bool = False
    tag: str | None = None
    registry: str | None = None
    ca_cert: Path | None = None
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def group(self) -> str:
        if self.mode not in MODES:
            raise ToolError(
                f"Unknown build mode {self.mode!r}", f"use --mode {' or --mode '.join(MODES)}"
            )
        return self.mode


def bake_variables(request: BuildRequest) -> dict[str, str]:
    """Bake variables (REGISTRY, TAG) overridden on the command line; the rest keep defaults."""
    variables = dict(request.variables)
    if request.registry is not None:
        variables["REGISTRY"] = request.registry
    if request.tag is not None:
        variables["TAG"] = request.tag
    if request.push:
        variables["PUSH"] = "true"  # the bake file adds SBOM + provenance attestations
    return variables


def bake_arguments(request: BuildRequest) -> dict[str, Any]:
    """Keyword arguments for python-on-whales `docker.buildx.bake` (0.81 signature)."""
    overrides: dict[str, str] = {}
    environment = bake_variables(request)
    if request.ca_cert is not None:
        cert = request.ca_cert.expanduser().resolve()
        if not cert.is_file():
            raise ToolError(
                f"CA certificate {cert} does not exist", "pass --ca-cert PATH to a PEM file"
            )
        overrides["*.secrets"] = f"id={CA_ID},src={cert}"
        # A secret outside the repository needs `--allow fs.read`, which python-on-whales
        # cannot pass; this turns bake's refusal into a warning.
        environment["BUILDX_BAKE_ENTITLEMENTS_FS"] = "0"
    arguments: dict[str, Any] = {
        "targets": [request.group],
        "files": [str(BAKE_FILE)],
        "push": request.push,
        "load": request.load,
        "set": overrides,
        "variables": environment,
    }
    if request.push:  # the digests the registry stored are only known from this file
        arguments["metadata_file"] = str(images.METADATA_FILE)
    return arguments


def shell_command(arguments: Mapping[str, Any]) -> str:
    """The equivalent command line, so a dry run can be pasted into a terminal."""
    words = [f"{name}={value}" for name, value in sorted(arguments["variables"].items())]
    words += ["docker", "buildx", "bake"]
    for file in arguments["files"]:
        words += ["-f", file]
    words += ["--push"] if arguments["push"] else []
    words += ["--load"] if arguments["load"] else []
    for key, value in arguments["set"].items():
        words += ["--set", f"{key}={value}"]
    if "metadata_file" in arguments:
        words += ["--metadata-file", arguments["metadata_file"]]
    return shlex.join([*words, *arguments["targets"]])


def plan_table(plan: BakePlan, root: Path) -> Table:
    table = Table(title=f"bake group [bold]{plan.group}[/]", title_justify="left")
    for column in ("target", "Dockerfile", "stage", "tags", "platforms"):
        table.add_column(column, overflow="fold")
    for target in plan.targets:
        dockerfile = target.dockerfile
        with contextlib.suppress(ValueError):
            dockerfile = dockerfile.relative_to(root)
        table.add_row(
            target.name,
            str(dockerfile),
            target.target or "(last)",
            "\n".join(target.tags),
            ", ".join(target.platforms) or "(host)",
        )
    return table


def resolve(request: BuildRequest, root: Path) -> BakePlan:
    return load_plan(request.group, bake_file=root / BAKE_FILE, variables=bake_variables(request))


def build(request: BuildRequest, *, root: Path, dry_run: bool, console: Console) -> BakePlan:
    """Resolve the plan; unless `dry_run`, check Docker, show the plan and bake it, from the
    repository root. Only a successful push of the azure group writes dist/images.json."""
    plan = resolve(request, root)
    arguments = bake_arguments(request)
    if dry_run:
        console.print(plan_table(plan, root))
        console.print(f"[dim]dry run, would run:[/] {shell_command(arguments)}", soft_wrap=True)
        return plan
    tags = [tag for target in plan.targets for tag in target.tags]
    if request.push:
        require_pushable(tags)
    preflight.require_build_tools()
    if request.push:
        preflight.require_registry_login(tags)
    console.print(plan_table(plan, root))
    if request.push:
        (root / images.METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    _bake(arguments, root)
    if request.push and request.mode == images.RECORDED_MODE:
        targets = [target.name for target in plan.targets]
        document = images.record(root / images.METADATA_FILE, root / images.IMAGES_FILE, targets)
        console.print(images.images_table(document, images.IMAGES_FILE))
    else:
        console.print(results_table(plan, pushed=request.push))
    return plan


def require_pushable(tags: Iterable[str]) -> None:
    """`localhost/...` names local images (podman's convention), not a registry to push to."""
    local = sorted(tag for tag in tags if tag.split("/")[0] == "localhost")
    if local:
        raise ToolError(
            f"Cannot push {local[0]}: `localhost/` names local images, not a registry",
            "pass --registry <name>.azurecr.io (or set REGISTRY)",
        )


def _bake(arguments: dict[str, Any], root: Path) -> None:
    try:
        with contextlib.chdir(root):
            docker.buildx.bake(**arguments)
    except DockerException as error:
        raise ToolError(
            f"`docker buildx bake {' '.join(arguments['targets'])}` failed "
            f"(exit {error.return_code})",
            "read the build output above; `invoke build --dry-run` shows what was asked",
        ) from None


def results_table(plan: BakePlan, *, pushed: bool) -> Table:
    """Built images with their size where the local image store has them."""
    table = Table(title="pushed images" if pushed else "built images", title_justify="left")
    for column in ("target", "tag", "size"):
        table.add_column(column)
    for target in plan.targets:
        for tag in target.tags:
            size = "pushed" if pushed else "not in the local image store (use --load)"
            with contextlib.suppress(DockerException):
                size = f"{docker.image.inspect(tag).size / 1e6:.0f} MB"
            table.add_row(target.name, tag, size)
    return table
