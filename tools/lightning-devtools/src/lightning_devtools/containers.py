"""`python -m lightning_devtools.containers`: build every bake target for real and run it.

Without a Docker engine: each target of the `local` and `azure` bake groups is built with
buildah from the plan `lightning_devtools.bake` resolves, then run with podman through the
`check_*` functions. The shared stages the targets take as named contexts are built first.
Containers started here are removed on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from lightning_core.topology import SERVICES
from lightning_devtools.bake import BAKE_FILE, BakePlan, BakeTarget, load_plan
from lightning_devtools.errors import ToolError
from lightning_devtools.podman import (
    Engine,
    base_image,
    ensure_base_image,
    last_line,
    setup_engine,
)

GROUPS = ("local", "azure")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HTTP_PORTS = {"api": 8000, "ui": 8080}  # services that listen: the port serving /healthz
MISSING_STORAGE_SETTING = {"local": "DATABASE_URL", "azure": "COSMOS_CONNECTION_STRING"}
MISSING_SIGN_IN_SETTING = {"azure": "ENTRA_TENANT_ID"}
NON_ROOT_USER = "10001:10001"
STARTUP_TIMEOUT = 60.0


@dataclass
class Outcome:
    """What happened to one bake target: its build and each check."""

    target: str
    tag: str
    seconds: float = 0.0
    size_bytes: int | None = None
    passed: list[str] = field(default_factory=list)
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class CheckFailed(Exception):
    """A built image does not behave as deployments expect."""


def repo_root() -> Path:
    return BAKE_FILE.resolve().parent.parent


def cache_dir() -> Path:
    """<repo>/.containers-cache (git-ignored), or LIGHTNING_CONTAINERS_CACHE."""
    configured = os.environ.get("LIGHTNING_CONTAINERS_CACHE")
    return Path(configured) if configured else repo_root() / ".containers-cache"


def service_of(target: BakeTarget) -> str:
    """The service a target builds, from its Dockerfile name (docker/<service>.Dockerfile)."""
    return target.dockerfile.name.removesuffix(".Dockerfile")


def bake_variables() -> dict[str, str]:
    """The environment as bake sees it, with the base image this machine can use."""
    return {**os.environ, "PYTHON_IMAGE": base_image()}


def image_of(target: BakeTarget) -> str:
    """The image a build of `target` is tagged as: its first tag, or for a stage (no tags,
    built only as a named context) a local name of its own."""
    return (
        target.tags[0]
        if target.tags
        else f"localhost/lightning-stage-{target.name.lstrip('_')}:latest"
    )


def bud_command(
    target: BakeTarget, *, ca_bundle: Path | None, stage_images: Mapping[str, str]
) -> list[str]:
    """The `buildah bud` equivalent of building one bake target (docs/devtools.md: flags);
    `stage_images` names the built image of each target linked as a named context.

    buildah takes what it can use: cache-from/to (type=gha) and attest are BuildKit's."""
    command = ["buildah", "bud", "--layers", "--format", "docker", "--force-rm"]
    command += ["--file", str(target.dockerfile)]
    if target.target:
        command += ["--target", target.target]
    for name, value in sorted(target.args.items()):
        command += ["--build-arg", f"{name}={value}"]
    for name, value in sorted(target.labels.items()):
        command += ["--label", f"{name}={value}"]
    for name, source in sorted(target.contexts.items()):
        linked = source.removeprefix("target:")
        value = f"container-image://{stage_images[linked]}" if linked != source else source
        command += ["--build-context", f"{name}={value}"]
    for tag in target.tags or [image_of(target)]:
        command += ["--tag", tag]
    if ca_bundle is not None:
        command += ["--secret", f"id=ca,src={ca_bundle}"]
    command.append(str(target.context))
    return command


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Containers:
    """Starts check containers and removes every one of them on exit."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.names: list[str] = []

    def __enter__(self) -> Containers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in self.names:
            self.engine.run("podman", "rm", "--force", name, check=False, timeout=60)

    def new_name(self) -> str:
        name = f"lightning-check-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return name

    def start(self, image: str, *options: str) -> str:
        name = self.new_name()
        self.engine.run("podman", "run", "--detach", "--name", name, *options, image)
        return name

    def state(self, name: str) -> dict[str, Any]:
        result = self.engine.run("podman", "inspect", "--format", "json", name)
        state: dict[str, Any] = json.loads(result.stdout)[0]["State"]
        return state

    def logs(self, name: str) -> str:
        result = self.engine.run("podman", "logs", name, check=False)
        return result.stdout + result.stderr

    def stop(self, name: str) -> int:
        """SIGTERM (podman stop), then the exit code the process chose."""
        self.engine.run("podman", "stop", "--time", "20", name)
        exit_code: int = self.state(name)["ExitCode"]
        return exit_code


def check_inspect(engine: Engine, target: BakeTarget, tag: str) -> int:
    """Static facts of the image; returns its size in bytes."""
    image = json.loads(engine.run("podman", "image", "inspect", tag).stdout)[0]
    config = image["Config"]
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    service = service_of(target)
    expected = {
        "LIGHTNING_MODE": target.target,
        "SERVICE_TYPE": service,
        "LIGHTNING_HOST": "0.0.0.0",  # noqa: S104 - images listen on every interface
    }
    problems = [
        f"{key}={env.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if env.get(key) != value
    ]
    if config.get("User") != NON_ROOT_USER:
        problems.append(f"user {config.get('User')!r}, expected {NON_ROOT_USER}")
    has_healthcheck = bool(image.get("Healthcheck") or config.get("Healthcheck"))
    listens = service in HTTP_PORTS
    if has_healthcheck != listens:
        problems.append(f"HEALTHCHECK present={has_healthcheck}, but service listens={listens}")
    if "org.opencontainers.image.revision" not in (config.get("Labels") or {}):
        problems.append("no org.opencontainers.image.revision label")
    if problems:
        raise CheckFailed("inspect: " + "; ".join(problems))
    size: int = image.get("Size", 0)
    return size


def expected_refusal(target: BakeTarget) -> str | None:
    """The setting the image, started with no settings, must name; None if it may start."""
    table = (
        MISSING_STORAGE_SETTING if SERVICES[service_of(target)].storage else MISSING_SIGN_IN_SETTING
    )
    return table.get(target.target or "")


def check_config_error(containers: Containers, tag: str, wanted: str) -> None:
    """With no settings the image's own mode must refuse to start, in one line naming `wanted`."""
    name = containers.start(tag)
    waited = containers.engine.run("podman", "wait", name, timeout=STARTUP_TIMEOUT)
    exit_code = int(waited.stdout.strip() or -1)
    # The container's own output only: podman's warnings go to the `run` call's stderr.
    lines = [line for line in containers.logs(name).splitlines() if line.strip()]
    one_clear_line = len(lines) == 1 and wanted in lines[0] and "Traceback" not in lines[0]
    if exit_code == 0 or not one_clear_line:
        shown = " | ".join(lines[-3:]) or "(no output)"
        raise CheckFailed(
            f"config: expected exit != 0 and one line naming {wanted}, "
            f"got exit {exit_code}: {shown}"
        )


def check_healthz(containers: Containers, target: BakeTarget, tag: str) -> None:
    """Embedded mode: /healthz answers on the published port and HEALTHCHECK passes."""
    port = free_port()
    container_port = HTTP_PORTS[service_of(target)]
    name = containers.start(
        tag, "--publish", f"127.0.0.1:{port}:{container_port}", "--env", "LIGHTNING_MODE=embedded"
    )
    wait_for_http(containers, name, f"http://127.0.0.1:{port}/healthz")
    healthcheck = containers.engine.run("podman", "healthcheck", "run", name, check=False)
    if healthcheck.returncode != 0:
        raise CheckFailed(f"healthcheck: {last_line(healthcheck.stdout + healthcheck.stderr)}")
    check_sigterm(containers, name)


def check_worker(containers: Containers, tag: str) -> None:
    """Embedded mode: the worker starts, then exits 0 on SIGTERM."""
    name = containers.start(tag, "--env", "LIGHTNING_MODE=embedded")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while "started" not in containers.logs(name):
        if not containers.state(name)["Running"] or time.monotonic() > deadline:
            raise CheckFailed(f"start: worker did not start: {last_line(containers.logs(name))}")
        time.sleep(0.5)
    check_sigterm(containers, name)


def check_sigterm(containers: Containers, name: str) -> None:
    exit_code = containers.stop(name)
    if exit_code != 0:
        raise CheckFailed(f"sigterm: exit code {exit_code}: {last_line(containers.logs(name))}")


def wait_for_http(containers: Containers, name: str, url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not containers.state(name)["Running"]:
            raise CheckFailed(f"healthz: container exited: {last_line(containers.logs(name))}")
        time.sleep(0.5)
    raise CheckFailed(f"healthz: {url} did not answer 200 within {STARTUP_TIMEOUT:.0f} s")


def build(
    engine: Engine,
    target: BakeTarget,
    outcome: Outcome,
    console: Console,
    stage_images: Mapping[str, str],
) -> bool:
    ca_bundle = CA_BUNDLE if CA_BUNDLE.is_file() else None
    unbuilt = [name for name in target.linked if name not in stage_images]
    if unbuilt:
        outcome.failure = f"build: needs stage {unbuilt[0]}, which did not build"
        return False
    started = time.monotonic()
    with console.status(f"building {target.name} ({target.description or 'shared stage'})"):
        command = bud_command(target, ca_bundle=ca_bundle, stage_images=stage_images)
        result = engine.run(*command, check=False, timeout=1800)
    outcome.seconds = time.monotonic() - started
    if result.returncode != 0:
        console.print(result.stdout[-4000:], result.stderr[-4000:], markup=False, highlight=False)
        outcome.failure = f"build: {last_line(result.stderr or result.stdout)}"
        return False
    outcome.passed.append("build")
    console.log(f"built {outcome.tag} in {outcome.seconds:.1f} s")
    return True


def check(engine: Engine, containers: Containers, target: BakeTarget, outcome: Outcome) -> None:
    tag = outcome.tag
    try:
        outcome.size_bytes = check_inspect(engine, target, tag)
        outcome.passed.append("inspect")
        wanted = expected_refusal(target)
        if wanted is not None:
            check_config_error(containers, tag, wanted)
            outcome.passed.append("config")
        if service_of(target) in HTTP_PORTS:
            check_healthz(containers, target, tag)
            outcome.passed += ["healthz", "sigterm"]
        else:
            check_worker(containers, tag)
            outcome.passed.append("sigterm")
    except CheckFailed as failure:
        outcome.failure = str(failure)


def report(outcomes: Sequence[Outcome]) -> Table:
    table = Table(title="bake targets built with buildah and run with podman")
    for column in ("target", "image tag", "size", "build s", "checks"):
        right = column in ("size", "build s")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for outcome in outcomes:
        size = f"{outcome.size_bytes / 1e6:.0f} MB" if outcome.size_bytes else "-"
        result = (
            "[green]ok[/] " + ", ".join(outcome.passed)
            if outcome.ok
            else f"[red]FAILED[/] {outcome.failure}"
        )
        table.add_row(outcome.target, outcome.tag, size, f"{outcome.seconds:.1f}", result)
    return table


def plans_of(groups: Sequence[str]) -> list[BakePlan]:
    variables = bake_variables()
    return [load_plan(group, variables=variables) for group in groups]


def targets_of(groups: Sequence[str]) -> list[BakeTarget]:
    """The images `groups` build, each once, in bake's order."""
    targets: list[BakeTarget] = []
    for plan in plans_of(groups):
        targets += [t for t in plan.targets if t not in targets]
    return targets


def stages_of(groups: Sequence[str]) -> list[BakeTarget]:
    """The shared stages those images take as named contexts, each before its users."""
    stages: list[BakeTarget] = []
    for plan in plans_of(groups):
        stages += [t for t in plan.stages if t not in stages]
    return stages


def run(groups: Sequence[str], console: Console) -> list[Outcome]:
    """Build and check every target of `groups`; ToolError if the machine cannot."""
    engine = setup_engine(cache_dir())
    image = base_image()
    with console.status(f"base image {image}"):
        started = time.monotonic()
        how = ensure_base_image(engine, image)
    console.log(f"base image {image}: {how} ({time.monotonic() - started:.1f} s)")
    outcomes: list[Outcome] = []
    stage_images: dict[str, str] = {}
    for stage in stages_of(groups):
        outcome = Outcome(stage.name, image_of(stage))
        outcomes.append(outcome)
        if build(engine, stage, outcome, console, stage_images):
            stage_images[stage.name] = outcome.tag
    with Containers(engine) as containers:
        for target in targets_of(groups):
            outcome = Outcome(target.name, image_of(target))
            outcomes.append(outcome)
            if build(engine, target, outcome, console, stage_images):
                with console.status(f"checking {outcome.tag}"):
                    check(engine, containers, target, outcome)
                console.log(f"checked {outcome.tag}: {outcome.failure or 'ok'}")
    return outcomes


@contextmanager
def _timed(console: Console) -> Iterator[None]:
    started = time.monotonic()
    yield
    console.log(f"total {time.monotonic() - started:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_devtools.containers", description=__doc__.splitlines()[0]
    )
    parser.add_argument("groups", nargs="*", default=list(GROUPS), help="bake groups or targets")
    groups: list[str] = parser.parse_args(argv).groups
    console = Console(stderr=True)
    try:
        with _timed(console):
            outcomes = run(groups, console)
    except ToolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    Console(width=None if sys.stdout.isatty() else 160).print(report(outcomes))
    return 0 if outcomes and all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
