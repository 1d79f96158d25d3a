"""`invoke build` / `invoke push`: run one bake group through python-on-whales."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_on_whales import docker
from python_on_whales.exceptions import DockerException
from rich.console import Console
from rich.table import Table

from lightning_devtools import docker as preflight
from lightning_devtools import images
from lightning_devtools.bake import BakePlan, load_plan, resolve_variables
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
    python_image: str | None = None
    ca_cert: Path | None = None

    @property
    def group(self) -> str:
        if self.mode not in MODES:
            raise ToolError(
                f"Unknown build mode {self.mode!r}", f"use --mode {' or --mode '.join(MODES)}"
            )
        return self.mode

    @property
    def overrides(self) -> dict[str, str]:
        """The bake variables the command line sets; they beat the environment."""
        given = {"REGISTRY": self.registry, "TAG": self.tag, "PYTHON_IMAGE": self.python_image}
        chosen = {name: value for name, value in given.items() if value is not None}
        # PUSH follows --push: the bake file adds SBOM + provenance attestations for it.
        return {**chosen, "PUSH": "true" if self.push else "false"}


def bake_variables(request: BuildRequest, root: Path) -> dict[str, str]:
    """Every bake variable as this build sees it: command line > environment > bake file."""
    return resolve_variables(request.overrides, bake_file=root / BAKE_FILE)


def ca_bundle(path: Path) -> Path:
    """The absolute path of a `--ca-cert` PEM file; ToolError when there is none."""
    cert = path.expanduser().resolve()
    if not cert.is_file():
        raise ToolError(
            f"CA certificate {cert} does not exist", "pass --ca-cert PATH to a PEM file"
        )
    return cert


def bake_arguments(request: BuildRequest, variables: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for python-on-whales `docker.buildx.bake` (0.81 signature), with
    `variables` (from `bake_variables`) as bake's environment."""
    overrides: dict[str, str] = {}
    environment = dict(variables)
    if request.ca_cert is not None:
        overrides["*.secrets"] = f"id={CA_ID},src={ca_bundle(request.ca_cert)}"
        # A secret outside the repository needs `--allow fs.read`, which python-on-whales
        # cannot pass; this turns bake's refusal into a warning.
        environment["BUILDX_BAKE_ENTITLEMENTS_FS"] = "0"
    return {
        "targets": [request.group],
        "files": [str(BAKE_FILE)],
        "push": request.push,
        "load": request.load,
        "set": overrides,
        "variables": environment,
        # What each target produced: the pushed digests, the image ids a build loaded.
        "metadata_file": str(images.METADATA_FILE),
    }


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
    words += ["--metadata-file", arguments["metadata_file"]]
    return shlex.join([*words, *arguments["targets"]])


def plan_table(plan: BakePlan, root: Path) -> Table:
    """The shared stages, then the images; `attest` shows what a push attaches."""
    table = Table(title=f"bake group [bold]{plan.group}[/]", title_justify="left")
    for column in ("target", "Dockerfile", "stage", "tags", "platforms", "attest"):
        table.add_column(column, overflow="fold")
    for target in [*plan.stages, *plan.targets]:
        dockerfile = target.dockerfile
        with contextlib.suppress(ValueError):
            dockerfile = dockerfile.relative_to(root)
        table.add_row(
            target.name,
            str(dockerfile),
            target.target or "(last)",
            "\n".join(target.tags) or "(named context only)",
            ", ".join(target.platforms) or "(host)",
            ", ".join(entry.get("type", "?") for entry in target.attest) or "-",
        )
    return table


def build(request: BuildRequest, *, root: Path, dry_run: bool, console: Console) -> BakePlan:
    """Resolve the plan; unless `dry_run`, check Docker, show the plan and bake it, from the
    repository root. Only a successful push of the azure group writes dist/images.json."""
    variables = bake_variables(request, root)
    plan = load_plan(request.group, bake_file=root / BAKE_FILE, variables=variables)
    arguments = bake_arguments(request, variables)
    tags = [tag for target in plan.targets for tag in target.tags]
    if request.push:
        require_pushable(tags)
    if dry_run:
        console.print(plan_table(plan, root))
        console.print(f"[dim]dry run, would run:[/] {shell_command(arguments)}", soft_wrap=True)
        return plan
    preflight.require_build_tools()
    if request.push:
        preflight.require_registry_login(tags)
    console.print(plan_table(plan, root))
    metadata_file = root / images.METADATA_FILE
    metadata_file.parent.mkdir(parents=True, exist_ok=True)
    metadata_file.unlink(missing_ok=True)  # an earlier build's results never pass for this one
    _bake(arguments, root)
    if request.push and request.mode == images.RECORDED_MODE:
        targets = [target.name for target in plan.targets]
        document = images.record(metadata_file, root / images.IMAGES_FILE, targets)
        console.print(images.images_table(document, images.IMAGES_FILE))
    else:
        metadata = images.read_metadata(metadata_file)
        console.print(results_table(plan, metadata, pushed=request.push))
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


def results_table(plan: BakePlan, metadata: Mapping[str, Any], *, pushed: bool) -> Table:
    """Each tag this build produced, with its size when the local image store holds the
    image bake reported in `metadata`; an older image under the same tag is not shown."""
    table = Table(title="pushed images" if pushed else "built images", title_justify="left")
    for column in ("target", "tag", "size"):
        table.add_column(column)
    for target in plan.targets:
        produced = images.produced_ids(metadata.get(target.name))
        for tag in target.tags:
            table.add_row(target.name, tag, "pushed" if pushed else local_size(tag, produced))
    return table


def local_size(tag: str, produced: set[str]) -> str:
    """The size of the local image `tag` names, if it is one of the `produced` image ids."""
    with contextlib.suppress(DockerException):
        image = docker.image.inspect(tag)
        if image.id in produced:
            return f"{image.size / 1e6:.0f} MB"
    return "not in the local image store (use --load)"
